# Helpers shared by the rule files: validated params, output paths, code dependencies.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # works before `pip install -e .` too

from dial_core.cli import exit_on_config_error
from dial_core.config import load_schema, validate_params

with exit_on_config_error():
    validate_params(config, load_schema(Path(workflow.basedir) / "workflow/schemas/params.schema.yaml"))

DATASET = config["dataset"]["name"]
ADAPTER = config["dataset"]["adapter"]
NETWORKS = list(config["pretrain"]["networks"])
CLICK_METHODS = config["evaluation"]["clicks"]["methods"]
PATCH_METHODS = config["evaluation"]["patches"]["methods"]
ACQUISITIONS = config["evaluation"]["patches"]["acquisitions"]
NEEDS_CONFIDNET = "confidnet" in ACQUISITIONS

PROCESSED = "data/processed/{dataset}"
MODELS = "data/models"


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    network="[A-Za-z0-9_-]+",
    method="ac|disca",
    acquisition="entropy|confidnet|random",
    file="[^/]+",


def code(*packages):
    """Library files a rule's script imports: editing them re-runs the rule."""
    root = Path(workflow.basedir) / "src" / "dial_core"
    files = [root / f for f in ("__init__.py", "errors.py", "atomic.py", "cli.py")]
    for package in packages:
        target = root / package
        files += sorted(target.glob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
    # relative to the working directory, which differs from the workflow's with --directory
    return [os.path.relpath(f) for f in files]


def adapter_options():
    """The selected adapter's options; raw files default to data/raw/<dataset>."""
    options = dict(config["dataset"].get(ADAPTER, {}))
    if ADAPTER == "synthetic":
        options["seed"] = config["seed"]
    else:
        if not options.get("path"):
            options["path"] = f"data/raw/{DATASET}"
        if ADAPTER in ("inria", "airs", "potsdam") and not options.get("extract_dir"):
            options["extract_dir"] = f"data/interim/{DATASET}"  # keeps the raw downloads untouched
    return options


def _downloads():
    return {d["file"]: d for d in config["dataset"].get(ADAPTER, {}).get("downloads", [])}


def raw_downloads(wildcards):
    """Files the download rule fetches before the adapter runs (INRIA parts, an AIRS zip ...)."""
    return [f"data/raw/{wildcards.dataset}/{name}" for name in _downloads()]


def download_param(key):
    def lookup(wildcards):
        return _downloads()[wildcards.file].get(key)

    return lookup


def network_params(wildcards):
    return config["pretrain"]["networks"][wildcards.network]


def confidnet_input(wildcards):
    """Only the confidnet acquisition needs the ConfidNet checkpoint."""
    if wildcards.acquisition != "confidnet":
        return []
    return f"{MODELS}/confidnet/{wildcards.dataset}/{wildcards.network}.pt"
