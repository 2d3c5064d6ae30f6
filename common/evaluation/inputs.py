"""Evaluation inputs: one loader per file format, all producing EvalRow objects.

    from common.evaluation.inputs import load_rows
    rows = load_rows("test_data.json")            # or .jsonl, or a verl RL .parquet

Offers:
- EvalRow: id, messages (chat messages), ground_truth, data_source, extra_info.
- load_rows(path, skip_bad_rows=False, default_data_source=DEFAULT_DATA_SOURCE, limit=None).
- InputError: raised with the file and the 1-based row number of every malformed row.

Accepted rows:
- JSON (a list of objects, or an object holding one such as {"data": [...]}) and JSONL (one
  object per line), UTF-8 or with a byte-order mark (UTF-16 from Windows tools):
  {"prompt": str or [{"role", "content"}, ...], "ground_truth": str|number,
   "data_source": optional (default "openai/gsm8k"), "id": optional (default: row number)}.
  A verl-style `reward_model.ground_truth` is accepted in place of `ground_truth`.
- Parquet in verl's RL schema: `prompt` (list of chat messages), `reward_model.ground_truth`,
  `data_source`, `extra_info.index` (used as id), so a training validation file works as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The house datasets are GSM8K-style; verl's own gsm8k preprocessing writes this name.
DEFAULT_DATA_SOURCE = "openai/gsm8k"

# At most this many bad rows are listed in one error; the rest are counted.
_MAX_LISTED_ERRORS = 20


class InputError(ValueError):
    """A problem with the input file, naming the file and the rows to fix."""


@dataclass
class EvalRow:
    id: str
    messages: list[dict[str, str]]
    ground_truth: str
    data_source: str = DEFAULT_DATA_SOURCE
    extra_info: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The prompt as shown in reports: the user text, or role-tagged turns when there are several."""
        if len(self.messages) == 1:
            return self.messages[0]["content"]
        return "\n".join(f"[{m['role']}] {m['content']}" for m in self.messages)


def _to_python(value: Any) -> Any:
    """numpy arrays/scalars from parquet -> plain lists/numbers, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_python(v) for v in value]
    return value


def _parse_messages(prompt: Any) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("'prompt' is an empty string")
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, list) and prompt:
        messages = []
        for i, m in enumerate(prompt):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise ValueError(f"'prompt' message {i} must be an object with string 'role' and 'content'")
            messages.append({"role": m["role"], "content": m["content"]})
        if messages[-1]["role"] != "user":
            raise ValueError("the last 'prompt' message must have role 'user'")
        return messages
    raise ValueError("'prompt' must be a non-empty string or a non-empty list of chat messages")


def _build_row(raw: Any, number: int, default_data_source: str) -> EvalRow:
    """One EvalRow from one decoded record (JSON object or parquet row); raises ValueError."""
    if isinstance(raw, ValueError):  # common.data_io.RowError: the reader's reason
        raise raw
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object, got {type(raw).__name__}")
    raw = _to_python(raw)
    if "prompt" not in raw or raw["prompt"] is None:
        raise ValueError("missing 'prompt'")
    messages = _parse_messages(raw["prompt"])
    ground_truth = raw.get("ground_truth")
    if ground_truth is None and isinstance(raw.get("reward_model"), dict):
        ground_truth = raw["reward_model"].get("ground_truth")
    if ground_truth is None:
        raise ValueError("missing 'ground_truth' (or 'reward_model.ground_truth')")
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, int, float)):
        raise ValueError(f"'ground_truth' must be a string or a number, got {type(ground_truth).__name__}")
    if isinstance(ground_truth, float) and not math.isfinite(ground_truth):
        raise ValueError(f"'ground_truth' is {ground_truth} (NaN or Infinity); give the answer as text or a number")
    if isinstance(ground_truth, str) and not ground_truth.strip():
        raise ValueError("'ground_truth' is an empty string")
    data_source = raw.get("data_source") or default_data_source
    if not isinstance(data_source, str):
        raise ValueError("'data_source' must be a string")
    extra_info = raw.get("extra_info") or {}
    if not isinstance(extra_info, dict):
        raise ValueError("'extra_info' must be an object")
    row_id = raw.get("id")
    if row_id is None:
        row_id = extra_info.get("index", number)
    return EvalRow(str(row_id), messages, str(ground_truth), data_source, extra_info)


def _read_records(path: Path) -> list[tuple[int, Any]]:
    """(1-based row number, record) pairs; raises InputError when the file itself cannot be parsed.

    Read with common.data_io.iter_records, as `python -m common.data_utils` reads: a byte-order
    mark (UTF-8/16/32), a wrapper object ({"data": [...]}), a damaged parquet page, a wrong
    encoding are handled or named the same way there and here."""
    from common.data_io import DataError, RowError, iter_records

    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl", ".parquet"):
        raise InputError(f"{path}: unsupported extension {suffix!r}; use .json, .jsonl or .parquet")
    records = []
    try:
        for where, record in iter_records(path):
            number = int(where.rsplit(" ", 1)[-1])  # "row 3" (JSON list, parquet) or "line 7" (JSONL)
            if isinstance(record, RowError):
                reason = str(record)
                if reason.startswith("invalid JSON: "):
                    raise InputError(f"{path}: line {number} is not valid JSON: {reason[len('invalid JSON: '):]}")
            records.append((number, record))  # another RowError (e.g. broken text) is that row's problem
    except DataError as exc:
        raise InputError(str(exc)) from None
    return records


def load_rows(
    path: str | Path,
    skip_bad_rows: bool = False,
    default_data_source: str = DEFAULT_DATA_SOURCE,
    limit: int | None = None,
) -> tuple[list[EvalRow], list[str]]:
    """Read an evaluation file; return (rows, problems).

    Every malformed row is reported as "row N: reason" (N is the 1-based list index, or the
    line number for JSONL). Without skip_bad_rows any problem raises InputError listing them
    all; with it, bad rows are dropped and the problems are returned for the caller to print.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; pass --input_file with a .json, .jsonl or .parquet file")
    if not path.is_file():
        raise InputError(f"{path}: input file not found (pass --input_file with a .json, .jsonl or .parquet file)")
    rows: list[EvalRow] = []
    problems: list[str] = []
    for number, record in _read_records(path):
        try:
            rows.append(_build_row(record, number, default_data_source))
        except ValueError as exc:
            problems.append(f"row {number}: {exc}")
    if problems and not skip_bad_rows:
        listed = "\n  ".join(problems[:_MAX_LISTED_ERRORS])
        more = f"\n  ... and {len(problems) - _MAX_LISTED_ERRORS} more" if len(problems) > _MAX_LISTED_ERRORS else ""
        raise InputError(
            f"{path}: {len(problems)} malformed row(s):\n  {listed}{more}\n"
            "Fix them, or pass --skip_bad_rows to evaluate the remaining rows."
        )
    seen: dict[str, int] = {}
    for row in rows:
        seen[row.id] = seen.get(row.id, 0) + 1
    duplicates = sorted(k for k, v in seen.items() if v > 1)
    if duplicates:
        raise InputError(f"{path}: duplicate id(s) {duplicates[:10]}; every row needs a unique 'id'")
    if not rows:
        raise InputError(f"{path}: no usable rows")
    if limit is not None:
        rows = rows[:limit]
    return rows, problems
