"""Batch evaluation results: metrics and the workbook/JSON written from them.

    summary = summarize(model_result)                      # one dict of metrics per model
    write_report("results.xlsx", settings, model_results)  # or results.json; atomic

Offers:
- ModelResult: one model's per-row samples and scores plus timings.
- pass_at_k(n, c, k): the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021).
- summarize(result) -> dict: rows, samples, mean_score, accuracy, pass@k / mean@k (k = 1, 2, 4,
  ..., K when K > 1), format_rate, mean_response_tokens, truncated_share, throughput_tok_s,
  generation_s, wall_s.
- result_rows(results) -> list of dicts, one per prompt (per sample when K > 1), with shared
  id/prompt/ground_truth columns then one column group per model.
- write_report(path, settings, results): "Summary" and "Results" sheets (.xlsx: header frozen,
  widths set, long text wrapped) or the same data as JSON; written to a temp file in the same
  folder and renamed, so an interrupted write leaves no partial file.
- check_output_path(path): fails before any generation when the output cannot be written.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.evaluation.generation import Sample
from common.evaluation.inputs import EvalRow
from common.evaluation.scoring import Score

OUTPUT_SUFFIXES = (".xlsx", ".json")
# Columns holding prose get this width (characters) and wrapped text; others fit their header.
_WIDE_COLUMNS = ("prompt", "response", "ground_truth")
_WIDE_WIDTH = 60
# Excel refuses cells over 32,767 characters.
_EXCEL_CELL_LIMIT = 32_767


@dataclass
class ModelResult:
    label: str
    model_path: str
    resolved_path: str
    backend: str
    rows: list[EvalRow]
    samples: list[list[Sample]]
    scores: list[list[Score]]
    generation_s: float
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct.

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
    (0.25, 1.0, 0.0)
    """
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _ks(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def summarize(result: ModelResult) -> dict[str, Any]:
    flat = [s for per_row in result.scores for s in per_row]
    samples = [s for per_row in result.samples for s in per_row]
    n = len(result.samples[0]) if result.samples else 0
    tokens = sum(s.tokens for s in samples)
    formats = [s.format for s in flat if s.format is not None]
    summary: dict[str, Any] = {
        "model": result.label,
        "model_path": result.model_path,
        "resolved_path": result.resolved_path,
        "backend": result.backend,
        "rows": len(result.rows),
        "samples": len(flat),
        "mean_score": sum(s.score for s in flat) / len(flat),
        "accuracy": sum(s.correct for s in flat) / len(flat),
    }
    if n > 1:
        for k in _ks(n):
            summary[f"pass@{k}"] = sum(pass_at_k(n, sum(s.correct for s in per_row), k) for per_row in result.scores) / len(
                result.scores
            )
        summary[f"mean@{n}"] = summary["accuracy"]
    summary.update(
        {
            # share of samples whose format reward is positive (None: the reward has no format term)
            "format_rate": sum(f > 0 for f in formats) / len(formats) if formats else None,
            "mean_response_tokens": tokens / len(samples),
            "truncated_share": sum(s.truncated for s in samples) / len(samples),
            "throughput_tok_s": tokens / result.generation_s if result.generation_s > 0 else None,
            "generation_s": round(result.generation_s, 3),
            "wall_s": round(result.wall_s, 3),
        }
    )
    summary.update(result.extra)
    return summary


def _model_columns(sample: Sample, score: Score) -> dict[str, Any]:
    return {
        "response": sample.text,
        "extracted_answer": score.pred,
        "score": score.score,
        "correct": int(score.correct),
        "format": score.format,
        "tokens": sample.tokens,
        "truncated": int(sample.truncated),
        "latency_s": round(sample.latency_s, 4),
    }


def result_rows(results: list[ModelResult]) -> list[dict[str, Any]]:
    """One dict per prompt and sample; model columns prefixed "[label] " when several models."""
    first = results[0]
    n = len(first.samples[0])
    rows = []
    for i, row in enumerate(first.rows):
        for k in range(n):
            out: dict[str, Any] = {"id": row.id}
            if n > 1:
                out["sample"] = k
            out.update({"data_source": row.data_source, "prompt": row.prompt_text, "ground_truth": row.ground_truth})
            for res in results:
                cols = _model_columns(res.samples[i][k], res.scores[i][k])
                prefix = f"[{res.label}] " if len(results) > 1 else ""
                out.update({prefix + key: value for key, value in cols.items()})
            rows.append(out)
    return rows


def check_output_path(path: Path, input_path: Path | None = None) -> None:
    """Raise ValueError unless path can be written (tested with a real temp file)."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output_file {path}: use a .xlsx or .json extension")
    if input_path is not None and path.resolve() == input_path.resolve():
        raise ValueError(f"--output_file {path}: would overwrite the input file")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"--output_file {path}: folder {parent} does not exist")
    if path.is_dir():
        raise ValueError(f"--output_file {path}: is a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--output_file {path}: cannot write in {parent}: {exc.strerror}") from exc


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; give the report the permissions a normal open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _excel_value(value: Any) -> Any:
    if isinstance(value, str):
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        # Control characters (e.g. \x01 from an untrained model) are illegal in .xlsx cells:
        # shown as U+FFFD there; the JSON report keeps the raw text.
        value = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
        if len(value) > _EXCEL_CELL_LIMIT:
            return value[: _EXCEL_CELL_LIMIT - 20] + " …[truncated]"
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _write_xlsx(tmp: str, settings: dict[str, Any], summaries: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    # One column per model so base / SFT / RL read side by side; settings below the metrics.
    ws.append(["metric"] + [s["model"] for s in summaries])
    keys = list(dict.fromkeys(k for s in summaries for k in s if k != "model"))
    for key in keys:
        ws.append([key] + [_excel_value(s.get(key)) for s in summaries])
    ws.append([])
    ws.append(["setting", "value"])
    for key, value in settings.items():
        ws.append([key, _excel_value(value)])
    ws.freeze_panes = "B2"
    ws.column_dimensions["A"].width = 24
    for col in range(2, len(summaries) + 2):
        ws.column_dimensions[get_column_letter(col)].width = 28
    for cell in ws[1]:
        cell.font = Font(bold=True)

    rs = wb.create_sheet("Results")
    header = list(rows[0]) if rows else []
    rs.append(header)
    for row in rows:
        rs.append([_excel_value(row.get(h)) for h in header])
    rs.freeze_panes = "A2"
    wrap = Alignment(wrap_text=True, vertical="top")
    for col, name in enumerate(header, start=1):
        letter = get_column_letter(col)
        rs.cell(row=1, column=col).font = Font(bold=True)
        if any(name.endswith(w) for w in _WIDE_COLUMNS):
            rs.column_dimensions[letter].width = _WIDE_WIDTH
            for cell in rs[letter][1:]:
                cell.alignment = wrap
        else:
            rs.column_dimensions[letter].width = max(10, min(40, len(name) + 2))
    wb.save(tmp)


def write_report(path: str | Path, settings: dict[str, Any], results: list[ModelResult]) -> dict[str, Any]:
    """Write the Summary + Results to path (.xlsx or .json), atomically; return the JSON payload."""
    path = Path(path)
    summaries = [summarize(r) for r in results]
    rows = result_rows(results)
    payload = {"settings": settings, "summary": summaries, "results": rows}
    if path.suffix.lower() == ".json":

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(payload, f, ensure_ascii=False, indent=2)

        _atomic_write(path, write)
    elif path.suffix.lower() == ".xlsx":
        _atomic_write(path, lambda tmp: _write_xlsx(tmp, settings, summaries, rows))
    else:
        raise ValueError(f"--output_file {path}: use a .xlsx or .json extension")
    return payload
