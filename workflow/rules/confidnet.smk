# ConfidNet: the auxiliary confidence head, trained on each frozen pretrained network.


rule confidnet:
    output:
        model=f"{MODELS}/confidnet/{{dataset}}/{{network}}.pt",
        metrics="reports/metrics/confidnet/{dataset}/{network}.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        segmenter=f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt",
        code=code("clicks", "data", "models", "training", "torchvision_compat", "steps"),
    params:
        confidnet=config["confidnet"],
        train=config["pretrain"],
        seed=config["seed"],
    log:
        "logs/{dataset}/confidnet_{network}.log",
    benchmark:
        "benchmarks/runs/{dataset}/confidnet_{network}.tsv"
    threads: 2
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/confidnet.py"


rule confidnet_metrics:
    output:
        "reports/metrics/confidnet.json",
    input:
        expand("reports/metrics/confidnet/{dataset}/{network}.json", dataset=DATASET, network=NETWORKS),
    log:
        "logs/confidnet_metrics.log",
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/collect_json.py"


rule confidnet_all:
    input:
        expand(f"{MODELS}/confidnet/{{dataset}}/{{network}}.pt", dataset=DATASET, network=NETWORKS) if NEEDS_CONFIDNET else [],
        "reports/metrics/confidnet.json" if NEEDS_CONFIDNET else [],
