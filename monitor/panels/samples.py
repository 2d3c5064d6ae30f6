"""Samples tab: the generations verl dumps per step (trainer.rollout_data_dir ->
<run>/rollout/<step>.jsonl, trainer.validation_data_dir -> <run>/validation/<step>.jsonl),
shown as groups: one prompt, its ground truth, then its n responses with their scores and the
reward's extra keys. Responses keep their line breaks and wrap (no sideways scrolling); each one
folds open and shut. Text search, score range, "mixed / uniform groups", sorting, pages.

Offers:
    SampleGroup, group_samples(df) -> [SampleGroup]   rollout dumps group by verl's uid
                                     ("<prompt uid>_<rollout>_<output>"), others by prompt text.
    filter_groups(groups, search, score_min, score_max, which) -> [SampleGroup]
    render_groups_html(groups, extras) -> str          escaped, redacted HTML (no script, no sideways scroll)
    read_samples_view(collector, run, kind, step, search, score_min, score_max, which, sort, page)
        -> SamplesView (html, summary markdown, matching rows, page count)
    build(demo, collector, config, timer, active) -> dict of components
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import gradio as gr
import numpy as np
import pandas as pd

from monitor.metrics_collector import MetricsCollector, read_sample_steps, read_samples
from common.redaction import redact_for_display as redact

__all__ = ["SampleGroup", "SamplesView", "group_samples", "filter_groups", "render_groups_html", "read_samples_view",
           "build", "GROUPS_PER_PAGE", "WHICH", "SORTS"]

_BASE = ("input", "output", "gts", "score", "step", "uid")
GROUPS_PER_PAGE = 8
WHICH = ("all groups", "mixed scores (learning signal)", "uniform scores (no signal)")
SORTS = ("dump order", "mean score, low first", "mean score, high first")
# Characters of one response rendered (a 32k-token response is ~130k characters; the rest is cut).
MAX_TEXT = 20_000


@dataclass
class SampleGroup:
    """One prompt and its responses (rows of the dump, in dump order)."""

    key: str
    prompt: str
    ground_truth: str
    rows: pd.DataFrame
    index: int = 0

    @property
    def scores(self) -> np.ndarray:
        return pd.to_numeric(self.rows["score"], errors="coerce").to_numpy(dtype=float)

    @property
    def mean_score(self) -> float:
        s = self.scores
        return float(np.nanmean(s)) if np.isfinite(s).any() else math.nan


def _group_key(uid) -> str | None:
    """verl's rollout dump uid "<prompt uid>_<rollout>_<output>" -> the prompt uid."""
    if not isinstance(uid, str) or not uid:
        return None
    parts = uid.rsplit("_", 2)
    return parts[0] if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else uid


def group_samples(df: pd.DataFrame) -> list[SampleGroup]:
    """Input: a dump table (read_samples). Output: groups in dump order (a uid that carries no
    group, or no uid at all, groups by identical prompt text)."""
    if df.empty:
        return []
    keys = df["uid"].map(_group_key) if "uid" in df else pd.Series([None] * len(df), index=df.index)
    keys = keys.where(keys.notna(), "prompt:" + df["input"].astype(str))
    groups = []
    for i, (key, rows) in enumerate(df.groupby(keys, sort=False)):
        first = rows.iloc[0]
        groups.append(SampleGroup(str(key), str(first.get("input") if first.get("input") is not None else ""),
                                  "" if first.get("gts") is None else str(first.get("gts")), rows, i))
    return groups


def filter_groups(groups: list[SampleGroup], search: str = "", score_min: float | None = None,
                  score_max: float | None = None, which: str = WHICH[0]) -> list[SampleGroup]:
    """Keep responses in the score range whose text (or their prompt / ground truth) contains
    `search` (case-insensitive); drop groups left empty; `which` keeps mixed or uniform groups."""
    out = []
    needle = (search or "").lower()
    for g in groups:
        scores = g.scores
        if which == WHICH[1] and not (np.nanmax(scores) > np.nanmin(scores) if np.isfinite(scores).any() else False):
            continue
        if which == WHICH[2] and (np.isfinite(scores).any() and np.nanmax(scores) > np.nanmin(scores)):
            continue
        mask = np.ones(len(g.rows), dtype=bool)
        if score_min is not None:
            mask &= scores >= float(score_min)
        if score_max is not None:
            mask &= scores <= float(score_max)
        if needle and needle not in (g.prompt + "\n" + g.ground_truth).lower():
            mask &= g.rows["output"].astype(str).str.lower().str.contains(needle, regex=False).to_numpy()
        if mask.any():
            out.append(SampleGroup(g.key, g.prompt, g.ground_truth, g.rows[mask], g.index))
    return out


_CSS = """
<style>
.sv-group{border:1px solid #d0d7de;border-radius:8px;margin:0 0 14px 0;padding:10px 12px;background:#fff;color:#1f2328}
.sv-head{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:baseline;font-size:14px;margin-bottom:6px}
.sv-head b{white-space:nowrap}
.sv-label{font-size:12px;color:#59636e;text-transform:uppercase;letter-spacing:.04em;margin:8px 0 2px 0}
.sv-text{white-space:pre-wrap;overflow-wrap:anywhere;word-break:normal;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
 font-size:13px;line-height:1.45;background:#f6f8fa;border-radius:6px;padding:8px 10px;max-height:28em;overflow-y:auto;overflow-x:hidden}
.sv-prompt .sv-text{max-height:12em}
.sv-gt{white-space:pre-wrap;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:13px;background:#fff8c5;
 border-radius:6px;padding:4px 8px;display:inline-block;max-width:100%}
.sv-resp{border-left:4px solid #d0d7de;margin:6px 0 6px 0;padding-left:8px}
.sv-resp.good{border-left-color:#1a7f37}.sv-resp.bad{border-left-color:#cf222e}.sv-resp.mid{border-left-color:#bf8700}
.sv-resp summary{cursor:pointer;font-size:13px;display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline}
.sv-score{font-weight:700;white-space:nowrap;min-width:4.5em}
.sv-chip{font-size:12px;background:#eef1f4;border-radius:10px;padding:0 7px;white-space:nowrap;max-width:30em;overflow:hidden;text-overflow:ellipsis}
.sv-first{color:#59636e;font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:60em}
</style>
"""


def _esc(text, limit: int = MAX_TEXT) -> str:
    text = "" if text is None else str(text)
    total = len(text)
    # Redact what is shown plus a margin (a secret across the cut is whole in it), not all of a
    # 5 MB response: the redaction's regexes take ~0.4 s per MB.
    text = redact(text[: limit + _REDACT_MARGIN])
    if total > limit:
        text = text[:limit] + f"\n... ({total - limit} more characters)"
    return html.escape(text)


_REDACT_MARGIN = 4096


def _redact_value(v):
    """A row value on its way out of the API: text redacted (numbers, None as they are)."""
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, (dict, list, tuple)):
        return redact(str(v))
    return v


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_groups_html(groups: list[SampleGroup], extras: list[str]) -> str:
    """Groups -> HTML: a header (prompt number, responses, mean score), the prompt, the ground
    truth, then one foldable block per response (score, reward extras, full text with its line
    breaks). Every text is redacted and escaped."""
    if not groups:
        return _CSS + '<div class="sv-group">No samples match.</div>'
    parts = [_CSS]
    for g in groups:
        scores = g.scores
        mean = g.mean_score
        head = (f'<div class="sv-head"><b>prompt #{g.index + 1}</b><span>{len(g.rows)} response(s)</span>'
                f'<span>mean score <b>{"-" if math.isnan(mean) else f"{mean:.3g}"}</b></span>'
                + (f'<span>scores {" ".join(_fmt_value(s) for s in scores[:32])}</span>' if len(scores) > 1 else "")
                + "</div>")
        body = [f'<div class="sv-group">{head}',
                f'<div class="sv-prompt"><div class="sv-label">prompt</div><div class="sv-text">{_esc(g.prompt)}</div></div>',
                f'<div class="sv-label">ground truth</div><div class="sv-gt">{_esc(g.ground_truth, 2000) or "-"}</div>',
                '<div class="sv-label">responses</div>']
        for j, (_, row) in enumerate(g.rows.iterrows()):
            score = pd.to_numeric(pd.Series([row.get("score")]), errors="coerce").iloc[0]
            tone = "" if pd.isna(score) else ("good" if score > 0.5 else "bad" if score <= 0 else "mid")
            chips = "".join(
                f'<span class="sv-chip">{html.escape(k)}={_esc(_fmt_value(row.get(k)), 80)}</span>'
                for k in extras if k in row and row.get(k) is not None and not (isinstance(row.get(k), float) and math.isnan(row.get(k))))
            text = "" if row.get("output") is None else str(row.get("output"))
            first = text.strip().splitlines()[0][:120] if text.strip() else "(empty response)"
            body.append(
                f'<details class="sv-resp {tone}" {"open" if j < 2 else ""}><summary>'
                f'<span class="sv-score">score {"-" if pd.isna(score) else f"{score:.4g}"}</span>{chips}'
                f'<span class="sv-first">{_esc(first, 200)}</span><span class="sv-chip">{len(text)} chars</span></summary>'
                f'<div class="sv-text">{_esc(text)}</div></details>')
        body.append("</div>")
        parts.append("".join(body))
    return "".join(parts)


def _nearest(steps: list[int], step) -> int | None:
    """The dumped step closest to the slider value (dumps exist every few steps only)."""
    if not steps:
        return None
    try:
        value = float(step)
    except (TypeError, ValueError):
        return steps[-1]
    if not math.isfinite(value):
        return steps[-1]
    return min(steps, key=lambda s: (abs(s - value), -s))


@dataclass
class SamplesView:
    html: str
    summary: str
    rows: pd.DataFrame = field(default_factory=pd.DataFrame)
    pages: int = 1
    groups: int = 0


def read_samples_view(
    collector: MetricsCollector,
    run: str,
    kind: str = "rollout",
    step: float | None = None,
    search: str = "",
    score_min: float | None = None,
    score_max: float | None = None,
    which: str = WHICH[0],
    sort: str = SORTS[0],
    page: int = 1,
) -> SamplesView:
    """Input: a run name, kind "rollout" | "validation", a step (snapped to the nearest dumped step;
    None = latest), a case-insensitive text searched in prompt, response and ground truth, an
    inclusive score range (None = open), which groups (WHICH), an order (SORTS), a 1-based page.
    Output: SamplesView: the page's HTML, a markdown summary (step, groups and responses matching,
    mean score, corrupt lines), the matching rows (all pages), the page count.
    """
    empty = SamplesView(render_groups_html([], []), "Pick a run.")
    if not run:
        return empty
    try:
        run_state = collector.get(run)
    except KeyError as exc:
        return SamplesView(empty.html, f"**{exc.args[0]}**")
    if run_state.only_file is not None:
        return SamplesView(empty.html, f"`{run}` is a file of verl's own logger layout: generation dumps are read "
                                       "from a launcher run folder (<run>/rollout/, <run>/validation/).")
    run_dir = run_state.run_dir
    steps = read_sample_steps(run_dir, kind)
    chosen = _nearest(steps, step)
    if chosen is None:
        option = "trainer.rollout_data_dir" if kind == "rollout" else "trainer.validation_data_dir"
        return SamplesView(empty.html, f"No {kind} dumps in `{run_dir / kind}`: set `{option}={run_dir / kind}` "
                                       "when launching.")
    try:
        df, corrupt = read_samples(run_dir, kind, chosen)
    except (OSError, ValueError) as exc:
        return SamplesView(empty.html, f"**{kind}/{chosen}.jsonl could not be read: {redact(str(exc))[:200]}**")
    groups = group_samples(df)
    shown = filter_groups(groups, search, score_min, score_max, which)
    if sort == SORTS[1]:
        shown.sort(key=lambda g: (np.nan_to_num(g.mean_score, nan=np.inf), g.index))
    elif sort == SORTS[2]:
        shown.sort(key=lambda g: (-np.nan_to_num(g.mean_score, nan=-np.inf), g.index))
    pages = max(1, math.ceil(len(shown) / GROUPS_PER_PAGE))
    page = min(max(1, int(page or 1)), pages)
    extras = [c for c in df.columns if c not in _BASE]
    page_groups = shown[(page - 1) * GROUPS_PER_PAGE: page * GROUPS_PER_PAGE]
    rows = pd.concat([g.rows for g in shown]) if shown else df.iloc[0:0]
    scores = pd.to_numeric(rows["score"], errors="coerce") if len(rows) else pd.Series(dtype=float)
    mean = scores.mean()
    summary = (f"Step **{chosen}** ({kind}; dumps at steps {steps[0]}-{steps[-1]}, {len(steps)} in all): "
               f"**{len(shown)}** of {len(groups)} prompt groups, {len(rows)} of {len(df)} responses match, mean score "
               f"{'-' if pd.isna(mean) else f'{mean:.4g}'}; page {page} of {pages}.")
    if corrupt:
        summary += f" {corrupt} corrupt line(s) skipped."
    return SamplesView(render_groups_html(page_groups, extras), summary, rows.reset_index(drop=True), pages, len(shown))


def _bound(text) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def build(demo: gr.Blocks, collector: MetricsCollector, config: dict, timer: gr.Timer, active: gr.State) -> dict:
    with gr.Tab("Samples", id="samples") as tab:
        names = collector.discover()
        with gr.Row():
            run = gr.Dropdown(choices=names, value=names[0] if names else None, label="run", scale=2)
            kind = gr.Radio(["rollout", "validation"], value="rollout", label="dump", scale=1)
            step = gr.Slider(0, 1, value=0, step=1, label="step (snaps to the nearest dump)", scale=2)
        with gr.Row():
            search = gr.Textbox(label="search prompt / response / ground truth", scale=3)
            # Text boxes, not gr.Number: an empty box means "no bound" (a Number box shows and sends 0).
            score_min = gr.Textbox(label="score >=", placeholder="any", scale=1)
            score_max = gr.Textbox(label="score <=", placeholder="any", scale=1)
        with gr.Row():
            which = gr.Radio(list(WHICH), value=WHICH[0], label="groups", scale=3)
            sort = gr.Dropdown(list(SORTS), value=SORTS[0], label="order", scale=1)
            page = gr.Slider(1, 2, value=1, step=1, label="page", scale=1)
        summary = gr.Markdown(elem_id="samples-summary")
        view_html = gr.HTML(elem_id="samples-view")

    def steps_for(run_name, kind_name):
        try:
            steps = read_sample_steps(collector.get(run_name).run_dir, kind_name) if run_name else []
        except (KeyError, ValueError, OSError):
            steps = []
        if not steps:
            return gr.update(minimum=0, maximum=1, value=0)
        return gr.update(minimum=steps[0], maximum=max(steps[-1], steps[0] + 1), value=steps[-1])

    def view(run_name, kind_name, step_value, text, lo, hi, which_value, sort_value, page_value):
        try:
            bounds = [_bound(b) for b in (lo, hi)]
        except ValueError:
            return (render_groups_html([], []), f"**score bounds must be numbers or empty, got {lo!r} and {hi!r}**",
                    gr.update(maximum=2, value=1))
        v = read_samples_view(collector, run_name, kind_name, step_value, text or "", *bounds, which_value, sort_value,
                              page_value)
        return v.html, v.summary, gr.update(maximum=max(2, v.pages), value=min(int(page_value or 1), v.pages))

    inputs = [run, kind, step, search, score_min, score_max, which, sort, page]
    outputs = [view_html, summary, page]
    gr.on([run.change, kind.change], steps_for, inputs=[run, kind], outputs=[step], api_name="sample_steps").then(
        view, inputs=inputs, outputs=outputs, api_name=False)
    gr.on([step.release, search.submit, score_min.submit, score_max.submit, which.change, sort.change, page.release],
          view, inputs=inputs, outputs=outputs, api_name=False)

    def samples_api(run: str, kind: str = "rollout", step: int | None = None, search: str = "",
                    score_min: float | None = None, score_max: float | None = None, which: str = WHICH[0],
                    sort: str = SORTS[0], page: int = 1) -> dict:
        """Samples of one dump: {"summary": markdown, "groups": n, "pages": n, "html": page HTML,
        "rows": [{column: value}, ...] (every matching response)}."""
        v = read_samples_view(collector, run, kind, step, search, score_min, score_max, which, sort, page)
        rows = v.rows.astype(object).where(v.rows.notna(), None).to_dict(orient="records") if len(v.rows) else []
        # Every value read from the dump is redacted, like the HTML (keys too: a column is any key of the dump).
        rows = [{redact(str(k)): _redact_value(val) for k, val in row.items()} for row in rows]
        return {"summary": v.summary, "groups": v.groups, "pages": v.pages, "html": v.html, "rows": rows}

    # The slider's range is per session, so the API takes the step as a plain number.
    with tab:
        gr.api(samples_api, api_name="samples")
    demo.load(steps_for, inputs=[run, kind], outputs=[step], api_name=False).then(
        view, inputs=inputs, outputs=outputs, api_name=False)
    timer.tick(lambda: gr.update(choices=collector.discover()), outputs=[run], api_name=False, show_progress="hidden")
    tab.select(lambda: "samples", outputs=[active], api_name=False)
    return {"run": run, "html": view_html, "summary": summary}
