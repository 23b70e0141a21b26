"""Report numbers and figures from small tidy tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dial_core.report.figures import miou_vs_clicks, miou_vs_clicks_by_domain, miou_vs_patches, with_gain
from dial_core.report.markdown import summary_markdown
from dial_core.report.studies import NO_SMP_EQUIVALENT, study_figure, study_markdown, study_table
from dial_core.report.summaries import click_summary, patch_summary


def tidy(curves: dict[tuple[str, str], list[float]], acquisition: str = "none") -> pd.DataFrame:
    """Rows for (model, image) → mIoU per step, as the protocols write them."""
    rows = []
    for (model, image), values in curves.items():
        for step, miou in enumerate(values):
            rows.append(dict(dataset="d", image=image, model=model, method="ac", agent="a", acquisition=acquisition,
                             encoding="dt", seed=0, step=step, miou=miou))
    return pd.DataFrame(rows)


def test_click_summary_gain_and_noc():
    frame = tidy({("m", "i1"): [0.70, 0.82, 0.86, 0.91], ("m", "i2"): [0.60, 0.65, 0.70, 0.75]})
    row = click_summary(frame, [0.8, 0.85, 0.9]).iloc[0]
    assert row["initial_miou"] == pytest.approx(0.65) and row["final_miou"] == pytest.approx(0.83)
    assert row["gain"] == pytest.approx(0.18)
    # the run made 3 clicks, under report.noc_budget (20): the budget is cut to them
    assert row["noc_budget"] == 3 and row["clicks"] == 3
    assert row["noc_miou@80"] == pytest.approx((1 + 3) / 2)  # i2 never reaches 0.8: counted as the budget (3)
    assert row["noc_miou@90"] == pytest.approx((3 + 3) / 2)
    assert row["never_miou@85"] == pytest.approx(0.5)
    assert not any(c.startswith(("noc@", ">=")) for c in row.index)  # the binary NoC's names stay its own


def test_click_summary_budget_is_a_parameter():
    frame = tidy({("m", "i1"): [0.70, 0.75, 0.82, 0.86, 0.91], ("m", "i2"): [0.80, 0.81, 0.82, 0.83, 0.84]})
    row = click_summary(frame, [0.85], budget=2).iloc[0]
    assert row["noc_budget"] == 2
    assert row["noc_miou@85"] == pytest.approx(2.0)  # neither reaches 0.85 by step 2
    assert row["never_miou@85"] == pytest.approx(1.0)
    row = click_summary(frame, [0.85], budget=20).iloc[0]
    assert row["noc_miou@85"] == pytest.approx((3 + 4) / 2) and row["never_miou@85"] == pytest.approx(0.5)


def test_patch_summary_rewards_early_gains():
    early = tidy({("m", "i"): [0.5, 0.6, 0.6, 0.6, 0.6]}, "entropy")
    late = tidy({("m", "i"): [0.5, 0.5, 0.5, 0.5, 0.6]}, "random")
    table = patch_summary(pd.concat([early, late])).set_index("acquisition")
    assert table.loc["entropy", "miou@4"] == table.loc["random", "miou@4"] == pytest.approx(0.6)
    assert table.loc["entropy", "mean_gain"] > table.loc["random", "mean_gain"]


def test_gain_is_relative_to_each_images_start():
    frame = with_gain(tidy({("m", "i1"): [0.7, 0.8], ("m", "i2"): [0.2, 0.25]}))
    np.testing.assert_allclose(frame.sort_values(["image", "step"])["miou_gain"], [0.0, 0.1, 0.0, 0.05])


def test_figures_have_the_curve_and_gain_panels():
    frame = tidy({("m", "i1"): [0.7, 0.8], ("m", "i2"): [0.6, 0.65]})
    for figure in (miou_vs_clicks(frame), miou_vs_patches(frame.assign(acquisition="entropy"))):
        assert len(figure.axes) == 2
    domains = frame.assign(domain="a → b")
    assert len(miou_vs_clicks_by_domain(domains).axes) == 2


def test_study_table_and_outputs():
    clicks = tidy({("base", "i"): [0.6, 0.7], ("gf", "i"): [0.5, 0.65]})
    entries = [{"study": "encoding", "value": "dt", "network": "base"}, {"study": "encoding", "value": "gf", "network": "gf"}]
    pretrain = {"d/base": {"val_miou": 0.61}, "d/gf": {"val_miou": 0.52}}
    table = study_table(entries, pretrain, clicks, "d")
    assert list(table["value"]) == ["dt", "gf"]
    assert table["ac_gain"].tolist() == pytest.approx([0.1, 0.15]) and table["val_miou"].tolist() == [0.61, 0.52]
    assert len(study_figure(table).axes) == 1
    text = study_markdown(table)
    assert "## encoding" in text and all(name in text for name in NO_SMP_EQUIVALENT)


def test_summary_markdown_lists_networks_and_protocols():
    clicks = click_summary(tidy({("m", "i"): [0.6, 0.7]}), [0.8])
    patches = patch_summary(tidy({("m", "i"): [0.6, 0.7]}, "entropy"))
    pretrain = {"d/m": {"network": "m", "dataset": "d", "val_miou": 0.6, "val_accuracy": 0.9, "seconds": 10.0}}
    text = summary_markdown(pretrain, clicks, patches)
    assert "| m " in text and "Click protocol" in text and "Patch protocol" in text
