"""Curves tab: training curves of one or several runs overlaid (plotly, rendered by gradio's
bundled plotly.js, so it works offline and headless).

Panels: reward mean with its min/max band, policy loss, value loss (PPO), KL (kl_loss, ppo_kl),
entropy, gradient norm, response length, clip ratios, validation scores (val-core/*),
throughput, step-time breakdown (timing_s/*) and the SFT losses (train/loss, val/loss).

Offers:
    CURVE_GROUPS
    ema(values, smoothing) -> np.ndarray        TensorBoard-style debiased EMA, NaN-aware.
    read_curve_data(collector, runs) -> {run: DataFrame}
    make_curves_figure(frames, smoothing, x_axis, config) -> plotly Figure
    build(demo, collector, config, timer) -> dict of components
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from monitor.metrics_collector import STEP, WALL, MetricsCollector
from monitor.settings import display_name

__all__ = ["CURVE_GROUPS", "ema", "read_curve_data", "make_curves_figure", "build"]

# Plotly's default qualitative palette: distinct on white, also used by the screenshot test.
PALETTE = ["#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880"]


@dataclass(frozen=True)
class CurveGroup:
    """One subplot: exact keys and/or key prefixes; `band` = (min key, max key) around keys[0]."""

    title: str
    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    band: tuple[str, str] | None = None
    first_only: bool = False  # plot only the first key present (reward: score, else rewards)


CURVE_GROUPS = (
    CurveGroup("Reward", ("critic/score/mean", "critic/rewards/mean"), first_only=True),
    CurveGroup("Policy loss", ("actor/pg_loss",)),
    CurveGroup("Value loss (PPO)", ("critic/vf_loss",)),
    CurveGroup("KL", ("actor/kl_loss", "actor/ppo_kl", "actor/reward_kl_penalty")),
    CurveGroup("Entropy", ("actor/entropy",)),
    CurveGroup("Gradient norm", ("actor/grad_norm", "critic/grad_norm", "train/grad_norm")),
    CurveGroup("Response length", ("response_length/mean", "response_length/max")),
    CurveGroup("Clip ratio", ("response_length/clip_ratio", "actor/pg_clipfrac")),
    CurveGroup("Validation", prefixes=("val-core/",)),
    CurveGroup("Throughput (tokens/s/GPU)", ("perf/throughput",)),
    CurveGroup("Step time breakdown (s)", prefixes=("timing_s/",), exclude=("timing_s/step",)),
    CurveGroup("SFT loss", ("train/loss", "val/loss")),
)
_BANDS = {"critic/score/mean": ("critic/score/min", "critic/score/max"),
          "critic/rewards/mean": ("critic/rewards/min", "critic/rewards/max")}


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average as TensorBoard draws it.

    Input:  values (NaN = not logged at that step, skipped) and smoothing in [0, 1).
    Output: same length; the first points are debiased so the curve does not start at 0.
    >>> ema(np.array([1.0, 1.0, np.nan, 1.0]), 0.9).round(6).tolist()
    [1.0, 1.0, nan, 1.0]
    """
    values = np.asarray(values, dtype=float)
    if smoothing <= 0:
        return values
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out = np.full_like(values, np.nan)
    acc, weight = 0.0, 0.0
    for i, v in enumerate(values):
        if not math.isfinite(v):
            continue
        acc = smoothing * acc + (1 - smoothing) * v
        weight = smoothing * weight + (1 - smoothing)
        out[i] = acc / weight
    return out


def _keys_for(group: CurveGroup, columns) -> list[str]:
    keys = [k for k in group.keys if k in columns]
    keys += sorted(c for c in columns if any(c.startswith(p) for p in group.prefixes) and c not in group.exclude)
    if group.first_only:
        keys = keys[:1]
    return keys


def _thin(n: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices, at most max_points, always keeping the last one."""
    if n <= max_points:
        return np.arange(n)
    idx = np.linspace(0, n - 1, num=max_points).round().astype(int)
    return np.unique(idx)


def read_curve_data(collector: MetricsCollector, runs: list[str]) -> dict[str, pd.DataFrame]:
    """Input: a collector and run names. Output: {run: merged metrics DataFrame} (unknown names skipped)."""
    collector.refresh()
    frames = {}
    for name in runs or []:
        try:
            frames[name] = collector.metrics(name)
        except KeyError:
            continue
    return frames


def make_curves_figure(
    frames: dict[str, pd.DataFrame], smoothing: float = 0.0, x_axis: str = "step", config: dict | None = None
) -> go.Figure:
    """Build the curves figure.

    Input:  {run: metrics table} (columns: step, _wall_time, verl keys), EMA smoothing in [0, 1),
            x_axis "step" or "wall time" (hours since the run's first logged step), the app config.
    Output: a plotly Figure with one subplot per CurveGroup that has data in any run; each run has
            its own colour, each key its own dash style; raw values drawn faint under the EMA.
    """
    config = config or {}
    max_points = int(config.get("max_points_per_curve", 2000))
    columns = set().union(*(df.columns for df in frames.values())) if frames else set()
    groups = [(g, _keys_for(g, columns)) for g in CURVE_GROUPS]
    groups = [(g, keys) for g, keys in groups if keys]
    if not groups:
        fig = go.Figure()
        msg = "No runs selected" if not frames else "No metrics logged yet for the selected runs"
        fig.add_annotation(text=msg, showarrow=False, font={"size": 18}, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(height=300, template="plotly_white")
        return fig
    cols = 2
    rows = math.ceil(len(groups) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[g.title for g, _ in groups],
                        vertical_spacing=min(0.3 / rows, 0.08), horizontal_spacing=0.08)
    dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
    for r_i, (run, df) in enumerate(frames.items()):
        if df.empty:
            continue
        color = PALETTE[r_i % len(PALETTE)]
        if x_axis == "wall time" and WALL in df:
            x_all = (df[WALL].to_numpy(dtype=float) - np.nanmin(df[WALL].to_numpy(dtype=float))) / 3600.0
        else:
            x_all = df[STEP].to_numpy()
        idx = _thin(len(df), max_points)
        x = x_all[idx]
        shown_legend = False
        for g_i, (group, keys) in enumerate(groups):
            row, col = g_i // cols + 1, g_i % cols + 1
            for k_i, key in enumerate(keys):
                if key not in df:
                    continue
                raw = df[key].to_numpy(dtype=float)
                ok = np.isfinite(raw[idx])
                if not ok.any():
                    continue
                band = _BANDS.get(key)
                if band and all(b in df for b in band):
                    lo, hi = (df[b].to_numpy(dtype=float)[idx] for b in band)
                    fig.add_trace(go.Scatter(x=x[ok], y=hi[ok], mode="lines", line={"width": 0},
                                             showlegend=False, hoverinfo="skip", legendgroup=run),
                                  row=row, col=col)
                    fig.add_trace(go.Scatter(x=x[ok], y=lo[ok], mode="lines", line={"width": 0}, fill="tonexty",
                                             fillcolor=_rgba(color, 0.15), showlegend=False, hoverinfo="skip",
                                             legendgroup=run, name=f"{run} min/max"),
                                  row=row, col=col)
                name = f"{run} · {display_name(key, config)}"
                sparse = ok.sum() < 0.5 * len(idx)  # validation: every test_freq steps -> markers
                mode = "lines+markers" if sparse else "lines"
                if smoothing > 0 and not sparse:
                    fig.add_trace(go.Scatter(x=x[ok], y=raw[idx][ok], mode="lines", opacity=0.25,
                                             line={"color": color, "width": 1, "dash": dashes[k_i % len(dashes)]},
                                             showlegend=False, hoverinfo="skip", legendgroup=run),
                                  row=row, col=col)
                    y = ema(raw, smoothing)[idx]
                else:
                    y = raw[idx]
                fig.add_trace(go.Scatter(x=x[ok], y=y[ok], mode=mode, name=name, legendgroup=run,
                                         showlegend=not shown_legend or len(keys) > 1,
                                         line={"color": color, "width": 2, "dash": dashes[k_i % len(dashes)]},
                                         marker={"size": 5}),
                              row=row, col=col)
                shown_legend = True
    fig.update_layout(height=max(320, 280 * rows), template="plotly_white",
                      margin={"l": 50, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": -0.04 if rows > 2 else -0.15})
    fig.update_xaxes(title_text="hours" if x_axis == "wall time" else "step", title_standoff=2)
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer) -> dict:
    with gr.Tab("Curves", id="curves"):
        with gr.Row():
            runs = gr.Dropdown(choices=collector.discover(), value=collector.discover()[:3], multiselect=True,
                               label="runs (several = overlaid)", scale=3)
            smoothing = gr.Slider(0.0, 0.99, value=0.0, step=0.01, label="EMA smoothing", scale=1)
            x_axis = gr.Radio(["step", "wall time"], value="step", label="x axis", scale=1)
        plot = gr.Plot(label="curves", elem_id="curves-plot")
        seen = gr.State({})  # {run: metrics version} drawn last, to skip redraws when nothing changed

    def draw(selected, smooth, x):
        frames = read_curve_data(collector, selected)
        versions = {name: collector.get(name).version for name in frames}
        return make_curves_figure(frames, float(smooth), x, config), versions

    def tick(selected, smooth, x, drawn):
        names = collector.discover()
        choices = gr.update(choices=names)
        collector.refresh()
        versions = {n: collector.get(n).version for n in selected or [] if n in names}
        if versions == drawn:
            return choices, gr.skip(), drawn
        fig, versions = draw(selected, smooth, x)
        return choices, fig, versions

    def curves_api(selected, smooth, x):
        return draw(selected, smooth, x)[0]

    inputs = [runs, smoothing, x_axis]
    gr.on([runs.change, smoothing.release, x_axis.change], draw, inputs=inputs, outputs=[plot, seen], api_name=False)
    # Callable through gradio_client: client.predict(["run-a"], 0.6, "step", api_name="/curves").
    demo.load(curves_api, inputs=inputs, outputs=[plot], api_name="curves")
    timer.tick(tick, inputs=[*inputs, seen], outputs=[runs, plot, seen], api_name=False, show_progress="hidden")
    return {"runs": runs, "plot": plot}
