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
- make_reward(spec, timeout_s): the reward guard training uses (common/reward_guard.py's
  RewardGuard, on common/workers.py's pool): each call runs in a worker process that is killed
  when the call overruns timeout_s and replaced for the next call; a reward that cannot load
  is a RewardError here. With timeout_s 0, the plain function from load_reward.
- check_reward(reward, rows): calls the reward on an empty response for up to 3 rows of every
  data_source before any generation; it stops the run only when every call of a data_source
  fails (an unknown data_source), not for one row's bad ground truth.
- score_one(reward, row, response) -> Score: the one place a response is scored. Any failure
  (a raise, a worker that died, a time-out, a NaN) becomes Score.error for that row, time-outs
  also Score.timed_out; the other rows go on.
- Score: score, correct, format (None: the reward has no format term), pred (None: no extracted
  answer key, so no majority vote), timed_out, error.

Why a process and not a thread: a Python thread cannot be stopped, so a reward stuck in C code
(catastrophic regex backtracking, a sympy simplification) would keep a core busy and hold the
GIL; signal.alarm works only on the main thread and between bytecodes. A worker process can
always be killed (SIGKILL to its process group, which also ends helper processes the reward
started), and it dies with test.sh (common/workers.py says how). The cost is one socket round
trip per call (~0.05 ms; benchmarks/bench_test_model.py measures it) and one worker start
(~0.1 s plus the reward's imports) per run and after every time-out.
"""

from __future__ import annotations

import inspect
import logging
import math
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
# check_reward tries this many rows per data_source: one bad ground truth is not a bad reward.
_CHECK_ROWS = 3


class RewardError(ValueError):
    """The reward function cannot be loaded, or rejects a whole data_source."""


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
    from common.workers import load_function

    spec = spec or DEFAULT_REWARD
    target, _, func_name = spec.partition(":")
    try:
        fn, _ = load_function(target, func_name or "compute_score")
    except Exception as exc:  # a missing file or function, a syntax or import error inside the user's file
        raise RewardError(f"--reward {spec}: loading failed: {type(exc).__name__}: {exc}") from exc
    if inspect.iscoroutinefunction(fn):
        raise RewardError(f"--reward {spec}: async reward functions are not supported here; pass a plain def")
    return fn


def _absolute_spec(spec: str) -> str:
    """FILE.py[:FUNC] with an absolute FILE, so the worker finds it whatever its folder."""
    target, sep, func = spec.partition(":")
    if target.endswith(".py") or Path(target).is_file():
        return str(Path(target).resolve()) + sep + func
    return spec


def make_reward(spec: str | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Callable:
    """The reward test.sh scores with: a RewardGuard (common/reward_guard.py) whose worker processes
    are killed past ``timeout_s``, or the plain function in this process when ``timeout_s`` is 0.

    The guard loads the function in its first worker here, so a reward that cannot load stops
    the run now (RewardError), before any generation.
    """
    if timeout_s == 0:
        return load_reward(spec)
    if not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise ValueError(f"--reward_timeout_s {timeout_s}: must be a positive number of seconds")
    from common.reward_guard import RewardGuard

    spec = spec or DEFAULT_REWARD
    target, _, func_name = _absolute_spec(spec).partition(":")
    # Errors are this row's reward_error in the report: not logged per call, not in reward_errors.jsonl.
    guard = RewardGuard(source=(target, func_name or "compute_score"), timeout_s=timeout_s, label=f"--reward {spec}",
                        log_errors=False)
    problem = guard.start_error
    if guard.is_async:  # as load_reward: score_one calls the reward synchronously
        problem = "async reward functions are not supported here; pass a plain def"
    if problem:
        guard.close()
        raise RewardError(f"--reward {spec}: {problem}")
    return guard


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
    """Score one response; whatever goes wrong is this row's Score.error, never an exception.

    ``reward``: make_reward's guard (its Outcome says what failed: a raise, a worker that died, a
    time-out) or a plain function (an exception, TimeoutError counting as a time-out).
    """
    call_checked = getattr(reward, "call_checked", None)
    try:
        if call_checked is None:
            result = reward(row.data_source, response, row.ground_truth, extra_info=row.extra_info)
        else:
            outcome = call_checked(row.data_source, response, row.ground_truth, extra_info=row.extra_info)
            if outcome.kind == "timeout":
                raise TimeoutError(outcome.error)
            if outcome.kind == "exception":
                return Score(0.0, False, None, None, error=outcome.error)
            result = outcome.raw  # NaN, a non-number: normalise says what is wrong with it
        return normalise(result)
    except TimeoutError as exc:
        return Score(0.0, False, None, None, timed_out=True, error=f"timeout: {exc}")
    except Exception as exc:
        text = str(exc) if isinstance(exc, RewardError) else f"{type(exc).__name__}: {exc}"
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
