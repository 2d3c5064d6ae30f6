"""Turn the data people bring into the parquet files verl trains on, and check them.

    python -m common.data_utils rl  train.jsonl data/train.parquet
    python -m common.data_utils rl  gsm8k_train.jsonl data/train.parquet --preset gsm8k
    python -m common.data_utils rl  math.json data/train.parquet --preset math
    python -m common.data_utils rl  my.jsonl out.parquet --prompt_field q --answer_field a --data_source my/set
    python -m common.data_utils rl  --hf_dataset openai/gsm8k --split train data/gsm8k_train.parquet
    python -m common.data_utils rl  --hf_dataset HuggingFaceH4/MATH-500 --split test data/math500.parquet
    python -m common.data_utils sft alpaca.json sft/data/train.parquet            # format auto-detected
    python -m common.data_utils sft chats.csv out.parquet --format sharegpt
    python -m common.data_utils sft --hf_dataset HuggingFaceH4/ultrachat_200k --split train_sft out.parquet
    python -m common.data_utils validate grpo/data/train.parquet                  # RL or SFT, by columns
    python -m common.data_utils rl --help

Offers:
- json_to_parquet(input_path, output_path, ...): JSON (a list, or an object holding one such as
  {"data": [...]}), JSONL, CSV or a dataset by name (common.hub_data.HubSource) -> verl's RL
  schema (`data_source`, `prompt` [{role, content}], `ability`, `reward_model` {style,
  ground_truth}, `extra_info` {split, index, ...}), the parquet that
  `verl.utils.dataset.rl_dataset.RLHFDataset` reads. Row formats: `plain` ({prompt,
  ground_truth}, optional data_source (default "openai/gsm8k") and id; what the batch evaluator
  reads), `verl` (already in the schema: validated, passed through), presets `gsm8k`
  (question/answer with "#### N") and `math` (problem with answer, or solution with \\boxed{}),
  and `fields` (any JSON, mapped with prompt_field/answer_field). `auto` (the default) picks one
  per row. A preset also appends its instruction to every prompt (PRESET_INSTRUCTIONS, the
  bundled data's `#### N` instruction for gsm8k), unless prompt_template says otherwise.
- sft_to_parquet(input_path, output_path, ...): Alpaca, ShareGPT, OpenAI `messages` or
  prompt/response rows -> a parquet with a `messages` column, the format verl's SFT trainer
  (`MultiTurnSFTDataset`) reads. The format is detected per file; `fmt=` overrides it.
- validate_file(path): reports bad rows of an RL or SFT parquet/JSON/JSONL/CSV (or of rows the
  `rl` command would convert, such as the batch evaluator's test.json) by row number; a file
  that cannot be read (a damaged parquet page, a wrong encoding) is a DataError.
- Row builders, one per format (like `make_map_fn` in verl's examples/data_preprocess/gsm8k.py):
  make_rl_row_fn(...), SFT_BUILDERS; checks: check_rl_row(row), check_messages(messages);
  answer extractors: extract_hash_answer(text), extract_last_boxed(text).
- FileSource(path, encoding): a file as a record source; any object with `name` and
  `records(progress, desc)` (such as common.hub_data.HubSource) converts the same way.
- Reading and writing live in common/data_io.py (re-exported here: iter_records, write_parquet,
  AtomicParquetWriter, file_mode, DataError, RowError).

Every conversion streams its input (JSONL/CSV line by line), writes parquet in row groups of
`batch_size` rows, shows a tqdm bar, and writes atomically: a temp file in the output folder,
renamed over the output only when everything succeeded; on an error, Ctrl-C or SIGTERM nothing
is left. The input is never modified; output == input is refused. Text files are read as UTF-8
(a byte-order mark, as Excel's "CSV UTF-8" writes, is honoured; `encoding=` / --encoding names
another). Bad rows are rejected with their row number and reason, and a warning (logging) names
them; rows repeating an `id` are counted and warned about; `strict=True` / `--strict` fails the
run instead, before anything is written. Zero rows written is an error. JSON documents are parsed
whole (a JSON list cannot be read row by row with the standard library): use JSONL for files that
do not fit in memory.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.data_io import (
    DEFAULT_BATCH_SIZE,
    AtomicParquetWriter,
    DataError,
    RowError,
    Terminated,
    check_output_path,
    file_mode,
    iter_records,
    rows_schema,
    unify_schemas,
    write_parquet,
)

__all__ = [
    "AtomicParquetWriter", "DataError", "FileSource", "GSM8K_INSTRUCTION", "MATH_INSTRUCTION",
    "PRESET_INSTRUCTIONS", "Report", "RowError", "check_messages", "check_rl_row", "extract_hash_answer",
    "extract_last_boxed", "file_mode", "iter_records", "json_to_parquet", "make_rl_row_fn", "make_sft_row_fn",
    "sft_to_parquet", "validate_file", "write_parquet",
]

from common.math_formats import GSM8K_INSTRUCTION, MATH_INSTRUCTION, PRESET_INSTRUCTIONS, extract_hash_answer, extract_last_boxed

logger = logging.getLogger("common.data_utils")

# A summary shows this many rejected rows (and repeated ids); the rest are counted by reason.
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


@dataclass
class Report:
    """Counts of one conversion: rows read, written and rejected (with reasons and row numbers)."""

    input_path: str
    output_path: str
    rows_in: int = 0
    rows_written: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    # Rows whose id an earlier row already had, and the most repeated ids with their counts.
    duplicate_ids: int = 0
    repeated: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        return len(self.rejected)

    def rejected_line(self) -> str:
        """One line naming the first rejected rows and why, for a warning."""
        shown = "; ".join(f"{where}: {reason}" for where, reason in self.rejected[:SHOW_REJECTED])
        more = f"; and {self.rows_rejected - SHOW_REJECTED:,} more" if self.rows_rejected > SHOW_REJECTED else ""
        return f"{self.input_path}: rejected {self.rows_rejected:,} of {self.rows_in:,} rows ({shown}{more})"

    def duplicates_line(self) -> str:
        shown = ", ".join(f"{k!r} x{n}" for k, n in self.repeated)
        return (
            f"{self.input_path}: {self.duplicate_ids:,} rows repeat an id of an earlier row ({shown}); "
            "./test.sh --batch refuses repeated ids: make every id unique"
        )

    def summary(self) -> str:
        lines = [
            f"{self.input_path}: read {self.rows_in:,} rows, wrote {self.rows_written:,} to {self.output_path}, "
            f"rejected {self.rows_rejected:,}"
        ]
        lines += [f"  {note}" for note in self.notes]
        if self.formats:
            lines.append("  formats: " + ", ".join(f"{k} {v:,}" for k, v in self.formats.most_common()))
        if self.duplicate_ids:
            lines.append(f"  warning: {self.duplicates_line()}")
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
# Sources: a file, or anything with `name` and `records(progress, desc)` (common.hub_data.HubSource)
# --------------------------------------------------------------------------------------------


@dataclass
class FileSource:
    """A JSON/JSONL/CSV/parquet file as a record source, read with common.data_io.iter_records."""

    path: Path
    encoding: str | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    def records(self, progress: bool = False, desc: str = "read") -> Iterator[tuple[str, Any]]:
        return iter_records(self.path, progress, desc, self.encoding)


def _as_source(source: Any, encoding: str | None = None) -> Any:
    if hasattr(source, "records") and hasattr(source, "name"):
        return source
    return FileSource(Path(source), encoding)


# --------------------------------------------------------------------------------------------
# Answer extraction
# --------------------------------------------------------------------------------------------

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
        if not math.isfinite(value):
            raise RowError(f"{where} is {value} (NaN or Infinity in the data); give the answer as text or a number")
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
    if "problem" in rec and ("solution" in rec or "answer" in rec):
        return "math"
    # One key of a known pair present: name the missing one rather than "unknown format".
    for have, need in (("prompt", "ground_truth"), ("question", "answer"), ("problem", "solution' or 'answer")):
        if have in rec:
            raise RowError(f"missing field {need!r} (row keys: {sorted(rec)[:12]})")
    raise RowError(
        f"unknown row format (row keys: {sorted(rec)[:12]}); expected {{prompt, ground_truth}}, verl's schema, "
        "gsm8k {question, answer} or math {problem, solution or answer}, or pass --prompt_field/--answer_field"
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
            problem = _require_text(rec, "problem")
            if rec.get("answer") not in (None, ""):
                # MATH-500 and AIME sets carry the final answer apart from the worked solution.
                truth = _ground_truth_text(rec["answer"], "answer")
                solution = str(rec.get("solution") or truth)
            else:
                solution = _require_text(rec, "solution")
                truth = extract_last_boxed(solution)
                if truth is None:
                    raise RowError("no \\boxed{...} answer in 'solution' (and no 'answer' field)")
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
# Conversion: two streamed passes (check, then write)
# --------------------------------------------------------------------------------------------


def _count_ids(report: Report, ids: Counter) -> None:
    repeated = [(k, n) for k, n in ids.most_common(SHOW_REJECTED) if n > 1]
    report.duplicate_ids = sum(n - 1 for n in ids.values() if n > 1)
    report.repeated = repeated


def _convert(
    source: Any,
    output_path: str | Path,
    process_fn: Callable[[Any, int], dict],
    strict: bool,
    batch_size: int,
    progress: bool,
    format_of: Callable[[Any], str] | None = None,
    id_of: Callable[[dict], Any] | None = None,
    notes: list[str] | None = None,
) -> Report:
    """Two streamed passes: the first builds every row to find rejects, repeated ids and the union
    schema (parquet needs it before the first row group), the second builds them again and writes."""
    output_path = Path(output_path)
    check_output_path(output_path, source.path if isinstance(source, FileSource) else None)
    if batch_size < 1:
        raise DataError(f"--batch_size {batch_size}: must be at least 1")
    report = Report(source.name, str(output_path), notes=list(notes or []))
    schemas, batch, index, ids = [], [], 0, Counter()
    for where, rec in source.records(progress, "check"):
        report.rows_in += 1
        try:
            if isinstance(rec, RowError):
                raise rec
            row = process_fn(rec, index)
            batch.append(row)
            index += 1
            if format_of is not None:
                report.formats[format_of(rec)] += 1
            rid = id_of(row) if id_of is not None else None
            if rid is not None:
                ids[str(rid)] += 1
        except RowError as e:
            report.rejected.append((where, str(e)))
        if len(batch) >= batch_size:
            schemas.append(rows_schema(batch, where))
            batch = []
    if batch:
        schemas.append(rows_schema(batch, "the end"))
    _count_ids(report, ids)
    if strict and (report.rejected or report.duplicate_ids):
        problems = f"{report.rows_rejected:,} bad rows" + (f", {report.duplicate_ids:,} repeated ids" if report.duplicate_ids else "")
        raise DataError(f"--strict: {problems}, nothing written\n{report.summary()}")
    if not schemas:
        raise DataError(f"no rows to write, nothing written\n{report.summary()}")
    if report.rejected:
        logger.warning("%s", report.rejected_line())
    if report.duplicate_ids:
        logger.warning("%s", report.duplicates_line())
    schema = unify_schemas(schemas, source.name)

    with AtomicParquetWriter(output_path, schema) as writer:
        batch, index = [], 0
        for _, rec in source.records(progress, "write"):
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
            raise DataError(f"{source.name} changed while it was being converted; run again")
    report.rows_written = writer.rows
    return report


def _rl_id(row: dict) -> Any:
    extra = row.get("extra_info")
    return extra.get("id") if isinstance(extra, dict) else None


def preset_template(preset: str) -> str:
    """The prompt template --preset applies: the prompt, a space, the preset's instruction."""
    instruction = PRESET_INSTRUCTIONS[preset]
    return "{prompt} " + instruction.replace("{", "{{").replace("}", "}}")


def json_to_parquet(
    input_path: Any,
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
    encoding: str | None = None,
) -> Report:
    """Convert a JSON/JSONL/CSV file (or a record source such as common.hub_data.HubSource) to
    verl's RL parquet; returns the Report.

    preset ("gsm8k" | "math") is a shorthand for fmt that also appends PRESET_INSTRUCTIONS[preset]
    to every prompt unless prompt_template is given (pass "{prompt}" for the bare question).
    Passing prompt_field or answer_field selects fmt="fields". Rejected rows and repeated ids are
    logged as warnings. Raises DataError (nothing written) for bad options, paths or files, with
    strict=True for any bad row or repeated id, and when no row survives.
    """
    notes = []
    if preset is not None:
        if preset not in PRESET_INSTRUCTIONS:
            raise DataError(f"--preset {preset!r}: use gsm8k or math")
        fmt = preset
        if prompt_template is None:
            prompt_template = preset_template(preset)
            notes.append(
                f"prompt instruction (--preset {preset}; --prompt_template replaces it): {PRESET_INSTRUCTIONS[preset]}"
            )
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
    for note in notes:
        logger.info("%s", note)

    def format_of(rec):
        return detect_rl_format(rec) if fmt == "auto" else fmt

    source = _as_source(input_path, encoding)
    return _convert(source, output_path, process_fn, strict, batch_size, progress, format_of, _rl_id, notes)


def sft_to_parquet(
    input_path: Any,
    output_path: str | Path,
    fmt: str = "auto",
    system_prompt: str | None = None,
    strict: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    encoding: str | None = None,
) -> Report:
    """Convert Alpaca/ShareGPT/OpenAI/prompt-response rows to a parquet with a `messages` column.

    fmt="auto" reads the first parseable row to pick the format for the whole file.
    """
    if fmt not in SFT_FORMATS:
        raise DataError(f"--format {fmt!r}: use one of {', '.join(SFT_FORMATS)}")
    source = _as_source(input_path, encoding)
    if fmt == "auto":
        first = next((rec for _, rec in source.records() if not isinstance(rec, RowError)), None)
        if first is None:
            raise DataError(f"{source.name}: no parseable rows")
        fmt = detect_sft_format(first)
    process_fn = make_sft_row_fn(fmt, system_prompt=system_prompt)
    return _convert(source, output_path, process_fn, strict, batch_size, progress, lambda rec: fmt)


def _check_one(kind: str, rec: Any, to_rl: Callable[[dict, int], dict]) -> list[str]:
    """Problems of one row for validate_file; a crash in a check is a problem too, never a pass."""
    try:
        if kind == "sft":
            return check_messages(rec.get("messages")) if isinstance(rec, dict) else ["row is not an object"]
        if kind == "rl":
            return check_rl_row(rec)
        to_rl(rec, 0)
        return []
    except RowError as e:
        return [str(e)]
    except Exception as e:  # a value no check foresaw: the row is bad, and the file fails
        return [f"check failed ({type(e).__name__}: {e})"]


def validate_file(path: str | Path, kind: str = "auto", progress: bool = True, encoding: str | None = None) -> Report:
    """Check every row of a data file; returns a Report whose `rejected` lists the bad rows.

    kind: sft (`messages`), rl (verl's RL schema), rl_input (rows `rl` would convert, e.g. the
    batch evaluator's {prompt, ground_truth}), or auto: picked from the first row. Every page of a
    parquet file is decoded (checksums verified when present); a file that cannot be read raises
    DataError naming the row group and column. Repeated ids are counted (Report.duplicate_ids).
    Nothing is written.
    """
    if kind not in ("auto", "rl", "sft", "rl_input"):
        raise DataError(f"--kind {kind!r}: use auto, rl, sft or rl_input")
    path = Path(path)
    report = Report(str(path), "-")
    to_rl = make_rl_row_fn("auto")
    ids = Counter()
    for where, rec in iter_records(path, progress, "validate", encoding):
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
        problems = _check_one(kind, rec, to_rl)
        if problems:
            report.rejected.append((where, "; ".join(problems)))
        else:
            report.rows_written += 1
        report.formats[kind] += 1
        rid = _rl_id(rec) if kind == "rl" and isinstance(rec, dict) else (rec.get("id") if isinstance(rec, dict) else None)
        if rid is not None:
            ids[str(rid)] += 1
    _count_ids(report, ids)
    return report


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m common.data_utils",
        description="Convert JSON/JSONL/CSV rows or a dataset by name to verl's RL or SFT parquet, "
        "or validate a data file.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Offers:")[0].split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="command", required=True)
    files_help = ("INPUT OUTPUT: INPUT is .json (a list, or {\"data\": [...]}), .jsonl, .csv or .tsv, never "
                  "modified; OUTPUT the .parquet to write (atomically). With --hf_dataset: only OUTPUT")

    rl = sub.add_parser("rl", help="rows -> verl RL parquet (prompt, reward_model, ...)")
    rl.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    rl.add_argument("--format", dest="fmt", default="auto", choices=RL_FORMATS,
                    help="row format; auto picks per row among plain, verl, gsm8k, math (default: auto)")
    rl.add_argument("--preset", choices=tuple(PRESET_INSTRUCTIONS),
                    help="gsm8k: question/answer with '#### N'; math: problem with answer or solution with "
                         "\\boxed{}; also appends the preset's instruction to every prompt (printed)")
    rl.add_argument("--prompt_field", help="field holding the prompt text (selects --format fields)")
    rl.add_argument("--answer_field", help="field holding the answer (selects --format fields)")
    rl.add_argument("--answer_extract", default="none", choices=("none", "hash", "boxed"),
                    help="with --answer_field: take the text after '####' or the last \\boxed{} (default: none)")
    rl.add_argument("--id_field", default="id", help="field copied to extra_info.id (default: id)")
    rl.add_argument("--data_source", help="data_source for every row (picks verl's reward function)")
    rl.add_argument("--ability", default="math", help="the ability column (default: math)")
    rl.add_argument("--split", default=None,
                    help="extra_info.split, and the split read with --hf_dataset (default: train, or the "
                         "dataset's only split for known sets such as MATH-500's test)")
    rl.add_argument("--prompt_template",
                    help="e.g. \"{prompt} Let's think step by step and put your final answer within \\\\boxed{{}}.\"; "
                         "replaces the --preset instruction (\"{prompt}\" keeps the bare question)")
    rl.add_argument("--system_prompt", help="a system message put before every prompt")

    sft = sub.add_parser("sft", help="Alpaca/ShareGPT/OpenAI/prompt-response rows -> parquet with `messages`")
    sft.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    sft.add_argument("--format", dest="fmt", default="auto", choices=SFT_FORMATS,
                     help="input format; auto looks at the first row (default: auto)")
    sft.add_argument("--system_prompt", help="a system message for conversations that have none")
    sft.add_argument("--split", default=None, help="the split read with --hf_dataset (default: train)")

    for sp in (rl, sft):
        sp.add_argument("--hf_dataset", metavar="NAME",
                        help="read a dataset by name instead of INPUT: a Hugging Face hub id (through the "
                             "`datasets` cache; works offline once cached), a local copy under "
                             "$LOCAL_DATASETS_DIR/NAME, or a folder saved with save_to_disk")
        sp.add_argument("--hf_config", metavar="C", help="the dataset's config (e.g. main for openai/gsm8k)")
        sp.add_argument("--strict", action="store_true", help="fail (write nothing) if any row is bad or an id repeats")
        sp.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows per parquet row group (default: {DEFAULT_BATCH_SIZE})")
        sp.add_argument("--encoding", help="text encoding of INPUT (default: UTF-8, or what its byte-order mark "
                                           "says); e.g. cp1252 for Excel on Windows, latin-1")
        sp.add_argument("--no_progress", action="store_true", help="no progress bar")

    val = sub.add_parser("validate", help="report bad rows of an RL or SFT data file by row number")
    val.add_argument("paths", nargs="+", help=".parquet, .json, .jsonl, .csv or .tsv files")
    val.add_argument("--kind", default="auto", choices=("auto", "rl", "sft", "rl_input"),
                     help="schema to check; auto: `messages` -> sft, `reward_model` -> rl, else rl_input "
                          "(rows the `rl` command converts)")
    val.add_argument("--encoding", help="text encoding of JSON/CSV files (default: UTF-8 or their byte-order mark)")
    val.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _validate_paths(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.paths:
        try:
            report = validate_file(path, kind=args.kind, progress=not args.no_progress, encoding=args.encoding)
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            bad += 1
            continue
        except Exception as e:  # a check that crashes fails the file; it never passes with a warning
            print(f"error: {path}: validation failed ({type(e).__name__}: {e}); the file is not usable as is",
                  file=sys.stderr)
            bad += 1
            continue
        print(f"{path}: {report.rows_in:,} rows, {report.rows_rejected:,} bad")
        for where, reason in report.rejected[:SHOW_REJECTED]:
            print(f"  {where}: {reason}")
        if report.rows_rejected > SHOW_REJECTED:
            print(f"  ... and {report.rows_rejected - SHOW_REJECTED:,} more")
        if report.duplicate_ids:
            print(f"  warning: {report.duplicates_line()}")
        bad += report.rows_rejected + (report.rows_in == 0)
    return 1 if bad else 0


def _source_and_output(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Any, str]:
    """(record source, output path) from the positional files and --hf_dataset."""
    if args.hf_dataset:
        if len(args.files) != 1:
            parser.error(f"with --hf_dataset give only the OUTPUT .parquet, got {len(args.files)} files")
        if args.encoding:
            parser.error("--encoding is for INPUT files; `datasets` decodes datasets by name itself")
        from common.hub_data import HubSource, known_dataset

        known = known_dataset(args.hf_dataset)
        if args.split is None:
            args.split = known.split if known else "train"
        config = args.hf_config or (known.config if known else None)
        return HubSource(args.hf_dataset, config, args.split), args.files[0]
    if len(args.files) != 2:
        parser.error(f"give INPUT and OUTPUT (or --hf_dataset NAME and OUTPUT), got {len(args.files)} files")
    if args.hf_config:
        parser.error("--hf_config goes with --hf_dataset")
    if args.split is None:
        args.split = "train"
    return FileSource(Path(args.files[0]), args.encoding), args.files[1]


def _hub_defaults(args: argparse.Namespace) -> None:
    """A known dataset by name brings its preset and data_source unless the options set the format."""
    if not args.hf_dataset:
        return
    from common.hub_data import known_dataset

    known = known_dataset(args.hf_dataset)
    custom = args.fmt != "auto" or args.preset or args.prompt_field or args.answer_field
    if known and not custom:
        args.preset = known.preset
        if args.data_source is None:
            args.data_source = known.data_source


@contextlib.contextmanager
def _quiet_logger() -> Iterator[None]:
    # The CLI prints the report (rejected rows, repeated ids) itself; the logging warnings are for
    # Python callers and would print the same lines twice here.
    old = logger.propagate
    logger.propagate = False
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            return _validate_paths(args)
        source, output = _source_and_output(parser, args)
        common = dict(strict=args.strict, batch_size=args.batch_size, progress=not args.no_progress)
        with _quiet_logger():
            if args.command == "rl":
                _hub_defaults(args)
                report = json_to_parquet(
                    source, output, fmt=args.fmt, preset=args.preset, split=args.split,
                    data_source=args.data_source, ability=args.ability, prompt_template=args.prompt_template,
                    system_prompt=args.system_prompt, prompt_field=args.prompt_field, answer_field=args.answer_field,
                    id_field=args.id_field, answer_extract=args.answer_extract, **common,
                )
            else:
                report = sft_to_parquet(source, output, fmt=args.fmt, system_prompt=args.system_prompt, **common)
        print(report.summary())
        return 0
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    except Terminated as e:
        print(f"terminated (signal {e.code - 128}): nothing written", file=sys.stderr)
        return e.code


if __name__ == "__main__":
    sys.exit(main())
