"""Reward functions for evaluation: load one, call it row by row under a time limit, normalise it.

    reward = make_reward(None, timeout_s=10)     # common.reward_functions.compute_score, isolated
    check_reward(reward, rows)                   # before any generation
    score = score_one(reward, row, response)     # -> Score; a failure is this row's error only
    reward.close()

Offers:
- DEFAULT_REWARD: the project's reward (common.reward_functions:compute_score), verl's signature
  fn(data_source, solution_str, ground_truth, extra_info=None, **kwargs).
- DEFAULT_TIMEOUT_S: the per-call limit of --reward_timeout_s (10 s).
- load_reward(spec): NAME_OR_PATH[:FUNC]; FUNC defaults to compute_score (in this process).
- IsolatedReward(spec, timeout_s): the same signature; each call runs in a worker process that
  is killed when the call overruns timeout_s (RewardTimeout, a TimeoutError) and started again
  for the next call; an exception inside the reward comes back as RewardCallError.
- make_reward(spec, timeout_s): IsolatedReward, or the plain function when timeout_s is 0.
- check_reward(reward, rows): calls the reward on an empty response for up to 3 rows of every
  data_source before any generation; it stops the run only when every call of a data_source
  fails (an unknown data_source), not for one row's bad ground truth.
- score_one(reward, row, response) -> Score: the one place a response is scored. Any exception
  (TimeoutError included) becomes Score.error for that row; the other rows go on.
- Score: score, correct, format (None: the reward has no format term), pred (None: no extracted
  answer key, so no majority vote), timed_out, error.

Why a process and not a thread: a Python thread cannot be stopped, so a reward stuck in C code
(catastrophic regex backtracking, a sympy simplification) would keep a core busy and hold the
GIL. signal.alarm works only on the main thread and only between bytecodes, so it cannot
interrupt one long C call either. A worker process can always be killed (SIGKILL to its process
group, which also ends helper processes the reward started, such as math-verify workers). The
cost is one pipe round trip per call (~0.1 ms; benchmarks/bench_test_model.py measures it) and
one process start (~0.3 s) per run and after every timeout.

To use a shared guard instead (common/reward_guard.py, guard_reward_fn(fn, timeout_s)): return
guard_reward_fn(load_reward(spec), timeout_s) from make_reward; score_one only needs the guard
to raise TimeoutError (or return a dict with a truthy "timeout") when a call overruns.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import inspect
import logging
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.evaluation.inputs import EvalRow

logger = logging.getLogger(__name__)

DEFAULT_REWARD = "common.reward_functions:compute_score"
# 10 s per call: the default math reward answers in well under 1 ms, math-verify's own limit is
# 5 s (common.reward_functions.DEFAULT_TIMEOUT_S), so only a stuck reward reaches it.
DEFAULT_TIMEOUT_S = 10.0
# Importing the reward module (sympy, a judge client) happens once per worker: not timed per call.
_STARTUP_TIMEOUT_S = 120.0
# check_reward tries this many rows per data_source: one bad ground truth is not a bad reward.
_CHECK_ROWS = 3
# The CPU-time limit a worker gives itself beyond the call's limit, for the orphan case only.
_ORPHAN_CPU_SLACK_S = 10.0
# prctl(PR_SET_PDEATHSIG): the kernel kills the worker when the process that started it dies.
_PR_SET_PDEATHSIG = 1
_REPO_ROOT = Path(__file__).resolve().parents[2]
# -P (Python 3.11+): the caller's folder is not put first on sys.path, so a `common/` folder
# there cannot shadow this package in the worker.
_SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()


class RewardError(ValueError):
    """The reward function cannot be loaded, or rejects a whole data_source."""


class RewardTimeout(TimeoutError):
    """One reward call ran past its time limit; the worker running it was killed."""


class RewardCallError(RuntimeError):
    """The reward raised (the message is the worker's `Type: message`), or its worker died."""


@dataclass
class Score:
    score: float
    correct: bool
    format: float | None
    pred: str | None
    timed_out: bool = False
    error: str | None = None


def load_reward(spec: str | None) -> Callable:
    """Load NAME_OR_PATH[:FUNC] in this process (None: the project's default reward)."""
    spec = spec or DEFAULT_REWARD
    target, _, func_name = spec.partition(":")
    func_name = func_name or "compute_score"
    try:
        if target.endswith(".py") or Path(target).is_file():
            path = Path(target)
            if not path.is_file():
                raise RewardError(f"--reward {spec}: file {path} not found")
            module_spec = importlib.util.spec_from_file_location(f"_reward_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except RewardError:
        raise
    except ImportError as exc:
        raise RewardError(f"--reward {spec}: cannot import {target!r}: {exc}") from exc
    except Exception as exc:  # a syntax or runtime error inside the user's file
        raise RewardError(f"--reward {spec}: loading {target!r} failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise RewardError(f"--reward {spec}: {target!r} has no function {func_name!r}")
    if inspect.iscoroutinefunction(fn):
        raise RewardError(f"--reward {spec}: async reward functions are not supported here; pass a plain def")
    return fn


# --------------------------------------------------------------------------- worker process


def _detach(parent_pid: int) -> None:
    """Worker setup: no Ctrl-C, die with the parent, prints go to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    os.dup2(2, 1)  # a reward's print() must not end up in test.sh's stdout (the report path)


def _limit_cpu(budget_s: float) -> None:
    # If the parent dies mid-call nobody kills a stuck worker: a CPU-time limit lets the kernel
    # end it (SIGXCPU) even inside one long C call. Same scheme as common.reward_functions.
    try:
        import resource

        used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(used + budget_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def _serve(fd: int, spec: str, parent_pid: int) -> None:
    """Worker loop: load the reward, then answer (data_source, response, gt, extra, limit) tuples."""
    from multiprocessing.connection import Connection

    _detach(parent_pid)
    conn = Connection(fd)
    try:
        fn = load_reward(spec)
    except Exception as exc:
        conn.send(("load_error", str(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            data_source, response, ground_truth, extra_info, timeout_s = conn.recv()
        except (EOFError, OSError):
            return  # the parent closed its end
        _limit_cpu(timeout_s + _ORPHAN_CPU_SLACK_S)
        try:
            reply = ("ok", fn(data_source, response, ground_truth, extra_info=extra_info))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except Exception as exc:  # the result cannot be pickled (e.g. a lambda in a dict)
            conn.send(("error", f"the reward returned {type(reply[1]).__name__} that cannot be sent back: {exc}"))


class IsolatedReward:
    """Reward calls in a killable worker process (see the module docstring for why)."""

    def __init__(self, spec: str | None, timeout_s: float = DEFAULT_TIMEOUT_S):
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"--reward_timeout_s {timeout_s}: must be a positive number of seconds")
        self.spec = _absolute_spec(spec or DEFAULT_REWARD)
        self.timeout_s = float(timeout_s)
        self.starts = 0  # worker processes started: 1 + one per timeout or crash
        self._proc: subprocess.Popen | None = None
        self._conn = None
        atexit.register(self.close)
        self._start()

    def _start(self) -> None:
        from multiprocessing.connection import Connection

        # A fresh interpreter (not fork: the parent holds torch's thread pools, and a fork of a
        # threaded process may inherit a held lock; not multiprocessing's spawn: it re-imports
        # the caller's __main__). Its own session: killpg ends it and whatever it started.
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        code = f"from common.evaluation.scoring import _serve; _serve({theirs.fileno()}, {self.spec!r}, {os.getpid()})"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, *_SAFE_PATH, "-c", code], pass_fds=(theirs.fileno(),), start_new_session=True, env=env
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self.starts += 1
        try:
            ready = self._conn.poll(_STARTUP_TIMEOUT_S)
            kind, value = self._conn.recv() if ready else ("load_error", f"no answer in {_STARTUP_TIMEOUT_S:g} s")
        except (EOFError, OSError):
            kind, value = "load_error", f"the reward worker exited with code {self._proc.wait()}"
        if kind != "ready":
            self.close()
            raise RewardError(value if value.startswith("--reward") else f"--reward {self.spec}: {value}")

    def _kill(self) -> None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # uninterruptible sleep; the kernel reaps it later
            pass
        conn.close()

    def close(self) -> None:
        """Stop the worker (also registered with atexit); safe to call twice."""
        self._kill()

    def __enter__(self) -> IsolatedReward:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __call__(self, data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None):
        if self._proc is None or self._proc.poll() is not None:
            self._kill()
            self._start()
        try:
            self._conn.send((data_source, solution_str, ground_truth, extra_info, self.timeout_s))
            answered = self._conn.poll(self.timeout_s)
        except OSError as exc:
            self._kill()
            raise RewardCallError(f"the reward worker is gone ({exc})") from None
        if not answered:
            self._kill()  # the next call starts a fresh worker
            raise RewardTimeout(f"no result within {self.timeout_s:g} s (--reward_timeout_s)")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            proc = self._proc
            self._kill()
            raise RewardCallError(f"the reward worker died (exit code {proc.returncode})") from None
        if kind == "error":
            raise RewardCallError(value)
        return value


def _absolute_spec(spec: str) -> str:
    """FILE.py[:FUNC] with an absolute FILE, so the worker finds it whatever its folder."""
    target, sep, func = spec.partition(":")
    if target.endswith(".py") or Path(target).is_file():
        return str(Path(target).resolve()) + sep + func
    return spec


def make_reward(spec: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Callable:
    """The reward test.sh scores with: isolated under timeout_s, or in this process when 0."""
    if timeout_s == 0:
        return load_reward(spec)
    return IsolatedReward(spec, timeout_s)


# --------------------------------------------------------------------------- scoring


def normalise(result: Any) -> Score:
    """A reward's return value as a Score; raises RewardError for an unusable one.

    >>> normalise({"score": 1.1, "acc": 1.0, "format": 1.0, "pred": "72"})
    Score(score=1.1, correct=True, format=1.0, pred='72', timed_out=False, error=None)
    >>> normalise(-0.5)
    Score(score=-0.5, correct=False, format=None, pred=None, timed_out=False, error=None)
    """
    if isinstance(result, dict):
        if "score" not in result:
            raise RewardError(f"reward returned a dict without 'score': keys {sorted(result)}")
        score = _finite(result["score"], "score")
        correct = bool(result["acc"]) if "acc" in result else score > 0
        fmt = result.get("format")
        pred = result.get("pred") if "pred" in result else None
        return Score(
            score,
            correct,
            None if fmt is None else _finite(fmt, "format"),
            None if pred is None else str(pred),
            timed_out=bool(result.get("timeout")),
        )
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        score = _finite(result, "score")
        return Score(score, score > 0, None, None)
    raise RewardError(f"reward returned {type(result).__name__}; expected a float or a dict with 'score'")


def _finite(value: Any, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RewardError(f"reward returned {key}={value!r}, not a number") from None
    if not math.isfinite(number):
        raise RewardError(f"reward returned {key}={number}, not a finite number")
    return number


def score_one(reward: Callable, row: EvalRow, response: str) -> Score:
    """Score one response; whatever goes wrong is this row's Score.error, never an exception."""
    try:
        return normalise(reward(row.data_source, response, row.ground_truth, extra_info=row.extra_info))
    except TimeoutError as exc:
        return Score(0.0, False, None, None, timed_out=True, error=f"timeout: {exc}")
    except Exception as exc:
        text = str(exc) if isinstance(exc, (RewardCallError, RewardError)) else f"{type(exc).__name__}: {exc}"
        return Score(0.0, False, None, None, error=text)


def check_reward(reward: Callable, rows: list[EvalRow]) -> None:
    """Stop before generation when the reward fails on every tried row of a data_source."""
    by_source: dict[str, list[EvalRow]] = {}
    for row in rows:
        tried = by_source.setdefault(row.data_source, [])
        if len(tried) < _CHECK_ROWS:
            tried.append(row)
    for source, tried in by_source.items():
        scores = [score_one(reward, row, "") for row in tried]
        if any(s.error is None for s in scores):
            continue
        if all(s.timed_out for s in scores):
            logger.warning("data_source %r: the reward timed out on an empty response (%s)", source, scores[0].error)
            continue
        first = next(s for s, row in zip(scores, tried) if not s.timed_out)
        row = tried[scores.index(first)]
        raise RewardError(
            f"the reward function rejects data_source {source!r} (it failed on all {len(tried)} tried row(s); "
            f"row id {row.id}: {first.error}). Set 'data_source' in the input rows or pass --reward."
        )
