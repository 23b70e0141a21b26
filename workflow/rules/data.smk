# Data: download raw files (when the adapter has any), prepare the canonical dataset, split it,
# index the evaluation windows.


rule download:
    output:
        "data/raw/{dataset}/{file}",
    params:
        url=download_param("url"),
        checksum=download_param("checksum"),
        checksum_file=download_param("checksum_file"),
        retries=5,
    log:
        "logs/{dataset}/download_{file}.log",
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/download.py"


rule prepare_dataset:
    output:
        info=f"{PROCESSED}/dataset.json",
        images=directory(f"{PROCESSED}/images"),
        labels=directory(f"{PROCESSED}/labels"),
    input:
        raw=raw_inputs,
        code=code("data"),
    params:
        adapter=adapter_name,
        options=adapter_options,
        blocks=split_blocks,
    log:
        "logs/{dataset}/prepare.log",
    threads: 1
    resources:
        mem_mb=2000,
    script:
        "../scripts/prepare_dataset.py"


rule split:
    output:
        f"{PROCESSED}/split.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        val_list=split_inputs,
        code=code("data"),
    params:
        split=split_params,
        blocks=split_blocks,
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
        expand(f"{PROCESSED}/{{name}}", dataset=list(DATASETS), name=["dataset.json", "split.json", "tiles.csv"]),
