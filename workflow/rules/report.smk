# Report: tidy tables gathered, then figures, a markdown summary and DVC metrics made from them.


rule combine_clicks:
    output:
        "reports/tables/clicks.csv",
    input:
        click_tables(),
    log:
        "logs/combine_clicks.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule combine_patches:
    output:
        "reports/tables/patches.csv",
    input:
        patch_tables(),
    log:
        "logs/combine_patches.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule combine_transfer_patches:
    output:
        "reports/tables/transfer_patches.csv",
    input:
        transfer_patch_tables(),
    log:
        "logs/combine_transfer_patches.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule report_transfer_patches:
    """DIAL Figs. 3d / 4d: mIoU vs annotated patches on the transfer targets, one line per acquisition."""
    output:
        figure="reports/figures/transfer_patches.png",
    input:
        patches="reports/tables/transfer_patches.csv",
        code=code("report"),
    log:
        "logs/report_transfer_patches.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_patches.py"


rule report:
    output:
        clicks_figure="reports/figures/miou_vs_clicks.png",
        patches_figure="reports/figures/miou_vs_patches.png",
        summary="reports/summary.md",
        metrics="reports/metrics/evaluation.json",
    input:
        clicks="reports/tables/clicks.csv",
        patches="reports/tables/patches.csv",
        pretrain="reports/metrics/pretrain.json",
        code=code("report", "evaluation/metrics"),
    params:
        noc_thresholds=config["report"]["noc_thresholds"],
        noc_budget=config["report"].get("noc_budget", 20),
        main_networks=NETWORKS,
    log:
        "logs/report.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report.py"


rule report_all:
    input:
        rules.report.output,
        rules.confidnet_all.input,
        ["reports/figures/studies.png", "reports/tables/studies.csv"] if STUDY_ENTRIES else [],
        ["reports/figures/transfer.png", "reports/tables/transfer_summary.csv"] if transfer_tables() else [],
        "reports/figures/transfer_patches.png" if transfer_patch_tables() else [],
        analysis_reports(),
        pool_reports(),
        ritm_reports(),
        "reports/reproduction.md",


rule report_studies:
    output:
        figure="reports/figures/studies.png",
        table="reports/tables/studies.csv",
        markdown="reports/studies.md",
    input:
        clicks="reports/tables/clicks.csv",
        pretrain="reports/metrics/pretrain.json",
        code=code("report"),
    params:
        entries=[vars(e) for e in STUDY_ENTRIES],
        dataset=DATASET,
    log:
        "logs/report_studies.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_studies.py"


rule combine_transfer:
    output:
        "reports/tables/transfer.csv",
    input:
        transfer_tables(),
    log:
        "logs/combine_transfer.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule report_transfer:
    output:
        figure="reports/figures/transfer.png",
        table="reports/tables/transfer_summary.csv",
    input:
        transfer="reports/tables/transfer.csv",
        clicks="reports/tables/clicks.csv",
        code=code("report", "evaluation/metrics"),
    params:
        noc_thresholds=config["report"]["noc_thresholds"],
        noc_budget=config["report"].get("noc_budget", 20),
        networks=TRANSFER["networks"],
    log:
        "logs/report_transfer.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_transfer.py"


def reproduction_inputs(wildcards):
    """The combined tables of this run: clicks and patches always, transfer when it has targets,
    studies when they are enabled (as report_all decides), plus the papers' numbers."""
    inputs = {
        "clicks": "reports/tables/clicks.csv",
        "patches": "reports/tables/patches.csv",
        "pretrain": "reports/metrics/pretrain.json",
        "paper": os.path.relpath(Path(workflow.basedir) / "src/dial_core/report/paper_numbers.csv"),
    }
    if transfer_tables():
        inputs["transfer"] = "reports/tables/transfer.csv"
    if STUDY_ENTRIES:
        inputs["studies"] = "reports/tables/studies.csv"
    for name, tables in (("sequential", sequential_tables()), ("control", control_tables()), ("users", user_tables()),
                          ("crops", crop_tables())):
        if tables:
            inputs[name] = f"reports/tables/{name}.csv"
    if pool_tables():
        inputs["pool"] = "reports/tables/pool.csv"
        inputs["pool_full"] = "reports/tables/pool_full.csv"
    if ritm_tables():
        inputs["ritm"] = "reports/tables/ritm.csv"
    inputs["calibrations"] = calibration_files() + ritm_calibration_files()
    return inputs


rule reproduction:
    """reports/reproduction.md: each paper table / figure with our numbers beside it, our run's scale stated."""
    output:
        markdown="reports/reproduction.md",
    input:
        unpack(reproduction_inputs),
        code=code("report"),
    params:
        network=NETWORKS[0],
        scale={
            "dataset": DATASET,
            "architecture": f"{ALL_NETWORKS[NETWORKS[0]]['arch']}-{ALL_NETWORKS[NETWORKS[0]]['encoder']}",
            "n_clicks": config["evaluation"]["clicks"]["n_clicks"],
            "patch_size": config["evaluation"]["patches"]["size"],
            "max_patches": config["evaluation"]["patches"]["max_patches"],
            "epochs": config["pretrain"]["epochs"],
            "crops_per_epoch": config["pretrain"]["crops_per_epoch"],
            "crop_size": config["pretrain"]["crop_size"],
            "disca_lr": config["evaluation"]["disca"]["lr"],  # a number, or `calibrated` (per network, in metrics)
        },
    log:
        "logs/reproduction.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/reproduction.py"
