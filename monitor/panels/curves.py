"""Curves tab: training curves of one or several runs overlaid (plotly, drawn by gradio's bundled
plotly.js, so it works offline and headless).

Panels: reward, policy loss, value loss (PPO), KL, entropy, gradient norm, response length, clip
ratios, validation scores (val-core/*), SFT losses, DAPO dynamic sampling, rollout/training
mismatch, throughput, step-time breakdown, then one panel per other `actor/*` metric (whatever the
actor logs shows up, no list to keep), and any other key picked in "more metrics".

How it draws: each run has one colour, kept whatever else is selected (its position among all runs
by creation); the legend names each run once; a key's raw values are faint under its EMA
(smoothing on by default); a band is drawn only from a logged std (mean +/- std of `x/mean` with
`x/std`, `mean@N` with `std@N`), never from min/max; on the wall-time axis a line stops at a
launch's end and starts again at the resume (a crash gap stays a gap).

Offers:
    CURVE_GROUPS
    ema (from monitor/smoothing.py)                    TensorBoard's debiased EMA, NaN-aware.
    groups_for(columns, extra) -> [(title, keys)]      the panels a set of keys fills.
    make_curves_figure(frames, smoothing, x_axis, config, colours, extra, previews) -> dict
                                                        (plotly JSON: {"data": [...], "layout": {...}})
    read_curve_data(collector, runs, extra) -> ({run: DataFrame}, previews)
    build(demo, collector, config, timer, active) -> dict of components
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import gradio as gr
import numpy as np
import orjson
import pandas as pd
from gradio.components.plot import PlotData

from monitor.metrics_collector import LAUNCH, STEP, WALL, MetricsCollector
from monitor.settings import display_name
from monitor.smoothing import ema

__all__ = ["CURVE_GROUPS", "PALETTE", "ema", "groups_for", "make_curves_figure", "read_curve_data", "build",
           "colour_map", "to_plot"]

# Plotly's Dark24: 24 colours distinct on white, so up to 24 runs never share one.
PALETTE = ["#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86", "#EB663B",
           "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1",
           "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038"]
DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
DASH_NAMES = {"solid": "solid", "dash": "dashed", "dot": "dotted", "dashdot": "dash-dot", "longdash": "long dash",
              "longdashdot": "long dash-dot"}


@dataclass(frozen=True)
class CurveGroup:
    """One panel: exact keys and/or key prefixes. `first_only` plots only the first key present
    (reward: the score, else the reward); `each` makes one panel per matching key (catch-alls)."""

    title: str
    keys: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    first_only: bool = False
    each: bool = False


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
    CurveGroup("SFT loss", ("train/loss", "val/loss")),
    CurveGroup("DAPO dynamic sampling (groups per step)", ("training/filter_groups/evicted_samples",
                                                          "training/filter_groups/discarded_surplus_samples")),
    CurveGroup("Rollout/training mismatch", ("rollout_corr/kl", "rollout_corr/k3_kl", "rollout_corr/ppl_ratio")),
    CurveGroup("Throughput (tokens/s/GPU)", ("perf/throughput",)),
    CurveGroup("Step time breakdown (s)", prefixes=("timing_s/",), exclude=("timing_s/step",)),
    CurveGroup("actor", prefixes=("actor/",), each=True),
)
_MEAN_AT_RE = re.compile(r"^(.*)mean@(\d+)$")


def _band_key(key: str, columns) -> str | None:
    """The logged std that goes with a mean: x/mean -> x/std, x/mean@4 -> x/std@4."""
    if key.endswith("/mean") and key[:-5] + "/std" in columns:
        return key[:-5] + "/std"
    m = _MEAN_AT_RE.match(key)
    if m and f"{m.group(1)}std@{m.group(2)}" in columns:
        return f"{m.group(1)}std@{m.group(2)}"
    return None


def groups_for(columns, extra: list[str] | tuple = ()) -> list[tuple[str, list[str]]]:
    """The panels a set of keys fills, in CURVE_GROUPS order, then one per extra key.

    A std that serves as a band is not drawn as a line of its own; a key shown in a panel is not
    repeated by a catch-all.
    """
    columns = set(columns)
    bands = {b for k in columns if (b := _band_key(k, columns))}
    used: set[str] = set()
    out: list[tuple[str, list[str]]] = []
    for g in CURVE_GROUPS:
        keys = [k for k in g.keys if k in columns]
        keys += sorted(c for c in columns if any(c.startswith(p) for p in g.prefixes)
                       and c not in g.exclude and c not in g.keys)
        keys = [k for k in keys if k not in used and k not in bands]
        if g.first_only:
            keys = keys[:1]
        if not keys:
            continue
        used.update(keys)
        if g.each:
            out.extend((k, [k]) for k in keys)
        else:
            out.append((g.title, keys))
    for key in extra or ():
        if key in columns and key not in used:
            used.add(key)
            out.append((key, [key]))
    return out


def _thin(n: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices, at most max_points, always keeping the last one."""
    if n <= max_points:
        return np.arange(n)
    idx = np.linspace(0, n - 1, num=max_points).round().astype(int)
    return np.unique(idx)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i: i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def colour_map(order: list[str]) -> dict[str, str]:
    """Run name -> colour by its position among all runs (stable under any selection)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(order)}


def _clean(a: np.ndarray) -> np.ndarray:
    """Values for the browser: 5 significant digits as float32 (what a plot and its %{y:.4g} hover
    show; 40% less JSON than float64's 17 digits: 3 runs x 60 traces x 2,000 points is ~3 MB instead
    of ~5 MB), NaN where not finite (to_plot writes it as JSON null, where plotly breaks the line).
    Values past float32's range (3e38) stay float64."""
    a = np.array(a, dtype=np.float64)
    finite = np.isfinite(a)
    a[~finite] = np.nan
    if not finite.any() or np.nanmax(np.abs(a)) >= 1e37 or (len(a) and np.nanmax(np.abs(a)) >= 2**24 and
                                                             np.array_equal(a[finite], np.round(a[finite]))):
        return a  # huge values, or integers float32 cannot hold exactly (steps past 16.7M)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.power(10.0, np.floor(np.log10(np.abs(a))) - 4)
        scale[~np.isfinite(scale) | (scale == 0)] = 1.0
        rounded = np.round(a / scale) * scale
    return rounded.astype(np.float32)


def _with_breaks(x: np.ndarray, ys: list[np.ndarray], launch: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Insert a NaN point wherever the launch changes: the line stops at a crash and restarts."""
    if launch is None or len(x) < 2:
        return x, ys
    cuts = np.flatnonzero(np.diff(launch) != 0) + 1
    if not len(cuts):
        return x, ys
    x = np.insert(x.astype(float), cuts, np.nan)
    return x, [np.insert(y.astype(float), cuts, np.nan) for y in ys]


def make_curves_figure(
    frames: dict[str, pd.DataFrame],
    smoothing: float = 0.8,
    x_axis: str = "step",
    config: dict | None = None,
    colours: dict[str, str] | None = None,
    extra: list[str] | tuple = (),
    previews: set[str] | frozenset = frozenset(),
) -> dict:
    """Build the curves figure.

    Input:  {run: metrics table} (columns: step, _launch, _wall_time, verl keys); EMA smoothing in
            [0, 1); x_axis "step" or "wall time" (hours since the run's first logged step); the
            app config (max_points_per_curve, metric_names); {run: colour} (default: in the order
            given); extra keys to plot in their own panels; runs drawn from a preview.
    Output: plotly JSON ({"data": [...], "layout": {...}}): one panel per group with data in any
            run, two per row; one legend entry per run.
    """
    config = config or {}
    max_points = int(config.get("max_points_per_curve", 2000))
    colours = colours or colour_map(list(frames))
    columns: set[str] = set()
    for df in frames.values():
        columns.update(df.columns)
    groups = groups_for(columns, extra)
    if not groups:
        msg = "No runs selected" if not frames else "No metrics logged yet for the selected runs"
        return {"data": [], "layout": {"height": 300, "template": _TEMPLATE, "xaxis": {"visible": False},
                                       "yaxis": {"visible": False},
                                       "annotations": [{"text": msg, "showarrow": False, "font": {"size": 18},
                                                        "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper"}]}}
    cols = 2
    rows = math.ceil(len(groups) / cols)
    # Room at the top for the legend (one line per ~8 runs) above the first row's panel titles.
    row_px, legend_px, bottom_px = 290, 80 + 22 * ((len(frames) - 1) // 8), 40
    height = legend_px + row_px * rows + bottom_px
    plot_h = height - legend_px - bottom_px
    gap_y = 70 / plot_h  # room for a panel's title and the x tick labels of the panel above
    cell_h = (1 - gap_y * (rows - 1)) / rows
    layout: dict = {
        "height": height, "template": _TEMPLATE, "hovermode": "closest",
        "margin": {"l": 60, "r": 20, "t": legend_px, "b": bottom_px},
        # One entry per run, above the panels (not under 20 of them).
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1 + 40 / plot_h, "yanchor": "bottom",
                   "font": {"size": 13}},
        "showlegend": True,
        "annotations": [],
    }
    panel_axes = []
    for g_i, (title, keys) in enumerate(groups):
        r, c = divmod(g_i, cols)
        n = g_i + 1
        xa, ya = ("xaxis", "yaxis") if n == 1 else (f"xaxis{n}", f"yaxis{n}")
        x0, x1 = (0.0, 0.45) if c == 0 else (0.55, 1.0)
        top = 1 - r * (cell_h + gap_y)
        layout[xa] = {"domain": [x0, x1], "anchor": f"y{'' if n == 1 else n}", "automargin": True,
                      "title": {"text": "hours" if x_axis == "wall time" else "step", "standoff": 2, "font": {"size": 11}}}
        layout[ya] = {"domain": [top - cell_h, top], "anchor": f"x{'' if n == 1 else n}", "automargin": True}
        label = display_name(title, config) if len(keys) == 1 and title == keys[0] else title
        if len(keys) > 1:
            label += "<br><sup>" + " · ".join(f"{DASH_NAMES[DASHES[i % len(DASHES)]]}: {display_name(k, config)}"
                                               for i, k in enumerate(keys)) + "</sup>"
        elif title != keys[0]:
            label += f"<br><sup>{display_name(keys[0], config)}</sup>"
        layout["annotations"].append({"text": label, "showarrow": False, "x": (x0 + x1) / 2, "y": top, "xref": "paper",
                                      "yref": "paper", "xanchor": "center", "yanchor": "bottom", "font": {"size": 13}})
        panel_axes.append((f"x{'' if n == 1 else n}", f"y{'' if n == 1 else n}"))

    traces: list[dict] = []
    for run, df in frames.items():
        if df.empty:
            continue
        color = colours.get(run, PALETTE[0])
        steps = df[STEP].to_numpy(dtype=np.int64)
        launch = df[LAUNCH].to_numpy() if LAUNCH in df else None
        if x_axis == "wall time" and WALL in df and np.isfinite(df[WALL].to_numpy(dtype=float)).any():
            wall = df[WALL].to_numpy(dtype=float)
            x_all = (wall - np.nanmin(wall)) / 3600.0
            breaks = launch
        else:
            x_all, breaks = steps.astype(float), None
        legend_shown = False
        label = run + (" (preview, loading)" if run in previews else "")
        dense_idx = _thin(len(df), max_points)
        for (title, keys), (xref, yref) in zip(groups, panel_axes):
            for k_i, key in enumerate(keys):
                if key not in df:
                    continue
                raw = df[key].to_numpy(dtype=float)
                ok = np.isfinite(raw)
                if not ok.any():
                    continue
                dash = DASHES[k_i % len(DASHES)]
                common = {"xaxis": xref, "yaxis": yref, "legendgroup": run}
                sparse = ok.sum() < 0.5 * len(raw)  # validation: every test_freq steps -> markers
                if sparse:
                    idx = np.flatnonzero(ok)
                    idx = idx[_thin(len(idx), max_points)]
                    x, (y,) = _with_breaks(x_all[idx], [raw[idx]], None if breaks is None else breaks[idx])
                    traces.append({**common, "type": "scatter", "mode": "lines+markers", "x": _clean(x), "y": _clean(y),
                                   "name": label, "showlegend": not legend_shown,
                                   "line": {"color": color, "width": 2, "dash": dash}, "marker": {"size": 5},
                                   "hovertemplate": f"{run} · {key}<br>%{{x}}: %{{y:.4g}}<extra></extra>"})
                    legend_shown = True
                    continue
                idx = dense_idx
                smooth = ema(raw, smoothing, steps if run in previews else None) if smoothing > 0 else raw
                ys = [raw[idx], smooth[idx]]
                band = _band_key(key, df.columns)
                if band is not None:
                    std = df[band].to_numpy(dtype=float)
                    std_s = ema(std, smoothing, steps if run in previews else None) if smoothing > 0 else std
                    ys += [smooth[idx] + std_s[idx], smooth[idx] - std_s[idx]]
                x, ys = _with_breaks(x_all[idx], ys, None if breaks is None else breaks[idx])
                if band is not None:
                    traces.append({**common, "type": "scatter", "mode": "lines", "x": _clean(x), "y": _clean(ys[2]),
                                   "line": {"width": 0, "color": color}, "showlegend": False, "hoverinfo": "skip"})
                    traces.append({**common, "type": "scatter", "mode": "lines", "x": _clean(x), "y": _clean(ys[3]),
                                   "line": {"width": 0, "color": color}, "fill": "tonexty",
                                   "fillcolor": _rgba(color, 0.15), "showlegend": False, "hoverinfo": "skip"})
                if smoothing > 0:
                    traces.append({**common, "type": "scatter", "mode": "lines", "x": _clean(x), "y": _clean(ys[0]),
                                   "opacity": 0.25, "line": {"color": color, "width": 1, "dash": dash},
                                   "showlegend": False, "hoverinfo": "skip"})
                traces.append({**common, "type": "scatter", "mode": "lines", "x": _clean(x), "y": _clean(ys[1]),
                               "name": label, "showlegend": not legend_shown,
                               "line": {"color": color, "width": 2, "dash": dash},
                               "hovertemplate": f"{run} · {key}<br>%{{x}}: %{{y:.4g}}<extra></extra>"})
                legend_shown = True
    return {"data": traces, "layout": layout}


# A light theme close to plotly_white, inlined: the JSON is built without plotly.py's templates.
_TEMPLATE = {"layout": {"paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"color": "#2a3f5f"},
                        "xaxis": {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "linecolor": "#EBF0F8"},
                        "yaxis": {"gridcolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "linecolor": "#EBF0F8"}}}


def to_plot(figure: dict) -> PlotData:
    """Plotly JSON -> what gr.Plot sends to the browser (no plotly.py validation: 100+ traces of
    2,000 points serialise in milliseconds)."""
    return PlotData(type="plotly", plot=orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def read_curve_data(collector: MetricsCollector, runs: list[str], extra: list[str] | tuple = ()
                    ) -> tuple[dict[str, pd.DataFrame], set[str]]:
    """Input: a collector, run names and extra keys. Output: ({run: table with the keys the panels
    need}, runs drawn from a preview while the background loader parses them)."""
    collector.refresh_if_stale()
    columns = collector.columns(runs)
    keys: set[str] = set()
    for _, group_keys in groups_for(columns, extra):
        for key in group_keys:
            keys.add(key)
            if band := _band_key(key, columns):
                keys.add(band)
    frames = collector.frames(runs, sorted(keys))
    return {name: df for name, (df, _) in frames.items()}, {name for name, (_, p) in frames.items() if p}


def default_runs(collector: MetricsCollector, k: int = 3) -> list[str]:
    """The k runs written to most recently (what someone opening the dashboard looks at)."""
    names = collector.discover()

    def last_write(name):
        try:
            return collector.runs[name].last_write_time() or 0.0
        except Exception:  # noqa: BLE001
            return 0.0

    return sorted(names, key=last_write, reverse=True)[:k]


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer, active: gr.State) -> dict:
    names = collector.discover()
    with gr.Tab("Curves", id="curves") as tab:
        with gr.Row():
            runs = gr.Dropdown(choices=names, value=default_runs(collector), multiselect=True,
                               label="runs (several = overlaid)", scale=3)
            smoothing = gr.Slider(0.0, 0.99, value=float(config.get("smoothing", 0.8)), step=0.01,
                                  label="EMA smoothing (raw values faint behind)", scale=1)
            x_axis = gr.Radio(["step", "wall time"], value="step", label="x axis", scale=1)
        extra = gr.Dropdown(choices=[], value=[], multiselect=True, label="more metrics (any logged key, one panel each)")
        status = gr.Markdown(elem_id="curves-status")
        plot = gr.Plot(label="curves", elem_id="curves-plot")
        seen = gr.State({})  # {run: data version} drawn last, to skip redraws when nothing changed

    def draw(selected, smooth, x, more):
        selected = [s for s in selected or [] if isinstance(s, str)]
        frames, previews = read_curve_data(collector, selected, more or [])
        colours = colour_map(collector.run_order())
        figure = make_curves_figure(frames, float(smooth or 0), x, config, colours, more or [], previews)
        versions = {name: repr(collector.get(name).data_version()) for name in frames}
        missing = [s for s in selected if s not in frames]
        notes = []
        if previews:
            notes.append(f"Loading {', '.join(sorted(previews))}: drawn from ~2,000 evenly spaced steps until the "
                         "full parse is done (the plot updates by itself).")
        if missing:
            notes.append(f"Not drawn (see the Runs tab): {', '.join(missing)}.")
        choices = gr.update(choices=[k for k in sorted(collector.columns(selected))])
        return to_plot(figure), versions, " ".join(notes), choices

    def tick(tab_id, selected, smooth, x, more, drawn):
        names = collector.discover()
        run_choices = gr.update(choices=names)
        if tab_id != "curves":
            return run_choices, gr.skip(), drawn, gr.skip(), gr.skip()
        collector.refresh_if_stale()
        versions = {}
        for n in selected or []:
            try:
                versions[n] = repr(collector.get(n).data_version())
            except KeyError:
                continue
        if versions == drawn:
            return run_choices, gr.skip(), drawn, gr.skip(), gr.skip()
        fig, versions, note, choices = draw(selected, smooth, x, more)
        return run_choices, fig, versions, note, choices

    def curves_api(selected: list[str], smooth: float = 0.8, x: str = "step", more: list[str] | None = None) -> dict:
        """The curves figure of the given runs: {"type": "plotly", "plot": plotly JSON text, "note": text}."""
        plot_data, _, note, _ = draw(selected, smooth, x, more or [])
        return {"type": "plotly", "plot": plot_data.plot, "note": note}

    inputs = [runs, smoothing, x_axis, extra]
    gr.on([runs.change, smoothing.release, x_axis.change, extra.change], draw, inputs=inputs,
          outputs=[plot, seen, status, extra], api_name=False)
    # Callable through gradio_client: client.predict(["run-a"], 0.8, "step", [], api_name="/curves").
    with tab:
        gr.api(curves_api, api_name="curves")
    demo.load(draw, inputs=inputs, outputs=[plot, seen, status, extra], api_name=False)
    timer.tick(tick, inputs=[active, *inputs, seen], outputs=[runs, plot, seen, status, extra], api_name=False,
               show_progress="hidden")
    tab.select(lambda: "curves", outputs=[active], api_name=False)
    return {"runs": runs, "plot": plot, "smoothing": smoothing}
