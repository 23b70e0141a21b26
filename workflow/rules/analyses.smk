# Analyses of DIAL (Figs. 6, 8, 9, App. B) and DISIR (Fig. 4 / Table 1) on top of the main protocols;
# each is off in the default demo and on in config/analyses.yaml.


rule evaluate_sequential:
    """DIAL Fig. 8: {method} on {dataset}'s evaluated images with the weights of the network trained
    on {source} kept from one image to the next, in the recorded order (a `position` column)."""
    output:
        "reports/tables/sequential/{source}/{dataset}/{network}/{method}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        source_info="data/processed/{source}/dataset.json",
        model=f"{MODELS}/pretrain/{{source}}/{{network}}.pt",
        calibration=disca_calibration,
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
    params:
        evaluation=evaluation_params("clicks"),
        tiling=config["tiling"],
        seed=config["seed"],
        sequential=True,
    log:
        "logs/{dataset}/sequential_{source}_{network}_{method}.log",
    benchmark:
        "benchmarks/runs/{dataset}/sequential_{source}_{network}_{method}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate_transfer.py"


rule evaluate_users:
    """DISIR Fig. 4: AC clicks on {dataset} under the simulated user variant {user} (analyses.users)."""
    output:
        "reports/tables/users/{dataset}/{network}/{user}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        model=f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt",
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
    params:
        evaluation=user_evaluation,
        clicks=(ANALYSES.get("users") or {}).get("clicks", 12),
        tiling=config["tiling"],
        seed=config["seed"],
    log:
        "logs/{dataset}/users_{network}_{user}.log",
    benchmark:
        "benchmarks/runs/{dataset}/users_{network}_{user}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate_users.py"


rule evaluate_crops:
    """DIAL Fig. 9 / App. B: evaluation.crops.n_crops crops sampled from {dataset}'s evaluated images,
    one annotation each by the simulated user {agent}, every method of evaluation.crops on the same click."""
    output:
        "reports/tables/crops/{dataset}/{network}/{agent}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        model=f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt",
        calibrations=crop_calibrations,
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
    params:
        evaluation=evaluation_params("crops"),
        crops=CROP_SETTINGS,
        tiling=config["tiling"],
        seed=config["seed"],
    log:
        "logs/{dataset}/crops_{network}_{agent}.log",
    benchmark:
        "benchmarks/runs/{dataset}/crops_{network}_{agent}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate_crops.py"


rule combine_crops:
    output:
        "reports/tables/crops.csv",
    input:
        crop_tables(),
    log:
        "logs/combine_crops.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule report_crops:
    """DIAL Fig. 9 (AC vs DISCA binned by mistake size x initial accuracy) and App. B (Figs. 11-12)."""
    output:
        heatmap="reports/figures/fig9_mistake_size.png",
        bins="reports/tables/fig9_bins.csv",
        appendix_figure="reports/figures/appendix_b.png",
        appendix_table="reports/tables/appendix_b.csv",
    input:
        crops="reports/tables/crops.csv",
        code=code("report"),
    params:
        size_edges=CROP_SETTINGS.get("size_edges"),
        accuracy_edges=CROP_SETTINGS.get("accuracy_edges"),
    log:
        "logs/report_crops.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_crops.py"


rule combine_sequential:
    output:
        "reports/tables/sequential.csv",
    input:
        sequential_tables(),
    log:
        "logs/combine_sequential.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule combine_control:
    output:
        "reports/tables/control.csv",
    input:
        control_tables(),
    log:
        "logs/combine_control.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule combine_users:
    output:
        "reports/tables/users.csv",
    input:
        user_tables(),
    log:
        "logs/combine_users.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule report_sequential:
    """DIAL Fig. 8 and its table: per image position, kept vs re-initialised weights."""
    output:
        figure="reports/figures/sequential.png",
        table="reports/tables/sequential_summary.csv",
    input:
        sequential="reports/tables/sequential.csv",
        transfer="reports/tables/transfer.csv",
        code=code("report"),
    params:
        kind="sequential",
        clicks=config["evaluation"]["clicks"]["n_clicks"],
    log:
        "logs/report_sequential.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_analysis.py"


rule report_control:
    """DIAL Fig. 6 with its control: AC / DISCA from the source network beside a network trained on the target."""
    output:
        figure="reports/figures/transfer_control.png",
        table="reports/tables/control_summary.csv",
    input:
        control="reports/tables/control.csv",
        transfer="reports/tables/transfer.csv",
        code=code("report"),
    params:
        kind="control",
        clicks=config["evaluation"]["clicks"]["n_clicks"],
    log:
        "logs/report_control.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_analysis.py"


rule report_users:
    """DISIR Fig. 4 / Table 1: per simulated user, mIoU vs clicks, per-class gains, corrected pixels per click."""
    output:
        figure="reports/figures/users.png",
        table="reports/tables/users_summary.csv",
    input:
        users="reports/tables/users.csv",
        code=code("report"),
    params:
        kind="users",
        clicks=(ANALYSES.get("users") or {}).get("clicks", 12),
    log:
        "logs/report_users.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_analysis.py"


def analysis_reports():
    """The analysis figures this run makes (report_all asks for them)."""
    out = []
    if sequential_tables():
        out += rules.report_sequential.output
    if control_tables() and transfer_tables():
        out += rules.report_control.output
    if user_tables():
        out += rules.report_users.output
    if crop_tables():
        out += rules.report_crops.output
    return out
