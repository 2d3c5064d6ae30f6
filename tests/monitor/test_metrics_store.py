"""The columnar metrics store: pyarrow's fast path and the line-by-line fallback agree, every bad
line is named, and the merge by step follows the resume rules.

    .venv/bin/python -m pytest tests/monitor/test_metrics_store.py -q
"""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from monitor.metrics_store import Block, ConsoleState, MetricsStore, parse_console_block, parse_jsonl_block


def records(steps, **values) -> bytes:
    """verl FileLogger lines (orjson, NaN -> null) for the given steps; values: key -> fn(step)."""
    return b"".join(orjson.dumps({"step": s, "data": {k: fn(s) for k, fn in values.items()}}) + b"\n" for s in steps)


def test_fast_path_reads_verl_lines_into_columns():
    data = records(range(1, 6), **{"critic/score/mean": lambda s: s / 10, "actor/pg_loss": lambda s: math.nan if s == 3 else 0.1})
    block, examples, count = parse_jsonl_block(data, 1, "m.jsonl")
    assert (examples, count) == ([], 0)
    assert block.steps.tolist() == [1, 2, 3, 4, 5] and block.steps.dtype == np.int64
    assert block.cols["critic/score/mean"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    # why: verl's orjson writes NaN as null; it must come back as NaN for the NaN alert
    assert math.isnan(block.cols["actor/pg_loss"][2]) and block.cols["actor/pg_loss"].dtype == np.float64


BAD_BLOCKS = [
    # (bad line inserted as line 3, reason fragment)
    (b'{"step": 9223372036854775808, "data": {"a": 1}}', "out of range"),  # why: int64 overflow of one line
    (b"garbage \xff\xfe", "not JSON"),  # why: binary garbage
    (b'{"step": 3, "data": {"a": "text"}}', None),  # why: a string value is dropped, the line is fine
    (b'{"step": 3, "data": 7}', "not a verl file-logger record"),  # why: wrong type of data
    (b'{"step": 3}', "not a verl file-logger record"),  # why: no data
    (b'{"step": 3, "data": {"a": 1, "a": 2}}', None),  # why: a duplicate key (pyarrow refuses, orjson keeps the last)
    (b'{"step": 3, "data": {"a": 1e400}}', None),  # why: pyarrow refuses, the fallback reads inf
]


@pytest.mark.parametrize("bad,reason", BAD_BLOCKS)
def test_one_bad_line_is_named_and_the_rest_is_kept(bad, reason):
    data = records([1, 2], a=lambda s: float(s)) + bad + b"\n" + records([4, 5], a=lambda s: float(s))
    block, examples, count = parse_jsonl_block(data, 10, "m.jsonl")
    if reason is None:
        assert count == 0 and 3 in block.steps.tolist()
    else:
        assert count == 1 and examples[0].line_no == 12 and reason in examples[0].reason
    assert {1, 2, 4, 5} <= set(block.steps.tolist())
    assert block.cols["a"][block.steps.tolist().index(5)] == 5.0


def test_fallback_and_fast_path_agree():
    data = records(range(1, 200), a=lambda s: s * 0.5, b=lambda s: None if s % 7 else s, c=lambda s: s % 2 == 0)
    fast, _, _ = parse_jsonl_block(data, 1, "m.jsonl")
    slow, _, _ = parse_jsonl_block(data + b"not json\n", 1, "m.jsonl")  # one bad line forces the fallback
    assert fast.steps.tolist() == slow.steps.tolist()
    for key in ("a", "b", "c"):
        np.testing.assert_array_equal(fast.cols[key], slow.cols[key])


def test_console_block_tracks_launches_and_tracebacks():
    state = ConsoleState()
    data = (b"==== launch 2026-11-21T10:00:00Z pid=1 method=grpo ====\n"
            b"step:1 - r:0.1\nstep:2 - r:0.2\nstep:2 - r:oops\n"
            b"==== launch 2026-11-21T11:00:00Z pid=2 method=grpo ====\n"
            b"step:2 - r:0.25\nTraceback (most recent call last):\n")
    block, examples, count = parse_console_block(data, 1, "train.log", state)
    assert block.steps.tolist() == [1, 2, 2] and block.launch.tolist() == [0, 0, 1]
    assert count == 1 and examples[0].line_no == 4
    assert len(state.launches) == 2 and state.failed_after_last_launch


def store_of(*blocks: tuple[list[int], dict, int]) -> MetricsStore:
    store = MetricsStore()
    for steps, cols, launch in blocks:
        store.upsert(Block(np.asarray(steps, dtype=np.int64), {k: np.asarray(v, dtype=float) for k, v in cols.items()}), launch)
    return store


UPSERT_CASES = [
    # (blocks, expected steps, expected column "a", expected launch per row)
    # why: plain appends, the common case
    ([([1, 2], {"a": [1, 2]}, 0), ([3], {"a": [3]}, 0)], [1, 2, 3], [1, 2, 3], [0, 0, 0]),
    # why: a resumed launch logs steps 2-3 again: its rows replace the old ones whole
    ([([1, 2, 3], {"a": [1, 2, 3], "b": [9, 9, 9]}, 0), ([2, 3, 4], {"a": [20, 30, 40]}, 1)],
     [1, 2, 3, 4], [1, 20, 30, 40], [0, 1, 1, 1]),
    # why: an older launch's file read late never overwrites the resumed launch
    ([([2, 3], {"a": [20, 30]}, 1), ([1, 2, 3], {"a": [1, 2, 3]}, 0)], [1, 2, 3], [1, 20, 30], [0, 1, 1]),
    # why: the same launch logs a step twice (training, then validation metrics): both kept
    ([([1, 2], {"a": [1, 2]}, 0), ([2], {"val": [0.5]}, 0)], [1, 2], [1, 2], [0, 0]),
    # why: steps arriving out of order are sorted
    ([([5, 6], {"a": [5, 6]}, 0), ([1], {"a": [1]}, 0)], [1, 5, 6], [1, 5, 6], [0, 0, 0]),
    # why: duplicates inside one block merge per key (the last logged value wins)
    ([([1, 1, 2], {"a": [1, 11, 2]}, 0)], [1, 2], [11, 2], [0, 0]),
]


@pytest.mark.parametrize("blocks,steps,a,launch", UPSERT_CASES)
def test_upsert_rules(blocks, steps, a, launch):
    store = store_of(*blocks)
    assert store.steps.tolist() == steps
    assert store.column("a").tolist() == a
    assert store.launch.tolist() == launch


def test_replaced_rows_lose_their_other_keys_and_keep_their_time():
    store = store_of(([1, 2, 3], {"a": [1, 2, 3], "b": [9, 9, 9], "timing_s/step": [30, 30, 30]}, 0),
                     ([2, 3], {"a": [20, 30], "timing_s/step": [30, 30]}, 1))
    # why: launch 1 did not log b at steps 2-3; the crashed launch's values there are gone
    assert store.column("b")[0] == 9 and np.isnan(store.column("b")[1:]).all()
    # why: wall-time estimates need how long the crashed launch ran past its last kept step
    assert store.superseded[0] == [60.0, 2]


def test_growth_is_amortised_and_frame_is_a_copy():
    store = MetricsStore()
    for s in range(1, 2001):
        store.upsert(Block(np.array([s]), {"a": np.array([float(s)])}), 0)
    assert store.n == 2000 and len(store._steps) < 4000
    df = store.frame(["a", "missing"])
    store.upsert(Block(np.array([2001]), {"a": np.array([1.0])}), 0)
    assert list(df.columns) == ["step", "_launch", "a"] and len(df) == 2000
    with pytest.raises(ValueError):
        store.column("a")[0] = 5.0  # why: readers get read-only views


def test_a_flood_of_keys_is_capped(monkeypatch):
    # why: a writer logging ids as keys must not make a column per id
    import monitor.metrics_store as ms

    monkeypatch.setattr(ms, "MAX_KEYS", 10)
    store = MetricsStore()
    store.upsert(Block(np.array([1]), {f"k{i}": np.array([1.0]) for i in range(25)}), 0)
    assert len(store.keys) == 10 and store.dropped_count == 15
