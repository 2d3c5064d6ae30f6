"""Parsers for the logs verl writes, and readers that never load more than they must.

Offers:
    parse_console_line    one console-logger line ("step:N - key:value - ...") -> (step, metrics).
    parse_launch_header   the launcher's "==== launch <ISO> pid=N method=M ====" line -> dict.
    parse_jsonl_line      one file-logger line ({"step": N, "data": {...}}) -> (step, metrics);
                          any malformed line raises ValueError saying why (never anything else).
    parse_iso             ISO-8601 text -> aware UTC datetime (None when invalid).
    TailReader            incremental reader of a growing file: `read_chunks()` yields blocks of
                          complete lines appended since the last call; restarts from byte 0 when
                          the file was truncated, rotated or rewritten; a line longer than
                          MAX_LINE_BYTES is skipped (counted), never loaded whole.
    read_tail_lines(path, max_bytes) -> complete lines at the end of a file (a 1 GB log costs
                          one seek and max_bytes of reading).
    CorruptLine           where a line could not be parsed, and why.
    MAX_STEP              largest step accepted (2^53: exact in a float64 axis; verl counts from 1).

Formats (read off verl 0.9.1):
    console  verl/utils/logger/aggregate_logger.py::concat_dict_to_str joins
             f"{k}:{pprint.pformat(v)}" with " - ", so numpy 2 scalars print as np.float64(0.5),
             NaN as nan; Ray may prefix the line with "(TaskRunner pid=123) " and colour it.
    file     verl/utils/tracking.py::FileLogger writes orjson.dumps({"step": step, "data": data})
             plus b"\\n"; orjson writes NaN and inf as null, so null is read back as NaN.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import orjson

from common.redaction import redact_for_display

__all__ = [
    "TailReader",
    "parse_console_line",
    "parse_launch_header",
    "parse_jsonl_line",
    "parse_iso",
    "read_tail_lines",
    "CorruptLine",
    "MAX_STEP",
    "MAX_LINE_BYTES",
    "CHUNK_BYTES",
    "TRACEBACK_MARKERS",
]

# ANSI colour / cursor sequences (Ray colours its worker prefixes).
_ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
# "step:12 - " anywhere in the line: Ray puts "(TaskRunner pid=123) " in front of it.
_STEP_RE = re.compile(rb"(?:^|[\s)\]])step:(-?\d+)(?: - |\s*$)")
# np.float64(0.5), np.int64(3), np.float32(1e-05), np.bool_(True)
_NUMPY_WRAP_RE = re.compile(r"^np\.\w+\((.*)\)$")
_HEADER_RE = re.compile(rb"==== launch (\S+) pid=(\d+)(?: method=(\S+))?.*====")
TRACEBACK_MARKERS = (b"Traceback (most recent call last)", b"Error executing job with overrides")

# verl's global_steps count from 1; 2^53 is the largest integer a float64 axis holds exactly, so a
# step beyond it (e.g. 2^63 from a corrupt writer) is a bad line, not a reason to overflow int64.
MAX_STEP = 2**53
# One verl record with 80 metrics is ~3 KB; a "line" of 32 MiB is binary garbage or a runaway
# writer. It is skipped (counted as corrupt) without being held in memory.
MAX_LINE_BYTES = 32 * 2**20
# Bytes parsed per block: pyarrow's JSON reader is fastest on blocks of a few MB (measured on a
# 154 MB, 50,000-step file: 8 MB blocks 1.96 s, one 154 MB read 2.73 s), and memory stays bounded.
CHUNK_BYTES = 8 * 2**20


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
    except (ValueError, OverflowError):
        return None


def _quote(value, limit: int = 40) -> str:
    """A piece of a log line for an error message: redacted whole, then cut (a secret cut first
    would no longer look like one and pass the redaction)."""
    return repr(redact_for_display(value)[:limit])


def check_step(step) -> int:
    """A step value from any log -> int in [0, MAX_STEP]; ValueError naming the value otherwise."""
    if isinstance(step, float) and math.isfinite(step) and step.is_integer():
        step = int(step)
    if not isinstance(step, int) or isinstance(step, bool):
        raise ValueError(f"step is not an integer: {_quote(step)}")
    if not 0 <= step <= MAX_STEP:
        shown = step if abs(step) < 10**15 else f"{float(step):.3g}"  # 1e308, not 309 digits
        raise ValueError(f"step {shown} is out of range (0..2^53)")
    return step


def parse_console_line(line: bytes) -> tuple[int, dict[str, float]] | None:
    """Parse one console-logger line.

    Input:  raw bytes of one line, e.g. b"(TaskRunner pid=7) step:3 - actor/pg_loss:np.float64(0.1)".
    Output: (3, {"actor/pg_loss": 0.1}); None when the line is not a step line.
    Raises ValueError when the line is a step line but a field (or the step) cannot be read.
    """
    if b"step:" not in line:
        return None
    clean = _ANSI_RE.sub(b"", line).rstrip(b"\r\n")
    m = _STEP_RE.search(clean)
    if m is None:
        return None
    step = check_step(int(m.group(1)))
    rest = clean[m.end():].decode("utf-8", errors="replace")
    metrics: dict[str, float] = {}
    if not rest.strip():
        return step, metrics
    for n, part in enumerate(rest.split(" - "), start=1):
        # Values never contain ':' (numbers only), keys may in principle: split on the last one.
        key, sep, value = part.rpartition(":")
        # The messages quote the redacted field whole: a field cut at ':' (https://user:pass@...)
        # would hide a secret's shape from the redaction.
        if not sep or not key:
            raise ValueError(f"field {n} is not key:value: {_quote(part, 80)}")
        number = _to_float(value)
        if number is None:
            raise ValueError(f"field {n}'s value is not a number: {_quote(part, 80)}")
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
    started = parse_iso(m.group(1).decode("utf-8", errors="replace"))
    method = m.group(3).decode("utf-8", errors="replace") if m.group(3) else None
    return {"started": started, "pid": int(m.group(2)[:18]), "method": method}


def parse_iso(text) -> datetime | None:
    """ISO-8601 text (a trailing Z allowed) -> aware UTC datetime; None when empty or invalid."""
    if not text or not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _number(value) -> float | None:
    """A JSON value -> float (null -> NaN, bool -> 0/1, an int past 1e308 -> +-inf); None if not a number."""
    if value is None:
        return math.nan
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    return None


def parse_jsonl_line(line: bytes) -> tuple[int, dict[str, float]]:
    """Parse one file-logger line.

    Input:  b'{"step": 3, "data": {"critic/score/mean": 0.4, "actor/pg_loss": null}}'
    Output: (3, {"critic/score/mean": 0.4, "actor/pg_loss": nan}); non-numeric values (verl's
            DAPO diagnostic dicts, strings) are dropped. Python's NaN/Infinity literals are read.
    Raises ValueError (and nothing else) for anything that is not such a record.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # Python's json writes NaN / Infinity literals and accepts integers of any size.
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON ({str(exc)[:80]})") from None
    if not isinstance(obj, dict) or "step" not in obj or not isinstance(obj.get("data"), dict):
        raise ValueError('not a verl file-logger record {"step": N, "data": {...}}')
    step = check_step(obj["step"])
    metrics: dict[str, float] = {}
    for key, value in obj["data"].items():
        number = _number(value)
        if number is not None:
            metrics[key] = number
    return step, metrics


def _regular(path) -> bool:
    """A regular file (opening a FIFO or a device would block or never end)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def read_tail_lines(path: str | os.PathLike, max_bytes: int = 256 * 1024) -> list[bytes]:
    """The complete lines in the last max_bytes of a file, oldest first.

    A first line cut by the window and a last line without its newline yet are left out.
    Returns [] when the file is missing, unreadable or not a regular file (a FIFO would block).
    """
    if not _regular(path):
        return []
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            start = max(0, size - max_bytes)
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return []
    end = data.rfind(b"\n")
    if end < 0:
        return []
    data = data[:end]
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # cut by the window
    return lines


class TailReader:
    """Incremental reader of one growing text file.

    `read_chunks()` yields (block, first_line_no): blocks of complete lines (each ending with a
    newline) appended since the previous call, at most `chunk_bytes` each; a last line still being
    written waits for a later call. `reset` is set when the file was truncated, rotated (new inode)
    or rewritten (changed leading bytes): the reader then starts again from byte 0 and the caller
    drops what it had parsed from the file. Lines longer than MAX_LINE_BYTES are skipped and
    counted in `overlong` with their line numbers (never held in memory).
    """

    # Leading bytes compared on each read to notice a rewrite that grew past the old offset.
    _HEAD_BYTES = 64

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES, max_line_bytes: int = MAX_LINE_BYTES):
        self.path = Path(path)
        self.chunk_bytes = max(1024, int(chunk_bytes))
        self.max_line_bytes = max(self.chunk_bytes, int(max_line_bytes))
        self.offset = 0
        self.lines_read = 0
        self.reset = False
        self.overlong: list[int] = []
        self._inode: int | None = None
        self._head = b""
        self._size_seen = -1
        self._mtime_seen = -1.0
        self._scan_pos = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete last line (known only as file size minus offset)."""
        try:
            return max(0, self.path.stat().st_size - self.offset)
        except OSError:
            return 0

    def changed(self) -> bool:
        """Cheap check (one stat): did the file's size or mtime move since the last read?"""
        try:
            st = self.path.stat()
        except OSError:
            return self.offset > 0
        return st.st_size != self._size_seen or st.st_mtime != self._mtime_seen

    def read_chunks(self) -> Iterator[tuple[memoryview, int]]:
        """Yield (block of complete lines, line number of its first line) for what is new."""
        self.reset = False
        try:
            if not _regular(self.path):
                raise FileNotFoundError(self.path)
            f = open(self.path, "rb")
        except OSError:
            if self.offset > 0:
                self.reset = True
            self._restart()
            return
        with f:
            st = os.fstat(f.fileno())
            if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
                self.reset = True
            elif self.offset and self._head and f.read(len(self._head)) != self._head:
                self.reset = True
            if self.reset:
                self._restart()
            self._inode = st.st_ino
            self._size_seen, self._mtime_seen = st.st_size, st.st_mtime
            size = st.st_size
            while self.offset < size:
                f.seek(self.offset)
                data = f.read(min(self.chunk_bytes, size - self.offset))
                if not data:
                    return
                end = data.rfind(b"\n")
                # A line longer than the chunk: keep reading, up to max_line_bytes.
                while end < 0 and len(data) < min(self.max_line_bytes, size - self.offset):
                    more = f.read(min(self.chunk_bytes, self.max_line_bytes - len(data), size - self.offset - len(data)))
                    if not more:
                        break
                    data += more
                    end = data.rfind(b"\n")
                if end < 0:
                    if len(data) < self.max_line_bytes:
                        return  # the last line is still being written
                    before = self.offset
                    self._skip_overlong(f, size)
                    if self.offset == before:
                        return  # the over-long line has no end yet
                    continue
                if self.offset == 0:
                    self._head = data[: self._HEAD_BYTES]
                elif len(self._head) < self._HEAD_BYTES:
                    # The head so far is the whole (short) file up to the offset: extend it.
                    self._head = (self._head + data)[: self._HEAD_BYTES]
                block = memoryview(data)[: end + 1]
                first = self.lines_read + 1
                self.offset += end + 1
                self.lines_read += data.count(b"\n", 0, end + 1)
                yield block, first

    def read_new(self) -> tuple[list[bytes], bool]:
        """All new complete lines at once (without their newline), and the reset flag."""
        lines: list[bytes] = []
        for block, _ in self.read_chunks():
            lines.extend(bytes(block).split(b"\n")[:-1])
        return lines, self.reset

    def _skip_overlong(self, f, size: int) -> None:
        """Skip one line longer than chunk_bytes: scan for its newline without keeping it."""
        # Continue a scan an earlier call left (a 1 GB blob with no newline is read once, not per call).
        pos = max(self.offset + self.max_line_bytes, self._scan_pos)
        while pos < size:
            f.seek(pos)
            piece = f.read(min(self.chunk_bytes, size - pos))
            end = piece.find(b"\n")
            if end >= 0:
                if self.offset == 0:
                    f.seek(0)
                    self._head = f.read(self._HEAD_BYTES)
                self.offset = pos + end + 1
                self._scan_pos = 0
                self.lines_read += 1
                self.overlong.append(self.lines_read)
                return
            pos += len(piece)
        # No newline yet: the line may still be growing; the next call resumes the scan here.
        self._scan_pos = pos

    def _restart(self) -> None:
        self.offset = 0
        self.lines_read = 0
        self.overlong = []
        self._inode = None
        self._head = b""
        self._scan_pos = 0
