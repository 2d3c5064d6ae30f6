"""Alerts tab: the health rules of monitor/alerts.py run on each run's metrics, with what each
alert means and what to try.

Offers:
    ALERT_COLUMNS
    read_alerts_table(collector, runs, thresholds) -> (DataFrame, summary markdown)
    build(demo, collector, config, timer) -> dict of components
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from monitor.alerts import check_alerts
from monitor.metrics_collector import MetricsCollector

__all__ = ["ALERT_COLUMNS", "read_alerts_table", "build"]

ALERT_COLUMNS = ["run", "severity", "alert", "step", "last step", "message", "what to try"]


def read_alerts_table(collector: MetricsCollector, runs: list[str] | None, thresholds: dict) -> tuple[pd.DataFrame, str]:
    """Input: a collector, run names (None or [] = every run), alert thresholds.
    Output: (one row per alert, newest first; a markdown count per severity)."""
    collector.refresh()
    names = runs or collector.discover()
    rows = []
    for name in names:
        try:
            df = collector.metrics(name)
        except KeyError:
            continue
        for a in check_alerts(df, thresholds):
            rows.append({"run": name, "severity": a.severity, "alert": a.name, "step": a.step,
                         "last step": a.last_step, "message": a.message, "what to try": a.advice})
    table = pd.DataFrame(rows, columns=ALERT_COLUMNS)
    if table.empty:
        return table, f"No alerts for {len(names)} run(s)."
    table = table.sort_values(["step"], ascending=False, kind="stable").reset_index(drop=True)
    counts = table["severity"].value_counts()
    parts = [f"{counts[s]} {s}" for s in ("critical", "warning", "info") if s in counts]
    return table, f"{len(table)} alert(s) in {table['run'].nunique()} run(s): " + ", ".join(parts) + "."


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer) -> dict:
    with gr.Tab("Alerts", id="alerts"):
        names = collector.discover()
        runs = gr.Dropdown(choices=names, value=[], multiselect=True, label="runs (empty = all)")
        summary = gr.Markdown()
        # Narrow id columns, the two explanations share the rest (wrapped, not cut off).
        table = gr.Dataframe(headers=ALERT_COLUMNS, interactive=False, wrap=True, label="alerts",
                             column_widths=["9%", "8%", "10%", "6%", "6%", "30%", "31%"])

    def handler(selected):
        return read_alerts_table(collector, selected, config["alerts"])

    runs.change(handler, inputs=[runs], outputs=[table, summary], api_name="alerts")
    demo.load(handler, inputs=[runs], outputs=[table, summary], api_name=False)

    def tick(selected):
        return gr.update(choices=collector.discover()), *handler(selected)

    timer.tick(tick, inputs=[runs], outputs=[runs, table, summary], api_name=False, show_progress="hidden")
    return {"runs": runs, "table": table}
