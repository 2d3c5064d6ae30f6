"""Turn the data people bring into the parquet files verl trains on, and check them.

    python -m common.data_utils rl  train.jsonl data/train.parquet
    python -m common.data_utils rl  gsm8k_train.jsonl data/train.parquet --preset gsm8k
    python -m common.data_utils rl  math.json data/train.parquet --preset math \\
        --prompt_template "{prompt} Let's think step by step and put your final answer within \\\\boxed{{}}."
    python -m common.data_utils rl  my.jsonl out.parquet --prompt_field q --answer_field a --data_source my/set
    python -m common.data_utils sft alpaca.json sft/data/train.parquet            # format auto-detected
    python -m common.data_utils sft chats.csv out.parquet --format sharegpt
    python -m common.data_utils validate grpo/data/train.parquet                  # RL or SFT, by columns
    python -m common.data_utils rl --help

Offers:
- json_to_parquet(input_path, output_path, ...): JSON (a list), JSONL or CSV rows -> verl's RL
  schema (`data_source`, `prompt` [{role, content}], `ability`, `reward_model` {style, ground_truth},
  `extra_info` {split, index, ...}), the parquet that `verl.utils.dataset.rl_dataset.RLHFDataset`
  reads. Row formats: `plain` ({prompt, ground_truth}, optional data_source (default
  "openai/gsm8k") and id; what the batch evaluator reads), `verl` (already in the schema: validated, passed through), presets `gsm8k`
  (question/answer with "#### N") and `math` (problem/solution with \\boxed{}), and `fields`
  (any JSON, mapped with prompt_field/answer_field). `auto` (the default) picks one per row.
- sft_to_parquet(input_path, output_path, ...): Alpaca, ShareGPT, OpenAI `messages` or
  prompt/response rows -> a parquet with a `messages` column, the format verl's SFT trainer
  (`MultiTurnSFTDataset`) reads. The format is detected per file; `fmt=` overrides it.
- validate_file(path): reports bad rows of an RL or SFT parquet/JSON/JSONL/CSV (or of rows the
  `rl` command would convert, such as the batch evaluator's test.json) by row number.
- Row builders, one per format (like `make_map_fn` in verl's examples/data_preprocess/gsm8k.py):
  make_rl_row_fn(...), SFT_BUILDERS; checks: check_rl_row(row), check_messages(messages);
  answer extractors: extract_hash_answer(text), extract_last_boxed(text).
- write_parquet(rows, path): atomic parquet writer used by the bundled-data generator.

Every conversion streams its input (JSONL/CSV line by line), writes parquet in row groups of
`batch_size` rows, shows a tqdm bar, and writes atomically: a temp file in the output folder,
renamed over the output only when everything succeeded; on an error or Ctrl-C nothing is left.
The input is never modified; output == input is refused. Bad rows are rejected with their
row number and reason (`strict=True` / `--strict` fails the run instead, before anything is
written); zero rows written is an error. JSON arrays are parsed whole (a JSON array cannot be
read row by row with the standard library): use JSONL for files that do not fit in memory.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

# verl's gsm8k instruction (examples/data_preprocess/gsm8k.py); the gsm8k scorer reads "#### N".
GSM8K_INSTRUCTION = 'Let\'s think step by step and output the final answer after "####".'
# 1,024 rows x ~1 KB per RL row = ~1 MB per row group: small enough to stream, big enough to compress.
DEFAULT_BATCH_SIZE = 1024
# A summary shows this many rejected rows; the rest are counted by reason.
SHOW_REJECTED = 5
RL_FORMATS = ("auto", "plain", "verl", "gsm8k", "math", "fields")
SFT_FORMATS = ("auto", "alpaca", "sharegpt", "openai", "pair")
CHAT_ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function_response": "tool",
    "observation": "tool",
}


class DataError(Exception):
    """A problem with an input file, an option or the output path; the message says how to fix it."""


class RowError(ValueError):
    """One input row cannot be converted; the message is the reason shown in the report."""


@dataclass
class Report:
    """Counts of one conversion: rows read, written and rejected (with reasons and row numbers)."""

    input_path: str
    output_path: str
    rows_in: int = 0
    rows_written: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected)

    def summary(self) -> str:
        lines = [
            f"{self.input_path}: read {self.rows_in:,} rows, wrote {self.rows_written:,} to {self.output_path}, "
            f"rejected {self.rows_rejected:,}"
        ]
        if self.formats:
            lines.append("  formats: " + ", ".join(f"{k} {v:,}" for k, v in self.formats.most_common()))
        if self.rejected:
            reasons = Counter(_reason_kind(r) for _, r in self.rejected)
            lines.append("  rejected by reason: " + "; ".join(f"{k} ({v:,})" for k, v in reasons.most_common()))
            lines.append(f"  first {min(SHOW_REJECTED, len(self.rejected))} rejected:")
            lines += [f"    {where}: {reason}" for where, reason in self.rejected[:SHOW_REJECTED]]
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    # "turn 3: empty content (...)" -> "turn N: empty content": groups rows by cause.
    return re.sub(r"\d+", "N", reason.split(" (")[0])[:80]


# --------------------------------------------------------------------------------------------
# Reading: JSON array, JSONL, CSV, parquet -> (where, record | RowError)
# --------------------------------------------------------------------------------------------


def _input_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    kinds = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
    if suffix not in kinds:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use .json (a list), .jsonl, .csv or .parquet")
    if suffix == ".json":
        # Some ".json" files are really JSONL; the first non-space character tells.
        with open(path, encoding="utf-8") as f:
            head = f.read(4096).lstrip()
        if head.startswith("{"):
            return "jsonl"
    return kinds[suffix]


def iter_records(path: str | Path, progress: bool = False, desc: str = "read") -> Iterator[tuple[str, Any]]:
    """Yield (where, record) for each row of a JSON/JSONL/CSV/parquet file, in order.

    `where` names the row for reports ("line 12" for JSONL and CSV, "row 3" for JSON arrays and
    parquet, 1-based). A row that cannot be parsed yields a RowError instead of a record, so one
    bad line costs one row, not the run. Raises DataError for a missing or unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the input path")
    kind = _input_kind(path)
    if kind == "json":
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg} "
                    "(a .json file must hold one list of objects; use .jsonl for one object per line)"
                ) from e
        if isinstance(data, dict):
            # {"train": [...]} or {"data": [...]}: take the single list inside, else refuse.
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(f"{path}: expected a JSON list of rows, got an object with keys {sorted(data)[:10]}")
            data = lists[0]
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
        for i, rec in enumerate(tqdm(data, desc=desc, disable=not progress, unit="row"), start=1):
            yield f"row {i}", rec
    elif kind == "jsonl":
        size = path.stat().st_size
        with open(path, "rb") as f, tqdm(
            total=size, desc=desc, disable=not progress, unit="B", unit_scale=True
        ) as bar:
            for lineno, raw in enumerate(f, start=1):
                bar.update(len(raw))
                line = raw.strip()
                if not line:
                    continue
                try:
                    yield f"line {lineno}", json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    yield f"line {lineno}", RowError(f"invalid JSON: {e}")
    elif kind == "csv":
        size = path.stat().st_size
        with open(path, encoding="utf-8", newline="") as f, tqdm(
            total=size, desc=desc, disable=not progress, unit="B", unit_scale=True
        ) as bar:

            def lines():
                # csv iterates the file itself, so f.tell() is unavailable: count bytes as lines pass.
                for line in f:
                    bar.update(len(line.encode("utf-8")))
                    yield line

            reader = csv.DictReader(lines())
            if not reader.fieldnames:
                raise DataError(f"{path}: empty CSV (no header line)")
            for rec in reader:
                # reader.line_num is the line the record ended on (a quoted cell may span lines).
                where = f"line {reader.line_num}"
                if None in rec:
                    yield where, RowError(f"more cells than the {len(reader.fieldnames)} header columns")
                    continue
                yield where, {k: _csv_cell(v) for k, v in rec.items()}
    else:
        pf = pq.ParquetFile(path)
        i = 0
        with tqdm(total=pf.metadata.num_rows, desc=desc, disable=not progress, unit="row") as bar:
            for batch in pf.iter_batches(batch_size=DEFAULT_BATCH_SIZE):
                for rec in batch.to_pylist():
                    i += 1
                    yield f"row {i}", rec
                bar.update(batch.num_rows)


def _csv_cell(value: str | None) -> Any:
    # CSV has no nesting: a cell holding a JSON list/object (conversations, messages) is parsed.
    if value is None:
        return None
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


# --------------------------------------------------------------------------------------------
# Answer extraction
# --------------------------------------------------------------------------------------------

_HASH_RE = re.compile(r"####\s*(.+?)\s*$", re.S)


def extract_hash_answer(text: str) -> str | None:
    """The GSM8K final answer after "####", commas and "$" removed; None if there is none.

    >>> extract_hash_answer("48 / 2 = 24 clips in May.\\n#### 1,072")
    '1072'
    """
    if not isinstance(text, str) or "####" not in text:
        return None
    tail = text.rsplit("####", 1)[1].strip()
    tail = tail.splitlines()[0].strip() if tail else ""
    answer = tail.replace(",", "").replace("$", "").strip()
    return answer or None


def extract_last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}), nested braces handled; None if none.

    >>> extract_last_boxed(r"so $x = \\boxed{\\frac{1}{2}}$ and not \\boxed{3")
    '\\\\frac{1}{2}'
    """
    if not isinstance(text, str):
        return None
    found = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found = text[m.end() : i - 1].strip()
    return found or None


# --------------------------------------------------------------------------------------------
# RL rows: one builder per format, and a checker for verl's schema
# --------------------------------------------------------------------------------------------


def _require_text(rec: dict, key: str) -> str:
    if key not in rec or rec[key] is None:
        raise RowError(f"missing field {key!r} (row keys: {sorted(rec)[:12]})")
    value = rec[key]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(f"field {key!r} must be text, got {type(value).__name__}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RowError(f"field {key!r} is {value}")
        value = str(int(value)) if value.is_integer() else repr(value)
    text = str(value).strip()
    if not text:
        raise RowError(f"empty {key!r}")
    return text


def _ground_truth_text(value: Any, where: str = "ground_truth") -> str:
    # verl's gsm8k scorer compares strings ("72" == "72"), so integers become their decimal text.
    if isinstance(value, bool) or value is None:
        raise RowError(f"{where} must be text or a number, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if not isinstance(value, str):
        raise RowError(f"{where} must be text or a number, got {type(value).__name__}")
    if not value.strip():
        raise RowError(f"empty {where}")
    return value.strip()


def check_messages(messages: Any, rl_prompt: bool = False) -> list[str]:
    """Problems with a chat (list of {role, content}); an empty list means it is fine.

    SFT conversations (rl_prompt=False) must contain an assistant turn and end with one; RL
    prompts (rl_prompt=True) must end with a user turn, the model writes the answer.
    """
    if not isinstance(messages, list) or not messages:
        return ["no messages (expected a non-empty list of {role, content})"]
    problems = []
    for t, msg in enumerate(messages, start=1):
        if not isinstance(msg, dict):
            problems.append(f"turn {t} is {type(msg).__name__}, expected {{role, content}}")
            continue
        role, content = msg.get("role"), msg.get("content")
        if role not in CHAT_ROLES:
            problems.append(f"turn {t}: unknown role {role!r} (use one of {', '.join(CHAT_ROLES)})")
        if not isinstance(content, str):
            problems.append(f"turn {t}: content must be text, got {type(content).__name__}")
        elif not content.strip():
            problems.append(f"turn {t}: empty content")
        if role == "system" and t != 1:
            problems.append(f"turn {t}: system message not first")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if rl_prompt:
        if roles and roles[-1] != "user":
            problems.append(f"prompt ends with {roles[-1]!r}, expected a user turn")
    else:
        if "assistant" not in roles:
            problems.append("no assistant turn")
        elif roles[-1] != "assistant":
            problems.append(f"conversation ends with {roles[-1]!r}, expected an assistant turn")
    return problems


def check_rl_row(row: Any) -> list[str]:
    """Problems with a row in verl's RL schema; an empty list means RLHFDataset and the scorers can use it."""
    if not isinstance(row, dict):
        return [f"row is {type(row).__name__}, expected an object"]
    problems = []
    if not isinstance(row.get("data_source"), str) or not row.get("data_source"):
        problems.append("data_source must be non-empty text (it picks the reward function)")
    problems += [f"prompt: {p}" for p in check_messages(row.get("prompt"), rl_prompt=True)]
    rm = row.get("reward_model")
    if not isinstance(rm, dict):
        problems.append("reward_model must be an object {style, ground_truth}")
    else:
        try:
            _ground_truth_text(rm.get("ground_truth"), "reward_model.ground_truth")
        except RowError as e:
            problems.append(str(e))
    if "extra_info" in row and row["extra_info"] is not None and not isinstance(row["extra_info"], dict):
        problems.append("extra_info must be an object")
    return problems


def detect_rl_format(rec: dict) -> str:
    """Which RL row builder fits a record: verl, plain, gsm8k or math."""
    if "reward_model" in rec and isinstance(rec.get("prompt"), list):
        return "verl"
    if "prompt" in rec and "ground_truth" in rec:
        return "plain"
    if "question" in rec and "answer" in rec:
        return "gsm8k"
    if "problem" in rec and "solution" in rec:
        return "math"
    # One key of a known pair present: name the missing one rather than "unknown format".
    for have, need in (("prompt", "ground_truth"), ("question", "answer"), ("problem", "solution")):
        if have in rec:
            raise RowError(f"missing field {need!r} (row keys: {sorted(rec)[:12]})")
    raise RowError(
        f"unknown row format (row keys: {sorted(rec)[:12]}); expected {{prompt, ground_truth}}, verl's schema, "
        "gsm8k {question, answer} or math {problem, solution}, or pass --prompt_field/--answer_field"
    )


def make_rl_row_fn(
    fmt: str = "auto",
    split: str = "train",
    data_source: str | None = None,
    ability: str = "math",
    prompt_template: str | None = None,
    system_prompt: str | None = None,
    prompt_field: str = "prompt",
    answer_field: str = "ground_truth",
    id_field: str = "id",
    answer_extract: str = "none",
) -> Callable[[dict, int], dict]:
    """Return process_fn(record, index) -> row in verl's RL schema; raises RowError for a bad record.

    fmt: auto | plain | verl | gsm8k | math | fields. data_source overrides the row's own (or the
    format's default: gsm8k -> "openai/gsm8k", math -> "DigitalLearningGmbH/MATH-lighteval",
    the keys verl's default_compute_score dispatches on). prompt_template must contain "{prompt}"
    (literal braces doubled, as in str.format). answer_extract (fields only): none | hash | boxed.
    """
    if fmt not in RL_FORMATS:
        raise DataError(f"--format {fmt!r}: use one of {', '.join(RL_FORMATS)}")
    if answer_extract not in ("none", "hash", "boxed"):
        raise DataError(f"--answer_extract {answer_extract!r}: use none, hash or boxed")
    if prompt_template is not None:
        if "{prompt}" not in prompt_template:
            raise DataError(f"--prompt_template {prompt_template!r} must contain {{prompt}}")
        try:
            prompt_template.format(prompt="x")
        except (KeyError, IndexError, ValueError) as e:
            raise DataError(
                f"--prompt_template {prompt_template!r} is not a valid template ({e!r}); "
                "only {prompt} is filled in, write literal braces as {{ and }}"
            ) from e
    extractors = {"none": lambda s: s.strip() or None, "hash": extract_hash_answer, "boxed": extract_last_boxed}
    defaults = {"gsm8k": "openai/gsm8k", "math": "DigitalLearningGmbH/MATH-lighteval"}

    def chat(text: str) -> list[dict]:
        content = prompt_template.format(prompt=text) if prompt_template else text
        msgs = [{"role": "system", "content": system_prompt}] if system_prompt else []
        return msgs + [{"role": "user", "content": content}]

    def row(source, prompt_text, truth, index, rec, **extra) -> dict:
        rid = rec.get(id_field)
        return {
            "data_source": source,
            "prompt": chat(prompt_text),
            "ability": ability,
            "reward_model": {"style": "rule", "ground_truth": truth},
            # The raw question too (as verl's gsm8k example does): judges and evaluators read it.
            "extra_info": {
                "split": split,
                "index": index,
                "id": None if rid is None else str(rid),
                "question": prompt_text,
                **extra,
            },
        }

    def process_fn(rec: Any, index: int) -> dict:
        if not isinstance(rec, dict):
            raise RowError(f"row is {type(rec).__name__}, expected an object")
        kind = fmt if fmt != "auto" else detect_rl_format(rec)
        if kind == "verl":
            problems = check_rl_row(rec)
            if problems:
                raise RowError("; ".join(problems))
            out = dict(rec)
            out["reward_model"] = {**rec["reward_model"]}
            out["reward_model"]["ground_truth"] = _ground_truth_text(rec["reward_model"]["ground_truth"])
            out["reward_model"].setdefault("style", "rule")
            out.setdefault("ability", ability)
            out["extra_info"] = {"split": split, "index": index, **(rec.get("extra_info") or {})}
            if data_source:
                out["data_source"] = data_source
            return out
        if kind == "plain":
            truth = _ground_truth_text(rec.get("ground_truth"))
            source = data_source or rec.get("data_source") or "openai/gsm8k"
            return row(str(source), _require_text(rec, "prompt"), truth, index, rec)
        if kind == "gsm8k":
            answer = _require_text(rec, "answer")
            truth = extract_hash_answer(answer)
            if truth is None:
                raise RowError("no '#### N' final answer in 'answer'")
            question = _require_text(rec, "question")
            return row(data_source or defaults["gsm8k"], question, truth, index, rec, question=question, answer=answer)
        if kind == "math":
            solution = _require_text(rec, "solution")
            truth = extract_last_boxed(solution)
            if truth is None:
                raise RowError("no \\boxed{...} answer in 'solution'")
            problem = _require_text(rec, "problem")
            return row(data_source or defaults["math"], problem, truth, index, rec, question=problem, answer=solution)
        # fields
        raw = _require_text(rec, answer_field)
        truth = extractors[answer_extract](raw)
        if truth is None:
            raise RowError(f"no {answer_extract} answer in {answer_field!r}")
        source = data_source or rec.get("data_source")
        if not source:
            raise RowError("no data_source in the row; pass --data_source")
        return row(str(source), _require_text(rec, prompt_field), truth, index, rec)

    return process_fn


# --------------------------------------------------------------------------------------------
# SFT rows: one builder per format -> {"messages": [...]}
# --------------------------------------------------------------------------------------------


def _sft_alpaca(rec: dict) -> list[dict]:
    instruction = _require_text(rec, "instruction")
    extra = rec.get("input")
    user = f"{instruction}\n\n{str(extra).strip()}" if extra not in (None, "") and str(extra).strip() else instruction
    msgs = [{"role": "system", "content": str(rec["system"])}] if rec.get("system") else []
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": _require_text(rec, "output")}]


def _sft_sharegpt(rec: dict) -> list[dict]:
    conv = rec.get("conversations")
    if not isinstance(conv, list):
        raise RowError("missing field 'conversations' (a list of {from, value})")
    msgs = [{"role": "system", "content": str(rec["system"])}] if rec.get("system") else []
    for t, turn in enumerate(conv, start=1):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise RowError(f"turn {t}: expected {{from, value}}, got {str(turn)[:60]!r}")
        role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise RowError(f"turn {t}: unknown role {turn['from']!r} (known: {', '.join(SHAREGPT_ROLES)})")
        msgs.append({"role": role, "content": turn["value"]})
    return msgs


def _sft_openai(rec: dict) -> list[dict]:
    msgs = rec.get("messages")
    if not isinstance(msgs, list):
        raise RowError("missing field 'messages' (a list of {role, content})")
    out = []
    for t, m in enumerate(msgs, start=1):
        if not isinstance(m, dict):
            raise RowError(f"turn {t}: expected {{role, content}}, got {type(m).__name__}")
        out.append({"role": m.get("role"), "content": m.get("content")})
    return out


def _sft_pair(rec: dict) -> list[dict]:
    msgs = [{"role": "system", "content": str(rec["system"])}] if rec.get("system") else []
    return msgs + [
        {"role": "user", "content": _require_text(rec, "prompt")},
        {"role": "assistant", "content": _require_text(rec, "response")},
    ]


SFT_BUILDERS: dict[str, Callable[[dict], list[dict]]] = {
    "alpaca": _sft_alpaca,
    "sharegpt": _sft_sharegpt,
    "openai": _sft_openai,
    "pair": _sft_pair,
}


def detect_sft_format(rec: Any) -> str:
    """alpaca | sharegpt | openai | pair, from a record's keys."""
    if isinstance(rec, dict):
        if "messages" in rec:
            return "openai"
        if "conversations" in rec:
            return "sharegpt"
        if "instruction" in rec and "output" in rec:
            return "alpaca"
        if "prompt" in rec and "response" in rec:
            return "pair"
        keys = sorted(rec)[:12]
    else:
        keys = type(rec).__name__
    raise DataError(
        f"cannot tell the SFT format from the first row (keys: {keys}); expected messages (openai), "
        "conversations (sharegpt), instruction/output (alpaca) or prompt/response (pair); pass --format"
    )


def make_sft_row_fn(fmt: str, system_prompt: str | None = None) -> Callable[[dict, int], dict]:
    """Return process_fn(record, index) -> {"messages": [...]}; raises RowError for a bad record."""
    build = SFT_BUILDERS[fmt]

    def process_fn(rec: Any, index: int) -> dict:
        if not isinstance(rec, dict):
            raise RowError(f"row is {type(rec).__name__}, expected an object")
        msgs = build(rec)
        if system_prompt and not (msgs and msgs[0].get("role") == "system"):
            msgs = [{"role": "system", "content": system_prompt}] + msgs
        problems = check_messages(msgs)
        if problems:
            raise RowError("; ".join(problems))
        return {"messages": msgs}

    return process_fn


# --------------------------------------------------------------------------------------------
# Writing: atomic, streamed in row groups
# --------------------------------------------------------------------------------------------


def _check_paths(input_path: Path, output_path: Path) -> None:
    if output_path.suffix.lower() != ".parquet":
        raise DataError(f"output {output_path}: the name must end in .parquet (verl picks the reader by extension)")
    if input_path.resolve() == output_path.resolve() or (
        output_path.exists() and input_path.exists() and os.path.samefile(input_path, output_path)
    ):
        raise DataError(f"output {output_path} is the input file; choose another output path (inputs are never overwritten)")
    if output_path.is_dir():
        raise DataError(f"output {output_path} is a folder; give a file name ending in .parquet")


def file_mode() -> int:
    """The mode a plain open() would give a new file (0o644 under the usual umask 022).

    mkstemp creates its temp file 0o600; the renamed output gets the ordinary mode instead, so
    other users (a trainer running as another account) can read it.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class AtomicParquetWriter:
    """Write tables to `path` via a temp file in the same folder, renamed into place on success.

    The schema is fixed at construction (parquet has one schema per file). On any exception,
    Ctrl-C included, the temp file is removed and `path` is left as it was.
    """

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> AtomicParquetWriter:
        try:
            self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        return self

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
            self.rows += len(rows)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._writer.close()
            if exc_type is None:
                os.chmod(self.tmp, file_mode())
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)


def _schema_of(rows: list[dict], where: str) -> pa.Schema:
    try:
        return pa.Table.from_pylist(rows).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(f"rows near {where} mix value types in one field ({e}); make each field one type") from e


def _unify(schemas: list[pa.Schema], where: str) -> pa.Schema:
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(
            f"a field changes type between rows (near {where}): {e}; parquet needs one type per field"
        ) from e


def write_parquet(rows: Iterable[dict], path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Write already-built rows (an in-memory list) atomically; returns the number of rows written."""
    rows = list(rows)
    if not rows:
        raise DataError(f"{path}: no rows to write")
    schema = _unify([_schema_of(rows[i : i + batch_size], f"row {i + 1}") for i in range(0, len(rows), batch_size)], "")
    with AtomicParquetWriter(path, schema) as w:
        for i in range(0, len(rows), batch_size):
            w.write_rows(rows[i : i + batch_size])
    return len(rows)


def _convert(
    input_path: str | Path,
    output_path: str | Path,
    process_fn: Callable[[Any, int], dict],
    strict: bool,
    batch_size: int,
    progress: bool,
    format_of: Callable[[Any], str] | None = None,
) -> Report:
    """Two streamed passes: the first builds every row to find rejects and the union schema (parquet
    needs it before the first row group), the second builds them again and writes row groups."""
    input_path, output_path = Path(input_path), Path(output_path)
    _check_paths(input_path, output_path)
    if batch_size < 1:
        raise DataError(f"--batch_size {batch_size}: must be at least 1")
    report = Report(str(input_path), str(output_path))
    schemas, batch, index = [], [], 0
    for where, rec in iter_records(input_path, progress, desc="check"):
        report.rows_in += 1
        try:
            if isinstance(rec, RowError):
                raise rec
            batch.append(process_fn(rec, index))
            index += 1
            if format_of is not None:
                report.formats[format_of(rec)] += 1
        except RowError as e:
            report.rejected.append((where, str(e)))
        if len(batch) >= batch_size:
            schemas.append(_schema_of(batch, where))
            batch = []
    if batch:
        schemas.append(_schema_of(batch, "the end"))
    if strict and report.rejected:
        raise DataError(f"--strict: {report.rows_rejected:,} bad rows, nothing written\n{report.summary()}")
    if not schemas:
        raise DataError(f"no rows to write, nothing written\n{report.summary()}")
    schema = _unify(schemas, str(input_path))

    with AtomicParquetWriter(output_path, schema) as writer:
        batch, index = [], 0
        for _, rec in iter_records(input_path, progress, desc="write"):
            if isinstance(rec, RowError):
                continue
            try:
                batch.append(process_fn(rec, index))
                index += 1
            except RowError:
                continue
            if len(batch) >= batch_size:
                writer.write_rows(batch)
                batch = []
        writer.write_rows(batch)
        if writer.rows != index or writer.rows != report.rows_in - report.rows_rejected:
            raise DataError(f"{input_path} changed while it was being converted; run again")
    report.rows_written = writer.rows
    return report


def json_to_parquet(
    input_path: str | Path,
    output_path: str | Path,
    fmt: str = "auto",
    preset: str | None = None,
    split: str = "train",
    data_source: str | None = None,
    ability: str = "math",
    prompt_template: str | None = None,
    system_prompt: str | None = None,
    prompt_field: str | None = None,
    answer_field: str | None = None,
    id_field: str = "id",
    answer_extract: str = "none",
    strict: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> Report:
    """Convert a JSON/JSONL/CSV file of RL rows to verl's RL parquet; returns the Report.

    preset ("gsm8k" | "math") is a shorthand for fmt. Passing prompt_field or answer_field selects
    fmt="fields". Raises DataError (nothing written) for bad options or paths, with strict=True for
    any bad row, and when no row survives.
    """
    if preset is not None:
        if preset not in ("gsm8k", "math"):
            raise DataError(f"--preset {preset!r}: use gsm8k or math")
        fmt = preset
    if prompt_field or answer_field:
        if fmt not in ("auto", "fields"):
            raise DataError("--prompt_field/--answer_field map a custom format; do not combine them with --format/--preset")
        fmt = "fields"
    process_fn = make_rl_row_fn(
        fmt,
        split=split,
        data_source=data_source,
        ability=ability,
        prompt_template=prompt_template,
        system_prompt=system_prompt,
        prompt_field=prompt_field or "prompt",
        answer_field=answer_field or "ground_truth",
        id_field=id_field,
        answer_extract=answer_extract,
    )

    def format_of(rec):
        return detect_rl_format(rec) if fmt == "auto" else fmt

    return _convert(input_path, output_path, process_fn, strict, batch_size, progress, format_of)


def sft_to_parquet(
    input_path: str | Path,
    output_path: str | Path,
    fmt: str = "auto",
    system_prompt: str | None = None,
    strict: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> Report:
    """Convert Alpaca/ShareGPT/OpenAI/prompt-response rows to a parquet with a `messages` column.

    fmt="auto" reads the first parseable row to pick the format for the whole file.
    """
    if fmt not in SFT_FORMATS:
        raise DataError(f"--format {fmt!r}: use one of {', '.join(SFT_FORMATS)}")
    if fmt == "auto":
        first = next((rec for _, rec in iter_records(input_path) if not isinstance(rec, RowError)), None)
        if first is None:
            raise DataError(f"{input_path}: no parseable rows")
        fmt = detect_sft_format(first)
    process_fn = make_sft_row_fn(fmt, system_prompt=system_prompt)
    return _convert(input_path, output_path, process_fn, strict, batch_size, progress, lambda rec: fmt)


def validate_file(path: str | Path, kind: str = "auto", progress: bool = True) -> Report:
    """Check every row of a data file; returns a Report whose `rejected` lists the bad rows.

    kind: sft (`messages`), rl (verl's RL schema), rl_input (rows `rl` would convert, e.g. the
    batch evaluator's {prompt, ground_truth}), or auto: picked from the first row. Nothing is written.
    """
    if kind not in ("auto", "rl", "sft", "rl_input"):
        raise DataError(f"--kind {kind!r}: use auto, rl, sft or rl_input")
    path = Path(path)
    report = Report(str(path), "-")
    to_rl = make_rl_row_fn("auto")
    for where, rec in iter_records(path, progress, desc="validate"):
        report.rows_in += 1
        if isinstance(rec, RowError):
            report.rejected.append((where, str(rec)))
            continue
        if kind == "auto":
            # `messages` -> SFT, `reward_model` -> verl RL; anything else must convert with `rl`.
            if isinstance(rec, dict) and "messages" in rec:
                kind = "sft"
            elif isinstance(rec, dict) and "reward_model" in rec:
                kind = "rl"
            else:
                kind = "rl_input"
        if kind == "sft":
            problems = check_messages(rec.get("messages")) if isinstance(rec, dict) else ["row is not an object"]
        elif kind == "rl":
            problems = check_rl_row(rec)
        else:
            try:
                to_rl(rec, 0)
                problems = []
            except RowError as e:
                problems = [str(e)]
        if problems:
            report.rejected.append((where, "; ".join(problems)))
        else:
            report.rows_written += 1
        report.formats[kind] += 1
    return report


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m common.data_utils",
        description="Convert JSON/JSONL/CSV rows to verl's RL or SFT parquet, or validate a data file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Offers:")[0].split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="command", required=True)

    rl = sub.add_parser("rl", help="rows -> verl RL parquet (prompt, reward_model, ...)")
    rl.add_argument("input", help=".json (a list), .jsonl or .csv; never modified")
    rl.add_argument("output", help="the .parquet to write (atomically)")
    rl.add_argument("--format", dest="fmt", default="auto", choices=RL_FORMATS,
                    help="row format; auto picks per row among plain, verl, gsm8k, math (default: auto)")
    rl.add_argument("--preset", choices=("gsm8k", "math"),
                    help="gsm8k: question/answer with '#### N'; math: problem/solution with \\boxed{}")
    rl.add_argument("--prompt_field", help="field holding the prompt text (selects --format fields)")
    rl.add_argument("--answer_field", help="field holding the answer (selects --format fields)")
    rl.add_argument("--answer_extract", default="none", choices=("none", "hash", "boxed"),
                    help="with --answer_field: take the text after '####' or the last \\boxed{} (default: none)")
    rl.add_argument("--id_field", default="id", help="field copied to extra_info.id (default: id)")
    rl.add_argument("--data_source", help="data_source for every row (picks verl's reward function)")
    rl.add_argument("--ability", default="math", help="the ability column (default: math)")
    rl.add_argument("--split", default="train", help="extra_info.split (default: train)")
    rl.add_argument("--prompt_template",
                    help="e.g. \"{prompt} Let's think step by step and put your final answer within \\\\boxed{{}}.\"")
    rl.add_argument("--system_prompt", help="a system message put before every prompt")

    sft = sub.add_parser("sft", help="Alpaca/ShareGPT/OpenAI/prompt-response rows -> parquet with `messages`")
    sft.add_argument("input", help=".json (a list), .jsonl or .csv; never modified")
    sft.add_argument("output", help="the .parquet to write (atomically)")
    sft.add_argument("--format", dest="fmt", default="auto", choices=SFT_FORMATS,
                     help="input format; auto looks at the first row (default: auto)")
    sft.add_argument("--system_prompt", help="a system message for conversations that have none")

    for sp in (rl, sft):
        sp.add_argument("--strict", action="store_true", help="fail (write nothing) if any row is bad")
        sp.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows per parquet row group (default: {DEFAULT_BATCH_SIZE})")
        sp.add_argument("--no_progress", action="store_true", help="no progress bar")

    val = sub.add_parser("validate", help="report bad rows of an RL or SFT data file by row number")
    val.add_argument("paths", nargs="+", help=".parquet, .json, .jsonl or .csv files")
    val.add_argument("--kind", default="auto", choices=("auto", "rl", "sft", "rl_input"),
                     help="schema to check; auto: `messages` -> sft, `reward_model` -> rl, else rl_input "
                          "(rows the `rl` command converts)")
    val.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            bad = 0
            for path in args.paths:
                report = validate_file(path, kind=args.kind, progress=not args.no_progress)
                print(f"{path}: {report.rows_in:,} rows, {report.rows_rejected:,} bad")
                for where, reason in report.rejected[:SHOW_REJECTED]:
                    print(f"  {where}: {reason}")
                if report.rows_rejected > SHOW_REJECTED:
                    print(f"  ... and {report.rows_rejected - SHOW_REJECTED:,} more")
                bad += report.rows_rejected + (report.rows_in == 0)
            return 1 if bad else 0
        common = dict(strict=args.strict, batch_size=args.batch_size, progress=not args.no_progress)
        if args.command == "rl":
            report = json_to_parquet(
                args.input, args.output, fmt=args.fmt, preset=args.preset, split=args.split,
                data_source=args.data_source, ability=args.ability, prompt_template=args.prompt_template,
                system_prompt=args.system_prompt, prompt_field=args.prompt_field, answer_field=args.answer_field,
                id_field=args.id_field, answer_extract=args.answer_extract, **common,
            )
        else:
            report = sft_to_parquet(args.input, args.output, fmt=args.fmt, system_prompt=args.system_prompt, **common)
        print(report.summary())
        return 0
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
