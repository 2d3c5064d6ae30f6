"""Parsers of verl's console and file-logger lines, the incremental TailReader and read_tail_lines.

    .venv/bin/python -m pytest tests/monitor/test_log_parser.py -q
"""

from __future__ import annotations

import math
import os

import pytest

from monitor.log_parser import (
    MAX_STEP,
    TailReader,
    parse_console_line,
    parse_jsonl_line,
    parse_launch_header,
    read_tail_lines,
)

CONSOLE_CASES = [
    # why: verl's plain console-logger line with numpy 2 scalars
    (b"step:3 - actor/pg_loss:np.float64(0.1) - response_length/max:np.int64(1024)",
     (3, {"actor/pg_loss": 0.1, "response_length/max": 1024.0})),
    # why: Ray prefixes worker stdout and colours the prefix with ANSI codes
    (b"\x1b[36m(TaskRunner pid=123)\x1b[0m step:7 - critic/score/mean:0.5",
     (7, {"critic/score/mean": 0.5})),
    # why: pprint prints a float NaN as nan; it must survive as NaN for the NaN alert
    (b"step:2 - actor/pg_loss:nan - actor/lr:1e-06", (2, {"actor/pg_loss": math.nan, "actor/lr": 1e-06})),
    # why: numpy float32 and bools are numbers.Number too
    (b"step:4 - a:np.float32(1e-05) - flag:True", (4, {"a": 1e-05, "flag": 1.0})),
    # why: a step with no numeric metric still marks the step
    (b"step:9", (9, {})),
    # why: other console output is not a step line
    (b"Creating file logger at /x/metrics/1.jsonl", None),
    (b"(TaskRunner pid=1) Training Progress: 10%|# | stepstep:bad", None),
]


@pytest.mark.parametrize("line,expected", CONSOLE_CASES)
def test_parse_console_line(line, expected):
    got = parse_console_line(line)
    if expected is None:
        assert got is None
        return
    assert got[0] == expected[0]
    assert got[1].keys() == expected[1].keys()
    for k, v in expected[1].items():
        assert (math.isnan(v) and math.isnan(got[1][k])) or got[1][k] == pytest.approx(v)


def test_console_line_with_broken_field_raises():
    # why: a step line whose value is not a number is a corrupt line (counted), not a silent skip
    with pytest.raises(ValueError, match="not a number"):
        parse_console_line(b"step:3 - actor/pg_loss:tensor(0.1)")


JSONL_BAD = [
    (b'{"step": 1, "data": ', "not JSON"),  # why: a truncated write
    (b'{"step": "x", "data": {}}', "step is not an integer"),  # why: wrong type
    (b'[1, 2]', "not a verl file-logger record"),  # why: valid JSON, wrong shape
    # why: 2^63 overflowed int64 and took /runs, /curves and /alerts down for every run
    (b'{"step": 9223372036854775808, "data": {"a": 1}}', "out of range"),
    (b'{"step": 100000000000000000000000000000, "data": {}}', "out of range"),  # why: past 64 bits
    (b'{"step": -3, "data": {"a": 1}}', "out of range"),  # why: verl counts steps from 0/1
    (b'{"step": 1.5, "data": {}}', "not an integer"),  # why: a fractional step
    (b'{"step": true, "data": {}}', "not an integer"),  # why: JSON true is not a step
    (b'{"step": NaN, "data": {}}', "not an integer"),  # why: Python's json writes NaN literals
    (b'{"step": 1, "data": [1, 2]}', "not a verl file-logger record"),  # why: data is not a mapping
    (b"\x00\xff\xfe\x13binary", "not JSON"),  # why: binary garbage
    (b'{"step": 1, "data": {"a": 1}} trailing', "not JSON"),  # why: two writes on one line
    (b"[" * 100_000 + b"]" * 100_000, "not"),  # why: deeply nested JSON must not crash the parser
]


@pytest.mark.parametrize("line,msg", JSONL_BAD)
def test_parse_jsonl_line_errors(line, msg):
    with pytest.raises(ValueError, match=msg):
        parse_jsonl_line(line)


JSONL_ODD_VALUES = [
    # (line, key, expected value or None when dropped)
    (b'{"step": 1, "data": {"a": NaN}}', "a", math.nan),  # why: Python json's NaN literal
    (b'{"step": 1, "data": {"a": Infinity}}', "a", math.inf),  # why: Python json's Infinity literal
    (b'{"step": 1, "data": {"a": 1e308}}', "a", 1e308),  # why: huge but finite
    (b'{"step": 1, "data": {"a": 100000000000000000000000000000}}', "a", 1e29),  # why: int past 64 bits
    (b'{"step": 1, "data": {"a": 1' + b"0" * 400 + b'}}', "a", math.inf),  # why: int past float range
    (b'{"step": 1, "data": {"a": "0.5"}}', "a", None),  # why: a string is not a metric
    (b'{"step": 1, "data": {"a": [1, 2]}}', "a", None),  # why: a list is not a metric
    (b'{"step": 1, "data": {"a": true}}', "a", 1.0),  # why: a flag plots as 0/1
    (b'{"step": 9007199254740992, "data": {"a": 1}}', "a", 1.0),  # why: 2^53 itself is accepted
]


@pytest.mark.parametrize("line,key,value", JSONL_ODD_VALUES)
def test_parse_jsonl_line_odd_values(line, key, value):
    step, data = parse_jsonl_line(line)
    assert 1 <= step <= MAX_STEP
    if value is None:
        assert key not in data
    elif math.isnan(value):
        assert math.isnan(data[key])
    else:
        assert data[key] == value


def test_parse_jsonl_line_null_is_nan_and_dicts_dropped():
    # verl's FileLogger (orjson) writes NaN as null; DAPO logs a dict diagnostic next to scalars.
    step, data = parse_jsonl_line(b'{"step":5,"data":{"a":null,"b":2,"_dapo_filtered_reward_counts":{"0.0":3}}}')
    assert step == 5 and math.isnan(data["a"]) and data["b"] == 2.0 and "_dapo_filtered_reward_counts" not in data


def test_parse_launch_header():
    h = parse_launch_header(b"==== launch 2026-11-21T10:00:00Z pid=1234 method=grpo ====")
    assert h["pid"] == 1234 and h["method"] == "grpo" and h["started"].isoformat() == "2026-11-21T10:00:00+00:00"
    assert parse_launch_header(b"step:1 - a:1") is None


def test_tail_reader_partial_line_then_complete(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"line1\nline2-partial")
    r = TailReader(path)
    assert r.read_new() == ([b"line1"], False)
    # why: the writer has not finished line 2: it must not be consumed yet
    assert r.read_new() == ([], False)
    with open(path, "ab") as f:
        f.write(b"-done\n")
    assert r.read_new() == ([b"line2-partial-done"], False)
    assert r.offset == path.stat().st_size


def test_tail_reader_truncated_file_restarts(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"a\nb\nc\n")
    r = TailReader(path)
    r.read_new()
    path.write_bytes(b"x\n")  # why: verl's FileLogger reopens with "wb" on a resume into the same path
    assert r.read_new() == ([b"x"], True)


def test_tail_reader_rewritten_longer_file_restarts(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"first\n")
    r = TailReader(path)
    r.read_new()
    # why: rewritten and already longer than the old offset: size alone cannot tell, the head does
    path.write_bytes(b"other\nmore\nlines\n")
    lines, reset = r.read_new()
    assert reset and lines == [b"other", b"more", b"lines"]


def test_tail_reader_rotated_inode_restarts(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"one\ntwo\n")
    r = TailReader(path)
    r.read_new()
    os.rename(path, tmp_path / "train.log.1")
    (tmp_path / "new").write_bytes(b"one\ntwo\nthree\n")
    os.rename(tmp_path / "new", path)  # why: logrotate-style replacement keeps the name, new inode
    assert r.read_new() == ([b"one", b"two", b"three"], True)


def test_tail_reader_chunks_cover_every_line_once(tmp_path):
    # why: blocks of complete lines, each line in exactly one block, line numbers carried over
    path = tmp_path / "m.jsonl"
    lines = [f"line-{i:04d}-".encode() + b"x" * (i % 50) for i in range(3000)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    r = TailReader(path, chunk_bytes=4096)
    got, firsts = [], []
    for block, first in r.read_chunks():
        assert bytes(block).endswith(b"\n")
        firsts.append(first)
        got.extend(bytes(block).split(b"\n")[:-1])
    assert got == lines and firsts[0] == 1 and len(firsts) > 10
    assert firsts[1] == 1 + bytes(next(TailReader(path, chunk_bytes=4096).read_chunks())[0]).count(b"\n")


def test_tail_reader_skips_an_overlong_line_without_holding_it(tmp_path):
    # why: a "line" of binary data with no newline must not be loaded whole, nor stall the file
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"ok-1\n" + b"\xff" * 50_000 + b"\nok-2\n")
    r = TailReader(path, chunk_bytes=1024, max_line_bytes=8192)
    assert r.read_new() == ([b"ok-1", b"ok-2"], False)
    assert r.overlong == [2]
    # why: a blob still growing without a newline is waited for, not re-scanned from its start each time
    blob = tmp_path / "blob.jsonl"
    blob.write_bytes(b"\x00" * 100_000)
    r = TailReader(blob, chunk_bytes=1024, max_line_bytes=8192)
    assert r.read_new() == ([], False) and r.offset == 0 and r._scan_pos == 100_000


def test_read_tail_lines_reads_only_the_end(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)) + b"partial")
    tail = read_tail_lines(path, max_bytes=1000)
    # why: the first line cut by the window and the unfinished last line are left out
    assert tail[-1] == b"line 99999" and all(line.startswith(b"line ") for line in tail) and len(tail) < 100
    assert read_tail_lines(tmp_path / "missing.log") == []
