"""``dial serve IMAGE --model M.pt``: the annotation page for one image, on a local web server.

The command loads what ``dial refine`` loads (the network, its classes, DISCA's learning rate) and
an optional label raster, builds the :class:`~dial_core.app.session.AnnotationSession` (the first
whole-image prediction: minutes on a CPU for a large scene, with a progress line), then runs
uvicorn. It binds 127.0.0.1 unless ``--allow-remote`` is given: the page changes files in the state
folder and has no authentication.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from dial_core.app.options import (add_common, add_disca_options, disca_config, existing, load_model, log, positive,
                                   read_image_arg)
from dial_core.errors import ConfigError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def static_dir() -> Path:
    """The page's files, shipped inside the package."""
    return Path(__file__).resolve().parent / "static"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> None:
    from dial_core.app.raster import read_label
    from dial_core.app.session import AnnotationSession, SessionConfig
    from dial_core.interactive.refine import check_refinable

    if not _loopback(args.host) and not args.allow_remote:
        raise ConfigError(f"--host {args.host} would let other machines click on and export this image (no "
                          "authentication); add --allow-remote if that is what you want, or keep --host 127.0.0.1")
    model, table = load_model(args)
    check_refinable(model, f"the model {args.model}")
    try:
        disca = disca_config(args, "disca")
    except ConfigError as err:
        disca = None
        log.warning("the DISCA button is off: %s", err)
    image = read_image_arg(args)
    label = read_label(existing(args.labels, "label raster (--labels)"), image.shape, len(table)) if args.labels else None
    state = Path(args.state) if args.state else Path(f"{Path(args.image).stem}.dial")
    config = SessionConfig(args.window, args.overlap, args.acquisition, args.patch_size, disca, args.disca_window, args.seed)
    log.info("predicting %s (%d windows; the first pass takes a while on a CPU) ...", Path(args.image).name,
             _window_count(image.shape, args.window, args.overlap))
    session = AnnotationSession(image, model, table, config, label, state)
    log.info("ready in %.1f s; state in %s (%d clicks)", session.startup_seconds, state, len(session.stacks.clicks))
    serve(session, args.host, args.port, args.quiet)


def _window_count(shape: tuple[int, int], window: int, overlap: int) -> int:
    from dial_core.data.tiling import tile_windows

    return len(tile_windows(*shape, window, overlap))


def serve(session, host: str, port: int, quiet: bool = False) -> None:
    """Run the app over ``session`` until interrupted (Ctrl-C)."""
    import uvicorn

    from dial_core.app.server import create_app

    app = create_app(session, static_dir())
    shown = f"[{host}]" if ":" in host else host
    print(f"dial serve: open http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info", access_log=False)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """``dial serve`` among ``commands``."""
    from dial_core.app.session import SOFTMAX_ACQUISITIONS

    serve_parser = commands.add_parser(
        "serve", usage="dial serve IMAGE --model M.pt [--labels LABELS.tif] [--state DIR] [--port 8765] [options]",
        help="a web page to correct the map of an image with clicks (AC, DISCA), guided by its uncertainty",
        description="Open IMAGE in a local web page: the network's map over the image, click to correct it (AC: the "
        "windows a click touches are re-predicted), adapt the network to the clicks (DISCA), undo / redo, see the "
        "uncertainty and the next patch to look at, the mIoU against --labels, and export the refined GeoTIFF, its "
        "polygons and the click log. Every click is saved in the state folder at once; restarting on the same "
        "image and model replays them.",
        epilog="DISCA's learning rate: --lr, else --calibration's, else the workflow's calibration of the model; "
               "without any the DISCA button is off. The server binds 127.0.0.1: only this machine can reach it.")
    add_common(serve_parser)
    serve_parser.add_argument("--labels", metavar="LABELS.tif",
                              help="the image's label raster (uint8 class indices, 255 = ignore): live mIoU")
    serve_parser.add_argument("--state", metavar="DIR",
                              help="where the clicks are kept (default ./<image stem>.dial/; exports go in DIR/exports)")
    serve_parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    serve_parser.add_argument("--port", type=positive(int), default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve_parser.add_argument("--allow-remote", action="store_true",
                              help="allow a --host other machines can reach (the page has no authentication)")
    serve_parser.add_argument("--acquisition", choices=SOFTMAX_ACQUISITIONS, default="entropy",
                              help="uncertainty of the heat map and the suggestions (default entropy)")
    serve_parser.add_argument("--patch-size", type=positive(int), default=512,
                              help="side of the suggested patches, px (default 512, DIAL's)")
    add_disca_options(serve_parser.add_argument_group("DISCA (the DISCA button)"))
    serve_parser.set_defaults(run=cmd_serve)

