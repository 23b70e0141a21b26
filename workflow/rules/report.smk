# Report: tidy tables gathered, then figures, a markdown summary and DVC metrics made from them.


rule combine_clicks:
    output:
        "reports/tables/clicks.csv",
    input:
        expand("reports/tables/clicks/{dataset}/{network}/{method}.csv", dataset=DATASET, network=NETWORKS, method=CLICK_METHODS),
    log:
        "logs/combine_clicks.log",
    threads: 1
    script:
        "../scripts/combine_tables.py"


rule combine_patches:
    output:
        "reports/tables/patches.csv",
    input:
        expand("reports/tables/patches/{dataset}/{network}/{method}_{acquisition}.csv", dataset=DATASET, network=NETWORKS, method=PATCH_METHODS, acquisition=ACQUISITIONS),
    log:
        "logs/combine_patches.log",
    threads: 1
    script:
        "../scripts/combine_tables.py"


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
    log:
        "logs/report.log",
    threads: 1
    script:
        "../scripts/report.py"


rule report_all:
    input:
        rules.report.output,
        rules.confidnet_all.input,
