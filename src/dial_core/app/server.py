"""The local HTTP API of ``dial serve`` (FastAPI) over one :class:`AnnotationSession`.

Endpoints and shapes are those of the serve contract (``GET /api/info``, ``/api/state``,
``POST /api/clicks``, ``/api/undo``, ``/api/redo``, ``/api/disca``, ``GET /api/suggestions``,
``/api/tiles/{layer}/{z}/{x}/{y}.png``, ``/api/export/...``; the page at ``/`` and ``/static``).

Safety, since a browser talks to it: every error is JSON ``{"error": message}`` (never a
traceback), and no message carries a file-system path (a DialError names its file: only the file
name is kept); request bodies over 64 KiB are refused with 413 before they are read in full.
Endpoints are plain functions: FastAPI runs them in its thread pool, and the session's lock orders
the changes.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dial_core.app.session import AnnotationSession, Update
from dial_core.app.tiles import LAYERS, TILE, TileNotFound, TileRenderer, encode_png
from dial_core.errors import DialError, InvalidRequest, StateConflict

log = logging.getLogger("dial.cli")
MAX_BODY = 64 * 1024
# an absolute or relative path with at least one folder: /a/b.tif, ./x/y, ~/z (not "1/2" or "N/A")
_PATH = re.compile(r"(?<![\w.~/])(?:~|\.{1,2})?(?:/[^\s/'\"()\[\]{}:;,]+)+/?")
EXPORTS = {"refined.tif": ("refined", ".tif", "image/tiff"),
           "clicks.geojson": ("clicks", ".geojson", "application/geo+json"),
           "polygons.gpkg": ("polygons", ".gpkg", "application/geopackage+sqlite3"),
           "polygons.geojson": ("polygons", ".geojson", "application/geo+json")}


def public_message(message: str) -> str:
    """``message`` with every file-system path cut to its last component (the file name)."""
    return _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "(path)", message)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": public_message(message)}, status_code=status)


class ClickBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    row: StrictInt
    col: StrictInt
    cls: StrictInt = Field(alias="class")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, by its Content-Length or, when it is
    streamed without one, as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = _error(413, f"the request body is over {self.limit // 1024} KiB")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI passes an HTTPException raised while reading the body on
                    raise HTTPException(413, f"the request body is over {self.limit // 1024} KiB")
            return message

        await self.app(scope, limited, send)


def _update(session: AnnotationSession, update: Update) -> dict:
    return {"state": session.state(), "changed": None if update.changed is None else list(update.changed),
            "changed_pixels": update.changed_pixels, "seconds": update.seconds, "windows": update.windows}


def _info(session: AnnotationSession, renderer: TileRenderer) -> dict:
    image, table = session.image, session.table
    crs = None
    if image.crs is not None:
        epsg = image.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else image.crs.to_string()
    return {"name": image.path.name, "height": image.shape[0], "width": image.shape[1], "tile_size": TILE,
            "max_zoom": renderer.max_zoom,
            "classes": [{"index": i, "name": name, "color": "#%02x%02x%02x" % colour}
                        for i, (name, colour) in enumerate(zip(table.names, table.colours))],
            "georeferenced": image.georeferenced, "crs": crs, "has_labels": session.label is not None,
            "methods": ["ac", "disca"] if session.config.disca is not None else ["ac"],
            "acquisition": session.config.acquisition, "patch_size": session.config.patch_size}


def create_app(session: AnnotationSession, static_dir: str | Path | None = None, export_dir: str | Path | None = None) -> FastAPI:
    """The app over ``session``; the page from ``static_dir`` (``/`` answers 404 JSON without its
    ``index.html``); exports are written into ``export_dir`` (default: the session's state folder,
    else ``./exports``) and served from there."""
    app = FastAPI(title="dial serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit)
    renderer = TileRenderer(session.image.pixels, session.table.colours)
    if export_dir is None:
        export_dir = session.state_dir / "exports" if session.state_dir else tempfile.mkdtemp(prefix="dial-serve-")
    exports = Path(export_dir)
    stem = session.image.path.stem
    static = Path(static_dir) if static_dir else None

    @app.exception_handler(InvalidRequest)
    def _invalid(request: Request, err: InvalidRequest) -> JSONResponse:
        return _error(422, str(err))

    @app.exception_handler(StateConflict)
    def _conflict(request: Request, err: StateConflict) -> JSONResponse:
        return _error(409, str(err))

    @app.exception_handler(DialError)
    def _dial(request: Request, err: DialError) -> JSONResponse:
        log.error("error: %s", err)
        return _error(500, str(err))

    @app.exception_handler(RequestValidationError)
    def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return _error(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        message = err.detail if isinstance(err.detail, str) else "request failed"
        if err.status_code == 404:
            message = f"not found: {request.url.path}" if message == "Not Found" else message
        return _error(err.status_code, message)

    @app.exception_handler(Exception)
    def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(err).__name__}); the server's log has the details")

    @app.get("/api/info")
    def info() -> dict:
        return _info(session, renderer)

    @app.get("/api/state")
    def state() -> dict:
        return session.state()

    @app.post("/api/clicks")
    def click(body: ClickBody) -> dict:
        return _update(session, session.add_click(body.row, body.col, body.cls))

    @app.post("/api/undo")
    def undo() -> dict:
        return _update(session, session.undo())

    @app.post("/api/redo")
    def redo() -> dict:
        return _update(session, session.redo())

    @app.post("/api/disca")
    def disca() -> dict:
        return _update(session, session.apply_disca())

    @app.get("/api/suggestions")
    def suggestions(count: Annotated[int, Query(ge=1, le=100)] = 5) -> dict:
        patches = [{"rank": s.rank, "row": s.window[0], "col": s.window[1], "height": s.window[2], "width": s.window[3],
                    "score": s.score} for s in session.suggestions(count)]
        return {"acquisition": session.config.acquisition, "patch_size": session.config.patch_size, "patches": patches}

    @app.get("/api/tiles/{layer}/{z}/{x}/{y}.png")
    def tile(layer: str, z: int, x: int, y: int) -> Response:
        if layer not in LAYERS:
            return _error(404, f"unknown layer {layer!r:.40}; the layers are {', '.join(LAYERS)}")
        try:
            if layer == "image":
                rgba = renderer.image_tile(z, x, y)
            elif layer == "labels":
                if session.label is None:
                    return _error(404, "no label raster: start dial serve with --labels LABELS.tif")
                rgba = renderer.class_tile(session.label, z, x, y)
            else:
                with session.lock:  # a consistent map while a click rewrites it
                    if layer == "prediction":
                        rgba = renderer.class_tile(session.classes, z, x, y)
                    else:
                        rgba = renderer.heat_tile(session.uncertainty, session.uncertainty_scale, z, x, y)
        except TileNotFound as err:
            return _error(404, str(err))
        headers = {} if layer == "image" else {"Cache-Control": "no-cache"}
        return Response(encode_png(rgba), media_type="image/png", headers=headers)

    @app.get("/api/export/{name}")
    def export(name: str) -> Response:
        if name not in EXPORTS:
            return _error(404, f"unknown export {name!r:.40}; the exports are {', '.join(EXPORTS)}")
        kind, suffix, media = EXPORTS[name]
        filename = f"{stem}_{kind}{suffix}"
        path = exports / filename
        started = time.perf_counter()
        with session.lock:
            _write_export(session, kind, path)
        log.info("exported %s in %.1f s", filename, time.perf_counter() - started)
        return FileResponse(path, media_type=media, filename=filename)

    @app.get("/")
    def index() -> Response:
        page = static / "index.html" if static else None
        if page is None or not page.is_file():
            return _error(404, "the page is not installed (no index.html among the static files); the API is at /api/")
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    if static is not None and static.is_dir():
        app.mount("/static", StaticFiles(directory=static), name="static")
    return app


def _write_export(session: AnnotationSession, kind: str, path: Path) -> None:
    """One export of the current state, written atomically (the caller holds the session's lock)."""
    image = session.image
    if kind == "refined":
        from dial_core.app.raster import write_class_map

        write_class_map(path, session.classes, session.table, image)
    elif kind == "clicks":
        from dial_core.clicks.click_log import write_click_log

        write_click_log(path, session.stacks.clicks, image.transform, image.crs)
    else:
        from dial_core.app.vector import class_polygons, write_vector

        write_vector(path, class_polygons(session.classes, session.table, image.transform, image.crs))
