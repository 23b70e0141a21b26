# Helpers shared by the rule files: validated params, output paths, code dependencies.
import os
import re
import sys
from pathlib import Path

import torch  # loaded by dial_core anyway; only for torch.cuda.is_available

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # works before `pip install -e .` too

from dial_core.active.acquisition import ACQUISITIONS, patch_runs
from dial_core.cli import exit_on_config_error
from dial_core.clicks.agents import agent_for_network, needs_recorded
from dial_core.clicks.click_log import click_log_files, click_log_folder
from dial_core.config import command_line_layers, load_schema, validate_params
from dial_core.data.adapters import SOURCE_OPTIONS, source_files
from dial_core.interactive.methods import METHODS, adaptation_settings, adapting, of_family
from dial_core.active.pool import pool_strategies
from dial_core.ritm_study import EXPERIMENTS, needs_source
from dial_core.ritm_study import experiments as ritm_experiments
from dial_core.studies import expand_networks

with exit_on_config_error():  # each violation names the file that set its key: params.yaml, an overlay, --config
    validate_params(
        config,
        load_schema(Path(workflow.basedir) / "workflow/schemas/params.schema.yaml"),
        layers=lambda: command_line_layers(
            workflow.configfiles,
            workflow.config_settings.configfiles,
            workflow.config_settings.config,
            workflow.config_settings.replace_workflow_config,
        ),
    )

# The `gpu` resource keeps the jobs that run on the accelerator from sharing it (`--resources gpu=1`).
# Without CUDA they run on the CPU (pick_device), where that limit would only serialise them: they
# take no `gpu` then, and `--cores` alone shares the machine.
GPU = 1 if torch.cuda.is_available() else 0
# Evaluation jobs run single-threaded: on 2 CPU cores two of them side by side finish 25 % sooner
# than one after the other with two threads each (DISCA clicks: 86 s vs 114 s; AC patches: 14 s vs
# 19 s), and their start-up (imports, ~10 s) overlaps. Training jobs keep two threads.
EVALUATION_THREADS = 1

DATASET = config["dataset"]["name"]  # the dataset networks are trained (and mainly evaluated) on
TRANSFER = config["transfer"]


class _Datasets(dict):
    """DATASETS[name] for a name params do not define (a target such as data/processed/nosuch/...)
    stops with one line naming it and the known ones. A KeyError in an input function would reach
    the user as Snakemake's InputFunctionException with a traceback; SystemExit passes through."""

    def __missing__(self, name):
        raise SystemExit(
            f"error: unknown dataset {name!r} in a requested file; this run's datasets are {', '.join(self)} "
            "(dataset.name and transfer.targets[*].name in params.yaml and the --configfile overlays)"
        )


# every dataset the run prepares: the main one, the transfer targets (domain adaptation) and, when
# ritm.enabled, the RITM study's binary dataset and its source
DATASETS = _Datasets({DATASET: config["dataset"], **{d["name"]: d for d in TRANSFER["targets"]}})
RITM = config.get("ritm") or {}
RITM_ENABLED = bool(RITM.get("enabled"))
if RITM_ENABLED:
    with exit_on_config_error():
        RITM_NEEDS_SOURCE = needs_source(RITM)
    for _key in ("dataset", "source") if RITM_NEEDS_SOURCE else ("dataset",):
        _definition = RITM[_key]
        if DATASETS.get(_definition["name"], _definition) != _definition:  # one name, one dataset
            raise SystemExit(f"error: ritm.{_key} is named {_definition['name']!r} like another dataset of this run with a "
                             "different definition (dataset or transfer.targets); give it its own name")
        DATASETS[_definition["name"]] = _definition
    if RITM_NEEDS_SOURCE and RITM["source"]["name"] == RITM["dataset"]["name"]:
        raise SystemExit("error: ritm.source must be another dataset than ritm.dataset (it stands for a model trained elsewhere)")
TRANSFER_TARGETS = [d["name"] for d in TRANSFER["targets"]]
with exit_on_config_error():
    ALL_NETWORKS, STUDY_ENTRIES = expand_networks(config["pretrain"])
NETWORKS = list(config["pretrain"]["networks"])  # main experiments: every protocol
STUDY_NETWORKS = sorted({e.network for e in STUDY_ENTRIES} - set(NETWORKS))  # AC clicks only
CLICK_METHODS = config["evaluation"]["clicks"]["methods"]
PATCH_METHODS = config["evaluation"]["patches"]["methods"]
with exit_on_config_error():
    PATCH_RUNS = patch_runs(PATCH_METHODS, config["evaluation"]["patches"]["acquisitions"])  # (method, acquisition) pairs
NEEDS_CONFIDNET = any(a == "confidnet" for _, a in PATCH_RUNS)
TRANSFER_PATCHES = bool(TRANSFER.get("patches"))  # DIAL Figs. 3c-d / 4c-d: the patch protocol on the transfer targets too

PROCESSED = "data/processed/{dataset}"
MODELS = "data/models"
# Only the files params list under `downloads` are made by the download rule; a user's own raw
# file in data/raw/<dataset>/ must never look like one (it is an input, not a job).
DOWNLOAD_FILES = sorted({d["file"] for ds in DATASETS.values() for d in (ds.get(ds["adapter"]) or {}).get("downloads", [])})
DOWNLOAD_FILE_PATTERN = "|".join(re.escape(f) for f in DOWNLOAD_FILES) or "(?!)"  # (?!) never matches


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    source="[A-Za-z0-9_-]+",
    network="[A-Za-z0-9_-]+",
    method="|".join(METHODS),
    acquisition="|".join(ACQUISITIONS),
    user="[A-Za-z0-9_-]+",
    file=DOWNLOAD_FILE_PATTERN,


def code(*packages):
    """Library files a rule's script imports: editing them re-runs the rule.

    A package (``"clicks"``) brings the ``.py`` files of its sub-packages too (``clicks/agents``),
    its own files first, then each sub-package's, sorted: the same list on every run. A module
    (``"evaluation/metrics"``) brings its one file.
    """
    root = Path(workflow.basedir) / "src" / "dial_core"
    files = [root / f for f in ("__init__.py", "errors.py", "atomic.py", "cli.py")]
    for package in packages:
        target = root / package
        if target.is_dir():
            inside = [f for f in target.rglob("*.py")
                      if not any(part.startswith((".", "__pycache__")) for part in f.relative_to(target).parts)]
            files += sorted(inside, key=lambda f: (f.relative_to(target).parent.parts, f.name))
        else:
            files.append(target.with_suffix(".py"))
    # relative to the working directory, which differs from the workflow's with --directory;
    # once each, where a package and one of its sub-packages are both named
    return list(dict.fromkeys(os.path.relpath(f) for f in files))


def adapter_name(wildcards):
    return DATASETS[wildcards.dataset]["adapter"]


def adapter_options(wildcards):
    """The adapter options of the dataset being prepared; a raw folder (`path`) defaults to data/raw/<dataset>."""
    definition = DATASETS[wildcards.dataset]
    adapter = definition["adapter"]
    options = dict(definition.get(adapter) or {})
    if adapter == "synthetic":
        options["seed"] = config["seed"]
    elif "path" in SOURCE_OPTIONS[adapter]:
        if not options.get("path"):
            options["path"] = f"data/raw/{wildcards.dataset}"
        if adapter in ("inria", "airs", "potsdam") and not options.get("extract_dir"):
            options["extract_dir"] = f"data/interim/{wildcards.dataset}"  # keeps the raw downloads untouched
    return options


def _downloads(dataset):
    definition = DATASETS[dataset]
    return {d["file"]: d for d in (definition.get(definition["adapter"]) or {}).get("downloads", [])}


def raw_downloads(wildcards):
    """Files the download rule fetches before the adapter runs (INRIA parts, an AIRS zip ...)."""
    return [f"data/raw/{wildcards.dataset}/{name}" for name in _downloads(wildcards.dataset)]


def raw_inputs(wildcards):
    """Downloads plus every file already in the adapter's source folders: editing, adding or removing
    a raw file re-prepares the dataset (Snakemake's mtime and input-set triggers)."""
    downloads = raw_downloads(wildcards)
    present = source_files(DATASETS[wildcards.dataset]["adapter"], adapter_options(wildcards))
    listed = {os.path.normpath(f) for f in downloads}
    return downloads + [str(f) for f in present if os.path.normpath(f) not in listed]


def split_settings(dataset):
    """`split` for one dataset: the run's split, with a transfer target's own `split` keys on top
    (e.g. AIRS split predefined, its Potsdam target split at random)."""
    return {**config["split"], **(DATASETS[dataset].get("split") or {})}


def split_params(wildcards):
    return split_settings(wildcards.dataset)


def split_blocks(wildcards):
    """split.blocks when the dataset's split is spatial (the preparation cuts the blocks), else None."""
    settings = split_settings(wildcards.dataset)
    return settings["blocks"] if settings["mode"] == "blocks" else None


def split_inputs(wildcards):
    """The validation list file, when the split reads one (editing it re-splits)."""
    settings = split_settings(wildcards.dataset)
    return [settings["val_list"]] if settings["mode"] == "list" and settings.get("val_list") else []


def download_param(key):
    def lookup(wildcards):
        return _downloads(wildcards.dataset)[wildcards.file].get(key)

    return lookup


def network_params(wildcards):
    return ALL_NETWORKS[wildcards.network]


def click_tables():
    """Click-protocol tables: every method for the main networks, AC for the study networks."""
    main = expand("reports/tables/clicks/{dataset}/{network}/{method}.csv", dataset=DATASET, network=NETWORKS, method=CLICK_METHODS)
    study = expand("reports/tables/clicks/{dataset}/{network}/ac.csv", dataset=DATASET, network=STUDY_NETWORKS)
    return main + study


# The `evaluation` keys each protocol reads. A rule's params hold only its protocol's keys, so an
# overlay that changes the patch study (say) does not re-run the click evaluations or calibrations.
CLICK_KEYS = ("agent", "agent_options", "clicks", "disca", "arms")
PROTOCOL_KEYS = {"clicks": CLICK_KEYS, "crops": CLICK_KEYS + ("acquisition",), "patches": CLICK_KEYS + ("acquisition", "patches")}


def protocol_evaluation(evaluation, protocol):
    """The part of ``evaluation`` the ``protocol`` (clicks, crops or patches) reads."""
    return {key: value for key, value in evaluation.items() if key in PROTOCOL_KEYS[protocol]}


def evaluation_params(protocol):
    """Rule params: `evaluation` for one network and ``protocol``. A network trained with border
    clicks is evaluated by the user that clicks on mistake borders (largest_mistake_border for
    largest_mistake_centre; DISIR Fig. 6), so its tables carry that agent."""
    def params(wildcards):
        evaluation = config["evaluation"]
        agent = agent_for_network(evaluation["agent"], ALL_NETWORKS[wildcards.network].get("click_position"))
        return protocol_evaluation({**evaluation, "agent": agent}, protocol)
    return params


def human_click_logs(wildcards):
    """The click logs the human agent replays on {dataset} (evaluation.agent_options.clicks); none for
    the simulated users. Every log in the folder is an input: editing, adding or removing one re-runs."""
    evaluation = config["evaluation"]
    if not needs_recorded(evaluation["agent"], evaluation.get("agent_options")):
        return []
    return [str(f) for f in click_log_files(click_log_folder(evaluation.get("agent_options"), wildcards.dataset)).values()]


def confidnet_input(wildcards):
    """Only the confidnet acquisition needs the ConfidNet checkpoint: the head of the network trained
    on {source} for transfer, else on {dataset}."""
    if wildcards.acquisition != "confidnet":
        return []
    trained_on = wildcards.source if "source" in wildcards.keys() else wildcards.dataset
    return f"{MODELS}/confidnet/{trained_on}/{wildcards.network}.pt"


def patch_tables():
    """The patch protocol's tables: every (method, acquisition) of evaluation.patches on the main dataset."""
    return [f"reports/tables/patches/{DATASET}/{n}/{m}_{a}.csv" for n in NETWORKS for m, a in PATCH_RUNS]


def transfer_patch_tables():
    """The same runs on each transfer target with the networks trained on the main dataset (transfer.patches)."""
    if not TRANSFER_PATCHES:
        return []
    return [f"reports/tables/transfer_patches/{DATASET}/{t}/{n}/{m}_{a}.csv"
            for t in TRANSFER_TARGETS for n in TRANSFER["networks"] for m, a in PATCH_RUNS]


def disca_calibration(wildcards):
    """The calibrated learning rate of {method} for the network (trained on {source} for transfer,
    else on {dataset}) clicked on {dataset}, when the method adapts the weights and its lr is
    `calibrated` (evaluation.disca.lr, or evaluation.arms.<method>.lr)."""
    if not METHODS[wildcards.method].adapts or adaptation_settings(config["evaluation"], wildcards.method)["lr"] != "calibrated":
        return []
    trained_on = wildcards.source if "source" in wildcards.keys() else wildcards.dataset
    return f"reports/metrics/calibration/{trained_on}/{wildcards.dataset}/{wildcards.network}/{wildcards.method}.json"


def calibration_files():
    """The calibrations this run's evaluations read (none for methods with a fixed lr)."""
    def calibrated(methods):
        return [m for m in adapting(methods) if adaptation_settings(config["evaluation"], m)["lr"] == "calibrated"]

    files = expand("reports/metrics/calibration/{dataset}/{dataset}/{network}/{method}.json",
                   dataset=DATASET, network=NETWORKS, method=calibrated(dict.fromkeys(CLICK_METHODS + PATCH_METHODS + crop_methods())))
    if TRANSFER_TARGETS:
        files += expand("reports/metrics/calibration/{source}/{dataset}/{network}/{method}.json", source=DATASET, dataset=TRANSFER_TARGETS,
                        network=TRANSFER["networks"],
                        method=calibrated(dict.fromkeys(TRANSFER["methods"] + SEQUENTIAL_METHODS + (PATCH_METHODS if TRANSFER_PATCHES else []))))
    return files


def transfer_tables():
    return expand(
        "reports/tables/transfer/{source}/{dataset}/{network}/{method}.csv",
        source=DATASET, dataset=TRANSFER_TARGETS, network=TRANSFER["networks"], method=TRANSFER["methods"],
    )


# --- analyses (DIAL Figs. 6, 8, 9, App. B; DISIR Fig. 4): off unless `analyses` turns them on ---
ANALYSES = config.get("analyses") or {}
SEQUENTIAL_METHODS = ANALYSES.get("sequential") or []
USERS = (ANALYSES.get("users") or {}).get("variants") or {}
for key, names in (("evaluation.patches.methods", PATCH_METHODS), ("evaluation.crops.methods", (config["evaluation"].get("crops") or {}).get("methods", [])),
                   ("analyses.sequential", SEQUENTIAL_METHODS)):
    if of_family(names, "forest"):  # the patch, crop and sequential protocols re-predict with a network
        raise SystemExit(f"error: {key}: {', '.join(of_family(names, 'forest'))} is not a network method; "
                         "ALCD runs in the click protocol only (evaluation.clicks.methods, transfer.methods)")


def sequential_tables():
    """DIAL Fig. 8: each transfer network and target, weights kept across the target's images."""
    return expand("reports/tables/sequential/{source}/{dataset}/{network}/{method}.csv",
                  source=DATASET, dataset=TRANSFER_TARGETS, network=TRANSFER["networks"], method=SEQUENTIAL_METHODS)


def control_tables():
    """DIAL Fig. 6's control: each transfer network trained on the target itself, clicked with AC
    on the same images (its step 0 is the fully supervised mIoU)."""
    if not ANALYSES.get("target_control"):
        return []
    return expand("reports/tables/clicks/{dataset}/{network}/ac.csv", dataset=TRANSFER_TARGETS, network=TRANSFER["networks"])


def user_tables():
    """DISIR Fig. 4: AC clicks of the main networks under each named simulated user."""
    return expand("reports/tables/users/{dataset}/{network}/{user}.csv", dataset=DATASET, network=NETWORKS, user=list(USERS))


def user_evaluation(wildcards):
    """`evaluation` with the agent and options of the user variant {user}."""
    variant = USERS[wildcards.user]
    options = {**(config["evaluation"].get("agent_options") or {}), **(variant.get("agent_options") or {})}
    return protocol_evaluation({**config["evaluation"], "agent": variant["agent"], "agent_options": options}, "clicks")


def method_model(wildcards):
    """What a click evaluation of {method} reads: the network trained on {source} (transfer) or
    {dataset}, or for a forest method (ALCD) the pixel samples its forest is fitted on."""
    trained_on = wildcards.source if "source" in wildcards.keys() else wildcards.dataset
    if METHODS[wildcards.method].family == "forest":
        return f"{MODELS}/alcd/{trained_on}.npz"
    return f"{MODELS}/pretrain/{trained_on}/{wildcards.network}.pt"


CROP_SETTINGS = config["evaluation"].get("crops") or {}


def crop_methods():
    return list(CROP_SETTINGS.get("methods", [])) if ANALYSES.get("crops") else []


def crop_tables():
    """DIAL Fig. 9 / App. B: one table per main network and simulated user of evaluation.crops."""
    if not ANALYSES.get("crops"):
        return []
    return expand("reports/tables/crops/{dataset}/{network}/{agent}.csv", dataset=DATASET, network=NETWORKS,
                  agent=CROP_SETTINGS.get("agents", []))


def crop_calibrations(wildcards):
    """The calibrated lrs of the adapting methods evaluation.crops compares (clicked on {dataset})."""
    return [f"reports/metrics/calibration/{wildcards.dataset}/{wildcards.dataset}/{wildcards.network}/{m}.json"
            for m in adapting(CROP_SETTINGS.get("methods", [])) if adaptation_settings(config["evaluation"], m)["lr"] == "calibrated"]
