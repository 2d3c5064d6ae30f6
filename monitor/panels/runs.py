"""Runs tab: every run under --log_dir with method, status, step / total, its last reward (RL) or
loss (SFT), failed reward calls, elapsed time and ETA; below, each run's problems: the last error
lines of a failed run's train.log, corrupt lines, refused symlinks, distinct reward errors.

Offers:
    RUN_COLUMNS
    read_runs_table(collector) -> (DataFrame, problems markdown)
    build(demo, collector, config, timer) -> dict of components

Reads only each run's tail (run.json, the last 256 KB of its newest metrics file and train.log),
so the table is ready in well under a second however long the runs are.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from monitor.metrics_collector import MetricsCollector, RunStatus, format_duration

__all__ = ["RUN_COLUMNS", "read_runs_table", "build", "value_text"]

RUN_COLUMNS = ["run", "method", "status", "step", "reward / loss", "reward errors", "elapsed", "ETA",
               "corrupt lines", "detail"]


def value_text(s: RunStatus) -> str:
    """RL: the last reward; SFT: 'loss 0.532 (val 0.611)'."""
    if s.method == "sft" or (s.last_reward is None and s.last_loss is not None):
        if s.last_loss is None:
            return "-"
        text = f"loss {s.last_loss:.4g}"
        return text + (f" (val {s.last_val_loss:.4g})" if s.last_val_loss is not None else "")
    return "-" if s.last_reward is None else f"{s.last_reward:.4g}"


def _code_block(lines: list[str]) -> str:
    body = "\n".join(line.replace("```", "'''") for line in lines)
    return f"\n\n  ```text\n{body}\n  ```\n"


def read_runs_table(collector: MetricsCollector) -> tuple[pd.DataFrame, str]:
    """Input: a collector. Output: (one row per run with RUN_COLUMNS, markdown of problems)."""
    collector.refresh_if_stale()
    rows, problems = [], list(collector.refused)
    for s in collector.statuses():
        step = "-" if s.step is None else (f"{s.step} / {s.total_steps}" if s.total_steps else str(s.step))
        rows.append(
            {
                "run": s.name,
                "method": s.method,
                "status": s.status,
                "step": step,
                "reward / loss": value_text(s),
                "reward errors": s.reward_errors,
                "elapsed": format_duration(s.elapsed_s),
                "ETA": format_duration(s.eta_s),
                "corrupt lines": "-" if s.corrupt_lines is None else s.corrupt_lines,
                "detail": s.detail,
            }
        )
        name = s.name.replace("`", "'")
        problems += [f"**{name}**: {p}" for p in s.problems]
        if s.error_lines:
            problems.append(f"**{name}** ({s.status}): last error lines of its console log" + _code_block(s.error_lines))
        if s.reward_errors:
            run = collector.runs.get(s.name)
            distinct = run.reward_errors.distinct()[:3] if run is not None and run.reward_errors else []
            kinds = ", ".join(f"{e.count} x {e.kind}: {e.error[:120]}" for e in distinct)
            problems.append(f"**{name}**: {s.reward_errors} failed reward call(s) in reward_errors.jsonl"
                            + (f"; most frequent: {kinds}" if kinds else "") + " (details on the Alerts tab)")
    if not rows:
        problems.insert(0, f"No runs under `{collector.root}` yet (a run is a folder with metrics/*.jsonl, *.log or "
                           "run.json, or verl's own <project>/<experiment>.jsonl).")
    text = "\n".join(f"- {p}" for p in problems) if problems else "No problems found while reading the logs."
    return pd.DataFrame(rows, columns=RUN_COLUMNS), text


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer, active: gr.State) -> dict:
    with gr.Tab("Runs", id="runs") as tab:
        gr.Markdown(f"Runs under `{collector.root}`; refreshed every {config['refresh_seconds']:g} s.")
        # Narrow id columns; the detail (exit code, last error line) takes the rest and wraps.
        table = gr.Dataframe(headers=RUN_COLUMNS, interactive=False, wrap=True, label="runs", elem_id="runs-table",
                             column_widths=["13%", "6%", "7%", "7%", "9%", "7%", "7%", "6%", "7%", "31%"])
        problems = gr.Markdown(elem_id="runs-problems")
        refresh = gr.Button("Refresh", size="sm")

    def handler():
        return read_runs_table(collector)

    def tick(tab_id):
        # The runs table is cheap (tails only), but skip it while another tab is in front.
        return handler() if tab_id in (None, "runs") else (gr.skip(), gr.skip())

    refresh.click(handler, outputs=[table, problems], api_name="runs")
    demo.load(handler, outputs=[table, problems], api_name=False)
    timer.tick(tick, inputs=[active], outputs=[table, problems], api_name=False, show_progress="hidden")
    tab.select(lambda: "runs", outputs=[active], api_name=False)
    return {"table": table, "problems": problems, "refresh": refresh}
