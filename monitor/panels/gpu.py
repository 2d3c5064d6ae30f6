"""GPU tab: utilization, memory and temperature per GPU of this machine (NVML via nvidia-ml-py,
fallback nvidia-smi), and a clear "No GPU visible" state with the reason.

Offers:
    read_gpu_table() -> (DataFrame, status markdown)
    build(demo, collector, config, timer, active) -> dict of components
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from monitor.metrics_collector import GPU_COLUMNS, MetricsCollector, read_gpu_stats

__all__ = ["read_gpu_table", "build"]


def read_gpu_table() -> tuple[pd.DataFrame, str]:
    """Output: (one row per GPU with GPU_COLUMNS, markdown saying the source or why none is visible)."""
    rows, source = read_gpu_stats()
    df = pd.DataFrame(rows, columns=GPU_COLUMNS)
    if not rows:
        return df, f"**{source}.** GPU stats appear here when this machine has an NVIDIA driver."
    used = df["mem_used_mib"].sum() / 1024
    total = df["mem_total_mib"].sum() / 1024
    return df.round(1), f"{len(rows)} GPU(s) via {source}: {used:.1f} / {total:.1f} GiB used."


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer, active: gr.State) -> dict:
    with gr.Tab("GPU", id="gpu") as tab:
        status = gr.Markdown(elem_id="gpu-status")
        table = gr.Dataframe(headers=GPU_COLUMNS, interactive=False, label="GPUs")
        refresh = gr.Button("Refresh", size="sm")

    def handler():
        return read_gpu_table()

    refresh.click(handler, outputs=[table, status], api_name="gpu")

    def tick(tab_id):
        # Poll the driver only while this tab is in front and a run is live (NVML init costs ~50 ms).
        if tab_id == "gpu" and collector.any_running():
            return read_gpu_table()
        return gr.skip(), gr.skip()

    demo.load(handler, outputs=[table, status], api_name=False)
    timer.tick(tick, inputs=[active], outputs=[table, status], api_name=False, show_progress="hidden")
    tab.select(lambda: "gpu", outputs=[active], api_name=False).then(handler, outputs=[table, status], api_name=False)
    return {"table": table, "status": status}
