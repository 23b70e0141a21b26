"""Adapter for the embedded synthetic dataset: scenes from :mod:`dial_core.data.synthetic` in the
canonical format, georeferenced on a plausible projected grid so GeoTIFF handling is exercised."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from rasterio.transform import from_origin

from dial_core.data.canonical import DatasetInfo, Sample
from dial_core.data.synthetic import BUILDINGS_CLASSES, DOMAINS, POTSDAM_CLASSES, buildings_only, generate_scene
from dial_core.errors import ConfigError

# Domain A sits in UTM 33N like Potsdam, domain B in NZTM like AIRS (Christchurch).
_CRS = {"A": ("EPSG:25833", 368000.0, 5808000.0), "B": ("EPSG:2193", 1570000.0, 5180000.0)}


def synthetic_dataset(name: str, n_images: int, size: int, domain: str, label_view: str, seed: int) -> tuple[DatasetInfo, Iterator[Sample]]:
    """Dataset description and a lazy stream of its samples (one seeded generator per image)."""
    if label_view not in ("full", "buildings"):
        raise ConfigError(f"dataset.synthetic.label_view = {label_view!r}: choose full or buildings")
    if domain not in DOMAINS:
        raise ConfigError(f"dataset.synthetic.domain = {domain!r}: choose one of {', '.join(DOMAINS)}")
    gsd = DOMAINS[domain].ground_sampling_distance_m
    info = DatasetInfo(
        name=name,
        classes=POTSDAM_CLASSES if label_view == "full" else BUILDINGS_CLASSES,
        ground_sampling_distance_m=gsd,
        source=f"embedded synthetic generator, domain {domain}, {label_view} labels, seed {seed}",
        licence="generated data, no restriction",
    )
    crs, x0, y0 = _CRS.get(domain, _CRS["A"])

    def samples() -> Iterator[Sample]:
        for index in range(n_images):
            rng = np.random.default_rng([seed, index])
            image, label = generate_scene(size, domain, rng)
            if label_view == "buildings":
                label = buildings_only(label)
            # Images side by side along x, as tiles of one survey.
            transform = from_origin(x0 + index * size * gsd, y0, gsd, gsd)
            yield Sample(f"{domain.lower()}{index:04d}", image, label, transform, crs)

    return info, samples()


def prepare(options: dict, name: str) -> tuple[DatasetInfo, Iterator[Sample], dict[str, list[str]]]:
    """Adapter entry point (see ``dial_core.data.adapters``); ``options`` carries ``seed``."""
    info, samples = synthetic_dataset(
        name, options["n_images"], options["size"], options["domain"], options["label_view"], options["seed"]
    )
    ids = [f"{options['domain'].lower()}{i:04d}" for i in range(options["n_images"])]
    return info, samples, {"train": ids}
