"""Parsers for the logs verl writes, and an incremental line reader.

Offers:
    TailReader            reads only the complete lines appended since the last call; restarts
                          from byte 0 when a file was truncated, rotated or rewritten.
    parse_console_line    one console-logger line ("step:N - key:value - ...") -> (step, metrics).
    parse_launch_header   the launcher's "==== launch <ISO> pid=N method=M ====" line -> dict.
    parse_jsonl_line      one file-logger line ({"step": N, "data": {...}}) -> (step, metrics).
    MetricsFile           incremental parse state of one metrics file (JSONL or console log).

Formats (read off verl 0.9.1):
    console  verl/utils/logger/aggregate_logger.py::concat_dict_to_str joins
             f"{k}:{pprint.pformat(v)}" with " - ", so numpy 2 scalars print as np.float64(0.5),
             NaN as nan; Ray may prefix the line with "(TaskRunner pid=123) " and colour it.
    file     verl/utils/tracking.py::FileLogger writes orjson.dumps({"step": step, "data": data})
             plus b"\\n"; orjson writes NaN and inf as null, so null is read back as NaN.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

__all__ = [
    "TailReader",
    "MetricsFile",
    "parse_console_line",
    "parse_launch_header",
    "parse_jsonl_line",
    "CorruptLine",
]

# ANSI colour / cursor sequences (Ray colours its worker prefixes).
_ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
# "step:12 - " anywhere in the line: Ray puts "(TaskRunner pid=123) " in front of it.
_STEP_RE = re.compile(rb"(?:^|[\s)\]])step:(-?\d+)(?: - |\s*$)")
# np.float64(0.5), np.int64(3), np.float32(1e-05), np.bool_(True)
_NUMPY_WRAP_RE = re.compile(r"^np\.\w+\((.*)\)$")
_HEADER_RE = re.compile(rb"==== launch (\S+) pid=(\d+)(?: method=(\S+))?.*====")
_TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b"Error executing job with overrides")

# How many examples of corrupt lines each file keeps for display (the count is always exact).
_MAX_CORRUPT_EXAMPLES = 5


@dataclass
class CorruptLine:
    """A line that could not be parsed: where it is and why."""

    path: str
    line_no: int
    reason: str


def _to_float(text: str) -> float | None:
    """'0.5' / 'np.float64(0.5)' / 'nan' / 'True' -> float; anything else -> None."""
    text = text.strip()
    m = _NUMPY_WRAP_RE.match(text)
    if m:
        text = m.group(1).strip()
    if text in ("True", "False"):
        return 1.0 if text == "True" else 0.0
    try:
        return float(text)
    except ValueError:
        return None


def parse_console_line(line: bytes) -> tuple[int, dict[str, float]] | None:
    """Parse one console-logger line.

    Input:  raw bytes of one line, e.g. b"(TaskRunner pid=7) step:3 - actor/pg_loss:np.float64(0.1)".
    Output: (3, {"actor/pg_loss": 0.1}); None when the line is not a step line.
    Raises ValueError when the line is a step line but a field cannot be read.
    """
    if b"step:" not in line:
        return None
    clean = _ANSI_RE.sub(b"", line).rstrip(b"\r\n")
    m = _STEP_RE.search(clean)
    if m is None:
        return None
    step = int(m.group(1))
    rest = clean[m.end():].decode("utf-8", errors="replace")
    metrics: dict[str, float] = {}
    if not rest.strip():
        return step, metrics
    for part in rest.split(" - "):
        # Values never contain ':' (numbers only), keys may in principle: split on the last one.
        key, sep, value = part.rpartition(":")
        if not sep or not key:
            raise ValueError(f"field {part[:60]!r} is not key:value")
        number = _to_float(value)
        if number is None:
            raise ValueError(f"value of {key!r} is not a number: {value[:40]!r}")
        metrics[key.strip()] = number
    return step, metrics


def parse_launch_header(line: bytes) -> dict | None:
    """Parse the launcher's header line.

    Input:  b"==== launch 2026-11-21T10:00:00Z pid=1234 method=grpo ===="
    Output: {"started": datetime(UTC), "pid": 1234, "method": "grpo"}; None for other lines.
    """
    if b"==== launch" not in line:
        return None
    m = _HEADER_RE.search(_ANSI_RE.sub(b"", line))
    if m is None:
        return None
    started = parse_iso(m.group(1).decode())
    method = m.group(3).decode() if m.group(3) else None
    return {"started": started, "pid": int(m.group(2)), "method": method}


def parse_iso(text: str | None) -> datetime | None:
    """ISO-8601 text (a trailing Z allowed) -> aware UTC datetime; None when empty or invalid."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_jsonl_line(line: bytes) -> tuple[int, dict[str, float]]:
    """Parse one file-logger line.

    Input:  b'{"step": 3, "data": {"critic/score/mean": 0.4, "actor/pg_loss": null}}'
    Output: (3, {"critic/score/mean": 0.4, "actor/pg_loss": nan}); non-numeric values (verl's
            DAPO diagnostic dicts) are dropped. Raises ValueError for anything else.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict) or "step" not in obj or not isinstance(obj.get("data"), dict):
        raise ValueError('not a verl file-logger record {"step": N, "data": {...}}')
    step = obj["step"]
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"step is not an integer: {step!r}")
    data = obj["data"]
    metrics: dict[str, float] = {}
    for key, value in data.items():
        if value is None:
            metrics[key] = math.nan
        elif isinstance(value, (int, float)):
            metrics[key] = float(value)
    return step, metrics


class TailReader:
    """Incremental reader of one growing text file.

    `read_new()` returns the complete lines appended since the previous call (a last line still
    being written, with no newline yet, is kept for later) and whether the file was reset:
    a shrunk file, a new inode, or changed leading bytes mean truncated/rotated/rewritten, and the
    file is read again from byte 0 (the caller drops what it had parsed from it).
    """

    # Leading bytes compared on each read to notice a rewrite that grew past the old offset.
    _HEAD_BYTES = 64

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.offset = 0
        self.lines_read = 0
        self._inode: int | None = None
        self._head = b""

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete last line (known only as file size minus offset)."""
        try:
            return max(0, self.path.stat().st_size - self.offset)
        except OSError:
            return 0

    def read_new(self) -> tuple[list[bytes], bool]:
        """Return (new complete lines without their newline, reset flag)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            reset = self.offset > 0
            self._restart()
            return [], reset
        reset = False
        with open(self.path, "rb") as f:
            if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
                reset = True
            elif self.offset and self._head:
                if f.read(len(self._head)) != self._head:
                    reset = True
            if reset:
                self._restart()
            self._inode = st.st_ino
            if st.st_size == self.offset:
                return [], reset
            f.seek(self.offset)
            data = f.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return [], reset
        chunk = data[: end + 1]
        if self.offset == 0 or len(self._head) < self._HEAD_BYTES:
            self._head = (self._head + chunk)[: self._HEAD_BYTES] if self.offset else chunk[: self._HEAD_BYTES]
        self.offset += end + 1
        lines = chunk.split(b"\n")
        lines.pop()
        self.lines_read += len(lines)
        return lines, reset

    def _restart(self) -> None:
        self.offset = 0
        self.lines_read = 0
        self._inode = None
        self._head = b""


@dataclass
class MetricsFile:
    """Parse state of one metrics source: verl's JSONL (`kind="jsonl"`) or a console log (`"log"`).

    rows:      step -> metrics, a later line winning for a step logged twice.
    row_launch step -> index of the launch that logged it (console: the header count; JSONL: 0).
    launches:  headers seen in a console log, in order (dicts from parse_launch_header).
    failed_after_last_launch: a Python traceback was printed after the last header.
    """

    path: Path
    kind: str
    reader: TailReader = field(init=False)
    rows: dict[int, dict[str, float]] = field(default_factory=dict)
    row_launch: dict[int, int] = field(default_factory=dict)
    launches: list[dict] = field(default_factory=list)
    corrupt_count: int = 0
    corrupt_examples: list[CorruptLine] = field(default_factory=list)
    failed_after_last_launch: bool = False

    def __post_init__(self):
        self.reader = TailReader(self.path)

    def update(self) -> tuple[bool, bool, set[int]]:
        """Read what is new. Returns (changed, reset, steps touched by this read)."""
        line_base = self.reader.lines_read
        lines, reset = self.reader.read_new()
        if reset:
            self.rows.clear()
            self.row_launch.clear()
            self.launches.clear()
            self.corrupt_count = 0
            self.corrupt_examples.clear()
            self.failed_after_last_launch = False
            line_base = 0
        touched: set[int] = set()
        parse = self._parse_jsonl if self.kind == "jsonl" else self._parse_console
        for i, line in enumerate(lines, start=line_base + 1):
            try:
                parsed = parse(line)
            except ValueError as exc:
                self._corrupt(i, str(exc))
                continue
            if parsed is None:
                continue
            step, metrics = parsed
            launch = max(0, len(self.launches) - 1)
            if step in self.rows and self.row_launch.get(step) == launch:
                # The same launch logged a step twice (e.g. training metrics, then validation
                # metrics): keep both, the later value winning per key.
                self.rows[step].update(metrics)
            else:
                self.rows[step] = metrics
            self.row_launch[step] = launch
            touched.add(step)
        return bool(lines) or reset, reset, touched

    def _parse_jsonl(self, line: bytes):
        if not line.strip():
            return None
        return parse_jsonl_line(line)

    def _parse_console(self, line: bytes):
        header = parse_launch_header(line)
        if header is not None:
            self.launches.append(header)
            self.failed_after_last_launch = False
            return None
        if any(marker in line for marker in _TRACEBACK_MARKERS):
            self.failed_after_last_launch = True
            return None
        return parse_console_line(line)

    def _corrupt(self, line_no: int, reason: str) -> None:
        self.corrupt_count += 1
        if len(self.corrupt_examples) < _MAX_CORRUPT_EXAMPLES:
            self.corrupt_examples.append(CorruptLine(str(self.path), line_no, reason))
