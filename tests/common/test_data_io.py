"""Reading and writing data files: encodings, JSON layouts, damaged parquet, full disks, SIGTERM.

    .venv/bin/python -m pytest tests/common/test_data_io.py -q

Every case uses a real file written here (Excel-style BOM CSV, Latin-1 bytes, a parquet with
flipped bytes in a data page, ...); the full disk is a real 256 KB tmpfs in a private mount
namespace where the machine allows one, and a monkeypatched write everywhere.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common import data_io as dio
from common import data_utils as du

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    {"id": "a", "prompt": "Café costs 3 € each; how much are 2?", "ground_truth": "6"},
    {"id": "b", "prompt": "Jürgen has 5 pens and loses 2. How many are left?", "ground_truth": "3"},
]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def csv_text(rows: list[dict], sep: str = ",", newline: str = "\r\n") -> str:
    # Excel's layout: a header line, CRLF line ends, cells with the separator quoted.
    keys = list(rows[0])
    lines = [sep.join(keys)] + [sep.join(f'"{r[k]}"' if sep in str(r[k]) else str(r[k]) for k in keys) for r in rows]
    return newline.join(lines) + newline


def default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------- input layouts and encodings

# (label, file name, bytes writer, expected prompts or None, encoding option). Every row table
# below holds ROWS, so a case passes only if both rows come out with their accents intact.
GOOD_INPUTS = [
    # why: Excel "CSV UTF-8" writes a byte-order mark and CRLF; the mark must not glue onto "id"
    ("excel csv utf-8 (BOM, CRLF)", "in.csv", lambda: codecs.BOM_UTF8 + csv_text(ROWS).encode(), None),
    # why: Excel in comma-decimal locales separates cells with ";"
    ("semicolon csv", "in.csv", lambda: csv_text(ROWS, sep=";").encode(), None),
    # why: tab-separated files from spreadsheets
    ("tsv", "in.tsv", lambda: csv_text(ROWS, sep="\t", newline="\n").encode(), None),
    # why: Excel "Unicode Text" and Windows tools write UTF-16 with a mark
    ("utf-16 csv with BOM", "in.csv", lambda: csv_text(ROWS).encode("utf-16"), None),
    # why: a list wrapped in an object, as the docstring promises ({"data": [...]}), pretty-printed
    ("wrapped json, indented", "in.json", lambda: json.dumps({"data": ROWS}, indent=2).encode(), None),
    # why: the same wrapper minified onto one line: not JSONL
    ("wrapped json, one line", "in.json", lambda: json.dumps({"version": 2, "rows": ROWS}).encode(), None),
    # why: a plain list
    ("json list", "in.json", lambda: json.dumps(ROWS, ensure_ascii=False).encode(), None),
    # why: JSONL saved under a .json name
    ("jsonl named .json", "in.json", lambda: "\n".join(json.dumps(r) for r in ROWS).encode(), None),
    # why: JSONL with a byte-order mark (Notepad's "UTF-8 with BOM")
    ("jsonl with BOM", "in.jsonl", lambda: codecs.BOM_UTF8 + "\n".join(json.dumps(r) for r in ROWS).encode(), None),
    # why: Latin-1 bytes read correctly once the encoding is named
    ("latin-1 csv with --encoding", "in.csv", lambda: csv_text(ROWS).replace("€", "EUR").encode("latin-1"),
     "latin-1"),
    # why: Windows-1252 has the euro sign where Latin-1 has none
    ("cp1252 jsonl with --encoding", "in.jsonl",
     lambda: "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS).encode("cp1252"), "cp1252"),
    # why: a wrapper two objects deep ({"data": {"rows": [...]}}) was taken for one unknown row
    ("nested wrapper", "in.json", lambda: json.dumps({"meta": {"v": 1}, "data": {"rows": ROWS}}).encode(), None),
    # why: UTF-16 (Windows "Unicode") without a byte-order mark read as UTF-8 was every row "invalid JSON"
    ("utf-16-le jsonl without BOM", "in.jsonl",
     lambda: "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS).encode("utf-16-le"), None),
]


@pytest.mark.parametrize("label, name, make, encoding", GOOD_INPUTS, ids=[c[0] for c in GOOD_INPUTS])
def test_inputs_that_must_convert(tmp_path, label, name, make, encoding):
    src = tmp_path / name
    src.write_bytes(make())
    out = tmp_path / "out.parquet"
    report = du.json_to_parquet(src, out, progress=False, encoding=encoding)
    assert (report.rows_in, report.rows_written, report.rejected) == (2, 2, []), report.summary()
    rows = pq.read_table(out).to_pylist()
    expected = [r["prompt"].replace("€", "EUR") if "latin-1" in label else r["prompt"] for r in ROWS]
    assert [r["prompt"][0]["content"] for r in rows] == expected
    assert [r["extra_info"]["id"] for r in rows] == ["a", "b"]
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["6", "3"]


LATIN1 = csv_text(ROWS).replace("€", "EUR").encode("latin-1")

# (label, name, bytes, fragments the single error line must contain)
BAD_INPUTS = [
    # why: Latin-1 bytes read as UTF-8: the line, the byte and the fix, not a UnicodeDecodeError traceback
    ("latin-1 csv", "in.csv", LATIN1, ["in.csv: line 2, byte", "0xe9", "--encoding cp1252", "CSV UTF-8"]),
    # why: the same bytes in a JSONL file: a file error, not one "invalid JSON" per line
    ("latin-1 jsonl", "in.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in ROWS).encode("latin-1",
                                                                                                    "replace"),
     ["in.jsonl: line 1", "is not valid utf-8", "--encoding"]),
    # why: a JSON list with a Latin-1 byte on its third line
    ("latin-1 json", "in.json", json.dumps(ROWS, ensure_ascii=False, indent=1).encode("latin-1", "replace"),
     ["in.json: line 4", "--encoding"]),
    # why: an object holding two lists: which one is the data?
    ("ambiguous wrapper", "in.json", json.dumps({"train": ROWS, "test": ROWS}).encode(),
     ["several lists of rows", "'train', 'test'"]),
    # why: broken JSON names the line and column
    ("truncated json", "in.json", json.dumps(ROWS, indent=1).encode()[:-10], ["in.json: invalid JSON at line"]),
    # why: an empty file is not a list of rows
    ("empty json", "in.json", b"  \n", ["the file is empty"]),
    # why: a CSV header cell left empty
    ("csv without a column name", "in.csv", b"prompt,,ground_truth\r\nx,y,1\r\n", ["column 2 has no name"]),
    # why: a picture renamed .csv: its first byte already is not text
    ("png named .csv", "in.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["in.csv: line 1, byte 1: byte 0x89"]),
    # why: 100,000 nested brackets crashed json.loads with a RecursionError traceback
    ("json nested too deep", "in.json", b"[" * 100_000 + b"]" * 100_000, ["in.json: nested deeper than the JSON"]),
    # why: a repeated CSV column silently kept only its last cell
    ("csv with a repeated column", "in.csv", b"id,prompt,prompt,ground_truth\r\na,x,y,1\r\n",
     ["in.csv: line 1: column 'prompt' appears twice"]),
]


@pytest.mark.parametrize("label, name, data, fragments", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_unreadable_inputs_are_one_line_errors(tmp_path, capsys, label, name, data, fragments):
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "out.parquet"
    rc = du.main(["rl", str(src), str(out), "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written
    assert src.read_bytes() == data
    # validate reads through the same reader: the same line, and a failing exit status.
    assert du.main(["validate", str(src), "--no_progress"]) == 1
    assert capsys.readouterr().err == err


def test_unknown_encoding_option(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(LATIN1)
    with pytest.raises(dio.DataError, match="--encoding 'latin-9000': unknown encoding"):
        du.json_to_parquet(src, tmp_path / "o.parquet", encoding="latin-9000", progress=False)


@pytest.mark.parametrize(
    "text, layout",
    [
        ('[{"a": 1}]', "array"),  # why: a list
        ('{"a": 1}\n{"a": 2}\n', "lines"),  # why: JSONL
        ('{"data": [{"a": 1}]}', "object"),  # why: one object on one line (wrapper or single row)
        ('{\n  "data": [\n    {"a": 1}\n  ]\n}\n', "object"),  # why: an indented wrapper
        ('\n\n  [\n{"a": 1}]', "array"),  # why: leading blank lines
        ('{"a": "' + "x" * 70000 + '"}\n{"a": 2}\n', "lines"),  # why: a first row longer than the 64 KB sniff
        ('{"data": [{"a": "' + "x" * 70000 + '"}]}', "object"),  # why: a long minified wrapper
    ],
)
def test_json_layout(tmp_path, text, layout):
    path = tmp_path / "x.json"
    path.write_text(text)
    assert dio.json_layout(path) == layout


def test_single_object_is_one_row(tmp_path):
    src = tmp_path / "one.json"
    src.write_text(json.dumps(ROWS[0], indent=2), encoding="utf-8")
    report = du.json_to_parquet(src, tmp_path / "o.parquet", progress=False)
    assert report.rows_written == 1


# ---------------------------------------------------------------- damaged parquet


def rl_parquet(path: Path, n: int = 3000, checksums: bool = True) -> Path:
    rows = [du.make_rl_row_fn()({"prompt": f"question {i}: what is {i} + {i * 7}?", "ground_truth": str(8 * i)}, i)
            for i in range(n)]
    if checksums:
        du.write_parquet(rows, path)  # 1,024-row groups, zstd, page checksums
    else:
        pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd", row_group_size=1024)
    return path


def flip_data_page(path: Path, group: int, column: str) -> None:
    """Flip two bytes in the middle of one column chunk's pages (headers and compressed data)."""
    meta = pq.ParquetFile(path).metadata
    rg = meta.row_group(group)
    chunk = next(rg.column(j) for j in range(rg.num_columns) if rg.column(j).path_in_schema == column)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    at = start + int(chunk.total_compressed_size * 0.3)
    data[at] ^= 0xFF
    data[at + 1] ^= 0x55
    path.write_bytes(bytes(data))


DAMAGED = [
    # (label, maker, fragments of the error)
    # why: a file cut short (copy interrupted): the footer is gone
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
     ["not a readable parquet file", "rebuild it"]),
    # why: not parquet at all
    ("text named .parquet", lambda p: p.write_text("hello\n" * 100), ["not a readable parquet file"]),
    # why: our own files carry page checksums: a flip in a data page fails the CRC
    ("flipped page, checksummed", lambda p: flip_data_page(p, 1, "prompt.list.element.content"),
     ["row group 2 of 3 (rows 1,025-2,048)", "column prompt.list.element.content", "unreadable"]),
]


@pytest.mark.parametrize("label, damage, fragments", DAMAGED, ids=[c[0] for c in DAMAGED])
def test_damaged_parquet_fails_validate(tmp_path, capsys, label, damage, fragments):
    path = rl_parquet(tmp_path / "data.parquet")
    assert du.validate_file(path, progress=False).rejected == []  # intact before the damage
    damage(path)
    with pytest.raises(dio.DataError) as err:
        du.validate_file(path, progress=False)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)
    assert str(err.value).startswith(str(path))
    # The CLI: non-zero, one line naming the file, and the other (good) file is still checked.
    good = rl_parquet(tmp_path / "good.parquet", n=5)
    rc = du.main(["validate", str(path), str(good), "--no_progress"])
    out, err_text = capsys.readouterr()
    assert rc == 1
    assert err_text.count("\n") == 1 and str(path) in err_text and "Traceback" not in err_text
    assert f"{good}: 5 rows, 0 bad" in out


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_flipped_page_without_checksums_is_caught_too(tmp_path, fraction):
    # Files from other tools often have no page checksums: the damage then shows up as a zstd,
    # page header or UTF-8 decoding error, which must fail just the same.
    path = rl_parquet(tmp_path / "foreign.parquet", checksums=False)
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(1).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    at = start + int(chunk.total_compressed_size * fraction)
    data[at] ^= 0xFF
    data[at + 1] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(dio.DataError, match=r"row group 2 of 3 .* column data_source: unreadable"):
        du.validate_file(path, progress=False)


def test_a_crashing_check_fails_the_row(tmp_path, monkeypatch):
    path = rl_parquet(tmp_path / "d.parquet", n=3)

    def boom(row):
        raise TypeError("unexpected value")

    monkeypatch.setattr(du, "check_rl_row", boom)
    report = du.validate_file(path, progress=False)
    assert len(report.rejected) == 3 and "check failed (TypeError: unexpected value)" in report.rejected[0][1]
    assert du.main(["validate", str(path), "--no_progress"]) == 1


# ---------------------------------------------------------------- the output: full disk, no permission


def big_jsonl(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": i, "prompt": f"What is {i} plus {i}? " * 3, "ground_truth": str(2 * i)}) + "\n")
    return path


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    # 30,000 rows: ~0.5 s per pass on 2 idle cores, ~1.5 MB of parquet.
    return big_jsonl(tmp_path_factory.mktemp("big") / "in.jsonl", 30000)


DISK_ERRORS = [
    # (label, what fails, errno, fragments)
    ("disk full while writing", "write", errno.ENOSPC, ["No space left on device (ENOSPC)", "the disk is full"]),
    ("quota while writing", "write", errno.EDQUOT, ["(EDQUOT)", "quota"]),
    ("no permission for the temp file", "mkstemp", errno.EACCES, ["Permission denied (EACCES)", "no permission"]),
    ("read-only folder", "mkstemp", errno.EROFS, ["(EROFS)", "read-only"]),
    ("disk full at the final flush", "close", errno.ENOSPC, ["(ENOSPC)"]),
]


@pytest.mark.parametrize("label, where, code, fragments", DISK_ERRORS, ids=[c[0] for c in DISK_ERRORS])
def test_disk_errors_are_one_line_naming_the_folder(tmp_path, monkeypatch, capsys, label, where, code, fragments):
    src = big_jsonl(tmp_path / "in.jsonl", 50)
    out_dir = tmp_path / "out"
    out = out_dir / "train.parquet"
    du.json_to_parquet(src, out, progress=False)
    old = digest(out)

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    real_close = pq.ParquetWriter.close

    def close_then_fail(self):
        # The last pages are flushed at close: the file is closed, and the flush reports the error.
        real_close(self)
        fail()

    if where == "write":
        monkeypatch.setattr(pq.ParquetWriter, "write_table", fail)
    elif where == "close":
        monkeypatch.setattr(pq.ParquetWriter, "close", close_then_fail)
    else:
        monkeypatch.setattr(dio.tempfile, "mkstemp", fail)
    rc = du.main(["rl", str(src), str(out), "--no_progress", "--batch_size", "10"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1, err
    assert f"cannot write train.parquet in {out_dir}/" in err
    for fragment in fragments:
        assert fragment in err, err
    assert digest(out) == old and leftovers(out_dir) == []


def _can_mount_private_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_real_full_disk_in_a_private_tmpfs(tmp_path, big_input):
    # A 256 KB tmpfs mounted in a private mount namespace (gone when the shell exits): the old
    # output fits, the new one (~1 MB) does not, and the write fails with a real ENOSPC.
    if not _can_mount_private_tmpfs():
        pytest.skip("this machine allows no private mount namespace (unshare -rm); the ENOSPC path is "
                    "covered by test_disk_errors_are_one_line_naming_the_folder")
    src = big_input
    old = du.json_to_parquet(big_jsonl(tmp_path / "small.jsonl", 20), tmp_path / "old.parquet", progress=False)
    assert old.rows_written == 20
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = (
        f'mount -t tmpfs -o size=256k tmpfs "{mnt}" && cp "{tmp_path}/old.parquet" "{mnt}/train.parquet" && '
        f'"{sys.executable}" -m common.data_utils rl "{src}" "{mnt}/train.parquet" --no_progress; '
        f'echo "rc=$?"; ls -A "{mnt}"; cmp "{tmp_path}/old.parquet" "{mnt}/train.parquet" && echo SAME'
    )
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert "rc=1" in res.stdout, (res.stdout, res.stderr)
    assert res.stdout.split("rc=1\n", 1)[1].split() == ["train.parquet", "SAME"]  # no temp file, old output kept
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and f"cannot write train.parquet in {mnt}/" in errors[0], res.stderr
    assert "No space left on device (ENOSPC)" in errors[0]


# ---------------------------------------------------------------- signals mid-write


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_signal_mid_write_leaves_no_temp_and_keeps_the_old_output(tmp_path, big_input, sig, code):
    # The signal is sent the moment the temp file appears, ~0.5 s before the write could end.
    src = big_input
    out_dir = tmp_path / "out"
    out = out_dir / "train.parquet"
    du.json_to_parquet(big_jsonl(tmp_path / "old.jsonl", 10), out, progress=False)
    old = digest(out)
    # A suite started in the background (`cmd &`, nohup) passes SIGINT/SIGHUP on as ignored, and
    # the writer rightly keeps ignored signals ignored: give the child the terminal's defaults.
    proc = subprocess.Popen([sys.executable, "-m", "common.data_utils", "rl", str(src), str(out), "--no_progress"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_signals)
    try:
        deadline = time.monotonic() + 60
        while not leftovers(out_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert leftovers(out_dir), "the write finished or never started before the signal"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, err
    assert "nothing written" in err and "Traceback" not in err, err
    assert leftovers(out_dir) == [] and sorted(p.name for p in out_dir.iterdir()) == ["train.parquet"]
    assert digest(out) == old


def test_signal_handlers_are_restored_and_ignored_signals_stay_ignored(tmp_path):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        schema = pa.schema([("a", pa.int64())])
        with dio.AtomicParquetWriter(tmp_path / "x.parquet", schema) as w:
            assert signal.getsignal(signal.SIGTERM) == w._on_signal
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # nohup'ed runs stay immune
            w.write_rows([{"a": 1}])
        assert signal.getsignal(signal.SIGTERM) == before[signal.SIGTERM]
        assert signal.getsignal(signal.SIGINT) == before[signal.SIGINT]
        assert pq.read_table(tmp_path / "x.parquet").to_pylist() == [{"a": 1}]
    finally:
        signal.signal(signal.SIGHUP, before[signal.SIGHUP])


def test_exception_inside_the_writer_removes_the_temp(tmp_path):
    schema = pa.schema([("a", pa.int64())])
    with pytest.raises(RuntimeError), dio.AtomicParquetWriter(tmp_path / "x.parquet", schema) as w:
        w.write_rows([{"a": 1}])
        assert leftovers(tmp_path)
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- audit: odd rows and options


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


GOOD_LINE = json.dumps(ROWS[0]).encode()
# (label, name, bytes, the rejected row and the fragment naming why); the good row still converts.
BAD_ROWS = [
    # why: a JSON \ud800 escape is a lone surrogate: it crashed the parquet write with UnicodeEncodeError
    ("lone surrogate in a nested field", "in.jsonl",
     GOOD_LINE + b'\n{"prompt": "x", "ground_truth": "1", "extra_info": {"n": ["\\udfff"]}}\n',
     "line 2", "field 'extra_info.n[0]' holds an unpaired surrogate \\udfff"),
    ("lone surrogate in a json list", "in.json", b'[' + GOOD_LINE + b', {"prompt": "a \\ud83d", "ground_truth": "1"}]',
     "row 2", "field 'prompt' holds an unpaired surrogate \\ud83d"),
    # why: NaN/Infinity (Python's json reads them) became the ground truth "nan"
    ("NaN ground truth", "in.json", b'[' + GOOD_LINE + b', {"prompt": "x", "ground_truth": NaN}]',
     "row 2", "ground_truth is nan"),
    # why: one deeply nested JSONL line crashed the whole run with a RecursionError traceback
    ("deep jsonl line", "in.jsonl", GOOD_LINE + b"\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n",
     "line 2", "nested deeper than the JSON reader allows"),
    # why: an unclosed quote swallowed the rest of the file and was reported as a missing ground_truth
    ("csv unclosed quote", "in.csv", b'id,prompt,ground_truth\na,ok,1\nb,"never closed,1\nc,x,2\n',
     "line 4", "a closing quote (\") is probably missing on line 3"),
    # why: a NUL byte in a CSV cell went into the training text unnoticed
    ("csv NUL byte", "in.csv", b"id,prompt,ground_truth\na,ok,1\nb,x\x00y,2\n", "line 3", "column 'prompt' holds a NUL byte"),
]


@pytest.mark.parametrize("label, name, data, where, fragment", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_rejected_by_row_and_field(tmp_path, capsys, label, name, data, where, fragment):
    src = _write(tmp_path / name, data)
    out = tmp_path / "out.parquet"
    assert du.main(["rl", str(src), str(out), "--no_progress"]) == 0
    printed = capsys.readouterr()
    assert f"{where}: {fragment}" in printed.out and "Traceback" not in printed.err, printed
    assert len(pq.read_table(out)) == 1
    assert du.main(["validate", str(src), "--no_progress"]) == 1  # validate flags the same row
    assert f"{where}: {fragment}" in capsys.readouterr().out
    assert src.read_bytes() == data


def test_utf16_option_on_a_file_without_bom_is_one_line(tmp_path, capsys):
    # why: --encoding utf-16 on a BOM-less file ended in "UnicodeError: UTF-16 stream does not start with BOM"
    src = _write(tmp_path / "in.jsonl", GOOD_LINE + b"\n")
    rc = du.main(["rl", str(src), str(tmp_path / "o.parquet"), "--encoding", "utf-16", "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "in.jsonl: --encoding utf-16: the file has no byte-order mark" in err and "utf-16-le" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_a_folder_as_input_is_named_a_folder(tmp_path, capsys):
    # why: a folder was reported as "no such file"
    (tmp_path / "data.json").mkdir()
    assert du.main(["validate", str(tmp_path / "data.json"), "--no_progress"]) == 1
    assert "data.json: is a folder, not a data file" in capsys.readouterr().err


def unreachable_hub_env(cache: Path) -> dict:
    """Offline mode NOT set, and a hub endpoint that refuses connections (port 9 on this machine):
    what a cluster node without internet looks like, whether or not this machine has internet."""
    env = {**os.environ, "HF_HOME": str(cache.parent / "hf_home"), "HF_DATASETS_CACHE": str(cache),
           "HF_ENDPOINT": "http://127.0.0.1:9"}
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "LOCAL_DATASETS_DIR",
                "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(var, None)
    return env


def run_hub(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "common.data_utils", *args, "--no_progress"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t0


def test_uncached_dataset_by_name_fails_fast_without_network_noise(tmp_path):
    # why: with no route to the hub, huggingface_hub retried 5 times with backoff: ~25 s and five
    # "thrown while requesting HEAD" lines before the one-line error
    out = tmp_path / "o.parquet"
    proc, elapsed = run_hub(["rl", "--hf_dataset", "nobody-here/no-such-set", str(out)],
                            unreachable_hub_env(tmp_path / "cache"))
    assert proc.returncode == 1, proc.stderr
    assert elapsed < 12, elapsed
    assert proc.stderr.startswith("error: nobody-here/no-such-set split 'train': not in the datasets cache")
    assert "the Hugging Face hub is not reachable" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "thrown while requesting" not in proc.stderr and "Retrying" not in proc.stderr, proc.stderr
    assert not out.exists()


def test_cached_dataset_is_read_at_once_when_the_hub_is_unreachable(tmp_path):
    # why: the same retries delayed every cached load by ~25 s unless HF_HUB_OFFLINE=1 was set
    from tests.common.test_hub_data import GSM8K, fake_hub_cache

    cache = tmp_path / "cache"
    fake_hub_cache(cache, "openai/gsm8k", "main", "test", GSM8K)
    out = tmp_path / "gsm8k.parquet"
    proc, elapsed = run_hub(["rl", "--hf_dataset", "openai/gsm8k", "--split", "test", str(out)],
                            unreachable_hub_env(cache))
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 12, elapsed
    assert [r["reward_model"]["ground_truth"] for r in pq.read_table(out).to_pylist()] == ["72", "2400", "3"]
