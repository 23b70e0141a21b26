# Data: prepare the canonical dataset, split it 80/20, index the evaluation windows.


rule prepare_synthetic:
    output:
        info=f"{PROCESSED}/dataset.json",
        images=directory(f"{PROCESSED}/images"),
        labels=directory(f"{PROCESSED}/labels"),
    input:
        code=code("data"),
    params:
        synthetic=config["dataset"]["synthetic"],
        seed=config["seed"],
    log:
        "logs/{dataset}/prepare.log",
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/prepare_synthetic.py"


rule split:
    output:
        f"{PROCESSED}/split.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        code=code("data"),
    params:
        val_fraction=config["split"]["val_fraction"],
        seed=config["seed"],
    log:
        "logs/{dataset}/split.log",
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/split.py"


rule tile:
    output:
        f"{PROCESSED}/tiles.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        code=code("data"),
    params:
        size=config["tiling"]["size"],
        overlap=config["tiling"]["overlap"],
    log:
        "logs/{dataset}/tile.log",
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/tile.py"


rule data_all:
    input:
        expand(f"{PROCESSED}/{{name}}", dataset=DATASET, name=["dataset.json", "split.json", "tiles.csv"]),
