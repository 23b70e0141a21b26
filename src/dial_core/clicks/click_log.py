"""Click logs: the clicks a person gave on one image, as a GeoJSON FeatureCollection of Points.

One file per image, ``<image_id>.geojson``, points in click order, each with a ``class`` property:
the class index of the dataset, or its name when the reader is given the class names (the
``dial refine`` command line and the workflow's replay are). Coordinates are pixel positions
``[col, row]`` (x to the right, y down; a fractional position is the pixel it falls in) unless the
file carries a CRS (the GeoJSON 2008 ``crs`` member, ``{"type": "name", "properties": {"name":
"EPSG:32631"}}``) and the image has a geotransform: then they are map coordinates, reprojected to the
image's CRS when it differs and mapped to pixels with the inverse transform. The simulated ``human``
user replays these files; the interactive tools write them with :func:`write_click_log`.

A click that falls outside the image is an error naming the click; when the mistake is probably the
coordinate system (map coordinates without a ``crs`` member, or a ``crs`` member that is not the
one the coordinates were taken in) the message says so and gives the image's extent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dial_core.atomic import write_text
from dial_core.clicks.types import Click
from dial_core.errors import DataError
from dial_core.json_files import read_json

SUFFIX = ".geojson"
DEFAULT_FOLDER = "data/clicks/{dataset}"  # evaluation.agent_options.clicks when unset


def _file_crs(obj: Mapping[str, Any]) -> str | None:
    crs = obj.get("crs")
    if crs is None:
        return None
    if isinstance(crs, Mapping) and isinstance(crs.get("properties"), Mapping) and "name" in crs["properties"]:
        return str(crs["properties"]["name"])
    if isinstance(crs, str):
        return crs
    return ""  # malformed: reported by the caller


def _points(obj: Any, source: str) -> list[tuple[float, float, Any]]:
    if not isinstance(obj, Mapping) or obj.get("type") != "FeatureCollection" or not isinstance(obj.get("features"), list):
        raise DataError(f"{source}: not a GeoJSON FeatureCollection; a click log holds Point features with a 'class' property")
    points = []
    for i, feature in enumerate(obj["features"]):
        geometry = (feature or {}).get("geometry") or {}
        coords = geometry.get("coordinates")
        if geometry.get("type") != "Point" or not isinstance(coords, list) or len(coords) < 2 \
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in coords[:2]):
            raise DataError(f"{source}: click {i} is not a Point with finite [x, y] coordinates ({geometry!r:.120})")
        points.append((float(coords[0]), float(coords[1]), ((feature.get("properties") or {}).get("class"))))
    return points


def _class_index(cls: Any, n_classes: int, class_names: Sequence[str] | None, where: str, source: str) -> int:
    """The class index of a click's ``class`` property: an integer index, or a name of ``class_names``."""
    if isinstance(cls, str) and class_names is not None:
        if cls in class_names:
            return list(class_names).index(cls)
        raise DataError(f"{source}: {where} has class {cls!r}, which is not one of the classes "
                        + ", ".join(f"{i} {name}" for i, name in enumerate(class_names)))
    if isinstance(cls, bool) or not isinstance(cls, (int, float)) or cls != int(cls) or not 0 <= int(cls) < n_classes:
        names = "" if class_names is None else " or one of the names " + ", ".join(class_names)
        raise DataError(f"{source}: {where} has class {cls!r}; the 'class' property must be an integer "
                        f"class index in 0..{n_classes - 1}{names}")
    return int(cls)


def _extent(shape: tuple[int, int], transform, crs) -> str:
    """The image's footprint in map coordinates, for a message."""
    from rasterio.transform import array_bounds

    west, south, east, north = array_bounds(shape[0], shape[1], transform)
    return f"x {west:.6g}..{east:.6g}, y {south:.6g}..{north:.6g}" + (f" in {crs}" if crs is not None else "")


def _outside_hint(x: float, y: float, file_crs: str | None, shape: tuple[int, int], transform, crs) -> str:
    """Why a click may have landed outside the image, when the coordinate system is the likely cause."""
    if transform is None:
        return "; coordinates are [col, row] pixels unless the file carries a crs"
    extent = _extent(shape, transform, crs)
    if file_crs is not None:
        return f"; the image covers {extent}: is {file_crs} the coordinate system the clicks were taken in?"
    col, row = ~transform * (x, y)
    if 0 <= row < shape[0] and 0 <= col < shape[1]:
        from rasterio.crs import CRS

        epsg = None if crs is None else CRS.from_user_input(crs).to_epsg()
        name = f"EPSG:{epsg}" if epsg else "EPSG:<code>"
        return (f"; the file has no 'crs' member, so its coordinates are read as [col, row] pixels, but they lie in "
                f"the image's map extent ({extent}): add \"crs\": {{\"type\": \"name\", \"properties\": "
                f"{{\"name\": \"{name}\"}}}}")
    return f"; coordinates are [col, row] pixels unless the file carries a crs (the image covers {extent})"


def parse_click_log(obj: Any, source: str, shape: tuple[int, int], n_classes: int, transform=None, crs=None,
                    class_names: Sequence[str] | None = None) -> list[Click]:
    """The clicks of a parsed click log, checked against the image: ``shape`` (H, W), ``n_classes``,
    and its ``transform`` / ``crs`` (rasterio ``Affine`` / CRS or None). With ``class_names`` a click's
    class may be given by name. ``source`` names the file in the errors, which also name the click
    (index, coordinates) at fault."""
    points = _points(obj, source)
    file_crs = _file_crs(obj)
    if file_crs == "":
        raise DataError(f"{source}: unreadable 'crs' member {obj.get('crs')!r:.120}; use "
                        '{"type": "name", "properties": {"name": "EPSG:<code>"}} or drop it for pixel coordinates')
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if file_crs is not None and points:
        if transform is None:
            raise DataError(f"{source}: the clicks are in {file_crs} but the image has no georeference; "
                            "write pixel coordinates [col, row] without a 'crs' member")
        from rasterio.crs import CRS
        from rasterio.errors import CRSError
        from rasterio.warp import transform as reproject

        try:
            source_crs = CRS.from_user_input(file_crs)
        except CRSError as err:
            raise DataError(f"{source}: unknown crs {file_crs!r}: {err}") from None
        if crs is not None and CRS.from_user_input(crs) != source_crs:
            try:
                xs, ys = reproject(source_crs, CRS.from_user_input(crs), xs, ys)
            except Exception as err:  # GDAL/PROJ raise several types for impossible transformations
                raise DataError(f"{source}: cannot transform the clicks from {file_crs} to the image's {crs}: {err}") from None
        inverse = ~transform
        cols_rows = [inverse * (x, y) for x, y in zip(xs, ys)]
    else:
        cols_rows = list(zip(xs, ys))
    clicks = []
    height, width = shape
    for i, ((x, y, cls), (col_f, row_f)) in enumerate(zip(points, cols_rows)):
        row, col = math.floor(row_f), math.floor(col_f)
        where = f"click {i} at ({x:g}, {y:g})" + ("" if file_crs is None else f" → pixel (col {col}, row {row})")
        if not (0 <= row < height and 0 <= col < width):
            raise DataError(f"{source}: {where} lies outside the image ({height}×{width} px)"
                            + _outside_hint(x, y, file_crs, shape, transform, crs))
        clicks.append(Click(row, col, _class_index(cls, n_classes, class_names, where, source)))
    return clicks


def read_click_log(path: str | Path, shape: tuple[int, int], n_classes: int, transform=None, crs=None,
                   class_names: Sequence[str] | None = None) -> list[Click]:
    """The clicks of the file ``path`` (see :func:`parse_click_log`)."""
    obj = read_json(path, "click log", "write the clicks as a GeoJSON FeatureCollection of Points with a 'class' property")
    return parse_click_log(obj, str(path), shape, n_classes, transform, crs, class_names)


def click_log_folder(options: Mapping[str, Any] | None, dataset: str) -> Path:
    """The folder of the ``human`` agent's click logs for ``dataset``: ``evaluation.agent_options.clicks``
    (default ``data/clicks/{dataset}``) with ``{dataset}`` replaced."""
    return Path(str((options or {}).get("clicks") or DEFAULT_FOLDER).replace("{dataset}", dataset))


def click_log_files(folder: str | Path) -> dict[str, Path]:
    """image id → click log in ``folder`` (``<image_id>.geojson``; none when the folder is missing)."""
    folder = Path(folder)
    return {p.name[: -len(SUFFIX)]: p for p in sorted(folder.glob(f"*{SUFFIX}"))} if folder.is_dir() else {}


def check_click_folder(folder: str | Path, known: Sequence[str], needed: Sequence[str]) -> dict[str, Path]:
    """The click logs of ``needed`` images; a file for an image not in ``known`` or a missing file
    for a needed image is a DataError naming it."""
    files = click_log_files(folder)
    known_set = set(known)
    for image_id, path in files.items():
        if image_id not in known_set:
            raise DataError(f"{path}: click log for an unknown image {image_id!r}; the evaluated dataset's "
                            f"validation images are {', '.join(sorted(known_set)[:8])}{' …' if len(known_set) > 8 else ''}; "
                            "rename or remove the file")
    missing = [i for i in needed if i not in files]
    if missing:
        raise DataError(f"{folder}: no click log for image(s) {', '.join(missing[:8])}; record "
                        f"{Path(folder) / (missing[0] + SUFFIX)} (or evaluate fewer images with evaluation.max_images)")
    return {i: files[i] for i in needed}


def click_log(clicks: Sequence[Click], transform=None, crs=None) -> dict:
    """The GeoJSON of ``clicks``: pixel ``[col, row]`` coordinates, or, given the image's
    ``transform`` and ``crs``, the map coordinates of the pixel centres with a ``crs`` member."""
    features = []
    georeferenced = transform is not None and crs is not None  # map coordinates need both
    for k in clicks:
        if not georeferenced:
            coords = [k.col, k.row]
        else:
            x, y = transform * (k.col + 0.5, k.row + 0.5)
            coords = [float(x), float(y)]
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": coords},
                         "properties": {"class": int(k.cls)}})
    obj: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if georeferenced:
        from rasterio.crs import CRS

        parsed = CRS.from_user_input(crs)
        epsg = parsed.to_epsg()
        obj["crs"] = {"type": "name", "properties": {"name": f"EPSG:{epsg}" if epsg else parsed.to_wkt()}}
    return obj


def write_click_log(path: str | Path, clicks: Sequence[Click], transform=None, crs=None) -> None:
    """Write ``clicks`` as a click log (atomically), readable by :func:`read_click_log`."""
    write_text(path, json.dumps(click_log(clicks, transform, crs), indent=1) + "\n")
