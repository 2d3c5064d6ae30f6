"""common/evaluation/scoring.py: per-row isolation and the per-call time limit, with real processes.

    .venv/bin/python -m pytest tests/common/evaluation/test_scoring.py -q

Rewards are written to files and run in the worker processes of make_reward's guard
(common/reward_guard.py on common/workers.py), as test.sh runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from common.evaluation.inputs import EvalRow
from common.evaluation.scoring import (
    RewardError,
    Score,
    check_reward,
    load_reward,
    make_reward,
    normalise,
    score_one,
)
from common.reward_guard import RewardGuard

REPO_ROOT = Path(__file__).resolve().parents[3]

# Each ground truth selects a behaviour, so one worker meets every kind of trouble in turn.
TROUBLE_REWARD = textwrap.dedent(
    '''
    import os, re, subprocess, sys, time

    def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        if data_source == "unknown":
            raise NotImplementedError(f"no scorer for {data_source}")
        if ground_truth == "raise":
            raise ValueError("bad ground truth")
        if ground_truth == "regex":  # catastrophic backtracking: one C call that holds the GIL
            re.match(r"(a+)+$", "a" * 64 + "b")
        if ground_truth == "loop":  # pure Python busy loop
            while True:
                pass
        if ground_truth == "sleep":
            time.sleep(3600)
        if ground_truth == "exit":  # the worker dies (a segfault in a C extension looks the same)
            os._exit(3)
        if ground_truth == "child":  # starts a helper, then hangs: the helper must die too
            helper = subprocess.Popen(["sleep", "3600"])
            open(extra_info["pid_file"], "w").write(str(helper.pid))
            time.sleep(3600)
        if ground_truth == "lambda":
            return {"score": 1.0, "fn": lambda: 0}
        if ground_truth == "print":
            print("REWARD WAS HERE")
        if ground_truth == "nan":
            return float("nan")
        return {"score": float(solution_str == ground_truth), "acc": solution_str == ground_truth, "pred": solution_str}
    '''
)


@pytest.fixture(scope="module")
def trouble_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("reward") / "trouble.py"
    path.write_text(TROUBLE_REWARD)
    return path


def row(ground_truth: str, data_source: str = "x", **extra) -> EvalRow:
    return EvalRow(id=f"r-{ground_truth}", messages=[{"role": "user", "content": "q"}], ground_truth=ground_truth,
                   data_source=data_source, extra_info=extra)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); its state in /proc says it is dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    "result,expected",
    [
        ({"score": 1.1, "acc": 1.0, "format": 1.0, "pred": "72"}, Score(1.1, True, 1.0, "72")),  # why: full dict
        ({"score": 0.5}, Score(0.5, True, None, None)),  # why: no acc -> score > 0; no pred -> no maj@k
        ({"score": 0.0, "acc": 0.0, "pred": 5}, Score(0.0, False, None, "5")),  # why: pred kept as text
        ({"score": 0.0, "timeout": 1.0}, Score(0.0, False, None, None, timed_out=True)),  # why: reward's own timeout
        (-1, Score(-1.0, False, None, None)),  # why: a plain number is the score
    ],
)
def test_normalise(result, expected):
    assert normalise(result) == expected


@pytest.mark.parametrize(
    "result,fragment",
    [
        ({"acc": 1.0}, "without 'score'"),  # why: nothing to average
        (True, "returned bool"),  # why: a bool is not a score
        ("1.0", "returned str"),  # why: neither float nor dict
        (float("nan"), "not a finite number"),  # why: one NaN would poison every mean
        ({"score": "high"}, "not a number"),  # why: text where a number belongs
        ({"score": 1.0, "format": float("inf")}, "format=inf"),  # why: same for the format term
    ],
)
def test_normalise_rejects(result, fragment):
    with pytest.raises(RewardError, match=fragment):
        normalise(result)


def test_isolated_reward_survives_every_kind_of_failure(trouble_file, tmp_path, capfd):
    pid_file = tmp_path / "helper.pid"
    cases = [
        # (row, response, check of the Score) -- a good row follows each bad one
        (row("raise"), "", lambda s: s.error == "ValueError: bad ground truth" and not s.timed_out),
        (row("regex"), "", lambda s: s.timed_out and "no result within 1 s" in s.error),
        (row("loop"), "", lambda s: s.timed_out),
        (row("sleep"), "", lambda s: s.timed_out),
        (row("exit"), "", lambda s: s.error == "the reward worker died (exit code 3)"),
        (row("lambda"), "", lambda s: "cannot be sent back" in s.error),
        (row("nan"), "", lambda s: "not a finite number" in s.error),
        (row("child", pid_file=str(pid_file)), "", lambda s: s.timed_out),
        (row("print"), "print", lambda s: s.error is None and s.correct),
    ]
    with make_reward(str(trouble_file), timeout_s=1.0) as reward:
        pids = []
        for bad_row, response, check in cases:
            t0 = time.monotonic()
            got = score_one(reward, bad_row, response)
            assert check(got), (bad_row.ground_truth, got)
            assert time.monotonic() - t0 < 10, bad_row.ground_truth  # 1 s limit, plus the kill
            good = score_one(reward, row("42"), "42")  # the next row is scored as usual
            assert good == Score(1.0, True, None, "42"), (bad_row.ground_truth, good)
            (pid,) = reward.pool.pids()  # calls one at a time: one worker
            pids.append(pid)
        # one start, plus one per kill (regex, loop, sleep, child) and one after the crash (exit)
        assert reward.pool.starts == 6
        helper = int(pid_file.read_text())
        assert not _alive(helper), "the helper the reward started outlived the timeout"
        assert all(not _alive(p) for p in set(pids[:-1]) - {pids[-1]})  # replaced workers are gone
        worker = pids[-1]
    assert not _alive(worker)  # close() stops the worker
    out = capfd.readouterr()
    assert "REWARD WAS HERE" not in out.out and "REWARD WAS HERE" in out.err  # stdout stays the report path's


def test_worker_dies_with_its_parent(trouble_file, tmp_path):
    # The parent is SIGKILLed while the worker is stuck in a C call: the kernel ends the worker.
    script = textwrap.dedent(
        f'''
        import os, signal, sys, threading
        from common.evaluation.scoring import make_reward
        reward = make_reward({str(trouble_file)!r}, timeout_s=600)
        print(reward.pool.pids()[0], flush=True)
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
        reward("x", "", "regex")
        '''
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    worker = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


@pytest.mark.parametrize(
    "rows,fragment",
    [
        ([row("1", "unknown"), row("2", "unknown")], "rejects data_source 'unknown'"),  # why: every row fails
        ([row("raise"), row("raise")], "failed on all 2 tried row(s)"),  # why: all tried rows fail
    ],
)
def test_check_reward_stops_a_rejected_data_source(trouble_file, rows, fragment):
    with make_reward(str(trouble_file), timeout_s=2.0) as reward:
        with pytest.raises(RewardError) as err:
            check_reward(reward, rows)
    assert fragment in str(err.value) and "--reward" in str(err.value)


def test_check_reward_lets_one_bad_ground_truth_through(trouble_file, caplog):
    with make_reward(str(trouble_file), timeout_s=1.0) as reward:
        check_reward(reward, [row("raise"), row("1"), row("2")])  # one bad row: scored later as its own error
        check_reward(reward, [row("sleep", "slow")])  # only timeouts: a warning, not a stop
    assert "timed out on an empty response" in caplog.text


def test_reward_load_errors_are_one_clear_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def compute_score(:\n")
    for spec, fragment in [
        (str(broken), "loading"),  # why: a syntax error in the user's file
        (f"{tmp_path}/missing.py", "not found"),  # why: a typo in the path
        (f"{broken}:other", "loading"),  # why: reported before the missing function
        ("common.reward_functions:nope", "has no function 'nope'"),  # why: wrong function name
    ]:
        with pytest.raises(RewardError, match=fragment) as err:
            make_reward(spec, timeout_s=1.0)
        assert str(err.value).startswith("--reward ")


def test_make_reward_zero_timeout_runs_in_process_and_relative_paths_resolve(trouble_file, monkeypatch):
    fn = make_reward(str(trouble_file), 0)
    assert callable(fn) and not isinstance(fn, RewardGuard)
    assert score_one(fn, row("raise"), "").error == "ValueError: bad ground truth"
    monkeypatch.chdir(trouble_file.parent)
    with make_reward("trouble.py", 5.0) as reward:  # a path relative to the caller's folder
        assert isinstance(reward, RewardGuard) and score_one(reward, row("7"), "7").correct


def test_default_reward_through_the_worker_matches_in_process():
    rows = [row("72", "openai/gsm8k"), row("0.5", "math"), row("x", "math")]
    responses = ["#### 72", "so \\boxed{\\frac{1}{2}}", "no answer"]
    inproc = load_reward(None)
    with make_reward(None, 10.0) as reward:
        for r, response in zip(rows, responses):
            assert score_one(reward, r, response) == normalise(inproc(r.data_source, response, r.ground_truth))
    assert json.dumps(inproc("openai/gsm8k", "#### 72", "72"))  # plain data, as sent back over the pipe
