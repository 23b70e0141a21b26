# Simulated interactive evaluations on the validation images; each writes a tidy table.


rule evaluation_images:
    """The validation images of {dataset} the evaluations run on: all, or a seeded selection of
    evaluation.max_images (large folders), recorded so every table of a run uses the same images."""
    output:
        "reports/tables/evaluation_images/{dataset}.json",
    input:
        split=f"{PROCESSED}/split.json",
        code=code("evaluation/selection"),
    params:
        max_images=config["evaluation"]["max_images"],
        seed=config["seed"],
    log:
        "logs/{dataset}/evaluation_images.log",
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/select_images.py"


rule calibrate_disca:
    """The learning rate of {method} (DISCA or an adapting ablation arm) for {network} trained on
    {source}, when clicked on {dataset} ({source} itself, or a transfer target): the grid value with the best mean mIoU gain of the click protocol
    on {dataset}'s calibration images, training images held out of every network's training (never
    validation images). Read by the evaluations when disca.lr: calibrated."""
    output:
        "reports/metrics/calibration/{source}/{dataset}/{network}/{method}.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        source_info="data/processed/{source}/dataset.json",
        model=f"{MODELS}/pretrain/{{source}}/{{network}}.pt",
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
    params:
        evaluation=evaluation_params("clicks"),  # the user the evaluations click with
        tiling=config["tiling"],
        seed=config["seed"],
    log:
        "logs/{dataset}/calibrate_{source}_{network}_{method}.log",
    benchmark:
        "benchmarks/runs/{dataset}/calibrate_{source}_{network}_{method}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/calibrate_disca.py"


rule evaluate_clicks:
    output:
        "reports/tables/clicks/{dataset}/{network}/{method}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        model=method_model,  # the network, or ALCD's pixel samples
        calibration=disca_calibration,
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
        clicks=human_click_logs,  # the human agent's click logs: an edited log re-runs the evaluation
    params:
        evaluation=evaluation_params("clicks"),  # the agent matches how the network was trained
        tiling=config["tiling"],
        seed=config["seed"],
        alcd=config.get("alcd"),  # the forest method's settings
    log:
        "logs/{dataset}/clicks_{network}_{method}.log",
    benchmark:
        "benchmarks/runs/{dataset}/clicks_{network}_{method}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate.py"


rule evaluate_patches:
    output:
        "reports/tables/patches/{dataset}/{network}/{method}_{acquisition}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        model=f"{MODELS}/pretrain/{{dataset}}/{{network}}.pt",
        confidnet=confidnet_input,
        calibration=disca_calibration,
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
        clicks=human_click_logs,  # the human agent's click logs: an edited log re-runs the evaluation
    params:
        evaluation=evaluation_params("patches"),  # the agent matches how the network was trained
        tiling=config["tiling"],
        seed=config["seed"],
    log:
        "logs/{dataset}/patches_{network}_{method}_{acquisition}.log",
    benchmark:
        "benchmarks/runs/{dataset}/patches_{network}_{method}_{acquisition}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate.py"


rule pretrain_alcd:
    """ALCD (DIAL Fig. 5): alcd.samples_per_image labelled pixels of each training image of {dataset}
    with their colour and local-statistics features; the forest is refit from them where it is used.
    The metrics hold the forest's validation mIoU without clicks."""
    output:
        samples=f"{MODELS}/alcd/{{dataset}}.npz",
        metrics="reports/metrics/alcd/{dataset}.json",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        code=code("interactive/alcd", "data", "evaluation/metrics", "steps"),
    params:
        alcd=config.get("alcd"),
        seed=config["seed"],
    log:
        "logs/{dataset}/pretrain_alcd.log",
    benchmark:
        "benchmarks/runs/{dataset}/pretrain_alcd.tsv"
    threads: 2
    resources:
        mem_mb=4000,
    script:
        "../scripts/pretrain_alcd.py"


rule evaluate_all:
    input:
        click_tables(),
        transfer_tables(),
        patch_tables(),
        transfer_patch_tables(),


rule evaluate_transfer_patches:
    """DIAL's patch protocol on the validation images of {dataset} with a network trained on {source}
    (DIAL Figs. 3c-d and 4c-d; transfer.patches)."""
    output:
        "reports/tables/transfer_patches/{source}/{dataset}/{network}/{method}_{acquisition}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        source_info="data/processed/{source}/dataset.json",
        model=f"{MODELS}/pretrain/{{source}}/{{network}}.pt",
        confidnet=confidnet_input,
        calibration=disca_calibration,
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
        clicks=human_click_logs,
    params:
        evaluation=evaluation_params("patches"),
        tiling=config["tiling"],
        seed=config["seed"],
    log:
        "logs/{dataset}/transfer_patches_{source}_{network}_{method}_{acquisition}.log",
    benchmark:
        "benchmarks/runs/{dataset}/transfer_patches_{source}_{network}_{method}_{acquisition}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate.py"


rule evaluate_transfer:
    """Domain adaptation: a network trained on {source}, clicked on the validation images of {dataset}."""
    output:
        "reports/tables/transfer/{source}/{dataset}/{network}/{method}.csv",
    input:
        info=f"{PROCESSED}/dataset.json",
        split=f"{PROCESSED}/split.json",
        images="reports/tables/evaluation_images/{dataset}.json",
        source_info="data/processed/{source}/dataset.json",
        model=method_model,  # the network trained on {source}, or ALCD's pixel samples from it
        calibration=disca_calibration,
        code=code("clicks", "data", "models", "interactive", "evaluation", "active", "steps", "torchvision_compat"),
        clicks=human_click_logs,  # the human agent's click logs: an edited log re-runs the evaluation
    params:
        evaluation=evaluation_params("clicks"),  # the agent matches how the network was trained
        tiling=config["tiling"],
        seed=config["seed"],
        alcd=config.get("alcd"),  # the forest method's settings
    log:
        "logs/{dataset}/transfer_{source}_{network}_{method}.log",
    benchmark:
        "benchmarks/runs/{dataset}/transfer_{source}_{network}_{method}.tsv"
    threads: EVALUATION_THREADS
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/evaluate_transfer.py"
