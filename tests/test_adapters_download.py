"""INRIA and AIRS end to end from served files in their real layouts: download (loopback HTTP),
verify, extract, convert to the canonical format; and the Snakemake download → prepare wiring."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import py7zr
import pytest
import rasterio
import yaml
from rasterio.transform import from_origin

from dial_core.data.adapters import prepare_dataset
from dial_core.data.canonical import load_info, read_label, write_dataset
from dial_core.data.download import download
from dial_core.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def geotiff_bytes(array: np.ndarray, crs: str, x0: float, y0: float, gsd: float) -> bytes:
    bands = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
    buffer = io.BytesIO()
    with rasterio.MemoryFile() as memory:
        with memory.open(driver="GTiff", height=bands.shape[1], width=bands.shape[2], count=bands.shape[0],
                         dtype="uint8", crs=crs, transform=from_origin(x0, y0, gsd, gsd)) as dst:
            dst.write(bands)
        buffer.write(memory.read())
    return buffer.getvalue()


def scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((size, size), np.uint8)
    r, c = rng.integers(0, size // 2, 2)
    gt[r : r + size // 3, c : c + size // 3] = 255
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return image, gt


INRIA_TILES = ("austin1", "austin6", "vienna2", "vienna7")


def inria_parts(folder: Path, bad_value: bool = False) -> list[Path]:
    """The real layout: 7z split in parts ← NEW2-AerialImageDataset.zip ← AerialImageDataset/train/..."""
    rng = np.random.default_rng(0)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        for k, name in enumerate(INRIA_TILES):
            image, gt = scene(rng)
            if bad_value and k == 2:
                gt[0, :5] = 128
            x0 = 600000.0 + 100 * k
            zf.writestr(f"AerialImageDataset/train/images/{name}.tif", geotiff_bytes(image, "EPSG:32614", x0, 3350000.0, 0.3))
            zf.writestr(f"AerialImageDataset/train/gt/{name}.tif", geotiff_bytes(gt, "EPSG:32614", x0, 3350000.0, 0.3))
    whole = folder / "whole.7z"
    with py7zr.SevenZipFile(whole, "w") as sz:
        sz.writestr(inner.getvalue(), "NEW2-AerialImageDataset.zip")
    data = whole.read_bytes()
    whole.unlink()
    cut = len(data) // 3
    parts = []
    for i, chunk in enumerate((data[:cut], data[cut : 2 * cut], data[2 * cut :]), start=1):
        part = folder / f"aerialimagelabeling.7z.{i:03d}"
        part.write_bytes(chunk)
        parts.append(part)
    return parts


def fetch(file_server, names: list[str], raw: Path) -> None:
    for name in names:
        digest = hashlib.sha256((file_server.root / name).read_bytes()).hexdigest()
        download(file_server.url(name), raw / name, f"sha256:{digest}", progress=False)


def test_inria_download_extract_and_convert(file_server, tmp_path: Path) -> None:
    parts = inria_parts(file_server.root)
    raw = tmp_path / "raw"
    fetch(file_server, [p.name for p in parts], raw)
    options = {"path": str(raw), "extract_dir": str(tmp_path / "interim"), "split": "cities_1_5"}
    info, sources, groups = prepare_dataset("inria", options, "inria")
    assert groups == {"train": ["inria_austin6", "inria_vienna7"], "val": ["inria_austin1", "inria_vienna2"]}
    written = write_dataset(tmp_path / "out", info, sources)
    assert written.class_names == ["background", "building"]
    label = read_label(tmp_path / "out", "inria_austin1")
    assert set(np.unique(label)) == {0, 1}
    with rasterio.open(tmp_path / "out" / "labels" / "inria_austin1.tif") as src:
        assert src.crs.to_epsg() == 32614 and src.transform.a == pytest.approx(0.3)
    assert not any(raw.glob("AerialImageDataset"))  # extraction went to extract_dir, raw stays as downloaded


def test_inria_unexpected_gt_value_names_the_file(file_server, tmp_path: Path) -> None:
    inria_parts(file_server.root, bad_value=True)
    info, sources, _ = prepare_dataset("inria", {"path": str(file_server.root), "extract_dir": str(tmp_path / "x")}, "inria")
    with pytest.raises(DataError, match=r"vienna2\.tif.*128|128.*vienna2\.tif"):
        write_dataset(tmp_path / "out", info, sources)
    assert not (tmp_path / "out" / "dataset.json").exists()


def airs_zip(path: Path) -> None:
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w") as zf:
        for subset, names in (("train", ["christchurch_1", "christchurch_2"]), ("val", ["christchurch_9"])):
            for name in names:
                image, gt = scene(rng)
                kwargs = dict(crs="EPSG:2193", x0=1570000.0, y0=5180000.0, gsd=0.075)
                zf.writestr(f"AIRS/{subset}/image/{name}.tif", geotiff_bytes(image, **kwargs))
                zf.writestr(f"AIRS/{subset}/label/{name}.tif", geotiff_bytes((gt > 0).astype(np.uint8), **kwargs))
                zf.writestr(f"AIRS/{subset}/label/{name}_vis.tif", geotiff_bytes(gt, **kwargs))


def test_airs_zip_download_and_convert(file_server, tmp_path: Path) -> None:
    airs_zip(file_server.root / "AIRS.zip")
    raw = tmp_path / "raw"
    fetch(file_server, ["AIRS.zip"], raw)
    info, sources, groups = prepare_dataset("airs", {"path": str(raw), "extract_dir": str(tmp_path / "interim")}, "airs")
    assert groups == {"train": ["airs_train_christchurch_1", "airs_train_christchurch_2"], "val": ["airs_val_christchurch_9"]}
    write_dataset(tmp_path / "out", info, sources)
    assert load_info(tmp_path / "out").images == [*groups["train"], *groups["val"]]
    with rasterio.open(tmp_path / "out" / "images" / "airs_val_christchurch_9.tif") as src:
        assert src.crs.to_epsg() == 2193  # NZTM kept


def test_airs_missing_layout_is_explained(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train/image folder"):
        prepare_dataset("airs", {"path": str(tmp_path / "empty")}, "airs")


@pytest.mark.e2e  # a Snakemake run of the data phase (20–30 s): ./dial test stays under 10 min on 2 cores
def test_snakemake_downloads_then_prepares_inria(file_server, tmp_path: Path) -> None:
    """The download rule fetches each part (verified), then prepare/split/tile run on them."""
    parts = inria_parts(file_server.root)
    listing = tmp_path / "SHA256SUMS"  # the last part is verified from a checksum file instead
    listing.write_text(f"{hashlib.sha256(parts[-1].read_bytes()).hexdigest()}  {parts[-1].name}\n")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    downloads = [
        {"file": p.name, "url": file_server.url(p.name), "checksum": "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()}
        for p in parts[:-1]
    ] + [{"file": parts[-1].name, "url": file_server.url(parts[-1].name), "checksum": None, "checksum_file": str(listing)}]
    params["dataset"] = {"name": "inria", "adapter": "inria", "inria": {"split": "random", "downloads": downloads}}
    params["transfer"]["targets"] = []
    params["tiling"] = {"size": 32, "overlap": 0}
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(bin_dir / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "data_all", "--cores", "2"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (work / "data" / "raw" / "inria").iterdir()) == [p.name for p in parts]
    split = json.loads((work / "data" / "processed" / "inria" / "split.json").read_text())
    assert (len(split["train"]) + len(split["calibration"]), len(split["val"])) == (3, 1)
    assert len(split["calibration"]) == 2  # split.calibration_images: held out of training for calibrate_disca
    tiles = (work / "data" / "processed" / "inria" / "tiles.csv").read_text().splitlines()
    assert len(tiles) == 1 + 4 * 4  # 64² images, 32² windows without overlap
    assert len([r for r in file_server.requests if r["path"].endswith(".001")]) == 1
    assert "without a checksum" not in (work / "logs" / "inria" / f"download_{parts[-1].name}.log").read_text().lower()
