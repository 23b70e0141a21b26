# Pretraining of the AC networks (one job per network of params pretrain.networks).


rule pretrain:
    output:
        model=f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt",
        metrics="reports/metrics/pretrain/{dataset}/{network}.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        code=code("clicks", "data", "models", "training", "evaluation/validation", "interactive/inference", "torchvision_compat", "steps", "studies"),
    params:
        network=network_params,
        train={k: v for k, v in config["pretrain"].items() if k not in ("base_network", "networks", "studies")},
        tiling=config["tiling"],
        seed=config["seed"],
        # resumable state beside the model; not an output, so a failed job keeps it
        state=f"{MODELS}/pretrain/{{dataset}}/{{network}}.state.pt",
    log:
        "logs/{dataset}/pretrain_{network}.log",
    benchmark:
        "benchmarks/runs/{dataset}/pretrain_{network}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=6000,
    script:
        "../scripts/pretrain.py"


rule pretrain_metrics:
    output:
        "reports/metrics/pretrain.json",
    input:
        expand("reports/metrics/pretrain/{dataset}/{network}.json", dataset=DATASET, network=list(ALL_NETWORKS)),
    log:
        "logs/pretrain_metrics.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/collect_json.py"


rule pretrain_all:
    input:
        expand(f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt", dataset=DATASET, network=list(ALL_NETWORKS)),
        "reports/metrics/pretrain.json",
