"""The reward guard's error log, `<run_dir>/reward_errors.jsonl`, read incrementally from the end.

Each line is one failed reward call:
    {"time": "<ISO-8601 UTC>", "kind": "exception"|"timeout"|"nan"|"inf"|"not_a_number",
     "data_source": str, "error": str, "excerpt": str, "first": bool}

Offers:
    REWARD_ERRORS_FILE      "reward_errors.jsonl"
    RewardErrorLog(path)    `refresh()` reads only what was appended; then:
                            count (exact), by_kind (Counter), distinct() -> [DistinctError],
                            times (unix seconds, sorted) and timeout_times, for the per-step share.
                            A file larger than TAIL_BYTES is counted whole (newlines only) but
                            parsed only in its last TAIL_BYTES: a guard that logged every call of
                            a long run costs one pass of counting, not a parse of every line.
    DistinctError           kind, error (redacted), data_source, count, first/last time, excerpt.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from monitor.log_parser import TailReader, parse_iso
from common.redaction import redact_for_display as redact

__all__ = ["REWARD_ERRORS_FILE", "RewardErrorLog", "DistinctError", "KINDS"]

REWARD_ERRORS_FILE = "reward_errors.jsonl"
KINDS = ("exception", "timeout", "nan", "inf", "not_a_number")
# Parse at most the last 16 MB (~40,000 errors of 400 bytes); count the rest by newlines.
TAIL_BYTES = 16 * 2**20
# Distinct errors kept for display; more are folded into the count of the last one shown.
MAX_DISTINCT = 50
# Characters of an error message that make it distinct (tracebacks differ in their tails).
ERROR_KEY_CHARS = 200


@dataclass
class DistinctError:
    """One distinct failure (same kind and message), with how often and when it happened."""

    kind: str
    error: str
    data_source: str
    count: int
    first_time: float | None
    last_time: float | None
    excerpt: str


class RewardErrorLog:
    """Incremental reader of one reward_errors.jsonl (absent file = no errors)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.reader = TailReader(self.path)
        self._clear()

    def _clear(self) -> None:
        self.count = 0
        self.parsed = 0
        self.corrupt = 0
        self.by_kind: Counter = Counter()
        self._distinct: dict[tuple[str, str], DistinctError] = {}
        self._times: list[float] = []
        self._timeouts: list[float] = []
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def refresh(self) -> bool:
        """Read what was appended. Returns True when anything changed."""
        if not self.path.is_file():
            changed = self.count > 0
            if changed:
                self._clear()
                self.reader = TailReader(self.path)
            return changed
        if not self.reader.changed():
            return False
        if self.reader.offset == 0:
            self._skip_to_tail()
        changed = False
        for block, _ in self.reader.read_chunks():
            if self.reader.reset and not changed:
                self._clear()
            changed = True
            for line in bytes(block).split(b"\n")[:-1]:
                if line.strip():
                    self._add(line)
        if self.reader.reset and not changed:
            self._clear()
            changed = True
        if changed:
            self._sorted = None
        return changed

    def _skip_to_tail(self) -> None:
        """A big file: count the lines before the last TAIL_BYTES without parsing them."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return
        if size <= TAIL_BYTES:
            return
        start = size - TAIL_BYTES
        skipped = 0
        with open(self.path, "rb") as f:
            pos = 0
            while pos < start:
                piece = f.read(min(8 * 2**20, start - pos))
                if not piece:
                    break
                skipped += piece.count(b"\n")
                pos += len(piece)
            # Start at the first line boundary inside the tail window.
            rest = f.read(min(2**20, size - start))
            cut = rest.find(b"\n")
            if cut >= 0:
                skipped += 1
                start += cut + 1
            f.seek(0)
            head = f.read(64)
        self.count += skipped
        reader = self.reader
        reader.offset, reader.lines_read, reader._head = start, skipped, head
        reader._inode = os.stat(self.path).st_ino

    def _add(self, line: bytes) -> None:
        self.count += 1
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.corrupt += 1
            return
        if not isinstance(rec, dict):
            self.corrupt += 1
            return
        self.parsed += 1
        kind = str(rec.get("kind") or "unknown")[:40]
        self.by_kind[kind] += 1
        when = parse_iso(rec.get("time"))
        t = when.timestamp() if when else None
        if t is not None:
            self._times.append(t)
            if kind == "timeout":
                self._timeouts.append(t)
        error = redact(str(rec.get("error") or ""))[:1000]
        key = (kind, error[:ERROR_KEY_CHARS])
        entry = self._distinct.get(key)
        if entry is None:
            if len(self._distinct) >= MAX_DISTINCT:
                key = ("other", "(more distinct errors than shown)")
                entry = self._distinct.get(key)
            if entry is None:
                entry = self._distinct[key] = DistinctError(
                    key[0], error if key[0] != "other" else key[1], redact(str(rec.get("data_source") or ""))[:200],
                    0, t, t, redact(str(rec.get("excerpt") or ""))[:500])
        entry.count += 1
        if t is not None:
            entry.first_time = t if entry.first_time is None else min(entry.first_time, t)
            entry.last_time = t if entry.last_time is None else max(entry.last_time, t)

    def distinct(self) -> list[DistinctError]:
        """Distinct errors, most frequent first."""
        return sorted(self._distinct.values(), key=lambda e: (-e.count, e.first_time or 0.0))

    @property
    def times(self) -> np.ndarray:
        """Unix times of the parsed errors, sorted."""
        return self._arrays()[0]

    @property
    def timeout_times(self) -> np.ndarray:
        return self._arrays()[1]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            self._sorted = (np.sort(np.asarray(self._times, dtype=np.float64)),
                            np.sort(np.asarray(self._timeouts, dtype=np.float64)))
        return self._sorted
