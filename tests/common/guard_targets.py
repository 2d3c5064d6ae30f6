"""Reward functions, good and broken, for tests/common/test_reward_guard.py.

    .venv/bin/python -m pytest tests/common/test_reward_guard.py -q

A module of their own, importing only the standard library and numpy: the guard's worker
processes import it by name for every start, so it must load fast.
"""

import asyncio
import math
import os
import re
import time

import numpy as np


def by_input(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Does what the response says: a good dict, or one way of failing."""
    if solution_str == "raise":
        raise RuntimeError(f"broken on {data_source}")
    if solution_str == "raise other":
        raise KeyError("another error")
    if solution_str == "nan":
        return {"score": float("nan"), "acc": 0.0, "pred": "x"}
    if solution_str == "inf":
        return {"score": -math.inf, "acc": 0.0, "pred": "x"}
    if solution_str == "string":
        return {"score": "1.0", "acc": 0.0, "pred": "x"}
    if solution_str == "no score":
        return {"acc": 1.0}
    if solution_str == "none":
        return None
    if solution_str == "spin":
        while True:  # pure-Python CPU work: a thread could never be stopped
            pass
    if solution_str == "hold the GIL":
        # Catastrophic backtracking inside `re`, in C, with the GIL held for its whole run.
        re.match(r"(a+)+$", "a" * 40 + "b")
    if solution_str == "exit":
        os._exit(7)
    if solution_str == "fewer keys":
        return {"score": 0.5, "acc": 0.5}
    return {"score": 1.0, "acc": 1.0, "pred": str(solution_str)[:5]}


def extra_info_in_kwargs(data_source, solution_str, ground_truth, **kwargs):
    """No extra_info parameter: verl passes it by keyword, so it arrives in **kwargs."""
    return {"score": float(kwargs.get("extra_info") == {"index": 3})}


def plain_float(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return np.float32(0.25)


def fuzz_victim(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Fine on ordinary answers, broken on each of the fuzz's hostile inputs."""
    if solution_str == "":
        raise IndexError("string index out of range")
    if len(solution_str) > 100_000:
        return {"score": float("nan"), "acc": 0.0}
    if solution_str.count("<think>") > 100:
        time.sleep(60)
    if not solution_str.isascii():
        return {"score": 0.0}
    return {"score": float(str(ground_truth) in solution_str), "acc": 0.0}


def returns_text(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    return "correct"


async def async_by_input(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    if solution_str == "slow":
        await asyncio.sleep(60)
    if solution_str == "block":
        time.sleep(1.5)  # blocks the event loop: wait_for cannot interrupt it
    if solution_str == "raise":
        raise ConnectionError("judge unreachable")
    return {"score": 0.5, "judge": 1.0}


class Heavy:
    """An argument object (a tokenizer, say) that should cross to a worker once, not per call."""

    pickled = 0

    def __getstate__(self):
        Heavy.pickled += 1
        return {}


def uses_heavy(data_source, solution_str, ground_truth, extra_info=None, reward_model_tokenizer=None, **kwargs):
    return {"score": 1.0 if isinstance(reward_model_tokenizer, Heavy) else 0.0}
