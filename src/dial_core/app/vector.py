"""Class maps as polygons (rasterio.features.shapes → GeoPandas), written as GeoPackage or GeoJSON.

One feature per connected region of a class (4-connectivity, holes kept), with the class index,
its name, its pixel count and, where the CRS is projected, its area in m². Areas are those of the
exact pixel outlines; ``tolerance`` (in CRS units: metres, or pixels without a CRS) then simplifies
the outlines as a coverage (shapely's coverage simplification), so neighbouring regions keep a
shared border without gaps or overlaps. Without georeferencing the coordinates are pixel positions
[col, row] (y down), as in the click logs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
from rasterio.crs import CRS
from rasterio.features import shapes
from rasterio.transform import Affine
from shapely.geometry import Polygon, shape

from dial_core.app.classes import ClassTable
from dial_core.atomic import atomic_path
from dial_core.errors import DataError

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}


def vector_driver(path: str | Path) -> str:
    """The OGR driver of an output path, by its extension; a DataError naming the path otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in DRIVERS:
        raise DataError(f"{path}: unknown vector format {suffix or '(no extension)'!r}; name the file "
                        f"{' or '.join(sorted(set(DRIVERS)))}")
    return DRIVERS[suffix]


def _frame_crs(crs: CRS | None) -> str | None:
    return None if crs is None else crs.to_wkt()


def class_polygons(classes: np.ndarray, table: ClassTable, transform: Affine | None = None, crs: CRS | None = None,
                   tolerance: float = 0.0) -> gpd.GeoDataFrame:
    """The connected regions of ``classes`` (H, W) as polygons with ``class``, ``name``, ``pixels``
    and, for a projected ``crs``, ``area_m2``; simplified as a coverage when ``tolerance`` > 0."""
    if tolerance < 0:
        raise ValueError(f"simplification tolerance {tolerance} must be ≥ 0")
    grid = transform if transform is not None else Affine.identity()
    regions = list(shapes(classes.astype(np.uint8), transform=grid, connectivity=4))
    geometry = [shape(g) for g, _ in regions]
    values = [int(v) for _, v in regions]
    frame = gpd.GeoDataFrame({"class": values, "name": [table.names[v] for v in values]}, geometry=geometry,
                             crs=_frame_crs(crs))
    frame["pixels"] = np.rint(frame.geometry.area / abs(grid.determinant)).astype(np.int64)
    if crs is not None and crs.is_projected:
        frame["area_m2"] = frame.geometry.area * float(crs.linear_units_factor[1]) ** 2
    if tolerance > 0 and len(frame):
        frame = frame.set_geometry(frame.geometry.simplify_coverage(tolerance))
        frame = frame[~frame.geometry.is_empty].reset_index(drop=True)
    return frame


def window_polygon(window: tuple[int, int, int, int], transform: Affine | None = None) -> Polygon:
    """The outline of a (row, col, height, width) pixel window in the map coordinates of ``transform``."""
    r, c, h, w = window
    grid = transform if transform is not None else Affine.identity()
    return Polygon([grid * (c + dc, r + dr) for dc, dr in ((0, 0), (w, 0), (w, h), (0, h))])


def frame_of(rows: Sequence[dict], geometry: Sequence[Polygon], crs: CRS | None) -> gpd.GeoDataFrame:
    """A GeoDataFrame of attribute ``rows`` and their ``geometry`` in ``crs``."""
    return gpd.GeoDataFrame(list(rows), geometry=list(geometry), crs=_frame_crs(crs))


def write_vector(path: str | Path, frame: gpd.GeoDataFrame) -> None:
    """``frame`` as GeoPackage or GeoJSON (by the extension; the layer named after the file), written
    atomically. Without a CRS the file has none: note that GeoJSON readers take such a file for
    WGS 84 longitudes / latitudes, where ours holds pixel positions [col, row]."""
    driver = vector_driver(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'crs' was not provided")  # pixel coordinates: no CRS, on purpose
        tmp.unlink()  # GDAL creates the file itself (an empty GeoPackage is not one)
        frame.to_file(tmp, driver=driver, engine="pyogrio", layer=Path(path).stem)
