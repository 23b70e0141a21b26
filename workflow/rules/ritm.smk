# RITM's iterative training and the satellite report's building NoC study (ritm.enabled; issue 11):
# RITM trained from scratch on ritm.dataset, on ritm.source (the "no training" model, or the user's
# ritm.checkpoint), finetuned from it, and without clicks; RITM, AC and DISCA clicked by RITM's user
# on the SAME test crops; the report's Table 1 and Figs. 7 / 8.

RITM_MODELS = f"{MODELS}/ritm"
RITM_CODE = code("clicks", "data", "models", "training", "evaluation", "interactive", "active", "steps", "ritm_study",
                 "ritm_steps", "torchvision_compat")
if RITM_ENABLED:
    with exit_on_config_error():
        RITM_EXPERIMENTS = ritm_experiments(RITM)
    RITM_DATASET, RITM_SOURCE = RITM["dataset"]["name"], RITM["source"]["name"]
    RITM_NETWORKS, RITM_METHODS = list(RITM["networks"]["names"]), list(RITM["networks"]["methods"])
    _unknown = [n for n in RITM_NETWORKS if n not in ALL_NETWORKS]
    if _unknown:
        raise SystemExit(f"error: ritm.networks.names: {', '.join(_unknown)} not in pretrain.networks ({', '.join(ALL_NETWORKS)})")
    if of_family(RITM_METHODS, "forest"):
        raise SystemExit(f"error: ritm.networks.methods: {', '.join(of_family(RITM_METHODS, 'forest'))} is not a network method; "
                         "the crops are clicked on networks (ac, disca, the arms)")
else:
    RITM_EXPERIMENTS, RITM_DATASET, RITM_SOURCE, RITM_NETWORKS, RITM_METHODS = [], None, None, [], []


def ritm_tables():
    """One tidy table per RITM experiment and per (network, method) on the same crops."""
    if not RITM_ENABLED:
        return []
    return (expand("reports/tables/ritm/{dataset}/ritm/{experiment}.csv", dataset=RITM_DATASET, experiment=RITM_EXPERIMENTS)
            + expand("reports/tables/ritm/{dataset}/{network}/{method}.csv", dataset=RITM_DATASET, network=RITM_NETWORKS,
                     method=RITM_METHODS))


def ritm_reports():
    if not RITM_ENABLED:
        return []
    return ["reports/tables/ritm_table1.csv", "reports/ritm_table1.md", "reports/figures/ritm_iou_vs_clicks.png",
            "reports/figures/ritm_click_gain.png"]


def ritm_no_training_input(wildcards):
    """The user's ritm.checkpoint when given, else RITM trained from scratch on ritm.source."""
    return RITM["checkpoint"] or f"{RITM_MODELS}/{RITM_SOURCE}/from_scratch.pt"


def ritm_calibration(wildcards):
    """calibrate_disca's lr for an adapting method when ritm.networks.disca_lr is `calibrated`."""
    if not METHODS[wildcards.method].adapts or RITM["networks"]["disca_lr"] != "calibrated":
        return []
    return f"reports/metrics/calibration/{wildcards.dataset}/{wildcards.dataset}/{wildcards.network}/{wildcards.method}.json"


def ritm_calibration_files():
    """The calibrations the RITM study's adapting methods read (listed in reports/reproduction.md)."""
    if not RITM_ENABLED or RITM["networks"]["disca_lr"] != "calibrated":
        return []
    return expand("reports/metrics/calibration/{dataset}/{dataset}/{network}/{method}.json", dataset=RITM_DATASET,
                  network=RITM_NETWORKS, method=adapting(RITM_METHODS))


def ritm_training_metrics():
    """How each experiment's model was made (epochs, crops, origin), and the source model's training."""
    files = expand("reports/metrics/ritm/{dataset}/{experiment}.json", dataset=RITM_DATASET, experiment=RITM_EXPERIMENTS)
    return files + ([f"reports/metrics/ritm/{RITM_SOURCE}/from_scratch.json"] if RITM_ENABLED and RITM_NEEDS_SOURCE else [])


rule ritm_train:
    """RITM's iterative training on {dataset}'s training images from a random init: `from_scratch`
    (on ritm.source it is the source model) or `not_interactive` (all-zero click maps)."""
    output:
        model=f"{RITM_MODELS}/{{dataset}}/{{experiment}}.pt",
        metrics="reports/metrics/ritm/{dataset}/{experiment}.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        code=RITM_CODE,
    params:
        network=RITM.get("network"),
        training=RITM.get("training"),
        seed=config["seed"],
    wildcard_constraints:
        experiment="from_scratch|not_interactive",
    log:
        "logs/{dataset}/ritm_train_{experiment}.log",
    benchmark:
        "benchmarks/runs/{dataset}/ritm_train_{experiment}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=6000,
    script:
        "../scripts/ritm_train.py"


rule ritm_finetune:
    """The report's "Finetuning": the same training started from the source model."""
    output:
        model=f"{RITM_MODELS}/{{dataset}}/finetuning.pt",
        metrics="reports/metrics/ritm/{dataset}/finetuning.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        init=f"{RITM_MODELS}/{RITM_SOURCE}/from_scratch.pt",
        code=RITM_CODE,
    params:
        network=RITM.get("network"),
        training=RITM.get("training"),
        seed=config["seed"],
    log:
        "logs/{dataset}/ritm_train_finetuning.log",
    benchmark:
        "benchmarks/runs/{dataset}/ritm_train_finetuning.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=6000,
    script:
        "../scripts/ritm_train.py"


rule ritm_no_training:
    """The report's "No training": the source model (or ritm.checkpoint, checked against
    ritm.network) applied as is, saved as {dataset}'s no_training model."""
    output:
        model=f"{RITM_MODELS}/{{dataset}}/no_training.pt",
        metrics="reports/metrics/ritm/{dataset}/no_training.json",
    input:
        model=ritm_no_training_input,
        code=RITM_CODE,
    params:
        network=RITM.get("network"),
        checkpoint=RITM.get("checkpoint"),
        source=RITM_SOURCE,
    log:
        "logs/{dataset}/ritm_no_training.log",
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/ritm_no_training.py"


rule ritm_evaluate:
    """One RITM experiment clicked by RITM's user on {dataset}'s test crops (its validation images)."""
    output:
        "reports/tables/ritm/{dataset}/ritm/{experiment}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        model=f"{RITM_MODELS}/{{dataset}}/{{experiment}}.pt",
        code=RITM_CODE,
    params:
        protocol=RITM.get("evaluation"),
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS),
    log:
        "logs/{dataset}/ritm_evaluate_{experiment}.log",
    benchmark:
        "benchmarks/runs/{dataset}/ritm_evaluate_{experiment}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=3000,
    script:
        "../scripts/ritm_evaluate.py"


rule ritm_evaluate_network:
    """A project network ({method}: AC, DISCA …) trained on {dataset}, on the same crops and clicked
    by the same user as RITM."""
    output:
        "reports/tables/ritm/{dataset}/{network}/{method}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        model=f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt",
        calibration=ritm_calibration,
        code=RITM_CODE,
    params:
        evaluation=evaluation_params("clicks"),
        disca_lr=RITM.get("networks", {}).get("disca_lr"),
        protocol=RITM.get("evaluation"),
        seed=config["seed"],
    log:
        "logs/{dataset}/ritm_evaluate_{network}_{method}.log",
    benchmark:
        "benchmarks/runs/{dataset}/ritm_evaluate_{network}_{method}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=3000,
    script:
        "../scripts/ritm_evaluate_network.py"


rule combine_ritm:
    output:
        "reports/tables/ritm.csv",
    input:
        ritm_tables(),
    log:
        "logs/combine_ritm.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule report_ritm:
    """The report's Table 1 (CSV + markdown, its numbers beside ours), Fig. 7 (IoU vs clicks) and
    Fig. 8 (IoU gained by the n-th click)."""
    output:
        table="reports/tables/ritm_table1.csv",
        markdown="reports/ritm_table1.md",
        curves="reports/tables/ritm_curves.csv",
        increments="reports/tables/ritm_click_gain.csv",
        fig7="reports/figures/ritm_iou_vs_clicks.png",
        fig8="reports/figures/ritm_click_gain.png",
    input:
        rows="reports/tables/ritm.csv",
        metrics=ritm_training_metrics(),
        paper=os.path.relpath(Path(workflow.basedir) / "src/dial_core/report/paper_numbers.csv"),
        code=code("report", "ritm_study", "evaluation/noc", "evaluation/noc_protocol"),
    params:
        thresholds=RITM.get("evaluation", {}).get("thresholds"),
        network=RITM.get("network"),
        training=RITM.get("training"),
    log:
        "logs/report_ritm.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_ritm.py"


rule ritm_all:
    input:
        ritm_reports(),
