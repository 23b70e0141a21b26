"""``dial predict | refine | suggest | serve``: a trained network on a person's own image, from the command line.

``serve`` (the web page) lives in :mod:`dial_core.app.serve_cmd`; this module dispatches.

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
import logging
import sys
from collections.abc import Sequence

from dial_core.app.options import (DEFAULT_OVERLAP, DEFAULT_WINDOW, DISCA_DEFAULTS, add_common, add_disca_options,
                                   check_tiling, disca_config, existing, load_model, log, non_negative, not_input,
                                   positive, read_image_arg, workflow_layout)
from dial_core.errors import ConfigError, DialError

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_WINDOW", "DISCA_DEFAULTS", "build_parser", "main", "run", "workflow_layout"]
REFINE_METHODS = ("ac", "disca")  # the two; the other arms need their params.yaml overrides


# ------------------------------------------------------------------------------------------ shared
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
    existing(args.confidnet, "ConfidNet checkpoint (--confidnet)")
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
            not_input(out, option, args)
    if args.vector:
        vector_driver(args.vector)
    _needs_confidnet(args, args.uncertainty, "--uncertainty")
    model, table = load_model(args)
    image = read_image_arg(args)
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


def cmd_refine(args: argparse.Namespace) -> None:
    from dial_core.app.vector import vector_driver
    from dial_core.clicks.click_log import read_click_log, write_click_log
    from dial_core.interactive.refine import check_refinable, refine

    for out, option in ((args.out, "--out"), (args.vector, "--vector"), (args.save_clicks, "--save-clicks")):
        if out:
            not_input(out, option, args)
    if args.vector:
        vector_driver(args.vector)
    model, table = load_model(args)
    check_refinable(model, f"the model {args.model}")
    disca = disca_config(args) if args.method != "ac" else None
    image = read_image_arg(args)
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

    not_input(args.out, "--out", args)
    vector_driver(args.out)
    _needs_confidnet(args, args.acquisition, "--acquisition")
    model, _ = load_model(args)
    image = read_image_arg(args)
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
def _vector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vector", metavar="OUT.gpkg|OUT.geojson",
                        help="also the class map as polygons: class, name, pixels and area_m2 (projected CRS)")
    parser.add_argument("--simplify", type=non_negative, default=0.0, metavar="TOL",
                        help="simplification tolerance of the polygons in CRS units (metres; pixels without a CRS); "
                             "neighbours keep shared borders (default 0: exact pixel outlines)")


def build_parser() -> argparse.ArgumentParser:
    from dial_core.active.acquisition import ACQUISITIONS

    parser = argparse.ArgumentParser(
        prog="dial", description="A trained DIAL network on your own image: predict, refine with clicks, suggest where "
        "to look next, or do all of it in a web page (serve). Outputs keep the image's CRS and transform; an image without georeferencing works in pixels.",
        epilog="`dial COMMAND --help` describes each command. README section \"Refine your own image\" walks through them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    predict = commands.add_parser("predict", usage="dial predict IMAGE --model M.pt --out PRED.tif [options]",
                                  help="the class map of an image (GeoTIFF), optionally its uncertainty and polygons",
                                  description="Predict the class map of IMAGE: a uint8 GeoTIFF on the image's grid with a "
                                  "colour table and the class names; optionally an acquisition's uncertainty map and the "
                                  "classes as polygons.")
    add_common(predict)
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
    add_common(refine)
    refine.add_argument("--clicks", required=True, metavar="CLICKS.geojson", help="the clicks (see above)")
    refine.add_argument("--method", choices=REFINE_METHODS, default="ac", help="ac (default) or disca")
    refine.add_argument("--out", required=True, metavar="REFINED.tif", help="the refined class map (GeoTIFF)")
    refine.add_argument("--save-clicks", metavar="LOG.geojson",
                        help="also the clicks as checked (class indices, the image's CRS or pixels): a click log for "
                             "data/clicks/<dataset>/<image_id>.geojson")
    _vector_options(refine)
    add_disca_options(refine.add_argument_group("DISCA (--method disca)"))
    refine.set_defaults(run=cmd_refine)

    suggest = commands.add_parser("suggest", usage="dial suggest IMAGE --model M.pt [--acquisition ACQ] [--patches N] "
                                  "[--size PX] --out NEXT.geojson [options]",
                                  help="the next patches to look at, most uncertain first (DIAL)",
                                  description="Rank the patches of IMAGE (a grid of SIZE² windows) by the mean of an "
                                  "acquisition's uncertainty map inside them, and write the first ones as polygons "
                                  "with their rank and score.")
    add_common(suggest)
    suggest.add_argument("--acquisition", choices=list(ACQUISITIONS), default="entropy", metavar="ACQ",
                         help=f"the uncertainty measure: {', '.join(ACQUISITIONS)} (default entropy)")
    suggest.add_argument("--patches", type=positive(int), default=10, help="how many patches (default 10)")
    suggest.add_argument("--size", type=positive(int), default=512, help="patch side, px (default 512, DIAL's)")
    suggest.add_argument("--out", required=True, metavar="NEXT.geojson|NEXT.gpkg", help="the patches as polygons")
    suggest.add_argument("--confidnet", metavar="C.pt", help="the ConfidNet head, for --acquisition confidnet")
    suggest.set_defaults(run=cmd_suggest)

    from dial_core.app.serve_cmd import add_parser as add_serve

    add_serve(commands)
    return parser


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
    check_tiling(parser, args)
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
