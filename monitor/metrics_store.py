"""Columnar metrics: verl's JSONL parsed by pyarrow into numpy columns, merged by step.

Offers:
    Block                       parsed rows of one read: steps (int64), {key: float64 column},
                                optional per-row launch index (console logs).
    parse_jsonl_block(data, first_line_no, path) -> (Block, [CorruptLine], corrupt count)
                                pyarrow.json on the whole block (the fast path); a block pyarrow
                                refuses or with any odd row (bad JSON, a step out of range, wrong
                                types) is parsed again line by line, so each bad line is named.
    parse_console_block(data, first_line_no, path, state) -> (Block, [CorruptLine], corrupt count)
    ConsoleState                launch headers and "a traceback follows the last header" of a log.
    MetricsStore                one run's merged table: sorted unique steps, a launch index per
                                row, one float64 column per key (NaN = not logged). `upsert(block,
                                launch)` merges a block: a later launch replaces a step's row, the
                                same launch logging a step twice keeps both (the later value wins
                                per key), an earlier launch never overwrites. Appending new steps
                                costs O(new rows) (columns grow geometrically).

Why columns: 50,000 steps x 80 metrics is 32 MB as float64 columns and ~270 MB as Python dicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from monitor.log_parser import (
    MAX_STEP,
    TRACEBACK_MARKERS,
    CorruptLine,
    parse_console_line,
    parse_jsonl_line,
    parse_launch_header,
)

__all__ = [
    "Block", "ConsoleState", "MetricsStore", "parse_jsonl_block", "parse_console_block", "rows_to_block", "MAX_EXAMPLES",
    "MAX_KEYS",
]

# How many examples of corrupt lines each file keeps for display (the count is always exact).
MAX_EXAMPLES = 5
# Metric keys kept per run: verl logs ~80-300; a writer logging ids as keys would otherwise make one
# column per id (1M keys x 256 rows of capacity = 2 GB). Keys past this are dropped and counted.
MAX_KEYS = 4096
_NUMERIC = (pa.types.is_integer, pa.types.is_floating, pa.types.is_boolean, pa.types.is_null)


@dataclass
class Block:
    """Rows in file order. `launch` (per row) is set only by console logs, where launch headers
    appear between the rows; JSONL blocks take their file's launch index."""

    steps: np.ndarray
    cols: dict[str, np.ndarray]
    launch: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.steps)

    @staticmethod
    def empty() -> Block:
        return Block(np.empty(0, np.int64), {})


def rows_to_block(steps: list[int], rows: list[dict[str, float]], launch: list[int] | None = None) -> Block:
    """Parsed records (step, {key: value}) -> a Block (a key a record lacks is NaN there)."""
    if not steps:
        return Block.empty()
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    cols = {k: np.fromiter((r.get(k, math.nan) for r in rows), dtype=np.float64, count=len(rows)) for k in keys}
    return Block(np.asarray(steps, dtype=np.int64), cols,
                 None if launch is None else np.asarray(launch, dtype=np.int32))


def _robust_jsonl(data: bytes, first_line_no: int, path: str) -> tuple[Block, list[CorruptLine], int]:
    steps, rows, examples, count = [], [], [], 0
    for i, line in enumerate(data.split(b"\n")[:-1]):
        if not line.strip():
            continue
        try:
            step, metrics = parse_jsonl_line(line)
        except ValueError as exc:
            count += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append(CorruptLine(path, first_line_no + i, str(exc)))
            continue
        steps.append(step)
        rows.append(metrics)
    return rows_to_block(steps, rows), examples, count


# verl logs ~100 metrics a step (~5 KB a line); a line past this is not verl's, and goes to the
# line-by-line reader, which stops at MAX_KEYS keys.
FAST_LINE_MAX = 256 * 1024


def _longest_line(data) -> int:
    view = bytes(data)
    longest, start = 0, 0
    while True:
        end = view.find(b"\n", start)
        if end < 0:
            return max(longest, len(view) - start)
        longest = max(longest, end - start)
        start = end + 1


def _fast_jsonl(data) -> Block | None:
    """pyarrow's multi-threaded JSON reader on the whole block; None when any row is odd."""
    if _longest_line(data) > FAST_LINE_MAX:
        return None  # thousands of keys in one record: pyarrow infers a struct per key (seconds)
    try:
        table = pj.read_json(pa.BufferReader(pa.py_buffer(data)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, OverflowError):
        return None
    names = table.column_names
    if "step" not in names or "data" not in names or table.num_rows == 0:
        return None
    step = table.column("step")
    data_col = table.column("data")
    if step.null_count or data_col.null_count or not pa.types.is_struct(data_col.type):
        return None
    if pa.types.is_integer(step.type):
        steps = step.to_numpy().astype(np.int64, copy=False)
        if steps.min() < 0 or steps.max() > MAX_STEP:
            return None
    elif pa.types.is_floating(step.type):
        raw = step.to_numpy()
        if not (np.isfinite(raw).all() and (raw == np.round(raw)).all() and raw.min() >= 0 and raw.max() <= MAX_STEP):
            return None
        steps = raw.astype(np.int64)
    else:
        return None
    struct = data_col.combine_chunks() if isinstance(data_col, pa.ChunkedArray) else data_col
    cols: dict[str, np.ndarray] = {}
    for i, fld in enumerate(struct.type):
        if not any(check(fld.type) for check in _NUMERIC):
            continue  # verl's DAPO diagnostic dict, strings: not plottable
        child = struct.field(i)
        cols[fld.name] = pc.cast(child, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return Block(steps, cols)


def parse_jsonl_block(data, first_line_no: int, path: str) -> tuple[Block, list[CorruptLine], int]:
    """Parse a block of complete verl file-logger lines.

    Input:  bytes or memoryview ending with a newline; the line number of its first line; the
            file's path (for the corrupt-line examples).
    Output: (Block in file order, up to MAX_EXAMPLES corrupt-line examples, corrupt line count).
    """
    block = _fast_jsonl(data)
    if block is not None:
        return block, [], 0
    return _robust_jsonl(bytes(data), first_line_no, path)


@dataclass
class ConsoleState:
    """What a console log says besides metrics: launch headers, and whether a Python traceback
    was printed after the last header."""

    launches: list[dict] = field(default_factory=list)
    failed_after_last_launch: bool = False


def parse_console_block(data, first_line_no: int, path: str, state: ConsoleState) -> tuple[Block, list[CorruptLine], int]:
    """Parse a block of console-log lines (verl step lines, launcher headers, anything else).

    Each row's launch index is the number of headers seen before it, minus one (0 without headers).
    """
    steps, rows, launch, examples, count = [], [], [], [], 0
    for i, line in enumerate(bytes(data).split(b"\n")[:-1]):
        header = parse_launch_header(line) if b"==== launch" in line else None
        if header is not None:
            state.launches.append(header)
            state.failed_after_last_launch = False
            continue
        if any(marker in line for marker in TRACEBACK_MARKERS):
            state.failed_after_last_launch = True
            continue
        try:
            parsed = parse_console_line(line)
        except ValueError as exc:
            count += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append(CorruptLine(path, first_line_no + i, str(exc)))
            continue
        if parsed is None:
            continue
        steps.append(parsed[0])
        rows.append(parsed[1])
        launch.append(max(0, len(state.launches) - 1))
    return rows_to_block(steps, rows, launch), examples, count


def _dedupe(steps: np.ndarray, cols: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows of one launch -> sorted unique steps; a step logged twice keeps the last non-NaN
    value per key (verl logs validation metrics as a second record of the same step)."""
    if len(steps) < 2 or bool((np.diff(steps) > 0).all()):
        return steps, cols
    if not cols:
        return np.unique(steps), cols
    frame = pd.DataFrame(cols, copy=False)
    grouped = frame.groupby(steps, sort=True).last()  # last() skips NaN: per key, the last logged value
    return grouped.index.to_numpy(dtype=np.int64), {k: grouped[k].to_numpy(dtype=np.float64) for k in cols}


class MetricsStore:
    """Merged metrics of one run, one float64 numpy column per key. Not thread-safe on its own."""

    def __init__(self):
        self.n = 0
        self._steps = np.empty(0, np.int64)
        self._launch = np.empty(0, np.int32)
        self._cols: dict[str, np.ndarray] = {}
        # launch -> [seconds of timing_s/step, rows] of its steps a later launch logged again: a
        # resumed run replaces the end of the crashed launch, and its wall times need that length.
        self.superseded: dict[int, list] = {}
        self.dropped_keys: set[str] = set()  # past MAX_KEYS (a few kept for the message)
        self.dropped_count = 0

    # ---- reading -------------------------------------------------------------------------
    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self.n]

    @property
    def launch(self) -> np.ndarray:
        return self._launch[: self.n]

    @property
    def keys(self) -> list[str]:
        return list(self._cols)

    def column(self, key: str) -> np.ndarray:
        """A read-only view of one column (all NaN when the key was never logged)."""
        col = self._cols.get(key)
        if col is None:
            return np.full(self.n, np.nan)
        view = col[: self.n]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        return int(self._steps.nbytes + self._launch.nbytes + sum(c.nbytes for c in self._cols.values()))

    # ---- writing -------------------------------------------------------------------------
    def _ensure(self, rows: int) -> None:
        """Capacity for `rows` rows; every float cell past n stays NaN (absent keys need no write)."""
        cap = len(self._steps)
        if rows <= cap:
            return
        new_cap = max(rows, int(cap * 1.25) + 256)
        self._steps = np.concatenate([self._steps[: self.n], np.zeros(new_cap - self.n, np.int64)])
        self._launch = np.concatenate([self._launch[: self.n], np.zeros(new_cap - self.n, np.int32)])
        for key, col in self._cols.items():
            grown = np.full(new_cap, np.nan)
            grown[: self.n] = col[: self.n]
            self._cols[key] = grown

    def _col_for_write(self, key: str) -> np.ndarray | None:
        col = self._cols.get(key)
        if col is None:
            if len(self._cols) >= MAX_KEYS:
                if key not in self.dropped_keys:
                    self.dropped_count += 1
                    if len(self.dropped_keys) < 5:
                        self.dropped_keys.add(key)
                return None
            col = self._cols[key] = np.full(len(self._steps), np.nan)
        return col

    def compact(self) -> None:
        """Drop spare capacity (after a cold load: the table is final until the run grows)."""
        if len(self._steps) == self.n:
            return
        self._steps = self._steps[: self.n].copy()
        self._launch = self._launch[: self.n].copy()
        self._cols = {k: v[: self.n].copy() for k, v in self._cols.items()}

    def upsert(self, block: Block, launch: int = 0) -> None:
        """Merge a block read from the source of launch index `launch` (see the class docstring)."""
        if not len(block):
            return
        if block.launch is None:
            self._upsert_launch(block.steps, block.cols, launch)
            return
        # Console logs: a header may sit inside the block; merge each launch's rows in order.
        cuts = np.flatnonzero(np.diff(block.launch)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(block)]):
            self._upsert_launch(block.steps[lo:hi], {k: v[lo:hi] for k, v in block.cols.items()}, int(block.launch[lo]))

    def _upsert_launch(self, steps: np.ndarray, cols: dict[str, np.ndarray], launch: int) -> None:
        steps, cols = _dedupe(steps, cols)
        n = self.n
        if n == 0 or steps[0] > self._steps[n - 1]:
            self._append(steps, cols, launch)
            return
        have = self._steps[:n]
        idx = np.searchsorted(have, steps)
        found = (idx < n) & (have[np.minimum(idx, n - 1)] == steps)
        if found.any():
            rows = idx[found]
            old = self._launch[rows]
            keep = old <= launch  # an earlier launch never overwrites a later one
            replace = rows[keep & (old < launch)]
            if len(replace):
                # A resumed launch logged this step again: its row replaces the old one whole.
                timing = self._cols.get("timing_s/step")
                for old_launch in np.unique(self._launch[replace]):
                    rows_old = replace[self._launch[replace] == old_launch]
                    entry = self.superseded.setdefault(int(old_launch), [0.0, 0])
                    if timing is not None:
                        entry[0] += float(np.nansum(timing[rows_old]))
                    entry[1] += len(rows_old)
                for col in self._cols.values():
                    col[replace] = np.nan
                self._launch[replace] = launch
            write_rows = rows[keep]
            for key, values in cols.items():
                vals = values[found][keep]
                ok = ~np.isnan(vals)
                if ok.any():
                    col = self._col_for_write(key)
                    if col is not None:
                        col[write_rows[ok]] = vals[ok]
        new = ~found
        if new.any():
            self._append(steps[new], {k: v[new] for k, v in cols.items()}, launch)
            if not bool((np.diff(self._steps[: self.n]) > 0).all()):
                self._sort()

    def _append(self, steps: np.ndarray, cols: dict[str, np.ndarray], launch: int) -> None:
        m = len(steps)
        self._ensure(self.n + m)
        lo, hi = self.n, self.n + m
        self._steps[lo:hi] = steps
        self._launch[lo:hi] = launch
        for key, values in cols.items():
            col = self._col_for_write(key)
            if col is not None:
                col[lo:hi] = values
        self.n = hi

    def _sort(self) -> None:
        order = np.argsort(self._steps[: self.n], kind="stable")
        self._steps[: self.n] = self._steps[: self.n][order]
        self._launch[: self.n] = self._launch[: self.n][order]
        for col in self._cols.values():
            col[: self.n] = col[: self.n][order]

    def frame(self, keys: list[str] | None = None, extra: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """The table as a DataFrame: `step`, `_launch`, then the requested keys (all by default;
        keys never logged are left out), then `extra` columns (one value per row). Columns are
        copies: the store may grow meanwhile."""
        wanted = self.keys if keys is None else [k for k in keys if k in self._cols]
        data = {"step": self._steps[: self.n].copy(), "_launch": self._launch[: self.n].copy()}
        for key in wanted:
            data[key] = self._cols[key][: self.n].copy()
        data.update(extra or {})
        return pd.DataFrame(data, copy=False)
