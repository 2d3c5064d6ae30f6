"""Read the data files people bring, and write parquet without ever leaving a partial file.

    from common.data_io import iter_records, write_parquet
    for where, record in iter_records("train.csv"):   # ("line 2", {...}), ("line 3", RowError(...))
        ...

The reading and writing layer under common/data_utils.py (the CLI is there).

Offers:
- DataError, RowError: a problem with a whole file, an option or the output (one line naming the
  file and the row, field or folder, and how to fix it); a problem with one row.
- sniff_encoding(path, encoding=None) -> codec name: a byte-order mark decides (Excel's
  "CSV UTF-8" starts with one; so do UTF-16/32 files), else UTF-8; `encoding` (--encoding)
  overrides. Bytes that do not decode are a DataError naming the line and the byte, never a
  traceback.
- json_layout(path, encoding) -> "array" | "lines" | "object": a .json file holding a list, one
  object per line (JSONL), or one object (a wrapper such as {"data": [...]}, or a single row).
- iter_records(path, progress=False, desc="read", encoding=None) -> (where, record | RowError)
  for every row of a JSON/JSONL/CSV/TSV/parquet file. Parquet is read page by page (every column
  of every row group, page checksums verified when the file has them), so a damaged file is a
  DataError naming the row group and the column.
- AtomicParquetWriter(path, schema), write_parquet(rows, path): parquet written to a temp file in
  the output folder and renamed over the output only when complete. The temp file is removed on
  any exception and on SIGTERM/SIGINT/SIGHUP (a handler is installed around the write); a full
  disk or a folder without write permission is one DataError line naming the folder.
- rows_schema(rows, where), unify_schemas(schemas, where): the Arrow schema of built rows, one
  type per field, or a DataError naming where the types clash.
- check_output_path(output, input=None), file_mode(), os_error_message(exc, path).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import json
import os
import re
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

# 1,024 rows x ~1 KB per RL row = ~1 MB per row group: small enough to stream, big enough to compress.
DEFAULT_BATCH_SIZE = 1024
INPUT_KINDS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
}
# UTF-32 first: its little-endian mark (FF FE 00 00) starts with UTF-16's (FF FE).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Keys that make a top-level JSON object one row rather than a wrapper around the rows.
ROW_KEYS = frozenset({
    "prompt", "ground_truth", "question", "answer", "problem", "solution", "messages", "conversations",
    "instruction", "output", "response", "reward_model", "data_source",
})
# A CSV cell may hold a whole conversation as JSON; csv's default 128 KB cell limit is too small.
CSV_CELL_LIMIT = 64 * 2**20
_DISK_HINTS = {
    errno.ENOSPC: "the disk is full: free space there or write to another folder",
    errno.EDQUOT: "the disk quota is used up: free space or write to another folder",
    errno.EACCES: "no permission to write there: choose a folder you can write to",
    errno.EPERM: "no permission to write there: choose a folder you can write to",
    errno.EROFS: "the file system is read-only: write to another folder",
    errno.EFBIG: "the file is larger than the file system or `ulimit -f` allows",
}


class DataError(Exception):
    """A problem with an input file, an option or the output path; the message says how to fix it."""


class RowError(ValueError):
    """One input row cannot be converted; the message is the reason shown in the report."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()


# --------------------------------------------------------------------------------------------
# Encodings
# --------------------------------------------------------------------------------------------


def sniff_encoding(path: str | Path, encoding: str | None = None) -> str:
    """The codec to read a text file with: its byte-order mark's, else UTF-8, or `encoding` if given.

    An explicit "utf-8" on a file with a UTF-8 mark reads as "utf-8-sig", so the mark never ends up
    glued to the first column name.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise DataError(
                f"--encoding {encoding!r}: unknown encoding; use e.g. utf-8, cp1252 (Excel on Windows) or latin-1"
            ) from None
        if name in ("utf-16", "utf-32") and not any(head.startswith(bom) for bom, _ in _BOMS):
            raise DataError(
                f"{path}: --encoding {encoding}: the file has no byte-order mark; "
                f"name the byte order: --encoding {name}-le (Windows) or {name}-be"
            )
        return "utf-8-sig" if name == "utf-8" and head.startswith(codecs.BOM_UTF8) else name
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    # UTF-16 without a mark: ASCII text then has a NUL byte before (BE) or after (LE) each character.
    if len(head) == 4 and head[1] == head[3] == 0 and head[0] and head[2]:
        return "utf-16-le"
    if len(head) == 4 and head[0] == head[2] == 0 and head[1] and head[3]:
        return "utf-16-be"
    return "utf-8"


def _is_wide(encoding: str) -> bool:
    # UTF-16/32 encode "\n" in 2 or 4 bytes: such files cannot be split into lines as bytes.
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _decode_error(path: Path, where: str, exc: UnicodeDecodeError, encoding: str) -> DataError:
    bad = exc.object[exc.start : exc.start + 1].hex()
    if codecs.lookup(encoding).name.startswith("utf-8"):
        hint = ('the file is in another encoding: re-save it as UTF-8 (Excel: Save As "CSV UTF-8") '
                "or name it with --encoding cp1252 (Excel on Windows) or --encoding latin-1")
    else:
        hint = f"the file is not {encoding}: pass its encoding with --encoding"
    return DataError(f"{path}: {where}: byte 0x{bad} is not valid {encoding}; {hint}")


def _text_lines(path: Path, encoding: str, bar: tqdm | None = None) -> Iterator[tuple[int, str]]:
    """(1-based line number, text with its line ending) for each line of a text file."""
    if _is_wide(encoding):
        lineno = 0
        with open(path, encoding=encoding, newline="") as f:
            try:
                for lineno, line in enumerate(f, start=1):
                    if bar is not None:
                        bar.update(len(line.encode(encoding)))
                    yield lineno, line
            except UnicodeDecodeError as e:
                raise _decode_error(path, f"near line {lineno + 1}", e, encoding) from None
        return
    # Byte lines, decoded one by one, so a bad byte is reported with its line and position.
    rest = "utf-8" if encoding == "utf-8-sig" else encoding
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if bar is not None:
                bar.update(len(raw))
            try:
                yield lineno, raw.decode(encoding if lineno == 1 else rest)
            except UnicodeDecodeError as e:
                raise _decode_error(path, f"line {lineno}, byte {e.start + 1}", e, encoding) from None


def _read_text(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        where = f"byte {e.start + 1}" if _is_wide(encoding) else f"line {line}"
        raise _decode_error(path, where, e, encoding) from None


# --------------------------------------------------------------------------------------------
# Layouts: which reader a file needs
# --------------------------------------------------------------------------------------------


def input_kind(path: Path) -> str:
    """json | jsonl | csv | parquet, from the file name."""
    kind = INPUT_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unsupported file type {path.suffix!r}; use .json (a list), .jsonl, .csv, .tsv or .parquet"
        )
    return kind


def json_layout(path: str | Path, encoding: str | None = None) -> str:
    """How a .json file holds its rows: "array" ([...]), "lines" (JSONL) or "object" ({...} whole).

    A first line that is a complete object followed by more lines is JSONL; an object spread over
    several lines, or alone in the file, is read whole (a wrapper such as {"data": [...]}, or one row).
    """
    path = Path(path)
    encoding = encoding or sniff_encoding(path)
    # The first 64 KB tell in almost every case; a minified 1 GB list is not decoded twice.
    with open(path, encoding=encoding, errors="replace", newline="") as f:
        head = f.read(65536).lstrip()
    if not head:
        raise DataError(f"{path}: the file is empty; it must hold a JSON list of rows")
    if head.startswith("["):
        return "array"
    if not head.startswith("{"):
        raise DataError(
            f"{path}: starts with {head[:20]!r}; a .json file must hold a list of rows ([...]), "
            'an object holding one (like {"data": [...]}) or one object per line'
        )
    first, newline, rest = head.partition("\n")
    if not newline:  # the first line is longer than the head: read it whole
        lines = (text for _, text in _text_lines(path, encoding) if text.strip())
        first, rest = next(lines), "x" if next(lines, None) is not None else ""
    try:
        one = json.loads(first)
    except json.JSONDecodeError:
        return "object"
    return "lines" if isinstance(one, dict) and rest.strip() else "object"


def unwrap_rows(data: Any, path: Path) -> list:
    """The rows of a parsed .json document: the list itself, the one list inside an object, or [object]."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    if ROW_KEYS & data.keys():
        return [data]
    lists = _row_lists(data)
    if len(lists) == 1:
        return lists[0][1]
    if len(lists) > 1:
        raise DataError(
            f"{path}: the object holds several lists of rows ({', '.join(repr(k) for k, _ in lists)}); "
            'keep only the one to convert, e.g. {"data": [...]}'
        )
    return [data]


def _row_lists(data: dict, prefix: str = "", depth: int = 3) -> list[tuple[str, list]]:
    """(dotted key, list) for each list of objects in a wrapper, looked for `depth` objects deep
    ({"data": [...]}, {"data": {"rows": [...]}}); objects that are rows themselves are not entered."""
    found = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, list) and all(isinstance(x, dict) for x in value):
            found.append((name, value))
        elif isinstance(value, dict) and depth > 1 and not ROW_KEYS & value.keys():
            found += _row_lists(value, f"{name}.", depth - 1)
    return found


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def iter_records(
    path: str | Path, progress: bool = False, desc: str = "read", encoding: str | None = None
) -> Iterator[tuple[str, Any]]:
    """Yield (where, record) for each row of a JSON/JSONL/CSV/TSV/parquet file, in order.

    `where` names the row for reports ("line 12" for JSONL and CSV, "row 3" for JSON lists and
    parquet, 1-based). A row that cannot be parsed yields a RowError instead of a record, so one
    bad line costs one row, not the run. A file that cannot be read at all (missing, wrong
    encoding, not JSON, a damaged parquet page) raises DataError naming the file and the place.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a data file; give the file inside it")
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the input path")
    kind = input_kind(path)
    if kind == "parquet":
        yield from _parquet_records(path, progress, desc)
        return
    encoding = sniff_encoding(path, encoding)
    if kind == "json":
        layout = json_layout(path, encoding)
        if layout == "lines":
            kind = "jsonl"
        else:
            yield from _json_records(path, encoding, progress, desc)
            return
    with tqdm(total=path.stat().st_size, desc=desc, disable=not progress, unit="B", unit_scale=True) as bar:
        if kind == "jsonl":
            yield from _jsonl_records(path, encoding, bar)
        else:
            yield from _csv_records(path, encoding, bar)


def _json_records(path: Path, encoding: str, progress: bool, desc: str) -> Iterator[tuple[str, Any]]:
    # A JSON document cannot be parsed row by row with the standard library: it is read whole.
    text = _read_text(path, encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg} "
            "(a .json file must hold one list of objects; use .jsonl for one object per line)"
        ) from None
    except RecursionError:
        raise DataError(f"{path}: {_TOO_DEEP}") from None
    rows = unwrap_rows(data, path)
    escaped = _SURROGATE_ESCAPE.search(text) is not None
    del text, data
    for i, rec in enumerate(tqdm(rows, desc=desc, disable=not progress, unit="row"), start=1):
        yield f"row {i}", (_surrogate_error(rec) if escaped else None) or rec


def _jsonl_records(path: Path, encoding: str, bar: tqdm) -> Iterator[tuple[str, Any]]:
    for lineno, line in _text_lines(path, encoding, bar):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            yield f"line {lineno}", RowError(f"invalid JSON: {e}")
            continue
        except RecursionError:
            yield f"line {lineno}", RowError(_TOO_DEEP)
            continue
        bad = _surrogate_error(rec) if _SURROGATE_ESCAPE.search(line) else None
        yield f"line {lineno}", bad or rec


# A JSON \uD800-\uDFFF escape decodes to a lone surrogate unless it is half of a pair: text that
# cannot be written as UTF-8 (parquet, Excel), so such rows are rejected where they are read.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_TOO_DEEP = "nested deeper than the JSON reader allows (thousands of [ or {); the data is damaged"


def _surrogate_error(value: Any, where: str = "") -> RowError | None:
    """A RowError naming the first field holding an unpaired UTF-16 surrogate, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            char = f"\\u{ord(value[e.start]):04x}"
            return RowError(
                f"{'field ' + repr(where) if where else 'the row'} holds an unpaired surrogate {char} (half of an "
                "emoji or a character cut in two, not valid UTF-8); fix or remove that text"
            )
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str):
            name = f"{where}.{key}" if where else key
        else:
            name = f"{where}[{key}]"
        bad = _surrogate_error(item, name)
        if bad is not None:
            return bad
    return None


def _csv_delimiter(header: str, path: Path) -> str:
    # Excel in a comma-decimal locale saves ";"-separated "CSV"; .tsv files use tabs.
    if path.suffix.lower() == ".tsv":
        return "\t"
    if "," not in header:
        for sep in (";", "\t"):
            if sep in header:
                return sep
    return ","


def _csv_records(path: Path, encoding: str, bar: tqdm) -> Iterator[tuple[str, Any]]:
    csv.field_size_limit(max(csv.field_size_limit(), CSV_CELL_LIMIT))
    numbered = _text_lines(path, encoding, bar)
    first = next(numbered, None)
    if first is None or not first[1].strip():
        raise DataError(f"{path}: empty CSV (no header line)")

    def lines() -> Iterator[str]:
        yield first[1]
        for _, text in numbered:
            yield text

    reader = csv.DictReader(lines(), delimiter=_csv_delimiter(first[1], path))
    try:
        header = reader.fieldnames
        blank = [i for i, name in enumerate(header, start=1) if not name.strip()]
        if blank:
            raise DataError(f"{path}: line 1: column {blank[0]} has no name; every column needs a header")
        names = [name.strip() for name in header]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice is not None:
            raise DataError(f"{path}: line 1: column {twice!r} appears twice in the header; rename or remove one")
        end = 1
        for rec in reader:
            # reader.line_num is the line the record ended on (a quoted cell may span lines).
            start, end = end + 1, reader.line_num
            where = f"line {end}"
            if None in rec:
                yield where, RowError(f"more cells than the {len(header)} header columns")
                continue
            if None in rec.values() and any(v and "\n" in v for v in rec.values()):
                yield where, RowError(
                    f"fewer cells than the {len(header)} header columns, and a quoted cell runs from line {start} "
                    f"to line {end}: a closing quote (\") is probably missing on line {start}"
                )
                continue
            nul = next((k for k, v in rec.items() if v and "\x00" in v), None)
            if nul is not None:
                yield where, RowError(f"column {nul.strip()!r} holds a NUL byte (\\x00): the file is damaged or not text")
                continue
            yield where, {k.strip(): _csv_cell(v) for k, v in rec.items()}
    except csv.Error as e:
        raise DataError(f"{path}: line {reader.line_num}: not readable as CSV ({e})") from None


def _csv_cell(value: str | None) -> Any:
    # CSV has no nesting: a cell holding a JSON list/object (conversations, messages) is parsed.
    if value is None:
        return None
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """A ParquetFile that verifies page checksums; DataError if the footer cannot be read."""
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError and others for a bad footer
        raise DataError(
            f"{path}: not a readable parquet file ({_first_line(e)}); the file is damaged or not parquet: "
            "rebuild it from its source"
        ) from None


def _damaged_parquet(pf: pq.ParquetFile, path: Path, group: int, first_row: int, exc: Exception) -> DataError:
    """Which column of a row group fails to read, tried one column at a time."""
    meta = pf.metadata
    rows = meta.row_group(group).num_rows
    column, reason = None, _first_line(exc)
    for j in range(meta.num_columns):
        name = meta.schema.column(j).path
        try:
            pf.read_row_group(group, columns=[name]).to_pylist()
        except Exception as e:  # the same mix of pyarrow (and UTF-8 decoding) errors
            column, reason = name, _first_line(e)
            break
    where = f"row group {group + 1} of {meta.num_row_groups} (rows {first_row + 1:,}-{first_row + rows:,})"
    if column is not None:
        where += f", column {column}"
    return DataError(f"{path}: {where}: unreadable ({reason}); the file is damaged: rebuild it from its source")


def _parquet_records(path: Path, progress: bool, desc: str) -> Iterator[tuple[str, Any]]:
    pf = open_parquet(path)
    meta = pf.metadata
    i = 0
    with tqdm(total=meta.num_rows, desc=desc, disable=not progress, unit="row") as bar:
        for group in range(meta.num_row_groups):
            first_row = i
            try:
                # Every column of every page is decoded here, so validate reads the whole file.
                for batch in pf.iter_batches(batch_size=DEFAULT_BATCH_SIZE, row_groups=[group]):
                    rows = batch.to_pylist()
                    for rec in rows:
                        i += 1
                        yield f"row {i}", rec
                    bar.update(len(rows))
            except DataError:
                raise
            except Exception as e:  # ArrowInvalid, OSError (CRC, zstd), UnicodeDecodeError, ...
                raise _damaged_parquet(pf, path, group, first_row, e) from None


# --------------------------------------------------------------------------------------------
# Writing: atomic, streamed in row groups, cleaned up on errors and signals
# --------------------------------------------------------------------------------------------


def file_mode() -> int:
    """The mode a plain open() would give a new file (0o644 under the usual umask 022).

    mkstemp creates its temp file 0o600; the renamed output gets the ordinary mode instead, so
    other users (a trainer running as another account) can read it.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def os_error_message(exc: OSError, path: str | Path) -> str:
    """One line for a failed write: the folder, the system's reason and what to do."""
    path = Path(path)
    code = exc.errno
    reason = os.strerror(code) if code else _first_line(exc)
    name = errno.errorcode.get(code, "") if code else ""
    hint = _DISK_HINTS.get(code, "check the folder and try again")
    return (
        f"cannot write {path.name} in {path.parent}/: {reason}{f' ({name})' if name else ''}; {hint}. "
        f"Nothing was written (an existing {path.name} is unchanged)"
    )


def check_output_path(output_path: Path, input_path: Path | None = None) -> None:
    """DataError unless output_path is a new or replaceable .parquet file that is not the input."""
    if output_path.suffix.lower() != ".parquet":
        raise DataError(f"output {output_path}: the name must end in .parquet (verl picks the reader by extension)")
    if input_path is not None and (
        input_path.resolve() == output_path.resolve()
        or (output_path.exists() and input_path.exists() and os.path.samefile(input_path, output_path))
    ):
        raise DataError(f"output {output_path} is the input file; choose another output path (inputs are never overwritten)")
    if output_path.is_dir():
        raise DataError(f"output {output_path} is a folder; give a file name ending in .parquet")


class Terminated(SystemExit):
    """Raised by the writer's signal handler after removing its temp file; exit status 128 + signal."""


# The signals that end a run from outside: `kill`, a scheduler's stop, a closed terminal.
_CLEANUP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class AtomicParquetWriter:
    """Write tables to `path` via a temp file in the same folder, renamed into place on success.

    The schema is fixed at construction (parquet has one schema per file). Pages carry CRC
    checksums, so a later bit flip is caught by `validate`. On any exception the temp file is
    removed and `path` is left as it was. While the writer is open (in the main thread) SIGTERM,
    SIGINT and SIGHUP remove the temp file first, run the handler the program had (if any), then
    end the write: KeyboardInterrupt for SIGINT, Terminated (exit status 143 for SIGTERM) otherwise.
    A signal set to be ignored stays ignored. OS errors (full disk, no permission) are DataError.
    """

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.path = Path(path)
        self.schema = schema
        self.tmp: Path | None = None
        self._writer: pq.ParquetWriter | None = None
        self._old_handlers: dict[int, Any] = {}
        self._deferring = False
        self._pending: int | None = None
        self.rows = 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._deferring:
            self._pending = signum
            return
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
        old = self._old_handlers.get(signum)
        if callable(old) and old is not signal.default_int_handler:
            old(signum, frame)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(128 + signum)

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread; exceptions still clean up
        for sig in _CLEANUP_SIGNALS:
            old = signal.getsignal(sig)
            if old in (signal.SIG_IGN, None):
                continue
            self._old_handlers[sig] = old
            signal.signal(sig, self._on_signal)

    def _restore_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}

    @contextlib.contextmanager
    def _signals_deferred(self) -> Iterator[None]:
        """Hold our signals back while a step must not be cut in two: creating the temp file and
        learning its name, or closing and renaming it. A signal that came meanwhile is raised
        again at the end. (Python runs handlers in the main thread only, so a flag is enough;
        masking the signal would not do, the kernel hands it to one of pyarrow's threads.)"""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            pending, self._pending = self._pending, None
            if pending is not None:
                signal.raise_signal(pending)

    def __enter__(self) -> AtomicParquetWriter:
        self._install_handlers()
        try:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # A signal between mkstemp creating the file and self.tmp naming it would leave it behind.
                with self._signals_deferred():
                    fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
                    self.tmp = Path(tmp)
                os.close(fd)
                self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", write_page_checksum=True)
            except OSError as e:
                raise DataError(os_error_message(e, self.path)) from None
        except BaseException:
            self._cleanup()
            raise
        return self

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            table = pa.Table.from_pylist(rows, schema=self.schema)
            try:
                self._writer.write_table(table)
            except OSError as e:
                raise DataError(os_error_message(e, self.path)) from None
            self.rows += len(rows)

    def _cleanup(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
        self._restore_handlers()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    # Once renamed, the output is complete: a signal held back until then finds the
                    # program's own handlers again, not ours ("nothing written" would be untrue).
                    with self._signals_deferred():
                        writer, self._writer = self._writer, None
                        writer.close()
                        os.chmod(self.tmp, file_mode())
                        os.replace(self.tmp, self.path)
                        self.tmp = None
                        self._restore_handlers()
                except OSError as e:
                    raise DataError(os_error_message(e, self.path)) from None
        finally:
            self._cleanup()


def rows_schema(rows: list[dict], where: str) -> pa.Schema:
    try:
        return pa.Table.from_pylist(rows).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(f"rows near {where} mix value types in one field ({_first_line(e)}); make each field one type") from None


def unify_schemas(schemas: list[pa.Schema], where: str) -> pa.Schema:
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(
            f"a field changes type between rows (near {where}): {_first_line(e)}; parquet needs one type per field"
        ) from None


def write_parquet(rows: Iterable[dict], path: str | Path, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Write already-built rows (an in-memory list) atomically; returns the number of rows written."""
    rows = list(rows)
    if not rows:
        raise DataError(f"{path}: no rows to write")
    schema = unify_schemas([rows_schema(rows[i : i + batch_size], f"row {i + 1}") for i in range(0, len(rows), batch_size)], "")
    with AtomicParquetWriter(path, schema) as w:
        for i in range(0, len(rows), batch_size):
            w.write_rows(rows[i : i + batch_size])
    return len(rows)
