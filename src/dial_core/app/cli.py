"""``dial predict | refine | suggest``: a trained network on a person's own image, from the command line.

A thin layer: it reads the files, calls the array functions of :mod:`dial_core.app` and
:mod:`dial_core.interactive.refine`, and writes the results atomically. Errors a user can act on
(a missing file, a click outside the image, an unknown class, a class list that does not fit the
model, a CRS mismatch) end with one ``error:`` line naming the file or option and exit code 1;
a wrong option is argparse's usage error (exit code 2).

Defaults that come from the workflow, when the model is one of its checkpoints
(``<project>/data/models/pretrain/<dataset>/<network>.pt``):

- class names and colours: the checkpoint's own (the pretrain rule stores them), else
  ``<project>/data/processed/<dataset>/dataset.json``; ``--classes`` gives another dataset.json;
- DISCA's learning rate: ``--lr``, else the ``lr`` of ``--calibration FILE``, else the workflow's
  calibration of this network on its own dataset
  (``<project>/reports/metrics/calibration/<dataset>/<dataset>/<network>/disca.json``, written by
  ``calibrate_disca``); a DISCA run with none of them stops and says which to give. The other DISCA
  settings default to params.yaml's ``evaluation.disca`` (the demo run the calibration was made
  with); a network calibrated under ``config/paper.yaml`` wants ``--steps 10 --disca-window 512``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dial_core.errors import ConfigError, DataError, DialError

log = logging.getLogger("dial.cli")  # its own logger: run_step reports through "dial", whose handlers this one must not replace

# params.yaml evaluation.disca (the default run); tests/test_cli_refine.py checks they agree
DISCA_DEFAULTS = {"steps": 3, "regularisation": 1.0, "p0": "initial", "ac_drop_probability": 1.0, "window": 128}
REFINE_METHODS = ("ac", "disca")  # the two; the other arms need their params.yaml overrides
DEFAULT_WINDOW, DEFAULT_OVERLAP = 512, 128  # the papers' inference tiling


# ------------------------------------------------------------------------------------------ shared
def _existing(path: str, what: str) -> Path:
    if not Path(path).is_file():
        raise DataError(f"{path}: the {what} does not exist")
    return Path(path)


def _not_input(out: str, option: str, args: argparse.Namespace) -> None:
    if Path(out).absolute() == Path(args.image).absolute():
        raise ConfigError(f"{option} {out} is the input image; write the result to another file")


def workflow_layout(model: str | Path) -> tuple[Path, str, str] | None:
    """(project root, dataset, network) of a checkpoint at ``<root>/data/models/pretrain/<dataset>/<network>.pt``."""
    path = Path(model).absolute()  # not resolve(): DVC may link the file into its cache
    parents = path.parents
    if len(parents) > 4 and (parents[3].name, parents[2].name, parents[1].name) == ("data", "models", "pretrain"):
        return parents[4], parents[0].name, path.stem
    return None


def _load_model(args: argparse.Namespace):
    """The network (on ``--device``, eval mode) and its ClassTable."""
    import torch

    from dial_core.app.classes import ClassTable, agree, checkpoint_classes, dataset_classes
    from dial_core.errors import CheckpointError
    from dial_core.models.checkpoint import load_checkpoint
    from dial_core.models.segmenter import pick_device, segmenter_from_state

    _existing(args.model, "model checkpoint (--model)")
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
        table = dataset_classes(_existing(args.classes, "class list (--classes)")).fits(n, f"the model {args.model}")
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


def _read(args: argparse.Namespace):
    from dial_core.app.raster import read_image

    image = read_image(args.image, args.bands)
    if image.crs is not None:
        where = str(image.crs)
    else:
        where = "a transform without CRS" if image.georeferenced else "no georeference: pixel coordinates"
    log.info("%s: %d×%d px, %s", args.image, image.shape[0], image.shape[1], where)
    return image


def _acquisition_config():
    """params.yaml's evaluation.acquisition: DIAL's MC dropout, the deterministic prediction kept."""
    from dial_core.active.acquisition import AcquisitionConfig, McDropoutConfig

    return AcquisitionConfig(mc_dropout=McDropoutConfig(prediction="deterministic"))


def _needs_confidnet(args: argparse.Namespace, acquisition: str | None, option: str) -> bool:
    """Whether ``acquisition`` reads a ConfidNet head; checked before any work: then --confidnet must name one."""
    from dial_core.active.acquisition import acquisition as member

    if acquisition is None or member(acquisition).needs != "confidnet":
        return False
    if not args.confidnet:
        raise ConfigError(f"{option} confidnet needs the ConfidNet head trained on this network: give --confidnet "
                          "data/models/confidnet/<dataset>/<network>.pt")
    _existing(args.confidnet, "ConfidNet checkpoint (--confidnet)")
    return True


def _confidnet(args: argparse.Namespace, acquisition: str, option: str, model):
    """The ConfidNet head (on the network's device) when ``acquisition`` reads one, else None."""
    if not _needs_confidnet(args, acquisition, option):
        return None
    from dial_core.models.checkpoint import load_checkpoint
    from dial_core.models.confidnet import confidnet_from_state

    return confidnet_from_state(load_checkpoint(args.confidnet)).to(next(model.parameters()).device)


def _write_outputs(args: argparse.Namespace, probs, image, table) -> None:
    """The class map (and its polygons when ``--vector``) of ``probs``."""
    from dial_core.app.raster import write_class_map

    classes = probs.argmax(0).astype("uint8")
    write_class_map(args.out, classes, table, image)
    log.info("wrote %s", args.out)
    if args.vector:
        from dial_core.app.vector import class_polygons, write_vector

        frame = class_polygons(classes, table, image.transform, image.crs, args.simplify)
        write_vector(args.vector, frame)
        log.info("wrote %s (%d polygons)", args.vector, len(frame))


# ------------------------------------------------------------------------------------------ commands
def cmd_predict(args: argparse.Namespace) -> None:
    from dial_core.app.vector import vector_driver

    if (args.uncertainty is None) != (args.out_uncertainty is None):
        raise ConfigError("--uncertainty ACQ and --out-uncertainty FILE go together: give both or neither")
    for out, option in ((args.out, "--out"), (args.out_uncertainty, "--out-uncertainty"), (args.vector, "--vector")):
        if out:
            _not_input(out, option, args)
    if args.vector:
        vector_driver(args.vector)
    _needs_confidnet(args, args.uncertainty, "--uncertainty")
    model, table = _load_model(args)
    image = _read(args)
    if args.uncertainty:
        from dial_core.active.uncertainty import predict_with_uncertainty
        from dial_core.app.raster import write_float_map

        confidnet = _confidnet(args, args.uncertainty, "--uncertainty", model)
        probs, uncertainty = predict_with_uncertainty(model, image.pixels, None, args.uncertainty, args.window, args.overlap,
                                                      _acquisition_config(), confidnet, args.seed, progress=args.progress)
        write_float_map(args.out_uncertainty, uncertainty, image, f"uncertainty ({args.uncertainty})")
        log.info("wrote %s", args.out_uncertainty)
    else:
        from dial_core.interactive.inference import predict_probs

        probs, _ = predict_probs(model, image.pixels, None, args.window, args.overlap, progress=args.progress)
    _write_outputs(args, probs, image, table)


def _disca_config(args: argparse.Namespace):
    from dial_core.interactive.disca import DiscaConfig

    lr, source = args.lr, "--lr"
    if lr is None:
        calibration = Path(args.calibration) if args.calibration else None
        layout = workflow_layout(args.model)
        if calibration is None and layout is not None:
            root, dataset, network = layout
            default = root / "reports" / "metrics" / "calibration" / dataset / dataset / network / f"{args.method}.json"
            calibration = default if default.is_file() else None
        if calibration is None:
            raise ConfigError(f"--method {args.method} needs a learning rate: give --lr (DIAL's 2e-6) or --calibration "
                              f"reports/metrics/calibration/<dataset>/<dataset>/<network>/{args.method}.json "
                              "(the workflow's calibrate_disca rule writes it)")
        _existing(str(calibration), "calibration file (--calibration)")
        try:
            lr = json.loads(calibration.read_text())["lr"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{calibration}: cannot read its 'lr' ({type(err).__name__}: {err}); give --lr instead") from None
        source = str(calibration)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
        raise ConfigError(f"DISCA learning rate {lr!r} from {source}: it must be a number in (0, 1]")
    log.info("%s lr %.3g (from %s), %d steps per window, λ %g, p0 %s", args.method, lr, source, args.steps,
             args.regularisation, args.p0)
    return DiscaConfig(float(lr), args.steps, args.regularisation, args.drop, args.p0)


def cmd_refine(args: argparse.Namespace) -> None:
    from dial_core.app.vector import vector_driver
    from dial_core.clicks.click_log import read_click_log, write_click_log
    from dial_core.interactive.refine import check_refinable, refine

    for out, option in ((args.out, "--out"), (args.vector, "--vector"), (args.save_clicks, "--save-clicks")):
        if out:
            _not_input(out, option, args)
    if args.vector:
        vector_driver(args.vector)
    model, table = _load_model(args)
    check_refinable(model, f"the model {args.model}")
    disca = _disca_config(args) if args.method != "ac" else None
    image = _read(args)
    clicks = read_click_log(args.clicks, image.shape, len(table), image.transform, image.crs, table.names)
    if not clicks:
        log.warning("%s holds no clicks: the refined map is the prediction", args.clicks)
    counts = {name: sum(k.cls == i for k in clicks) for i, name in enumerate(table.names)}
    log.info("%d clicks (%s)", len(clicks), ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    probs = refine(model, image.pixels, clicks, args.method, disca, args.window, args.overlap,
                   args.disca_window, args.seed, progress=args.progress)
    _write_outputs(args, probs, image, table)
    if args.save_clicks:
        write_click_log(args.save_clicks, clicks, image.transform, image.crs)
        log.info("wrote %s (the click log the workflow's human user replays)", args.save_clicks)


def cmd_suggest(args: argparse.Namespace) -> None:
    import numpy as np

    from dial_core.active.uncertainty import predict_with_uncertainty
    from dial_core.app.guidance import suggest_patches
    from dial_core.app.vector import frame_of, vector_driver, window_polygon, write_vector

    _not_input(args.out, "--out", args)
    vector_driver(args.out)
    _needs_confidnet(args, args.acquisition, "--acquisition")
    model, _ = _load_model(args)
    image = _read(args)
    confidnet = _confidnet(args, args.acquisition, "--acquisition", model)
    _, uncertainty = predict_with_uncertainty(model, image.pixels, None, args.acquisition, args.window, args.overlap,
                                              _acquisition_config(), confidnet, args.seed, progress=args.progress)
    suggestions = suggest_patches(uncertainty, image.shape, args.size, args.patches, np.random.default_rng(args.seed))
    rows = [{"rank": s.rank, "score": float("nan") if s.score is None else s.score, "acquisition": args.acquisition,
             "row_off": s.window[0], "col_off": s.window[1], "height": s.window[2], "width": s.window[3]} for s in suggestions]
    write_vector(args.out, frame_of(rows, [window_polygon(s.window, image.transform) for s in suggestions], image.crs))
    for s in suggestions:
        r, c, h, w = s.window
        score = "" if s.score is None else f"score {s.score:.4g}  "
        print(f"{s.rank:>3}  {score}rows {r}..{r + h - 1}  cols {c}..{c + w - 1}")
    log.info("wrote %s (%d patches of %d px, by %s)", args.out, len(suggestions), args.size, args.acquisition)


# ------------------------------------------------------------------------------------------ parser
def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="the image: an 8-bit RGB GeoTIFF (or any raster GDAL reads: JPEG, PNG)")
    parser.add_argument("--model", required=True, metavar="M.pt",
                        help="a trained network, e.g. data/models/pretrain/<dataset>/<network>.pt (loaded with weights_only)")
    parser.add_argument("--classes", metavar="dataset.json",
                        help="class names and colours of the model's data (default: those the checkpoint carries, else "
                             "the workflow's data/processed/<dataset>/dataset.json)")
    parser.add_argument("--bands", type=int, nargs=3, metavar=("R", "G", "B"),
                        help="1-based bands read as red, green, blue (needed for images with other than 3 bands, except RGBA)")
    parser.add_argument("--window", type=_positive(int), default=DEFAULT_WINDOW,
                        help=f"inference window, px (default {DEFAULT_WINDOW})")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                        help=f"overlap of neighbouring windows, px (default {DEFAULT_OVERLAP})")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=_positive(int), help="CPU threads for torch (default: torch's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of MC-dropout masks, DISCA's draws, random orders (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or information lines, errors only")


def _vector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vector", metavar="OUT.gpkg|OUT.geojson",
                        help="also the class map as polygons: class, name, pixels and area_m2 (projected CRS)")
    parser.add_argument("--simplify", type=_non_negative, default=0.0, metavar="TOL",
                        help="simplification tolerance of the polygons in CRS units (metres; pixels without a CRS); "
                             "neighbours keep shared borders (default 0: exact pixel outlines)")


def build_parser() -> argparse.ArgumentParser:
    from dial_core.active.acquisition import ACQUISITIONS

    parser = argparse.ArgumentParser(
        prog="dial", description="A trained DIAL network on your own image: predict, refine with clicks, suggest where "
        "to look next. Outputs keep the image's CRS and transform; an image without georeferencing works in pixels.",
        epilog="`dial COMMAND --help` describes each command. README section \"Refine your own image\" walks through them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser("predict", usage="dial predict IMAGE --model M.pt --out PRED.tif [options]",
                                  help="the class map of an image (GeoTIFF), optionally its uncertainty and polygons",
                                  description="Predict the class map of IMAGE: a uint8 GeoTIFF on the image's grid with a "
                                  "colour table and the class names; optionally an acquisition's uncertainty map and the "
                                  "classes as polygons.")
    _common(predict)
    predict.add_argument("--out", required=True, metavar="PRED.tif", help="the class map (GeoTIFF)")
    maps = [name for name, member in ACQUISITIONS.items() if member.pixel_map is not None]  # random has none
    predict.add_argument("--uncertainty", choices=maps, metavar="ACQ",
                         help=f"also an acquisition's pixel map: {', '.join(maps)}")
    predict.add_argument("--out-uncertainty", metavar="U.tif", help="where the uncertainty map goes (float32 GeoTIFF)")
    predict.add_argument("--confidnet", metavar="C.pt", help="the ConfidNet head, for --uncertainty confidnet")
    _vector_options(predict)
    predict.set_defaults(run=cmd_predict)

    refine = commands.add_parser(
        "refine", usage="dial refine IMAGE --model M.pt --clicks CLICKS.geojson [--method ac|disca] --out REFINED.tif [options]",
        help="the class map corrected by a person's clicks (AC or DISCA)",
        description="Correct the prediction of IMAGE with clicks: AC (DISIR) feeds them to the network as annotation "
        "channels; DISCA also adapts the network's weights to them (after each click, in the file's order). CLICKS is a "
        "GeoJSON FeatureCollection of Points with a 'class' property (a class name or index), the click log the "
        "workflow's human user replays: map coordinates when it has a 'crs' member ({\"type\": \"name\", \"properties\": "
        "{\"name\": \"EPSG:32631\"}}; reprojected to the image's CRS), else pixel coordinates [col, row] (x right, y down).",
        epilog="DISCA's learning rate: --lr, else --calibration's, else the workflow's calibration of the model "
               "(reports/metrics/calibration/<dataset>/<dataset>/<network>/disca.json beside a workflow checkpoint).")
    _common(refine)
    refine.add_argument("--clicks", required=True, metavar="CLICKS.geojson", help="the clicks (see above)")
    refine.add_argument("--method", choices=REFINE_METHODS, default="ac", help="ac (default) or disca")
    refine.add_argument("--out", required=True, metavar="REFINED.tif", help="the refined class map (GeoTIFF)")
    refine.add_argument("--save-clicks", metavar="LOG.geojson",
                        help="also the clicks as checked (class indices, the image's CRS or pixels): a click log for "
                             "data/clicks/<dataset>/<image_id>.geojson")
    _vector_options(refine)
    disca = refine.add_argument_group("DISCA (--method disca)")
    disca.add_argument("--lr", type=_positive(float), help="SGD learning rate (default: the calibrated one, see below)")
    disca.add_argument("--calibration", metavar="FILE.json", help="a calibrate_disca result whose 'lr' to use")
    disca.add_argument("--steps", type=int, default=DISCA_DEFAULTS["steps"],
                       help="SGD steps per window holding a click, after each click (default %(default)s; paper 10)")
    disca.add_argument("--regularisation", type=_non_negative, default=DISCA_DEFAULTS["regularisation"],
                       help="λ of DIAL Eq. 1, the L1 pull towards the prediction without clicks (default %(default)s)")
    disca.add_argument("--p0", choices=("initial", "current"), default=DISCA_DEFAULTS["p0"],
                       help="Eq. 1's reference: the prediction before any click (initial) or the current one")
    disca.add_argument("--drop", type=float, default=DISCA_DEFAULTS["ac_drop_probability"],
                       help="chance a step sees no annotation channels (default %(default)s, the DISCA paper)")
    disca.add_argument("--disca-window", type=_positive(int), default=DISCA_DEFAULTS["window"],
                       help="side of the grid windows adapted on (default %(default)s; paper 512)")
    refine.set_defaults(run=cmd_refine)

    suggest = commands.add_parser("suggest", usage="dial suggest IMAGE --model M.pt [--acquisition ACQ] [--patches N] "
                                  "[--size PX] --out NEXT.geojson [options]",
                                  help="the next patches to look at, most uncertain first (DIAL)",
                                  description="Rank the patches of IMAGE (a grid of SIZE² windows) by the mean of an "
                                  "acquisition's uncertainty map inside them, and write the first ones as polygons "
                                  "with their rank and score.")
    _common(suggest)
    suggest.add_argument("--acquisition", choices=list(ACQUISITIONS), default="entropy", metavar="ACQ",
                         help=f"the uncertainty measure: {', '.join(ACQUISITIONS)} (default entropy)")
    suggest.add_argument("--patches", type=_positive(int), default=10, help="how many patches (default 10)")
    suggest.add_argument("--size", type=_positive(int), default=512, help="patch side, px (default 512, DIAL's)")
    suggest.add_argument("--out", required=True, metavar="NEXT.geojson|NEXT.gpkg", help="the patches as polygons")
    suggest.add_argument("--confidnet", metavar="C.pt", help="the ConfidNet head, for --acquisition confidnet")
    suggest.set_defaults(run=cmd_suggest)
    return parser


def _check_tiling(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 <= args.overlap < args.window:
        parser.error(f"--overlap {args.overlap} must be ≥ 0 and smaller than --window {args.window}")
    if getattr(args, "steps", 0) < 0:
        parser.error(f"--steps {args.steps} must be ≥ 0")
    if not 0 <= getattr(args, "drop", 0.0) <= 1:
        parser.error(f"--drop {args.drop} must be a probability in [0, 1]")


def _log_to_stderr(level: int) -> None:
    """The command's information lines on stderr (the current one: tests capture it), without timestamps."""
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 on success, 1 on an error the user can act on (printed as one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_tiling(parser, args)
    args.progress = not args.quiet
    _log_to_stderr(logging.WARNING if args.quiet else logging.INFO)
    from dial_core.allocator import keep_freed_memory

    keep_freed_memory()
    try:
        args.run(args)
    except DialError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """The ``dial`` console script."""
    sys.exit(main())


if __name__ == "__main__":
    run()
