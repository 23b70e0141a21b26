# Area Disagreement's pool-based active learning (active_learning.enabled): for each strategy and
# seed, select -> retrain from scratch -> test on the main dataset; a full-pool reference; its report.

ACTIVE = config.get("active_learning") or {}
POOL_ENABLED = bool(ACTIVE.get("enabled"))
if POOL_ENABLED:
    with exit_on_config_error():
        POOL_STRATEGIES = pool_strategies(ACTIVE)
else:
    POOL_STRATEGIES = []


def pool_tables():
    return expand("reports/tables/pool/{dataset}/{strategy}_{seed}.csv", dataset=DATASET, strategy=POOL_STRATEGIES,
                  seed=ACTIVE.get("seeds", [])) if POOL_ENABLED else []


def pool_full_runs():
    return expand("reports/metrics/pool/{dataset}/full_{seed}.json", dataset=DATASET, seed=ACTIVE["full_pool_seeds"]) if POOL_ENABLED else []


def pool_reports():
    return ["reports/figures/pool_learning_curves.png", "reports/figures/pool_diversity.png",
            "reports/tables/pool_thresholds.csv"] if POOL_ENABLED else []


rule pool_loop:
    """One strategy and seed of the loop: every iteration's test scores and selected batch (a killed
    job resumes from its finished iterations, kept in data/models/pool/)."""
    output:
        "reports/tables/pool/{dataset}/{strategy}_{seed}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        code=code("active", "data", "models", "training", "evaluation", "steps", "torchvision_compat"),
    params:
        active_learning=ACTIVE,
        tiling=config["tiling"],
        progress=f"{MODELS}/pool/{{dataset}}/{{strategy}}_{{seed}}.progress.csv",
    wildcard_constraints:
        seed="[0-9]+",
        strategy="|".join(ACQUISITIONS),
    log:
        "logs/{dataset}/pool_{strategy}_{seed}.log",
    benchmark:
        "benchmarks/runs/{dataset}/pool_{strategy}_{seed}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/pool_loop.py"


rule pool_full:
    """AD Table I's 100 %: the same network and training on the whole pool."""
    output:
        "reports/metrics/pool/{dataset}/full_{seed}.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        code=code("active", "data", "models", "training", "evaluation", "steps", "torchvision_compat"),
    params:
        active_learning=ACTIVE,
        tiling=config["tiling"],
    wildcard_constraints:
        seed="[0-9]+",
    log:
        "logs/{dataset}/pool_full_{seed}.log",
    benchmark:
        "benchmarks/runs/{dataset}/pool_full_{seed}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/pool_full.py"


rule combine_pool:
    output:
        "reports/tables/pool.csv",
    input:
        pool_tables(),
    log:
        "logs/combine_pool.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/combine_tables.py"


rule report_pool:
    """AD Fig. 3 (test mIoU vs labelled share, 95 % band over seeds), Table I (iterations to reach a
    share of the full-pool mIoU) and Fig. 4 (objects and classes per image of each selected batch)."""
    output:
        figure="reports/figures/pool_learning_curves.png",
        diversity="reports/figures/pool_diversity.png",
        thresholds="reports/tables/pool_thresholds.csv",
        curves="reports/tables/pool_curves.csv",
        full="reports/tables/pool_full.csv",
    input:
        rows="reports/tables/pool.csv",
        full_runs=pool_full_runs(),
        code=code("report"),
    params:
        thresholds=ACTIVE.get("thresholds"),
    log:
        "logs/report_pool.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/report_pool.py"


rule pool_all:
    input:
        pool_reports(),
