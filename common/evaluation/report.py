"""Batch evaluation report: the tables, and the workbook/JSON written from them.

    write_report("outputs/eval/x.xlsx", settings, rows, results)   # or .json; atomic

Offers:
- ModelResult: one model's samples and scores per row, its generation time after a warm-up,
  tokens_per_s (generated tokens / generation wall time).
- summary_rows(rows, results): one row per model x data_source, then that model's "all" row,
  with common.evaluation.metrics.group_metrics (accuracy, mean_score, mean@n, pass@k, maj@k,
  format_rate, mean/p95 tokens, truncated_share, reward errors and timeouts).
- model_rows(results): one row per model: backend, tokens/s, generated tokens, generation and
  warm-up seconds, chat template arguments, paths, whether maj@k could be computed.
- result_rows(rows, results): one row per model x prompt x sample (filterable by model).
- compare_rows(rows, results): one row per prompt, each model's first response and its score.
- write_report(path, settings, rows, results) -> payload: .json (the same tables), or .xlsx:
  Summary (title, metrics, models, settings), Results, and with two or more models Compare.
  Every sheet: bold frozen header, autofilter, numbers formatted (0.000 scores, 0.0% shares,
  #,##0 counts), columns sized to their content (capped, long text wrapped), correct/incorrect
  filled green/red. Text is always stored as text: a response starting with = + - @ is not a
  formula. Written to a temp file in the same folder, then renamed.
- check_output_path(path, input_path, force) -> True when an existing file will be replaced;
  raises ValueError (naming --output_file) when it cannot be written, or exists without force.
- default_output_path(input_file, labels, out_dir, now): out_dir/<input stem>-<models>-<stamp>.xlsx.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common.evaluation.generation import Sample
from common.evaluation.inputs import EvalRow
from common.evaluation.metrics import group_metrics, has_pred
from common.evaluation.scoring import Score

OUTPUT_SUFFIXES = (".xlsx", ".json")
# Excel refuses cells over 32,767 characters.
_EXCEL_CELL_LIMIT = 32_767
# Column widths in characters: at least the header, at most 60 (longer text wraps).
_MIN_WIDTH, _MAX_WIDTH = 6, 60
# Widths are measured on the first rows only: a 10,000-row sheet would otherwise take seconds.
_WIDTH_SAMPLE_ROWS = 500
# Excel's own "Good" / "Bad" cell styles.
_GREEN_FILL, _GREEN_FONT = "C6EFCE", "006100"
_RED_FILL, _RED_FONT = "FFC7CE", "9C0006"
_HEADER_FILL = "DDEBF7"
# Text cells starting with these are formulas to Excel (and to openpyxl); they are stored as text.
_FORMULA_STARTS = ("=", "+", "-", "@")
# Output names: model labels may hold "/" (experiment/global_step_N) and run long.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME_LEN = 120


@dataclass
class ModelResult:
    label: str
    model_path: str
    resolved_path: str
    backend: str
    samples: list[list[Sample]]
    scores: list[list[Score]]
    generation_s: float
    warmup_s: float = 0.0
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def generated_tokens(self) -> int:
        return sum(s.tokens for per_row in self.samples for s in per_row)

    @property
    def tokens_per_s(self) -> float | None:
        return self.generated_tokens / self.generation_s if self.generation_s > 0 else None


# --------------------------------------------------------------------------- tables


def summary_rows(rows: list[EvalRow], results: list[ModelResult]) -> list[dict[str, Any]]:
    sources = list(dict.fromkeys(r.data_source for r in rows))
    out = []
    for res in results:
        with_maj = has_pred(res.scores)
        groups = [(s, [i for i, r in enumerate(rows) if r.data_source == s]) for s in sources]
        groups.append(("all", list(range(len(rows)))))
        for source, idx in groups:
            metrics = group_metrics([res.samples[i] for i in idx], [res.scores[i] for i in idx], with_maj=with_maj)
            out.append({"model": res.label, "data_source": source, **metrics})
    return out


def model_rows(results: list[ModelResult]) -> list[dict[str, Any]]:
    return [
        {
            "model": r.label,
            "backend": r.backend,
            "tokens_per_s": r.tokens_per_s,
            "generated_tokens": r.generated_tokens,
            "generation_s": r.generation_s,
            "warmup_s": r.warmup_s,
            "maj@k": "yes" if has_pred(r.scores) else "unavailable: the reward returns no 'pred' (extracted answer)",
            "chat_template_kwargs": json.dumps(r.chat_template_kwargs, ensure_ascii=False),
            "model_path": r.model_path,
            "resolved_path": r.resolved_path,
        }
        for r in results
    ]


def result_rows(rows: list[EvalRow], results: list[ModelResult]) -> list[dict[str, Any]]:
    n = len(results[0].samples[0])
    out = []
    for res in results:
        for i, row in enumerate(rows):
            for k, (sample, score) in enumerate(zip(res.samples[i], res.scores[i])):
                rec: dict[str, Any] = {"model": res.label, "id": row.id}
                if n > 1:
                    rec["sample"] = k
                rec.update(
                    {
                        "data_source": row.data_source,
                        "prompt": row.prompt_text,
                        "ground_truth": row.ground_truth,
                        "response": sample.text,
                        "extracted_answer": score.pred,
                        "score": score.score,
                        "correct": int(score.correct),
                        "format": score.format,
                        "tokens": sample.tokens,
                        "truncated": int(sample.truncated),
                        "reward_error": score.error,
                    }
                )
                out.append(rec)
    return out


def compare_rows(rows: list[EvalRow], results: list[ModelResult]) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(rows):
        rec: dict[str, Any] = {
            "id": row.id,
            "data_source": row.data_source,
            "prompt": row.prompt_text,
            "ground_truth": row.ground_truth,
        }
        for res in results:
            sample, score = res.samples[i][0], res.scores[i][0]
            rec[f"[{res.label}] response"] = sample.text
            rec[f"[{res.label}] score"] = score.score
            rec[f"[{res.label}] correct"] = int(score.correct)
        out.append(rec)
    return out


# --------------------------------------------------------------------------- output path


def default_output_path(input_file: str | Path, labels: list[str], out_dir: Path, now: datetime | None = None) -> Path:
    """
    >>> default_output_path("data/test.json", ["Qwen2.5-0.5B", "run/global_step_5"], Path("out"),
    ...                     datetime(2025, 1, 2, 3, 4, 5)).as_posix()
    'out/test-Qwen2.5-0.5B-vs-run_global_step_5-20250102-030405.xlsx'
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    models = "-vs-".join(_NAME_UNSAFE.sub("_", label).strip("_") or "model" for label in labels)
    stem = f"{Path(input_file).stem}-{models}"[:_MAX_NAME_LEN]
    path = out_dir / f"{stem}-{stamp}.xlsx"
    n = 2
    while path.exists():  # two runs in the same second
        path = out_dir / f"{stem}-{stamp}-{n}.xlsx"
        n += 1
    return path


def check_output_path(path: Path, input_path: Path | None = None, force: bool = False) -> bool:
    """Raise ValueError unless path can be written; return True when an existing file is replaced."""
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output_file {path}: use a .xlsx or .json extension")
    if input_path is not None and path.resolve() == input_path.resolve():
        raise ValueError(f"--output_file {path}: would overwrite the input file")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"--output_file {path}: folder {parent} does not exist")
    if path.is_dir():
        raise ValueError(f"--output_file {path}: is a folder")
    exists = path.exists()
    if exists and not force:
        raise ValueError(f"--output_file {path}: already exists; pass --force to replace it, or choose another name")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"--output_file {path}: cannot write in {parent}: {exc.strerror}") from exc
    return exists


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


# --------------------------------------------------------------------------- workbook


def number_format(column: str) -> str | None:
    """The Excel number format of a column, by its name ("[model] score" counts as "score").

    >>> number_format("accuracy"), number_format("[rl] score"), number_format("truncated_share")
    ('0.000', '0.000', '0.0%')
    """
    name = column.rsplit("] ", 1)[-1]
    if name in ("truncated_share", "format_rate"):
        return "0.0%"
    if name in ("accuracy", "mean_score", "score", "format") or name.startswith(("pass@", "maj@", "mean@")):
        return "0.000"
    if name in ("prompts", "samples", "tokens", "generated_tokens", "reward_errors", "reward_timeouts", "rows"):
        return "#,##0"
    if name in ("mean_tokens", "p95_tokens", "tokens_per_s"):
        return "#,##0.0"
    if name in ("generation_s", "warmup_s"):
        return "#,##0.00"
    return None


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


def _shown_length(value: Any, fmt: str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, float):
        if fmt == "0.0%":
            return len(f"{value:.1%}")
        if fmt and "," in fmt:
            return len(f"{value:,.2f}")
        return len(f"{value:.3f}")
    if isinstance(value, int):
        return len(f"{value:,}")
    return max((len(line) for line in str(value).splitlines()), default=0)


class _Sheet:
    """A worksheet written table by table; widths track the widest cell of each column."""

    def __init__(self, ws):
        from openpyxl.styles import Alignment, Font, PatternFill

        self.ws = ws
        self.widths: dict[int, int] = {}
        self.wrapped: set[int] = set()
        self.prewrapped: set[int] = set()
        self._bold = Font(bold=True)
        self._header_fill = PatternFill("solid", start_color=_HEADER_FILL, end_color=_HEADER_FILL)
        self._wrap = Alignment(wrap_text=True, vertical="top")
        self._top = Alignment(vertical="top")

    def put(self, row: int, col: int, value: Any, fmt: str | None = None, measure: bool = True, wrap: bool = False):
        cell = self.ws.cell(row=row, column=col)
        value = _excel_value(value)
        cell.value = value
        if isinstance(value, str):
            cell.data_type = "s"  # never a formula, whatever the text starts with
            if value.startswith(_FORMULA_STARTS):
                cell.quotePrefix = True  # and Excel keeps it text when the cell is edited
            if wrap:
                cell.alignment = self._wrap
        elif fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
            cell.number_format = fmt
        if measure:
            length = _shown_length(value, fmt)
            self.widths[col] = max(self.widths.get(col, 0), length)
            if length > _MAX_WIDTH or (isinstance(value, str) and "\n" in value):
                self.wrapped.add(col)
        return cell

    def table(
        self, top: int, header: list[str], records: list[dict[str, Any]], overflow: tuple[str, ...] = (),
        text: tuple[str, ...] = (),
    ) -> int:
        """Header at row top, then one row per record; returns the last row written.

        Columns named in overflow do not size their column: their text runs on into the empty
        cells to the right (paths and settings below a wide metrics table). Columns in text
        (prose: prompts, responses) wrap."""
        for col, name in enumerate(header, start=1):
            cell = self.put(top, col, name)
            cell.font = self._bold
            cell.fill = self._header_fill
        formats = [number_format(h) for h in header]
        wraps = [h in text for h in header]
        for r, rec in enumerate(records, start=top + 1):
            measure = r - top <= _WIDTH_SAMPLE_ROWS
            for col, (name, fmt, wrap) in enumerate(zip(header, formats, wraps), start=1):
                self.put(r, col, rec.get(name), fmt, measure and name not in overflow, wrap)
        self.prewrapped.update(c for c, w in enumerate(wraps, start=1) if w)
        return top + len(records)

    def finish(self) -> None:
        from openpyxl.utils import get_column_letter

        for col, width in self.widths.items():
            self.ws.column_dimensions[get_column_letter(col)].width = max(_MIN_WIDTH, min(width + 2, _MAX_WIDTH))
        for col in self.wrapped - self.prewrapped:  # other columns that turned out to hold long text
            for (cell,) in self.ws.iter_rows(min_row=1, min_col=col, max_col=col):
                if isinstance(cell.value, str) and not cell.font.bold:
                    cell.alignment = self._wrap


def _fill_correct(ws, correct_col: int, first: int, last: int, also: list[int]) -> None:
    """Green/red on the correct column (1/0), and on the columns in also by that column's value."""
    from openpyxl.formatting.rule import CellIsRule, FormulaRule
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter

    if last < first:
        return
    green = dict(fill=PatternFill("solid", start_color=_GREEN_FILL, end_color=_GREEN_FILL), font=Font(color=_GREEN_FONT))
    red = dict(fill=PatternFill("solid", start_color=_RED_FILL, end_color=_RED_FILL), font=Font(color=_RED_FONT))
    letter = get_column_letter(correct_col)
    ref = f"{letter}{first}:{letter}{last}"
    ws.conditional_formatting.add(ref, CellIsRule(operator="equal", formula=["1"], **green))
    ws.conditional_formatting.add(ref, CellIsRule(operator="equal", formula=["0"], **red))
    for col in also:
        other = get_column_letter(col)
        target = f"{other}{first}:{other}{last}"
        ws.conditional_formatting.add(target, FormulaRule(formula=[f"${letter}{first}=1"], **green))
        ws.conditional_formatting.add(target, FormulaRule(formula=[f"${letter}{first}=0"], **red))


def _data_sheet(wb, title: str, records: list[dict[str, Any]], freeze: str) -> None:
    """Results / Compare: a table with autofilter, frozen header, and correctness colours."""
    from openpyxl.utils import get_column_letter

    sheet = _Sheet(wb.create_sheet(title))
    header = list(records[0]) if records else []
    prose = tuple(h for h in header if h.rsplit("] ", 1)[-1] in ("prompt", "response", "ground_truth"))
    last = sheet.table(1, header, records, text=prose)
    ws = sheet.ws
    ws.freeze_panes = freeze
    if header:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{max(last, 1)}"
    for col, name in enumerate(header, start=1):
        if name.rsplit("] ", 1)[-1] == "correct":
            prefix = name[: -len("correct")]
            responses = [c for c, h in enumerate(header, start=1) if h == prefix + "response"]
            _fill_correct(ws, col, 2, last, responses)
    sheet.finish()


def _summary_sheet(ws, settings: dict[str, Any], summary: list[dict[str, Any]], models: list[dict[str, Any]]) -> None:
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = _Sheet(ws)
    ws.title = "Summary"
    names = ", ".join(m["model"] for m in models)
    title = (
        f"Evaluation of {Path(str(settings.get('input_file', ''))).name}: {names}; "
        f"{settings.get('rows')} prompts x {settings.get('n_samples')} sample(s)"
    )
    sampling = ", ".join(
        f"{k} {settings[k]}" for k in ("temperature", "top_p", "max_new_tokens", "n_samples", "template") if k in settings
    )
    kwargs = settings.get("chat_template_kwargs")
    sampling += f", chat_template_kwargs {kwargs}" if kwargs and kwargs != "{}" else ""
    sheet.put(1, 1, title, measure=False).font = Font(bold=True, size=14)
    sheet.put(2, 1, f"{sampling}; {settings.get('created', '')}", measure=False)
    header = list(dict.fromkeys(k for s in summary for k in s))
    top = 4
    last = sheet.table(top, header, summary)
    ws.freeze_panes = f"C{top + 1}"
    ws.auto_filter.ref = f"A{top}:{get_column_letter(len(header))}{last}"
    for r in range(top + 1, last + 1):  # each model's "all" row stands out
        if ws.cell(row=r, column=2).value == "all":
            for c in range(1, len(header) + 1):
                ws.cell(row=r, column=c).font = Font(bold=True)
    top = last + 2
    sheet.put(top, 1, "Models", measure=False).font = Font(bold=True, size=12)
    last = sheet.table(top + 1, list(models[0]), models, overflow=("maj@k", "model_path", "resolved_path"))
    top = last + 2
    sheet.put(top, 1, "Settings", measure=False).font = Font(bold=True, size=12)
    sheet.table(
        top + 1, ["setting", "value"], [{"setting": k, "value": v} for k, v in settings.items()], overflow=("value",)
    )
    sheet.finish()


def _write_xlsx(tmp: str, payload: dict[str, Any]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    _summary_sheet(wb.active, payload["settings"], payload["summary"], payload["models"])
    _data_sheet(wb, "Results", payload["results"], freeze="C2")
    if payload.get("compare"):
        _data_sheet(wb, "Compare", payload["compare"], freeze="B2")
    wb.save(tmp)


def write_report(
    path: str | Path, settings: dict[str, Any], rows: list[EvalRow], results: list[ModelResult]
) -> dict[str, Any]:
    """Write the report to path (.xlsx or .json), atomically; return the JSON payload."""
    path = Path(path)
    payload: dict[str, Any] = {
        "settings": settings,
        "models": model_rows(results),
        "summary": summary_rows(rows, results),
        "results": result_rows(rows, results),
    }
    if len(results) > 1:
        payload["compare"] = compare_rows(rows, results)
    suffix = path.suffix.lower()
    if suffix == ".json":

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(payload, f, ensure_ascii=False, indent=2)

        _atomic_write(path, write)
    elif suffix == ".xlsx":
        _atomic_write(path, lambda tmp: _write_xlsx(tmp, payload))
    else:
        raise ValueError(f"--output_file {path}: use a .xlsx or .json extension")
    return payload
