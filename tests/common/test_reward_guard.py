"""Tests for common/reward_guard.py: time limits, errors as scores, the error log, verl's entry, the fuzz.

    .venv/bin/python -m pytest tests/common/test_reward_guard.py -q

The reward functions under test live in tests/common/guard_targets.py: worker processes import
them by name, and that module imports nothing heavy.
"""

import asyncio
import datetime
import doctest
import inspect
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import common.reward_functions as rf
import common.reward_guard as rg
from common.reward_guard import RewardGuard, fuzz_reward, guard_reward_fn
from tests.common.guard_targets import (
    Heavy,
    async_by_input,
    by_input,
    extra_info_in_kwargs,
    fuzz_victim,
    plain_float,
    returns_text,
    uses_heavy,
)
from tests.common.test_reward_functions import ADVERSARIAL

REPO = Path(__file__).resolve().parents[2]
GUARD_PATH = REPO / "common" / "reward_guard.py"
GRPO_REWARD = REPO / "grpo" / "reward_func.py"
GUARDED_KEYS = rf.REWARD_KEYS + ("reward_error",)


@pytest.fixture
def errors_file(tmp_path, monkeypatch):
    path = tmp_path / "reward_errors.jsonl"
    monkeypatch.setenv(rg.ERRORS_ENV, str(path))
    rg._ERRORS = rg._ErrorLog()  # a fresh "seen" set: each test starts with no known error
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------------------------------------
# Results and errors
# ---------------------------------------------------------------------------------------------


def test_doctests_pass():
    result = doctest.testmod(rg, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5
    assert result.failed == 0


@pytest.fixture(scope="module")
def process_guard():
    guard = RewardGuard(by_input, timeout_s=3.0)
    yield guard
    guard.close()


@pytest.mark.parametrize(
    "response, kind",
    [
        ("raise", "exception"),  # why: the function raises
        ("nan", "nan"),  # why: a NaN score would poison the advantages
        ("inf", "inf"),  # why: so would an infinite one
        ("string", "not_a_number"),  # why: a string score
        ("no score", "not_a_number"),  # why: a dict without "score"
        ("none", "not_a_number"),  # why: no return value
        ("exit", "exception"),  # why: the function ends its own process
    ],
)
def test_errors_score_zero_with_the_keys_of_good_calls(process_guard, errors_file, response, kind):
    good = process_guard("math", "fine", "1")
    assert good == {"score": 1.0, "acc": 1.0, "pred": "fine", "reward_error": 0.0}
    outcome = process_guard.call_checked("math", response, "1")
    assert outcome.kind == kind
    assert outcome.result == {"score": 0.0, "acc": 0.0, "pred": "", "reward_error": 1.0}
    # The guard keeps working after the failure (a dead worker is replaced).
    assert process_guard("math", "again", "1")["reward_error"] == 0.0


def test_keys_stay_those_of_the_first_good_call(process_guard, caplog):
    process_guard("math", "fine", "1")
    with caplog.at_level(logging.WARNING, logger="common.reward_guard"):
        result = process_guard("math", "fewer keys", "1")
    # verl takes the keys from the first sample of a batch: a missing key would be a KeyError.
    assert list(result) == ["score", "acc", "pred", "reward_error"]
    assert result["score"] == 0.5 and result["pred"] == ""


def test_declared_keys_hold_before_any_good_call(errors_file):
    # common.reward_functions declares REWARD_KEYS: a failure on the very first call of a
    # process already has every key (verl builds its arrays from the first sample's keys).
    guard = RewardGuard(source=(str(GRPO_REWARD), "compute_score"), timeout_s=30)
    try:
        failed = guard("no_such_source", "\\boxed{1}", "1")
        assert tuple(failed) == GUARDED_KEYS
        assert failed["score"] == 0.0 and failed["reward_error"] == 1.0
        good = guard("math", "\\boxed{1}", "1")
        assert tuple(good) == GUARDED_KEYS and good["acc"] == 1.0 and good["reward_error"] == 0.0
    finally:
        guard.close()


def test_a_float_result_is_read_as_verl_reads_it():
    guard = RewardGuard(plain_float, timeout_s=30, isolation="thread")
    assert guard("math", "x", "1") == {"score": 0.25, "acc": 0.25, "reward_error": 0.0}


@pytest.mark.parametrize("response", ["spin", "hold the GIL"])
def test_time_limit_holds_for_cpu_work_and_for_c_code_holding_the_gil(process_guard, errors_file, response):
    process_guard("math", "warm", "1")  # a started worker: start-up is not part of the limit
    start = time.monotonic()
    outcome = process_guard.call_checked("math", response, "1")
    elapsed = time.monotonic() - start
    assert outcome.kind == "timeout"
    assert outcome.result["reward_error"] == 1.0
    # 3 s limit + killing the worker; 10 s only absorbs a busy machine, the regex runs for hours.
    assert elapsed < 13
    assert process_guard("math", "after", "1")["pred"] == "after"


def test_each_failed_call_is_one_json_line_and_each_distinct_error_one_log(process_guard, errors_file, caplog):
    with caplog.at_level(logging.WARNING, logger="common.reward_guard"):
        for response in ("raise", "raise", "raise", "raise other"):
            process_guard("openai/gsm8k", response, "1")
    lines = _lines(errors_file)
    assert [line["first"] for line in lines] == [True, False, False, True]
    for line in lines:
        assert list(line) == ["time", "kind", "data_source", "error", "excerpt", "first"]
        assert line["kind"] == "exception" and line["data_source"] == "openai/gsm8k"
        assert datetime.datetime.fromisoformat(line["time"].replace("Z", "+00:00")).tzinfo is not None
        assert len(line["error"]) <= 300 and len(line["excerpt"]) <= 200
    assert lines[0]["error"] == "RuntimeError: broken on openai/gsm8k"
    assert lines[0]["excerpt"] == "raise"
    logged = [r.getMessage() for r in caplog.records if "reward exception" in r.getMessage()]
    assert len(logged) == 2  # once per distinct error, not once per call
    assert "openai/gsm8k" in logged[0] and "raise" in logged[0]


def test_no_file_is_written_without_the_variable(process_guard, monkeypatch, tmp_path):
    monkeypatch.delenv(rg.ERRORS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert process_guard("math", "raise", "1")["reward_error"] == 1.0
    assert list(tmp_path.iterdir()) == []


def test_secrets_are_redacted_in_logs_and_lines(errors_file, monkeypatch, caplog):
    monkeypatch.setenv("JUDGE_API_KEY", "sk-very-secret-123")
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijkl")

    def leaky(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        raise RuntimeError("POST https://alice:pa55word@judge.local/v1 with key sk-very-secret-123 "
                           "and Authorization: Bearer hf_abcdefghijkl failed")

    guard = RewardGuard(leaky, timeout_s=5, isolation="thread")
    with caplog.at_level(logging.WARNING, logger="common.reward_guard"):
        guard("math", "my key is sk-very-secret-123", "1")
    written = errors_file.read_text() + caplog.text
    for secret in ("sk-very-secret-123", "hf_abcdefghijkl", "pa55word", "alice"):
        assert secret not in written
    assert "https://***@judge.local/v1" in written


# ---------------------------------------------------------------------------------------------
# Isolation modes, async functions, arguments
# ---------------------------------------------------------------------------------------------


def test_a_lambda_cannot_go_to_a_process_but_can_run_in_a_thread():
    with pytest.raises(ValueError, match="isolation='thread'"):
        RewardGuard(lambda *a, **k: 1.0, timeout_s=5)
    assert RewardGuard(lambda *a, **k: 1.0, timeout_s=5, isolation="thread")("math", "x", "1")["score"] == 1.0


def test_thread_isolation_times_out_pure_python_work(errors_file):
    guard = RewardGuard(by_input, timeout_s=0.5, isolation="thread")
    start = time.monotonic()
    assert guard.call_checked("math", "spin", "1").kind == "timeout"
    assert time.monotonic() - start < 5
    assert guard.abandoned_threads == 1  # still spinning: why process isolation is the default


@pytest.mark.parametrize(
    "response, kind",
    [
        ("ok", None),  # why: awaited on the caller's loop
        ("slow", "timeout"),  # why: asyncio.wait_for cancels it at the limit
        ("raise", "exception"),  # why: an exception from the coroutine
        ("block", "timeout"),  # why: it blocked the loop past the limit: its late result is dropped
    ],
)
def test_async_functions_are_awaited_under_the_limit(errors_file, response, kind):
    scorer = guard_reward_fn(async_by_input, timeout_s=1.0)
    assert inspect.iscoroutinefunction(scorer)

    async def main():
        start = time.monotonic()
        result = await scorer("math", response, "1")
        return result, time.monotonic() - start

    result, elapsed = asyncio.run(main())
    assert list(result) == ["score", "judge", "reward_error"] or (kind and list(result) == ["score", "reward_error"])
    assert result["reward_error"] == (0.0 if kind is None else 1.0)
    assert elapsed < 8
    # The sync face of the same guard (test.sh, the preflight) gives the same outcome.
    assert scorer.guard.call_checked("math", response, "1").kind == kind


def test_sync_function_from_an_event_loop_like_verl(process_guard):
    # verl awaits the entry on its loop; sync targets then run in the loop's executor threads.
    async def main():
        return await asyncio.gather(*(process_guard.acall("math", f"r{i}", "1") for i in range(12)))

    results = asyncio.run(main())
    assert [r["pred"] for r in results] == [f"r{i}" for i in range(12)]


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_extra_info_arrives_by_keyword_as_verl_passes_it(isolation):
    # why: a function without an extra_info parameter works under verl (keywords); guarded too
    with RewardGuard(extra_info_in_kwargs, timeout_s=30, isolation=isolation) as guard:
        outcome = guard.call_checked("math", "x", "1", {"index": 3})
    assert outcome.kind is None and outcome.result["score"] == 1.0


def test_argument_objects_cross_to_a_worker_once():
    Heavy.pickled = 0
    guard = RewardGuard(uses_heavy, timeout_s=30)
    try:
        tokenizer = Heavy()
        scores = [guard("math", "x", "1", reward_model_tokenizer=tokenizer)["score"] for _ in range(4)]
        assert scores == [1.0] * 4
        assert Heavy.pickled == 1
    finally:
        guard.close()


def test_arguments_that_cannot_be_sent_are_that_call_s_error(process_guard, errors_file):
    import threading

    outcome = process_guard.call_checked("math", "fine", "1", extra_info={"lock": threading.Lock()})
    assert outcome.kind == "exception" and "cannot send the arguments" in outcome.error
    assert process_guard("math", "next", "1")["pred"] == "next"  # nothing was sent: same worker, still fine


def test_a_target_that_fails_to_import_is_an_error_per_call(tmp_path, errors_file):
    broken = tmp_path / "broken_reward.py"
    broken.write_text("import no_such_module_here\n")
    guard = RewardGuard(source=(str(broken), "compute_score"), timeout_s=5)
    outcome = guard.call_checked("math", "x", "1")
    assert outcome.kind == "exception"
    assert "no_such_module_here" in outcome.error
    start = time.monotonic()
    assert guard.call_checked("math", "x", "1").kind == "exception"  # served from memory, no new start
    assert time.monotonic() - start < 1


# ---------------------------------------------------------------------------------------------
# verl's entry
# ---------------------------------------------------------------------------------------------


def _verl_cfg(target: Path, **kwargs) -> OmegaConf:
    reward_kwargs = {"guard_target_path": str(target), "guard_target_name": "compute_score", "guard_timeout_s": 30,
                     **kwargs}
    return OmegaConf.create({"reward": {"custom_reward_function": {"path": str(GUARD_PATH), "name": "compute_score",
                                                                   "reward_kwargs": reward_kwargs}}})


def test_verl_loads_the_entry_and_awaits_it(tiny_tokenizer):
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = _verl_cfg(GRPO_REWARD, format_weight=0.5)
    fn = get_custom_reward_fn(cfg)
    response = "<think>half of 1</think><answer>\\boxed{\\frac{1}{2}}</answer>"
    ids = tiny_tokenizer.encode(response, add_special_tokens=False)
    data = DataProto.from_dict(
        tensors={"responses": torch.tensor([ids]), "attention_mask": torch.tensor([[1] * (4 + len(ids))])},
        non_tensors={"data_source": np.array(["HuggingFaceH4/MATH-500"], dtype=object),
                     "reward_model": np.array([{"ground_truth": "0.5", "style": "rule"}], dtype=object),
                     "extra_info": np.array([{"index": 0}], dtype=object)},
    )

    async def main():
        manager = NaiveRewardManager(cfg, tiny_tokenizer, fn)
        assert manager.is_async_reward_score  # verl awaits the guard on its event loop
        return await manager.run_single(data)

    out = asyncio.run(main())
    assert out["reward_score"] == 1.5  # acc 1 + 0.5 x format 1: the user's kwargs reached the target
    assert tuple(out["reward_extra_info"]) == GUARDED_KEYS
    assert out["reward_extra_info"]["reward_error"] == 0.0


def test_the_target_loads_once_per_process(tmp_path):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    imports = tmp_path / "imports.txt"
    target = tmp_path / "counting_reward.py"
    target.write_text(
        f"with open({str(imports)!r}, 'a') as f:\n    f.write('loaded\\n')\n\n"
        "def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):\n"
        "    return {'score': float(solution_str == ground_truth)}\n"
    )
    fn = get_custom_reward_fn(_verl_cfg(target))

    async def main():
        return [await fn(data_source="math", solution_str=s, ground_truth="7") for s in ("7", "8", "7", "7", "1")]

    results = asyncio.run(main())
    assert [r["score"] for r in results] == [1.0, 0.0, 1.0, 1.0, 0.0]
    # One worker process loaded it once; the sync target never ran in verl's own process.
    assert imports.read_text().count("loaded") == 1


def test_the_entry_without_a_target_names_the_knob():
    with pytest.raises(ValueError, match="guard_target_path"):
        asyncio.run(rg.compute_score("math", "x", "1"))
    with pytest.raises(ValueError, match="REWARD_TIMEOUT_S"):
        asyncio.run(rg.compute_score("math", "x", "1", guard_target_path=str(GRPO_REWARD), guard_timeout_s="soon"))


@pytest.mark.parametrize("name, source, response, gold", ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_guarded_default_reward_never_raises_on_adversarial_inputs(name, source, response, gold, errors_file):
    guard = rg._guard_for(str(GRPO_REWARD), "compute_score", 30.0, "process")
    # timeout_s=2 reaches compute_score (a reward kwarg): its own bound answers before the guard's.
    outcome = guard.call_checked(source, response, gold, timeout_s=2.0)
    assert tuple(outcome.result) == GUARDED_KEYS
    assert outcome.kind == ("exception" if gold is None else None)
    assert outcome.ms < 30_000


# ---------------------------------------------------------------------------------------------
# The fuzz
# ---------------------------------------------------------------------------------------------

ROWS = [
    {"data_source": "openai/gsm8k", "ground_truth": "72", "extra_info": {"index": 0}},
    {"data_source": "math", "ground_truth": "\\frac{1}{2}", "extra_info": {"index": 1}},
    {"data_source": "aime2024", "ground_truth": np.array(["204"], dtype=object)},
]


def test_fuzz_passes_the_default_reward():
    report = fuzz_reward(rf.compute_score, ROWS, {"format_weight": 0.1}, timeout_s=30)
    assert report.findings == []
    assert report.ok
    assert report.keys == rf.REWARD_KEYS
    assert report.right_mean > report.wrong_mean
    assert report.calls == 2 * len(ROWS) + len(rg._FUZZ_INPUTS)
    assert re.fullmatch(
        r"\d+\.\d\d ms per call x 512 responses per step = \d+\.\d s per step \(4 REWARD_WORKERS workers: ~\d+\.\d s\)",
        report.cost_line(512, workers=4),
    )


def test_fuzz_names_the_input_and_the_failure(errors_file):
    report = fuzz_reward(fuzz_victim, ROWS[:1], {}, timeout_s=2)
    found = {(f.input_kind, f.kind) for f in report.findings}
    assert found == {("empty", "exception"), ("long", "nan"), ("repeated tags", "timeout"), ("non-ASCII", "keys")}
    empty = next(f for f in report.findings if f.input_kind == "empty")
    assert "IndexError: string index out of range" in empty.detail
    keys = next(f for f in report.findings if f.kind == "keys")
    assert "['score']" in keys.detail and "['acc', 'score']" in keys.detail


def test_fuzz_reports_a_result_that_is_no_number():
    report = fuzz_reward(returns_text, ROWS[:1], {}, timeout_s=5, isolation="thread")
    assert ("right answer ('openai/gsm8k')", "not_a_number") in {(f.input_kind, f.kind) for f in report.findings}
    assert not report.ok
