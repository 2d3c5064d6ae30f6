"""What the Curves and Samples tabs draw, checked on the figure and the HTML themselves: one legend
entry per run, stable run colours, sensible smoothing, bands only from a logged std, gaps at crashes,
every actor/* metric shown; samples grouped by prompt with line breaks kept and text escaped.

    .venv/bin/python -m pytest tests/monitor/test_panels.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor.panels.curves import PALETTE, colour_map, groups_for, make_curves_figure, to_plot
from monitor.panels.samples import filter_groups, group_samples, render_groups_html
from monitor.settings import load_config
from monitor.smoothing import ema


def frame(n=100, launch_at=None, seed=0, **extra) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = np.arange(1, n + 1)
    df = pd.DataFrame({
        "step": steps,
        "_launch": (steps >= launch_at).astype(int) if launch_at else np.zeros(n, dtype=int),
        "_wall_time": 1.79e9 + 30.0 * steps + (7200.0 * (steps >= launch_at) if launch_at else 0),
        "critic/score/mean": np.clip(0.1 + steps / n + rng.normal(0, 0.05, n), 0, 1),
        "critic/score/max": 1.0, "critic/score/min": 0.0,
        "actor/pg_loss": rng.normal(0, 0.1, n), "actor/kl_loss": 0.001 * steps,
        "actor/ppo_kl": rng.random(n) * 1e-3, "actor/entropy": 1 - steps / (2 * n),
    })
    for key, value in extra.items():
        df[key] = value
    return df


def legend_names(fig) -> list[str]:
    return [t["name"] for t in fig["data"] if t.get("showlegend")]


def test_legend_names_each_run_once():
    # why: a 46-entry legend (run x key) under all plots; now one entry per run
    fig = make_curves_figure({"run-a": frame(), "run-b": frame(seed=1)}, 0.8, "step", {})
    assert legend_names(fig) == ["run-a", "run-b"]
    assert fig["layout"]["legend"]["y"] > 1  # above the panels, not below 20 of them


def test_run_colours_do_not_depend_on_the_selection_order():
    order = ["a", "b", "c"]
    colours = colour_map(order)
    one = make_curves_figure({"c": frame(), "a": frame()}, 0.8, "step", {}, colours)
    two = make_curves_figure({"a": frame(), "c": frame()}, 0.8, "step", {}, colours)

    def colour_of(fig, run):
        return {t["line"]["color"] for t in fig["data"] if t.get("legendgroup") == run}

    assert colour_of(one, "c") == colour_of(two, "c") == {PALETTE[2]}
    assert colour_of(one, "a") == {PALETTE[0]}


def test_smoothing_is_on_by_default_with_raw_values_faint_behind():
    assert load_config()["smoothing"] == 0.8
    fig = make_curves_figure({"r": frame()}, load_config()["smoothing"], "step", {})
    loss = [t for t in fig["data"] if "actor/pg_loss" in t.get("hovertemplate", "") or
            (t.get("opacity") == 0.25 and t["yaxis"] == "y2")]
    raw = next(t for t in fig["data"] if t.get("opacity") == 0.25 and t["yaxis"] == "y2")
    smooth = next(t for t in loss if "hovertemplate" in t)
    # why: the smoothed policy loss varies far less than the raw noise
    assert np.nanstd(smooth["y"]) < 0.5 * np.nanstd(raw["y"])


def test_band_only_from_a_logged_std():
    # why: a 0-1 min/max band of a binary reward filled the whole plot and told nothing
    no_band = make_curves_figure({"r": frame()}, 0.8, "step", {})
    assert not any(t.get("fill") for t in no_band["data"])
    with_std = make_curves_figure({"r": frame(**{"critic/score/std": 0.05})}, 0.8, "step", {})
    fills = [t for t in with_std["data"] if t.get("fill") == "tonexty"]
    assert len(fills) == 1 and fills[0]["yaxis"] == "y"
    # why: the std is the band, not a curve of its own
    assert all("critic/score/std" not in t.get("hovertemplate", "") for t in with_std["data"])


def test_wall_time_axis_leaves_the_crash_gap_empty():
    fig = make_curves_figure({"r": frame(n=40, launch_at=21)}, 0.0, "wall time", {})
    reward = next(t for t in fig["data"] if "critic/score/mean" in t.get("hovertemplate", ""))
    x, y = np.asarray(reward["x"]), np.asarray(reward["y"])
    gaps = np.flatnonzero(np.isnan(x))
    # why: the line stops at step 20 and restarts at the resume 2 h later, no segment across the gap
    assert len(gaps) == 1 and np.isnan(y[gaps[0]]) and x[gaps[0] + 1] - x[gaps[0] - 1] > 1.9
    # why: what reaches the browser is JSON null there (plotly's gap), never a NaN token
    assert ',null,' in to_plot(fig).plot and "NaN" not in to_plot(fig).plot
    steps_fig = make_curves_figure({"r": frame(n=40, launch_at=21)}, 0.0, "step", {})
    assert not np.isnan(next(t for t in steps_fig["data"] if "critic/score/mean" in t.get("hovertemplate", ""))["x"]).any()


def test_every_actor_metric_gets_a_panel_without_a_list():
    # why: entropy-guided training logs new actor/* keys; the dashboard must show them as they come
    df = frame(**{"actor/top_entropy_threshold": 2.5, "actor/top_entropy_kept_share": 0.2})
    titles = [title for title, _ in groups_for(df.columns)]
    assert "actor/top_entropy_threshold" in titles and "actor/top_entropy_kept_share" in titles
    assert titles.count("actor/pg_loss") == 0  # already in "Policy loss"
    fig = make_curves_figure({"r": df}, 0.8, "step", {})
    texts = " ".join(a["text"] for a in fig["layout"]["annotations"])
    assert "actor/top_entropy_kept_share" in texts


def test_extra_keys_and_empty_states():
    df = frame(**{"perf/mfu/actor": 0.4})
    assert ("perf/mfu/actor", ["perf/mfu/actor"]) in groups_for(df.columns, ["perf/mfu/actor"])
    empty = make_curves_figure({}, 0.8, "step", {})
    assert empty["data"] == [] and "No runs selected" in empty["layout"]["annotations"][0]["text"]


EMA_CASES = [
    # (values, smoothing, steps, expected)
    ([1.0, 1.0, 1.0], 0.9, None, [1.0, 1.0, 1.0]),  # why: debiased: a constant stays constant from step 1
    ([0.0, 1.0], 0.5, None, [0.0, 2 / 3]),  # why: TensorBoard's formula
    ([1.0, math.nan, 3.0], 0.5, None, [1.0, math.nan, 7 / 3]),  # why: a missing step is skipped, not zero
    ([0.0, 1.0], 0.5, [1, 3], [0.0, 0.8]),  # why: a 2-step gap decays by 0.5^2 (preview of every other step)
    ([5.0, 6.0], 0.0, None, [5.0, 6.0]),  # why: 0 = raw
]


@pytest.mark.parametrize("values,smoothing,steps,expected", EMA_CASES)
def test_ema(values, smoothing, steps, expected):
    got = ema(np.array(values), smoothing, None if steps is None else np.array(steps))
    np.testing.assert_allclose(got, expected, equal_nan=True)


def dump(n_groups=3, n=4) -> pd.DataFrame:
    rows = []
    for g in range(n_groups):
        for j in range(n):
            rows.append({"input": f"user\nSolve {g} + {g}.\nassistant\n", "output": f"Step 1: add.\nStep 2: <b>{2 * g}</b>\n$x^2$",
                         "gts": str(2 * g), "score": float(j % 2 if g != 2 else 1), "step": 7, "acc": bool(j % 2),
                         "uid": f"uid{g}_{j}_0"})
    return pd.DataFrame(rows)


def test_samples_group_by_prompt_and_keep_line_breaks():
    groups = group_samples(dump())
    assert [len(g.rows) for g in groups] == [4, 4, 4] and groups[1].ground_truth == "2"
    html = render_groups_html(groups, ["acc"])
    # why: responses keep their newlines (pre-wrap) and model text is escaped, never rendered as HTML
    assert "Step 1: add.\nStep 2: &lt;b&gt;2&lt;/b&gt;" in html and "<b>2</b>" not in html
    assert "white-space:pre-wrap" in html and "overflow-x:hidden" in html
    assert html.count('class="sv-group"') == 3 and "acc=True" in html


def test_samples_filters():
    groups = group_samples(dump())
    # why: mixed groups carry a learning signal, uniform ones (group 2: all 1.0) do not
    assert [g.index for g in filter_groups(groups, which="mixed scores (learning signal)")] == [0, 1]
    assert [g.index for g in filter_groups(groups, which="uniform scores (no signal)")] == [2]
    assert sum(len(g.rows) for g in filter_groups(groups, score_min=1)) == 2 + 2 + 4
    assert [g.index for g in filter_groups(groups, search="SOLVE 1 + 1")] == [1]
    # why: verl's validation dumps have no uid: group by the prompt text
    no_uid = dump().drop(columns=["uid"])
    assert [len(g.rows) for g in group_samples(no_uid)] == [4, 4, 4]
