"""Parsers of verl's console and file-logger lines, and the incremental TailReader.

    .venv/bin/python -m pytest tests/monitor/test_log_parser.py -q
"""

from __future__ import annotations

import math
import os

import pytest

from monitor.log_parser import MetricsFile, TailReader, parse_console_line, parse_jsonl_line, parse_launch_header

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
]


@pytest.mark.parametrize("line,msg", JSONL_BAD)
def test_parse_jsonl_line_errors(line, msg):
    with pytest.raises(ValueError, match=msg):
        parse_jsonl_line(line)


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


def test_metrics_file_counts_corrupt_lines_and_merges_launches(tmp_path):
    log = tmp_path / "train.log"
    log.write_bytes(
        b"==== launch 2026-11-21T10:00:00Z pid=1 method=grpo ====\n"
        b"step:1 - r:0.1\nstep:2 - r:0.2\nstep:2 - r:oops\n"
        b"==== launch 2026-11-21T11:00:00Z pid=2 method=grpo ====\n"
        b"step:2 - r:0.25\nstep:3 - r:0.3\n"
    )
    f = MetricsFile(log, "log")
    changed, reset, touched = f.update()
    assert changed and not reset and touched == {1, 2, 3}
    # why: the resumed launch re-logs step 2 and wins
    assert f.rows[2] == {"r": 0.25} and f.row_launch[2] == 1 and len(f.launches) == 2
    assert f.corrupt_count == 1 and f.corrupt_examples[0].line_no == 4
