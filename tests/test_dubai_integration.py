"""Real-data integration: the Dubai adapter on ../shared/datasets/dubai, then a short AC
pretraining and a few simulated clicks on it (skipped where the folder is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dial_core.data.adapters import prepare_dataset
from dial_core.data.canonical import load_info, read_image, read_label, write_dataset
from dial_core.data.splits import make_split
from dial_core.evaluation.protocols import click_protocol
from dial_core.steps import interaction_config, pretrain_network

DUBAI = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dubai"
pytestmark = pytest.mark.skipif(not DUBAI.is_dir(), reason=f"real Dubai dataset not found at {DUBAI}")

# Shares of all pixels measured in shared/datasets/dubai/README.md; 1.06 % are ignore
# (Unlabeled + black), which the canonical class shares leave out.
README_SHARES = {"land": 0.524, "water": 0.136, "building": 0.133, "vegetation": 0.103, "road": 0.094}
IGNORED = 0.005 + 0.0056


@pytest.fixture(scope="module")
def dubai(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dubai")
    info, sources, groups = prepare_dataset("dubai", {"path": str(DUBAI)}, "dubai")
    info.groups = groups
    write_dataset(root, info, sources)
    return root


def test_dubai_class_shares_match_the_readme(dubai: Path) -> None:
    info = load_info(dubai)
    assert len(info.images) == 72
    shares = {name.split("_")[0].lower(): share for name, share in info.class_shares.items()}
    for name, expected in README_SHARES.items():
        assert shares[name] == pytest.approx(expected / (1 - IGNORED), abs=0.01), name
    labels = np.concatenate([read_label(dubai, i).ravel() for i in info.images[:9]])
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 255}


def test_short_pretraining_and_clicks_on_dubai(dubai: Path) -> None:
    torch.set_num_threads(2)
    info = load_info(dubai)
    split = make_split(info.groups, "random", 0.2, seed=0)
    assert (len(split["train"]), len(split["val"])) == (58, 14)
    train = dict(click_probability=0.7, max_clicks=8, epochs=2, crops_per_epoch=16,
                 crop_size=128, batch_size=4, lr=0.01, momentum=0.9, weight_decay=5e-4, milestones=[1],
                 gamma=0.1, checkpoint_every=1, mixed_precision=False)
    network = {"arch": "linknet", "encoder": "resnet18", "encoding": "dt", "radius": 10, "annotation": "per_class",
               "click_position": "inside", "frequency_balancing": True, "train_fraction": 1.0}
    tiling = {"size": 256, "overlap": 64}
    model, metrics = pretrain_network(
        dubai, info, {"train": split["train"], "val": split["val"][:2]}, network,
        train, tiling, seed=0, device=torch.device("cpu"), threads=2, state_path=None,
    )
    assert 0.0 <= metrics["val_miou"] <= 1.0 and np.isfinite(metrics["final_loss"])
    evaluation = {"agent": "largest_mistake_centre",
                  "disca": {"lr": 2e-6, "steps": 1, "regularisation": 1.0, "ac_drop_probability": 0.2, "window": 128}}
    cfg = interaction_config("ac", evaluation, tiling)
    image, label = read_image(dubai, split["val"][0])[:256, :256], read_label(dubai, split["val"][0])[:256, :256]
    rows = click_protocol(model, image, label, info.class_names, 3, cfg, np.random.default_rng(0))
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    for row in rows[1:]:
        if row["click_class"] >= 0:  # a click lands on a labelled pixel and carries its class
            assert label[row["click_row"], row["click_col"]] == row["click_class"]
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    json.dumps(rows)  # tidy rows are plain values
