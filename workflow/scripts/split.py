"""Train/validation split: seeded 80/20 (by scene with a group pattern), the adapter's predefined
groups, a list of validation images, or the spatial blocks the preparation cut."""
from pathlib import Path

from dial_core.atomic import write_json
from dial_core.cli import run_step
from dial_core.data.canonical import load_info
from dial_core.data.splits import hold_out_calibration, make_split, read_name_list
from dial_core.errors import ConfigError


def main() -> None:
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    info = load_info(Path(sm.input.info).parent)
    p = sm.params.split
    val_names = None
    if p["mode"] == "list" and p.get("val_list"):
        try:
            val_names = read_name_list(Path(p["val_list"]).read_text())
        except OSError as err:
            raise ConfigError(f"split.val_list = {p['val_list']}: cannot read it ({err.strerror}); give a text file of image ids") from None
    split = make_split(info.groups or {"train": info.images}, p["mode"], p["val_fraction"], sm.params.seed,
                       group_pattern=p.get("group_pattern"), val_names=val_names, val_list=f"split.val_list ({p.get('val_list')})")
    split = hold_out_calibration(split, p.get("calibration_images", 0), sm.params.seed, p.get("group_pattern"))  # DISCA's lr is tuned there
    record = {"mode": p["mode"], "val_fraction": p["val_fraction"], "seed": sm.params.seed}
    if val_names is not None:
        record["val_list"] = p["val_list"]
    if sm.params.blocks:
        record["blocks"] = {**sm.params.blocks, "windows": info.blocks}
    write_json(sm.output[0], {**split, **record})


run_step(main, snakemake.log[0], snakemake.threads)  # noqa: F821
