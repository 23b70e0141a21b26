# DIAL reproduction workflow: download/prepare → split → tile → pretrain → ConfidNet →
# simulated interactive evaluations → report.  Run:  snakemake --cores 8 --resources gpu=1
import os
import sys

from snakemake.utils import min_version

min_version("9.0")
sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # works before `pip install -e .` too

from dial_core.config import check_files  # a broken params.yaml: one line with file:line:column, not a traceback

for problem in check_files([f for f in ["params.yaml"] if os.path.exists(f)]):
    sys.exit(f"error: {problem}")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/confidnet.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/analyses.smk"
include: "workflow/rules/pool.smk"
include: "workflow/rules/ritm.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.report_all.input,
