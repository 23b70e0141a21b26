# DIAL reproduction workflow: download/prepare → split → tile → pretrain → ConfidNet →
# simulated interactive evaluations → report.  Run:  snakemake --cores 8 --resources gpu=1
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/confidnet.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report_all.input,
