"""Runs tab: every run under --log_dir with method, status, step / total, last reward,
elapsed time and ETA, plus the problems met while reading it (corrupt lines, refused symlinks).

Offers:
    RUN_COLUMNS
    read_runs_table(collector) -> (DataFrame, problems markdown)
    build(demo, collector, config, timer) -> dict of components
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from monitor.metrics_collector import MetricsCollector, format_duration

__all__ = ["RUN_COLUMNS", "read_runs_table", "build"]

RUN_COLUMNS = ["run", "method", "status", "step", "last reward", "elapsed", "ETA", "corrupt lines", "detail"]


def read_runs_table(collector: MetricsCollector) -> tuple[pd.DataFrame, str]:
    """Input: a collector. Output: (one row per run with RUN_COLUMNS, markdown of problems)."""
    collector.refresh()
    rows, problems = [], list(collector.refused)
    for s in collector.statuses():
        step = "-" if s.step is None else (f"{s.step} / {s.total_steps}" if s.total_steps else str(s.step))
        rows.append(
            {
                "run": s.name,
                "method": s.method,
                "status": s.status,
                "step": step,
                "last reward": "-" if s.last_reward is None else f"{s.last_reward:.4g}",
                "elapsed": format_duration(s.elapsed_s),
                "ETA": format_duration(s.eta_s),
                "corrupt lines": s.corrupt_lines,
                "detail": s.detail,
            }
        )
        problems += [f"**{s.name}**: {p}" for p in s.problems]
    if not rows:
        problems.insert(0, f"No runs under `{collector.root}` yet (a run is a folder with metrics/*.jsonl, *.jsonl, *.log or run.json).")
    text = "\n".join(f"- {p}" for p in problems) if problems else "No problems found while reading the logs."
    return pd.DataFrame(rows, columns=RUN_COLUMNS), text


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer) -> dict:
    with gr.Tab("Runs", id="runs"):
        gr.Markdown(f"Runs under `{collector.root}`; refreshed every {config['refresh_seconds']:g} s.")
        table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True, label="runs")
        problems = gr.Markdown()
        refresh = gr.Button("Refresh", size="sm")

    def handler():
        return read_runs_table(collector)

    refresh.click(handler, outputs=[table, problems], api_name="runs")
    demo.load(handler, outputs=[table, problems], api_name=False)
    timer.tick(handler, outputs=[table, problems], api_name=False, show_progress="hidden")
    return {"table": table, "problems": problems, "refresh": refresh}
