"""Tests for common/workers.py: the pool's own rules (start-up against the limit, failed starts, sharing, closing).

    .venv/bin/python -m pytest tests/common/test_workers.py -q

What a reward does to its worker (raise, hang in C code, exit, start a helper, return what
cannot be pickled) is tested through the pool's users: tests/common/test_reward_guard.py,
tests/common/evaluation/test_scoring.py and tests/common/test_reward_functions.py.
"""

import doctest
import os
import textwrap
import threading
import time

import pytest

import common.workers as workers
from common.workers import CallError, CallTimeout, WorkerClosed, WorkerDied, WorkerPool, WorkerStartError

# Setups the workers load from a file; each returns (the function served, what it reports).
SETUPS = textwrap.dedent(
    '''
    import os, time

    def echo(tag, start_s=0.0):
        time.sleep(start_s)  # a slow import
        def fn(x, wait_s=0.0):
            time.sleep(wait_s)
            if x == "raise":
                raise KeyError("no such thing")
            if x == "exit":
                os._exit(3)
            return (tag, x, os.getpid())
        return fn, {"tag": tag}

    def broken():
        raise ImportError("no module named judge_client")
    '''
)


@pytest.fixture(scope="module")
def setups(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("workers") / "setups.py"
    path.write_text(SETUPS)
    return str(path)


def test_doctests_pass():
    result = doctest.testmod(workers, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


def test_one_worker_serves_every_call_and_reports_its_setup(setups):
    pool = WorkerPool((setups, "echo", ("a",)), size=2, name="test")
    try:
        assert pool.warm(wait_s=60) and pool.info == {"tag": "a"}
        answers = [pool.call((f"x{i}",), None, 10) for i in range(5)]
        assert [a[:2] for a in answers] == [("a", f"x{i}") for i in range(5)]
        assert len({a[2] for a in answers}) == 1 and pool.starts == 1  # calls one at a time: one worker
        with pytest.raises(CallError) as err:
            pool.call(("raise",), None, 10)
        assert (err.value.type_name, err.value.message) == ("KeyError", "'no such thing'")
        assert pool.call(("after",), None, 10)[2] == answers[0][2]  # a raise keeps the worker
    finally:
        pool.close()


def test_start_up_counts_against_the_limit_only_when_asked(setups):
    # A setup that takes 1.5 s (sympy's imports, say) and calls limited to 0.5 s each.
    slow = WorkerPool((setups, "echo", ("s", 1.5)), size=1, name="test")
    try:
        start = time.monotonic()
        with pytest.raises(CallTimeout, match="no test worker was ready within 0.5 s"):
            slow.call(("x",), None, 0.5, start_in_limit=True)  # math-verify's bound on a whole reward call
        assert time.monotonic() - start < 1.4  # it did not wait for the start
        assert slow.warm(wait_s=60)  # the start went on in the background
        assert slow.call(("x",), None, 0.5, start_in_limit=True)[1] == "x" and slow.starts == 1
    finally:
        slow.close()
    fresh = WorkerPool((setups, "echo", ("s", 1.5)), size=1, name="test")
    try:
        assert fresh.call(("x",), None, 0.5)[1] == "x"  # the reward guard's rule: the limit starts with the call
    finally:
        fresh.close()


def test_a_call_past_its_limit_kills_the_worker_and_a_warm_one_replaces_it(setups):
    pool = WorkerPool((setups, "echo", ("k",)), size=1, name="test")
    try:
        first = pool.call(("x",), None, 10)[2]
        start = time.monotonic()
        with pytest.raises(CallTimeout, match="no result within 0.5 s"):
            pool.call(("x",), {"wait_s": 30.0}, 0.5)
        assert time.monotonic() - start < 5  # 0.5 s + the kill; 5 s only absorbs a busy machine
        assert pool.warm(wait_s=60)  # replaced in the background, before anyone asked
        assert pool.starts == 2 and pool.pids() != [first]
        with pytest.raises(WorkerDied, match=r"the test worker died \(exit code 3\)"):
            pool.call(("exit",), None, 10)
        assert pool.call(("x",), None, 10)[1] == "x" and pool.starts == 3
    finally:
        pool.close()


def test_a_failed_start_is_every_call_s_error_until_it_is_tried_again(setups):
    pool = WorkerPool((setups, "broken", ()), size=1, name="test", retry_after_s=1.0)
    try:
        with pytest.raises(WorkerStartError, match="loading failed in the test worker: ImportError: no module named"):
            pool.call(("x",), None, 10)
        start = time.monotonic()
        with pytest.raises(WorkerStartError):
            pool.call(("x",), None, 10)
        assert time.monotonic() - start < 0.5 and pool.starts == 1  # served from memory, no new start
        assert "judge_client" in pool.start_error
        time.sleep(1.1)
        with pytest.raises(WorkerStartError):
            pool.call(("x",), None, 10)
        assert pool.starts == 2  # tried again after retry_after_s
    finally:
        pool.close()


def test_a_start_that_hangs_is_cut_at_the_start_limit(setups):
    pool = WorkerPool((setups, "echo", ("h", 60.0)), size=1, name="test", start_timeout_s=1.0)
    try:
        start = time.monotonic()
        with pytest.raises(WorkerStartError, match="did not start within 1 s"):
            pool.call(("x",), None, 10)
        assert time.monotonic() - start < 10
        assert pool.pids() == []
    finally:
        pool.close()


def test_threads_share_at_most_size_workers(setups):
    pool = WorkerPool((setups, "echo", ("t",)), size=2, name="test")
    results = [None] * 6

    def run(i):
        results[i] = pool.call((f"x{i}",), {"wait_s": 0.3}, 30)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert [r[1] for r in results] == [f"x{i}" for i in range(6)]
        assert len({r[2] for r in results}) <= 2 and pool.starts <= 2
    finally:
        pool.close()


def test_closing_stops_the_workers_and_an_orphan_exits_quietly(setups, capfd):
    pool = WorkerPool((setups, "echo", ("c",)), size=1, name="test")
    pid = pool.call(("x",), None, 10)[2]
    (worker,) = pool._idle
    worker.channel.close()  # as when its parent is gone: the socket closes
    assert worker.proc.wait(timeout=10) == 0
    pool.close()
    with pytest.raises(WorkerClosed):
        pool.call(("x",), None, 10)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Traceback" not in capfd.readouterr().err
