"""Alerts tab: the health rules of monitor/alerts.py on each run's metrics, with what each alert
means and what to try; and the reward guard's failures (reward_errors.jsonl): how many, the
distinct errors, and the steps where they passed the share threshold.

Offers:
    ALERT_COLUMNS, ERROR_COLUMNS
    step_intervals(df) -> (starts, ends)      each logged step's wall-time interval
    run_alerts(collector, name, thresholds) -> list[Alert] | None   (None: still loading; newest 200)
    run_alert_count(collector, name) -> int   how many there were
    read_alerts_table(collector, runs, thresholds) -> (alerts DataFrame, summary markdown, errors DataFrame)
    build(demo, collector, config, timer, active) -> dict of components

Alerts are computed on the full table (not a preview) and cached per run until its files change.
"""

from __future__ import annotations

from datetime import datetime, timezone

import gradio as gr
import numpy as np
import pandas as pd

from monitor.alerts import Alert, alert_keys, check_alerts, reward_error_alerts
from monitor.metrics_collector import LAUNCH, WALL, MetricsCollector, read_run_config
from common.redaction import redact_for_display as redact

__all__ = ["ALERT_COLUMNS", "ERROR_COLUMNS", "step_intervals", "run_alerts", "run_alert_count", "read_alerts_table",
           "build"]

ALERT_COLUMNS = ["run", "severity", "alert", "step", "last step", "message", "what to try"]
ERROR_COLUMNS = ["run", "kind", "count", "first seen (UTC)", "last seen (UTC)", "data source", "error", "excerpt"]
# Rows shown in the alerts table (newest first), and alerts kept per run: a noisy 50,000-step run
# can have tens of thousands of episodes (~1 KB each); the count says how many there were.
MAX_ROWS = 500
MAX_PER_RUN = 200


def step_intervals(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Input: a metrics table with _wall_time (and _launch, timing_s/step when logged).
    Output: (start, end) unix seconds per row: a step ends at its wall time and starts
    timing_s/step earlier (else at the previous step of the same launch)."""
    if WALL not in df or df.empty:
        return np.zeros(0), np.zeros(0)
    ends = df[WALL].to_numpy(dtype=float)
    starts = np.r_[np.nan, ends[:-1]]
    if LAUNCH in df:
        launch = df[LAUNCH].to_numpy()
        starts[np.r_[True, launch[1:] != launch[:-1]]] = np.nan
    if "timing_s/step" in df:
        secs = df["timing_s/step"].to_numpy(dtype=float)
        ok = np.isfinite(secs) & (secs >= 0)
        starts = np.where(ok, ends - np.where(ok, secs, 0.0), starts)
    gaps = np.diff(ends)
    typical = float(np.nanmedian(gaps)) if np.isfinite(gaps).any() else 0.0
    starts = np.where(np.isfinite(starts), starts, ends - typical)
    return starts, ends


def run_alerts(collector: MetricsCollector, name: str, thresholds: dict) -> list[Alert] | None:
    """The alerts of one run (metrics rules + reward errors), the newest MAX_PER_RUN (the total is
    run_alert_count()); None while its table is loading."""
    run = collector.get(name)
    errors = run.reward_errors
    if errors is not None:
        errors.refresh()
    key = (repr(run.data_version()), errors.count if errors is not None else 0, tuple(sorted(thresholds.items())))
    cached = getattr(run, "_alerts_cache", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    columns = run.columns()
    frames = collector.frames([name], alert_keys(columns) + ["timing_s/step"])
    if name not in frames:
        raise RuntimeError(run.load_error or "the run's metrics could not be read")
    df, preview = frames[name]
    if preview:
        return None
    config = read_run_config(run.run_dir) if run.only_file is None else {}
    alerts = check_alerts(df, thresholds, config)
    if errors is not None and errors.count:
        batch = (config["train_batch_size"] * config["rollout_n"]
                 if "train_batch_size" in config and "rollout_n" in config else None)
        starts, ends = step_intervals(df)
        alerts += reward_error_alerts(errors.times, errors.timeout_times, df["step"].to_numpy(), starts, ends,
                                      batch, thresholds)
    alerts.sort(key=lambda a: a.step, reverse=True)
    run._alerts_cache = (key, alerts[:MAX_PER_RUN], len(alerts))
    return alerts[:MAX_PER_RUN]


def run_alert_count(collector: MetricsCollector, name: str) -> int:
    """How many alerts run_alerts found for the run (before keeping the newest MAX_PER_RUN)."""
    cached = getattr(collector.get(name), "_alerts_cache", None)
    return cached[2] if cached else 0


def _utc(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def read_alerts_table(collector: MetricsCollector, runs: list[str] | None,
                      thresholds: dict) -> tuple[pd.DataFrame, str, pd.DataFrame]:
    """Input: a collector, run names (None or [] = every run), alert thresholds.
    Output: (one row per alert, newest first; a markdown summary (counts per severity, runs still
    loading, runs that could not be read); one row per distinct reward error)."""
    collector.refresh_if_stale()
    names = [n for n in (runs or collector.discover()) if isinstance(n, str)]
    rows, loading, broken, errors, total = [], [], [], [], 0
    for name in names:
        try:
            found = run_alerts(collector, name, thresholds)
        except KeyError:
            continue
        except Exception as exc:  # noqa: BLE001 - one bad run must not take the others down
            broken.append(f"{name} ({type(exc).__name__}: {redact(str(exc))[:120]})")
            continue
        if found is None:
            loading.append(name)
            continue
        total += run_alert_count(collector, name)
        for a in found:
            rows.append({"run": name, "severity": a.severity, "alert": a.name, "step": a.step,
                         "last step": a.last_step, "message": a.message, "what to try": a.advice})
        log = collector.runs[name].reward_errors if name in collector.runs else None
        for e in log.distinct() if log is not None else []:
            errors.append({"run": name, "kind": e.kind, "count": e.count, "first seen (UTC)": _utc(e.first_time),
                           "last seen (UTC)": _utc(e.last_time), "data source": e.data_source, "error": e.error[:300],
                           "excerpt": e.excerpt[:200]})
    table = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    notes = []
    if loading:
        notes.append(f"Reading {len(loading)} run(s) in the background ({', '.join(loading[:5])}): their alerts appear "
                     "when done.")
    if broken:
        notes.append("Could not check: " + "; ".join(broken) + ".")
    error_table = pd.DataFrame(errors, columns=ERROR_COLUMNS)
    if len(error_table):
        notes.append(f"{int(error_table['count'].sum())} failed reward call(s), {len(error_table)} distinct error(s) "
                     "(table below).")
    if table.empty:
        return table, " ".join([f"No alerts for {len(names) - len(loading) - len(broken)} run(s).", *notes]), error_table
    table = table.sort_values(["step"], ascending=False, kind="stable").reset_index(drop=True)
    counts = table["severity"].value_counts()
    parts = [f"{counts[s]} {s}" for s in ("critical", "warning", "info") if s in counts]
    summary = f"{total} alert(s) in {table['run'].nunique()} run(s): " + ", ".join(parts) + "."
    if total > min(len(table), MAX_ROWS):
        summary = summary[:-1] + f" among the newest {min(len(table), MAX_ROWS)} shown."
        table = table.head(MAX_ROWS)
    return table, " ".join([summary, *notes]), error_table


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer, active: gr.State) -> dict:
    with gr.Tab("Alerts", id="alerts") as tab:
        names = collector.discover()
        runs = gr.Dropdown(choices=names, value=[], multiselect=True, label="runs (empty = all)")
        summary = gr.Markdown(elem_id="alerts-summary")
        # Narrow id columns, the two explanations share the rest (wrapped, not cut off).
        table = gr.Dataframe(headers=ALERT_COLUMNS, interactive=False, wrap=True, label="alerts", elem_id="alerts-table",
                             column_widths=["12%", "8%", "12%", "6%", "6%", "28%", "28%"])
        errors = gr.Dataframe(headers=ERROR_COLUMNS, interactive=False, wrap=True, elem_id="reward-errors-table",
                              label="reward errors (reward_errors.jsonl): distinct failures",
                              column_widths=["12%", "8%", "6%", "11%", "11%", "10%", "24%", "18%"])

    def handler(selected):
        return read_alerts_table(collector, selected, config["alerts"])

    def tick(tab_id, selected):
        names = collector.discover()
        if tab_id != "alerts":
            # Alerts need every run's full table: computed only while the tab is in front.
            return gr.update(choices=names), gr.skip(), gr.skip(), gr.skip()
        return gr.update(choices=names), *handler(selected)

    def if_active(tab_id, selected):
        return handler(selected) if tab_id == "alerts" else (gr.skip(), gr.skip(), gr.skip())

    runs.change(handler, inputs=[runs], outputs=[table, summary, errors], api_name="alerts")
    tab.select(lambda: "alerts", outputs=[active], api_name=False).then(
        handler, inputs=[runs], outputs=[table, summary, errors], api_name=False)
    timer.tick(tick, inputs=[active, runs], outputs=[runs, table, summary, errors], api_name=False,
               show_progress="hidden")
    # The app calls this after opening a deep link (?tab=alerts).
    return {"runs": runs, "table": table, "errors": errors,
            "on_open": (if_active, [active, runs], [table, summary, errors])}
