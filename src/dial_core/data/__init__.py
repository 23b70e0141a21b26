"""Datasets: adapters, the canonical on-disk format, splits, tiling and training samples."""
