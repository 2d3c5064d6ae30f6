"""Samples tab: the generations verl dumps per step (trainer.rollout_data_dir ->
<run>/rollout/<step>.jsonl, trainer.validation_data_dir -> <run>/validation/<step>.jsonl):
prompt, response, ground truth, score and the reward's extra keys; text search, score filter,
step slider.

Offers:
    read_samples_view(collector, run, kind, step, search, score_min, score_max)
        -> (DataFrame, summary markdown)
    build(demo, collector, config, timer) -> dict of components
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd

from monitor.metrics_collector import MetricsCollector, read_sample_steps, read_samples

__all__ = ["read_samples_view", "build"]

_FIRST = ["step", "score", "input", "output", "gts"]


def _nearest(steps: list[int], step) -> int | None:
    """The dumped step closest to the slider value (dumps exist every few steps only)."""
    if not steps:
        return None
    if step is None:
        return steps[-1]
    return min(steps, key=lambda s: (abs(s - float(step)), -s))


def read_samples_view(
    collector: MetricsCollector,
    run: str,
    kind: str = "rollout",
    step: float | None = None,
    search: str = "",
    score_min: float | None = None,
    score_max: float | None = None,
) -> tuple[pd.DataFrame, str]:
    """Input: a run name, kind "rollout" | "validation", a step (snapped to the nearest dumped step;
    None = latest), a case-insensitive text searched in prompt, response and ground truth, and an
    inclusive score range (None = open).
    Output: (the matching samples, columns step/score/input/output/gts then extra keys;
    a markdown summary: step shown, matches, mean score, corrupt lines).
    """
    if not run:
        return pd.DataFrame(columns=_FIRST), "Pick a run."
    try:
        run_dir = collector.get(run).run_dir
    except KeyError as exc:
        return pd.DataFrame(columns=_FIRST), f"**{exc.args[0]}**"
    steps = read_sample_steps(run_dir, kind)
    chosen = _nearest(steps, step)
    if chosen is None:
        option = "trainer.rollout_data_dir" if kind == "rollout" else "trainer.validation_data_dir"
        return (pd.DataFrame(columns=_FIRST),
                f"No {kind} dumps in `{run_dir / kind}`: set `{option}={run_dir / kind}` when launching.")
    df, corrupt = read_samples(run_dir, kind, chosen)
    total = len(df)
    scores = pd.to_numeric(df["score"], errors="coerce")
    mask = np.ones(total, dtype=bool)
    if score_min is not None:
        mask &= (scores >= float(score_min)).to_numpy()
    if score_max is not None:
        mask &= (scores <= float(score_max)).to_numpy()
    if search:
        needle = search.lower()
        text = df["input"].astype(str) + "\n" + df["output"].astype(str) + "\n" + df["gts"].astype(str)
        mask &= text.str.lower().str.contains(needle, regex=False).to_numpy()
    out = df[mask]
    out = out[[c for c in _FIRST if c in out] + [c for c in out.columns if c not in _FIRST]]
    mean = pd.to_numeric(out["score"], errors="coerce").mean()
    summary = (f"Step **{chosen}** ({kind}; dumps at steps {steps[0]}-{steps[-1]}, {len(steps)} in all): "
               f"**{len(out)}** of {total} samples match, mean score "
               f"{'-' if np.isnan(mean) else f'{mean:.4g}'}.")
    if corrupt:
        summary += f" {corrupt} corrupt line(s) skipped."
    return out.reset_index(drop=True), summary


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer) -> dict:
    with gr.Tab("Samples", id="samples") as tab:
        names = collector.discover()
        with gr.Row():
            run = gr.Dropdown(choices=names, value=names[0] if names else None, label="run", scale=2)
            kind = gr.Radio(["rollout", "validation"], value="rollout", label="dump", scale=1)
            first = read_sample_steps(collector.get(names[0]).run_dir, "rollout") if names else []
            step = gr.Slider(first[0] if first else 0, max(first[-1], first[0] + 1) if first else 1,
                             value=first[-1] if first else 0, step=1, label="step (snaps to the nearest dump)", scale=2)
        with gr.Row():
            search = gr.Textbox(label="search prompt / response / ground truth", scale=3)
            # Text boxes, not gr.Number: an empty box means "no bound" (a Number box shows and sends 0).
            score_min = gr.Textbox(label="score >=", placeholder="any", scale=1)
            score_max = gr.Textbox(label="score <=", placeholder="any", scale=1)
        summary = gr.Markdown()
        table = gr.Dataframe(interactive=False, wrap=True, label="samples", max_height=700)

    def steps_for(run_name, kind_name):
        try:
            steps = read_sample_steps(collector.get(run_name).run_dir, kind_name) if run_name else []
        except KeyError:
            steps = []
        if not steps:
            return gr.update(minimum=0, maximum=1, value=0)
        return gr.update(minimum=steps[0], maximum=max(steps[-1], steps[0] + 1), value=steps[-1])

    def view(run_name, kind_name, step_value, text, lo, hi):
        try:
            bounds = [float(b) if b not in (None, "") and str(b).strip() else None for b in (lo, hi)]
        except ValueError:
            return pd.DataFrame(columns=_FIRST), f"**score bounds must be numbers or empty, got {lo!r} and {hi!r}**"
        return read_samples_view(collector, run_name, kind_name, step_value, text or "", *bounds)

    inputs = [run, kind, step, search, score_min, score_max]
    gr.on([run.change, kind.change], steps_for, inputs=[run, kind], outputs=[step], api_name="sample_steps").then(
        view, inputs=inputs, outputs=[table, summary], api_name=False
    )
    gr.on([step.release, search.submit, score_min.submit, score_max.submit], view, inputs=inputs,
          outputs=[table, summary], api_name=False)

    def samples_api(run: str, kind: str = "rollout", step: int | None = None, search: str = "",
                    score_min: float | None = None, score_max: float | None = None) -> dict:
        """Samples of one dump: {"summary": markdown, "rows": [{column: value}, ...]}."""
        df, text = read_samples_view(collector, run, kind, step, search, score_min, score_max)
        return {"summary": text, "rows": df.to_dict(orient="records")}

    # The slider's range is per session, so the API takes the step as a plain number.
    with tab:
        gr.api(samples_api, api_name="samples")
    demo.load(steps_for, inputs=[run, kind], outputs=[step], api_name=False).then(
        view, inputs=inputs, outputs=[table, summary], api_name=False)
    timer.tick(lambda: gr.update(choices=collector.discover()), outputs=[run], api_name=False, show_progress="hidden")
    return {"run": run, "table": table, "summary": summary}
