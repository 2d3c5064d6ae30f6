"""Reward functions for evaluation: load one, call it, normalise what it returns.

    fn = load_reward(None)                       # common.reward_functions.compute_score
    fn = load_reward("my_rewards.py:strict")     # a file and a function in it
    fn = load_reward("my_pkg.rewards")           # a module, function compute_score
    result = score_sample(fn, row, response)     # -> Score(score, correct, format, pred)

Offers:
- DEFAULT_REWARD: the project's reward (common.reward_functions:compute_score), verl's signature
  fn(data_source, solution_str, ground_truth, extra_info=None, **kwargs).
- load_reward(spec): NAME_OR_PATH[:FUNC]; FUNC defaults to compute_score.
- check_reward(fn, rows): calls fn once per distinct data_source before any generation, so an
  unknown data_source stops the run before minutes of generation are spent.
- score_sample(fn, row, response) -> Score. A float result is the score; `correct` is then
  score > 0. A dict result gives score, acc (correct), format and pred when present.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.evaluation.inputs import EvalRow

DEFAULT_REWARD = "common.reward_functions:compute_score"


class RewardError(ValueError):
    """The reward function cannot be loaded or rejects the inputs."""


@dataclass
class Score:
    score: float
    correct: bool
    format: float | None
    pred: str


def load_reward(spec: str | None) -> Callable:
    """Load NAME_OR_PATH[:FUNC] (None: the project's default reward)."""
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


def _call(fn: Callable, row: EvalRow, response: str):
    return fn(row.data_source, response, row.ground_truth, extra_info=row.extra_info)


def check_reward(fn: Callable, rows: list[EvalRow]) -> None:
    """Fail fast when the reward rejects a data_source (or crashes) on an empty response."""
    seen: set[str] = set()
    for row in rows:
        if row.data_source in seen:
            continue
        seen.add(row.data_source)
        try:
            _normalise(_call(fn, row, ""))
        except Exception as exc:
            raise RewardError(
                f"row id {row.id}: the reward function rejects data_source {row.data_source!r}: "
                f"{type(exc).__name__}: {exc}\nSet 'data_source' in the input rows or pass --reward."
            ) from exc


def _normalise(result) -> Score:
    if isinstance(result, dict):
        if "score" not in result:
            raise RewardError(f"reward returned a dict without 'score': keys {sorted(result)}")
        score = float(result["score"])
        correct = bool(result["acc"]) if "acc" in result else score > 0
        fmt = result.get("format")
        return Score(score, correct, None if fmt is None else float(fmt), str(result.get("pred") or ""))
    if isinstance(result, (int, float)) and not isinstance(result, bool):
        return Score(float(result), float(result) > 0, None, "")
    raise RewardError(f"reward returned {type(result).__name__}; expected a float or a dict with 'score'")


def score_sample(fn: Callable, row: EvalRow, response: str) -> Score:
    return _normalise(_call(fn, row, response))
