"""What the ``dial`` commands share: loading the model and the image named by their options, DISCA's
settings and their defaults, and the options themselves (``predict``, ``refine``, ``suggest`` in
:mod:`dial_core.app.cli`, ``serve`` in :mod:`dial_core.app.serve_cmd`).

Defaults that come from the workflow, when the model is one of its checkpoints
(``<project>/data/models/pretrain/<dataset>/<network>.pt``): class names and colours (the
checkpoint's own, else ``<project>/data/processed/<dataset>/dataset.json``) and DISCA's learning rate
(``<project>/reports/metrics/calibration/<dataset>/<dataset>/<network>/disca.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from dial_core.errors import ConfigError, DataError

log = logging.getLogger("dial.cli")  # its own logger: run_step reports through "dial", whose handlers this one must not replace

# params.yaml evaluation.disca (the default run); tests/test_cli_refine.py checks they agree
DISCA_DEFAULTS = {"steps": 3, "regularisation": 1.0, "p0": "initial", "ac_drop_probability": 1.0, "window": 128}
DEFAULT_WINDOW, DEFAULT_OVERLAP = 512, 128  # the papers' inference tiling


def existing(path: str, what: str) -> Path:
    if not Path(path).is_file():
        raise DataError(f"{path}: the {what} does not exist")
    return Path(path)


def not_input(out: str, option: str, args: argparse.Namespace) -> None:
    if Path(out).absolute() == Path(args.image).absolute():
        raise ConfigError(f"{option} {out} is the input image; write the result to another file")


def workflow_layout(model: str | Path) -> tuple[Path, str, str] | None:
    """(project root, dataset, network) of a checkpoint at ``<root>/data/models/pretrain/<dataset>/<network>.pt``."""
    path = Path(model).absolute()  # not resolve(): DVC may link the file into its cache
    parents = path.parents
    if len(parents) > 4 and (parents[3].name, parents[2].name, parents[1].name) == ("data", "models", "pretrain"):
        return parents[4], parents[0].name, path.stem
    return None


def load_model(args: argparse.Namespace):
    """The network (on ``--device``, eval mode) and its ClassTable."""
    import torch

    from dial_core.app.classes import ClassTable, agree, checkpoint_classes, dataset_classes
    from dial_core.errors import CheckpointError
    from dial_core.models.checkpoint import load_checkpoint
    from dial_core.models.segmenter import pick_device, segmenter_from_state

    existing(args.model, "model checkpoint (--model)")
    payload = load_checkpoint(args.model)
    if not isinstance(payload, dict) or not {"spec", "state_dict"} <= set(payload):
        raise CheckpointError(f"--model {args.model} is not a trained segmentation network (no spec / state_dict: a "
                              "ConfidNet head or a training resume state?); give data/models/pretrain/<dataset>/<network>.pt")
    try:
        model = segmenter_from_state(payload)
    except (RuntimeError, TypeError) as err:
        raise CheckpointError(f"--model {args.model} does not rebuild its network: {str(err).splitlines()[0]}") from None
    n = model.spec.n_classes
    stored = checkpoint_classes(payload, f"the model {args.model}")
    layout = workflow_layout(args.model)
    if args.classes:
        table = dataset_classes(existing(args.classes, "class list (--classes)")).fits(n, f"the model {args.model}")
        if stored is not None:
            agree(stored, table)
    elif stored is not None:
        table = stored.fits(n, f"the model {args.model}")
    elif layout and (layout[0] / "data" / "processed" / layout[1] / "dataset.json").is_file():
        table = dataset_classes(layout[0] / "data" / "processed" / layout[1] / "dataset.json").fits(n, f"the model {args.model}")
        log.info("classes from %s: %s", table.source, table.describe())
    else:
        table = ClassTable.generic(n, f"the model {args.model}")
        log.warning("the model names no classes: they are called %s; give --classes <dataset.json> for their names "
                    "and colours", ", ".join(table.names))
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
    except RuntimeError as err:
        raise ConfigError(f"--device {args.device}: {err}; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {args.device}: no GPU is visible to torch here; use --device cpu")
    return model.to(device), table


def read_image_arg(args: argparse.Namespace):
    from dial_core.app.raster import read_image

    image = read_image(args.image, args.bands)
    if image.crs is not None:
        where = str(image.crs)
    else:
        where = "a transform without CRS" if image.georeferenced else "no georeference: pixel coordinates"
    log.info("%s: %d×%d px, %s", args.image, image.shape[0], image.shape[1], where)
    return image


def disca_config(args: argparse.Namespace, method: str | None = None):
    """DISCA's settings from ``--lr`` / ``--calibration`` / the workflow's calibration of the model and
    the other DISCA options; ``method`` defaults to ``--method`` (``dial serve`` has only DISCA)."""
    from dial_core.interactive.disca import DiscaConfig

    method = method or args.method
    lr, source = args.lr, "--lr"
    if lr is None:
        calibration = Path(args.calibration) if args.calibration else None
        layout = workflow_layout(args.model)
        if calibration is None and layout is not None:
            root, dataset, network = layout
            default = root / "reports" / "metrics" / "calibration" / dataset / dataset / network / f"{method}.json"
            calibration = default if default.is_file() else None
        if calibration is None:
            raise ConfigError(f"{method} needs a learning rate: give --lr (DIAL's 2e-6) or --calibration "
                              f"reports/metrics/calibration/<dataset>/<dataset>/<network>/{method}.json "
                              "(the workflow's calibrate_disca rule writes it)")
        existing(str(calibration), "calibration file (--calibration)")
        try:
            lr = json.loads(calibration.read_text())["lr"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{calibration}: cannot read its 'lr' ({type(err).__name__}: {err}); give --lr instead") from None
        source = str(calibration)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
        raise ConfigError(f"DISCA learning rate {lr!r} from {source}: it must be a number in (0, 1]")
    log.info("%s lr %.3g (from %s), %d steps per window, λ %g, p0 %s", method, lr, source, args.steps,
             args.regularisation, args.p0)
    return DiscaConfig(float(lr), args.steps, args.regularisation, args.drop, args.p0)


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image: an 8-bit RGB GeoTIFF (or any raster GDAL reads: JPEG, PNG)")
    parser.add_argument("--model", required=True, metavar="M.pt",
                        help="a trained network, e.g. data/models/pretrain/<dataset>/<network>.pt (loaded with weights_only)")
    parser.add_argument("--classes", metavar="dataset.json",
                        help="class names and colours of the model's data (default: those the checkpoint carries, else "
                             "the workflow's data/processed/<dataset>/dataset.json)")
    parser.add_argument("--bands", type=int, nargs=3, metavar=("R", "G", "B"),
                        help="1-based bands read as red, green, blue (needed for images with other than 3 bands, except RGBA)")
    parser.add_argument("--window", type=positive(int), default=DEFAULT_WINDOW,
                        help=f"inference window, px (default {DEFAULT_WINDOW})")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                        help=f"overlap of neighbouring windows, px (default {DEFAULT_OVERLAP})")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=positive(int), help="CPU threads for torch (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of MC-dropout masks, DISCA's draws, random orders (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or information lines, errors only")


def check_tiling(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 <= args.overlap < args.window:
        parser.error(f"--overlap {args.overlap} must be ≥ 0 and smaller than --window {args.window}")
    if getattr(args, "steps", 0) < 0:
        parser.error(f"--steps {args.steps} must be ≥ 0")
    if not 0 <= getattr(args, "drop", 0.0) <= 1:
        parser.error(f"--drop {args.drop} must be a probability in [0, 1]")


def add_disca_options(group: argparse._ArgumentGroup) -> None:
    """DISCA's settings (``dial refine --method disca``, ``dial serve``'s DISCA button)."""
    group.add_argument("--lr", type=positive(float), help="SGD learning rate (default: the calibrated one, see below)")
    group.add_argument("--calibration", metavar="FILE.json", help="a calibrate_disca result whose 'lr' to use")
    group.add_argument("--steps", type=int, default=DISCA_DEFAULTS["steps"],
                       help="SGD steps per window holding a click, after each click (default %(default)s; paper 10)")
    group.add_argument("--regularisation", type=non_negative, default=DISCA_DEFAULTS["regularisation"],
                       help="λ of DIAL Eq. 1, the L1 pull towards the prediction without clicks (default %(default)s)")
    group.add_argument("--p0", choices=("initial", "current"), default=DISCA_DEFAULTS["p0"],
                       help="Eq. 1's reference: the prediction before any click (initial) or the current one")
    group.add_argument("--drop", type=float, default=DISCA_DEFAULTS["ac_drop_probability"],
                       help="chance a step sees no annotation channels (default %(default)s, the DISCA paper)")
    group.add_argument("--disca-window", type=positive(int), default=DISCA_DEFAULTS["window"],
                       help="side of the grid windows adapted on (default %(default)s; paper 512)")
