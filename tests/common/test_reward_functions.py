"""Tests for common/reward_functions.py (CPU, ~10 s; starts math-verify worker processes).

    .venv/bin/python -m pytest tests/common/test_reward_functions.py -q
"""

import asyncio
import doctest
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from math_verify import parse, verify
from omegaconf import OmegaConf

import common.reward_functions as rf
from common.reward_functions import (
    REWARD_KEYS,
    UnknownDataSourceError,
    compute_score,
    extract_gsm8k_answer,
    extract_math_answer,
    format_reward,
    length_penalty,
    math_equal,
)

MODULE_PATH = Path(rf.__file__).resolve()
# Sympy evaluates 10^(10^10) exactly: math-verify on it runs for minutes (measured: > 8 s
# before being killed), so it stands in for any answer that would hang a reward worker.
PATHOLOGICAL = "\\boxed{10^{10^{10}}}"


@pytest.fixture(scope="module", autouse=True)
def _stop_workers():
    yield
    rf.shutdown_verifiers()


def test_doctests_pass():
    result = doctest.testmod(rf, optionflags=doctest.ELLIPSIS)
    # why: every public function carries an example; make sure they ran, not just that none failed
    assert result.attempted >= 25
    assert result.failed == 0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think><answer>\\boxed{4}</answer>", 1.0),  # why: both pairs, boxed inside the answer
        ("<think>a</think>\n\n<answer>4</answer>", 0.5),  # why: both pairs, plain answer
        ("<think>a</think><answer>4</answer> \\boxed{4}", 0.5),  # why: a box outside <answer> does not count
        ("<answer>\\boxed{4}</answer>", 0.0),  # why: no think pair
        ("<think>a</think>\\boxed{4}", 0.0),  # why: no answer pair
        ("a</think><answer>4</answer>", 0.0),  # why: think closed but never opened (prompt-side <think>)
        ("<think>a</think><answer>4", 0.0),  # why: answer opened, never closed (truncated)
        ("<answer>4</answer><think>a</think>", 0.0),  # why: pairs in the wrong order
        ("", 0.0),  # why: empty response
    ],
)
def test_format_reward(text, expected):
    assert format_reward(text) == expected


@pytest.mark.parametrize(
    "length, max_len, buffer_len, factor, expected",
    [
        (0, 100, 20, 1.0, 0.0),  # why: empty response, no penalty
        (80, 100, 20, 1.0, 0.0),  # why: exactly at the start of the buffer
        (90, 100, 20, 1.0, -0.5),  # why: half-way through the buffer
        (100, 100, 20, 1.0, -1.0),  # why: at the limit, full penalty (DAPO)
        (150, 100, 20, 1.0, -1.0),  # why: beyond the limit (chars can exceed it), capped at -factor
        (95, 100, 20, 0.5, -0.375),  # why: penalty_factor scales linearly: 15/20 * 0.5
        (100, 100, 100, 1.0, -1.0),  # why: buffer as large as max_len is allowed
    ],
)
def test_length_penalty(length, max_len, buffer_len, factor, expected):
    assert length_penalty(length, max_len, buffer_len, factor) == pytest.approx(expected)


@pytest.mark.parametrize(
    "args, message",
    [
        ((10, 100, 0, 1.0), "buffer_len"),  # why: zero buffer would divide by zero
        ((10, 100, 200, 1.0), "buffer_len"),  # why: buffer longer than max_len makes no sense
        ((-1, 100, 20, 1.0), "length"),  # why: negative length is a caller bug
        ((10, float("nan"), 20, 1.0), "max_len"),  # why: NaN would poison every score
        ((10, 100, 20, -1.0), "penalty_factor"),  # why: a negative factor would reward overlong answers
    ],
)
def test_length_penalty_rejects_bad_values(args, message):
    with pytest.raises(ValueError, match=message):
        length_penalty(*args)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{1} no wait \\boxed{2}", "2"),  # why: the last box wins
        ("\\boxed{\\frac{a^{2}}{b_{1}}}", "\\frac{a^{2}}{b_{1}}"),  # why: nested braces kept whole
        ("\\fbox{7}", "7"),  # why: \fbox is a box too
        ("\\boxed 5.", "5"),  # why: MATH's unbraced form
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # why: escaped braces do not close the box
        ("first \\boxed{3} then \\boxed{4", ""),  # why: truncated last box is no answer (not the older one)
        ("<think>x</think><answer> 12 </answer>", "12"),  # why: answer tag, whitespace trimmed
        ("<answer>1</answer> ... <answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"),  # why: last tag wins
        ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),  # why: Minerva line
        ("Final answer: 18.", "18"),  # why: trailing full stop dropped
        ("Final Answer: The final answer is 18", "18"),  # why: the last phrase on the line wins
        ("Work...\nAnswer: -7", "-7"),  # why: DAPO's "Answer: X" last line
        ("**Answer:** 3", "3"),  # why: markdown-bold answer line
        ("The answer might be 5", ""),  # why: no final-answer marker, nothing extracted
    ],
)
def test_extract_math_answer(text, expected):
    assert extract_math_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("48/2 = 24\n#### 72", "72"),  # why: GSM8K's own '####' marker
        ("#### $1,234.50 total", "1234.50"),  # why: dollars and thousands commas removed
        ("#### 5 then 6", "5"),  # why: first number after ####
        ("she has 72 clips", "72"),  # why: units tolerated
        ("it fell to -3 degrees", "-3"),  # why: negative numbers keep their sign
        ("1,2,3 and so 10", "10"),  # why: last number when no marker
        ("\\boxed{18} (checked 3 times)", "18"),  # why: boxed beats the last number
        ("<answer>42</answer> in 2 steps", "42"),  # why: answer tag beats the last number
        ("no digits", ""),  # why: nothing to extract
    ],
)
def test_extract_gsm8k_answer(text, expected):
    assert extract_gsm8k_answer(text) == expected


@pytest.mark.parametrize(
    "data_source, response, gold, acc",
    [
        ("math", "\\boxed{42}", "42", 1.0),  # why: the ordinary case
        ("math", "\\boxed{41}", "42", 0.0),  # why: wrong integer
        ("math", "\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", 1.0),  # why: dfrac vs frac
        ("math", "\\boxed{0.5}", "1/2", 1.0),  # why: decimal vs fraction
        ("math", "\\boxed{1,000}", "1000", 1.0),  # why: thousands separator
        ("math", "\\boxed{\\$12}", "12", 1.0),  # why: currency sign
        ("math", "\\boxed{50\\%}", "50", 1.0),  # why: percent of an integer, as math-verify
        ("math", "\\boxed{ \\left( 1, 2 \\right) }", "(1,2)", 1.0),  # why: \left/\right and spaces
        ("math", "\\boxed{(x+1)^2}", "x^2+2x+1", 1.0),  # why: symbolic, needs math-verify
        ("math", "\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", 1.0),  # why: surds
        ("math", "\\boxed{[0,1]}", "[0,1)", 0.0),  # why: closed vs half-open interval
        ("math", "no answer here", "3", 0.0),  # why: nothing extracted is wrong, never a crash
        ("math", "\\boxed{}", "3", 0.0),  # why: empty box
        ("aime2025", "Answer: 204", "204", 1.0),  # why: aime* prefix, DAPO answer line
        ("math_dapo", "Answer: 204", "204", 1.0),  # why: DAPO's data source
        ("HuggingFaceH4/MATH-500", "\\boxed{3}", "\\boxed{3}", 1.0),  # why: a gold stored boxed
        ("numina_olympiads", "\\boxed{7}", ["6", "7"], 1.0),  # why: several accepted golds
        ("lighteval/MATH-Hard", "\\boxed{7}", 7, 1.0),  # why: lighteval/MATH* names, numeric gold
        ("openai/gsm8k", "#### 72", "72", 1.0),  # why: verl's gsm8k name
        ("gsm8k", "The total is $1,234.50", "1234.5", 1.0),  # why: currency, commas, trailing zero
        ("gsm8k", "#### 71", "72", 0.0),  # why: wrong number
        ("gsm8k", "I do not know", "72", 0.0),  # why: no number at all
    ],
)
def test_compute_score_accuracy(data_source, response, gold, acc):
    result = compute_score(data_source, response, gold)
    assert result["acc"] == acc
    assert result["score"] == acc  # default weights: score is the accuracy, like verl's scorer
    assert result["timeout"] == 0.0


# (gold, pred, math-verify's verdict). The verdict column documents the table and guards it:
# if a math-verify upgrade changes a verdict, the table needs a look, not a silent pass.
AGREEMENT = [
    ("\\frac{1}{2}", "0.5", True),  # why: fraction vs decimal (fast path)
    ("\\frac{1}{3}", "0.333333", True),  # why: math-verify rounds floats to 6 places (deferred)
    ("\\frac{1}{3}", "0.3333", False),  # why: 4 places is not enough for math-verify
    ("\\frac{1}{3}", "0.33", False),  # why: clearly different decimal (fast path)
    ("\\frac{2}{4}", "\\frac{1}{2}", True),  # why: unreduced fraction
    ("3/4", "\\frac{3}{4}", True),  # why: slash vs \frac
    ("\\frac{1}{2}", "\\frac{1}{3}", False),  # why: different rationals (fast path)
    ("50", "50\\%", True),  # why: integer percent
    ("50\\%", "0.5", False),  # why: math-verify does not equate 50% and 0.5
    ("12.5\\%", "12.5", True),  # why: decimal percent (deferred)
    ("1,000", "1000", True),  # why: thousands comma
    ("3.14", "3.1400001", True),  # why: equal after rounding to 6 places
    ("10", "10.0", True),  # why: trailing zero
    ("1e3", "1000", False),  # why: math-verify does not read e-notation
    ("\\{1,2\\}", "\\{2,1\\}", True),  # why: sets are unordered
    ("\\{1,2\\}", "\\{1,3\\}", False),  # why: different sets
    ("(1,2)", "(2,1)", False),  # why: ordered pair vs open interval
    ("[0,1)", "[0,1)", True),  # why: same interval
    ("[0,1)", "[0,1]", False),  # why: endpoints differ
    ("(-\\infty, 3]", "(-\\infty,3]", True),  # why: infinite interval
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),  # why: matrix
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\4&3\\end{pmatrix}", False),  # why: matrix
    ("x^2+2x+1", "(x+1)^2", True),  # why: polynomial identity
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),  # why: LaTeX forms of one surd
    ("2\\pi", "2 \\pi", True),  # why: spacing only
    ("\\pi", "3.14", False),  # why: pi is not 3.14 at 6 places
    ("2", "x=2", True),  # why: assignment to the gold value
    ("\\text{(A)}", "A", True),  # why: multiple-choice letter
    ("72", "72 \\text{ clips}", True),  # why: units in text
    ("-3", "3", False),  # why: sign matters
]


@pytest.mark.parametrize("gold, pred, verdict", AGREEMENT)
def test_agrees_with_math_verify(gold, pred, verdict):
    # math-verify's default extraction finds LaTeX only between delimiters (parse("\\{1,2\\}")
    # is []), so its verdict on a bare answer pair is taken with "$...$" around each side.
    reference = verify(parse(f"${gold}$"), parse(f"${pred}$"))
    assert reference == verdict
    assert compute_score("math", f"The answer is \\boxed{{{pred}}}.", gold)["acc"] == float(reference)


@pytest.mark.parametrize(
    "pred, gold",
    [
        ("42", "42"),  # why: plain integer
        ("-7", "7"),  # why: wrong sign is still decidable without math-verify
        ("1,000", "1000"),  # why: thousands comma
        ("\\frac{3}{4}", "0.75"),  # why: simple fraction vs decimal
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),  # why: identical after normalisation
        ("\\$12", "12"),  # why: currency
        ("2.5", "7.5"),  # why: distinct decimals
    ],
)
def test_ordinary_answers_skip_math_verify(pred, gold):
    # The speed target (>= 50x plain math-verify, see benchmarks/bench_reward.py) rests on this.
    assert math_equal(pred, gold).via == "fast"


def test_keys_are_identical_for_every_call():
    length = {"length_penalty_weight": 1.0, "max_response_len": 40, "overlong_buffer_len": 10}
    calls = [
        ("math", "\\boxed{1}", "1", {}),  # why: fast-path hit
        ("math", "", "1", {}),  # why: nothing extracted
        ("math", "\\boxed{x+1}", "1+x", {"format_weight": 0.5}),  # why: math-verify path, weighted format
        ("aime24", "<think>t</think><answer>\\boxed{5}</answer>", "5", length),  # why: length penalty on
        ("openai/gsm8k", "#### 3", "3", {}),  # why: gsm8k scorer
        ("gsm8k", "", "3", {"format_weight": 1.0}),  # why: gsm8k, empty response
    ] * 20 + [("math", PATHOLOGICAL, "1", {"timeout_s": 0.3})]  # why: a timed-out check keeps the keys too
    for source, response, gold, kwargs in calls:
        result = compute_score(source, response, gold, extra_info={"index": 0}, **kwargs)
        assert tuple(result) == REWARD_KEYS
        assert all(isinstance(result[k], float) for k in REWARD_KEYS if k != "pred")
        assert isinstance(result["pred"], str)


def test_weights_combine_format_and_length():
    response = "<think>" + "x" * 50 + "</think><answer>\\boxed{5}</answer>"
    assert len(response) == 91  # 11 characters into the 20-character buffer that starts at 80
    result = compute_score(
        "math", response, "5", format_weight=0.5, length_penalty_weight=2.0,
        max_response_len=100, overlong_buffer_len=20, overlong_penalty_factor=1.0,
    )
    expected_penalty = -11 / 20
    assert result["length_penalty"] == pytest.approx(expected_penalty)
    assert result["format"] == 1.0
    assert result["score"] == pytest.approx(1.0 + 0.5 * 1.0 + 2.0 * expected_penalty)


def test_length_in_tokens_with_a_tokenizer(tiny_model_dir, tiny_tokenizer):
    response = "The answer is \\boxed{12}. " * 10
    n_tokens = len(tiny_tokenizer.encode(response, add_special_tokens=False))
    assert n_tokens != len(response)  # otherwise the test could not tell tokens from characters
    result = compute_score(
        "math", response, "12", length_penalty_weight=1.0,
        max_response_len=n_tokens, overlong_buffer_len=n_tokens, length_tokenizer=str(tiny_model_dir),
    )
    assert result["length_penalty"] == pytest.approx(-1.0)  # exactly at max_len in tokens


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        (("gsm8k_v2", "#### 1", "1"), {}, UnknownDataSourceError, "openai/gsm8k"),  # why: lists the known names
        (("math", "\\boxed{1}", "1"), {"formt_weight": 1.0}, TypeError, "formt_weight"),  # why: typo in reward_kwargs
        (("math", "\\boxed{1}", "1"), {"format_weight": "0.1"}, ValueError, "format_weight"),  # why: string from YAML
        (("math", "\\boxed{1}", "1"), {"timeout_s": 0}, ValueError, "timeout_s"),  # why: zero limit
        (("math", "\\boxed{1}", "1"), {"length_penalty_weight": 1.0}, ValueError, "max_response_len"),  # why: no length
        (("math", "\\boxed{1}", ""), {}, ValueError, "ground_truth"),  # why: empty gold in the data
        (("math", "\\boxed{1}", None), {}, ValueError, "ground_truth"),  # why: missing gold in the data
        (("gsm8k", "#### 1", "one"), {}, ValueError, "gsm8k ground_truth"),  # why: non-numeric gsm8k gold
        (("math", None, "1"), {}, TypeError, "solution_str"),  # why: not a string
    ],
)
def test_bad_inputs_raise_clear_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        compute_score(*args, **kwargs)


def test_unknown_data_source_is_also_not_implemented_error():
    # verl's default scorer raises NotImplementedError; callers catching that keep working.
    with pytest.raises(NotImplementedError):
        compute_score("codecontests", "x", "y")


def test_verl_passthrough_kwargs_are_accepted():
    result = compute_score("math", "\\boxed{1}", "1", reward_router_address=None, reward_model_tokenizer=None)
    assert result["score"] == 1.0


def test_time_limit_holds_off_the_main_thread():
    compute_score("math", "\\boxed{x+1}", "1+x")  # start a worker first: startup is not the limit
    box = {}

    def score():
        start = time.monotonic()
        box["result"] = compute_score("math", PATHOLOGICAL, "1", timeout_s=0.5)
        box["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=score)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "compute_score hung past its time limit"
    assert box["result"]["timeout"] == 1.0
    assert box["result"]["score"] == 0.0 and box["result"]["acc"] == 0.0
    # 0.5 s limit + killing the worker; 10 s only absorbs a busy machine, a hang takes minutes.
    assert box["elapsed"] < 10
    # The hung worker was killed and replaced: the next symbolic check still works.
    assert compute_score("math", "\\boxed{(x+1)^2}", "x^2+2x+1")["acc"] == 1.0


def test_time_limit_inside_an_asyncio_executor_like_verl():
    # verl's reward managers call a sync compute_score via loop.run_in_executor(None, ...).
    async def main():
        loop = asyncio.get_running_loop()
        return await asyncio.gather(
            loop.run_in_executor(None, lambda: compute_score("math", PATHOLOGICAL, "1", timeout_s=0.5)),
            loop.run_in_executor(None, lambda: compute_score("math", "\\boxed{\\sqrt{4}}", "2")),
            loop.run_in_executor(None, lambda: compute_score("math", "\\boxed{(x+1)^2}", "x^2+2x+1")),
        )

    hung, surd, poly = asyncio.run(asyncio.wait_for(main(), timeout=60))
    assert hung["timeout"] == 1.0 and hung["score"] == 0.0
    assert surd["acc"] == 1.0 and surd["timeout"] == 0.0
    assert poly["acc"] == 1.0 and poly["timeout"] == 0.0


def test_many_threads_share_the_worker_pool():
    pairs = [("\\boxed{x^2-1}", "(x-1)(x+1)", 1.0), ("\\boxed{x^2+1}", "(x-1)(x+1)", 0.0)] * 8
    results = [None] * len(pairs)

    def run(i):
        results[i] = compute_score("math", pairs[i][0], pairs[i][1])["acc"]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [acc for _, _, acc in pairs]


def test_verl_loader_loads_and_scores():
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = OmegaConf.create(
        {"reward": {"custom_reward_function": {"path": str(MODULE_PATH), "name": "compute_score",
                                               "reward_kwargs": {"format_weight": 0.5}}}}
    )
    fn = get_custom_reward_fn(cfg)
    right = fn(data_source="openai/gsm8k", solution_str="<think>24*3</think><answer>72</answer>",
               ground_truth="72", extra_info={"split": "test", "index": 3})
    wrong = fn(data_source="lighteval/MATH", solution_str="\\boxed{\\frac{1}{3}}", ground_truth="0.5")
    assert right == {"score": 1.25, "acc": 1.0, "format": 0.5, "pred": "72", "timeout": 0.0, "length_penalty": 0.0}
    assert wrong["score"] == 0.0 and wrong["pred"] == "\\frac{1}{3}"


def test_verl_naive_reward_manager_end_to_end(tiny_tokenizer):
    # The reward manager verl 0.9.1 runs by default: decodes token ids, calls our function in
    # its executor and turns the dict into reward + extra info.
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg = OmegaConf.create({"reward": {"custom_reward_function": {"path": str(MODULE_PATH), "name": "compute_score",
                                                                  "reward_kwargs": {}}}})
    response = "<think>half of 1</think><answer>\\boxed{\\frac{1}{2}}</answer>"
    response_ids = tiny_tokenizer.encode(response, add_special_tokens=False)
    prompt_len, pad = 4, 3
    responses = torch.tensor([response_ids + [tiny_tokenizer.pad_token_id or 0] * pad])
    mask = torch.tensor([[1] * prompt_len + [1] * len(response_ids) + [0] * pad])
    data = DataProto.from_dict(
        tensors={"responses": responses, "attention_mask": mask},
        non_tensors={"data_source": np.array(["HuggingFaceH4/MATH-500"], dtype=object),
                     "reward_model": np.array([{"ground_truth": "0.5", "style": "rule"}], dtype=object),
                     "extra_info": np.array([{"index": 0}], dtype=object)},
    )

    async def main():
        manager = NaiveRewardManager(cfg, tiny_tokenizer, get_custom_reward_fn(cfg))
        return await manager.run_single(data)

    out = asyncio.run(main())
    assert out["reward_score"] == 1.0
    assert list(out["reward_extra_info"]) == list(REWARD_KEYS)
    assert out["reward_extra_info"]["pred"] == "\\frac{1}{2}"
    # verl decodes with skip_special_tokens=True; the reasoning tags are ordinary added tokens
    # (as in Qwen's tokenizers), so they reach the reward function and the format reward sees them.
    decoded = tiny_tokenizer.decode(response_ids, skip_special_tokens=True)
    assert "<think>" in decoded
    assert out["reward_extra_info"]["format"] == format_reward(decoded) == 1.0


def test_self_check_runs_from_another_directory(tmp_path):
    proc = subprocess.run([sys.executable, str(MODULE_PATH)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "self-check passed" in proc.stdout


def test_worker_caps_its_cpu_time_for_the_orphan_case():
    # If the training process dies mid-check nobody kills the worker; its CPU-time limit
    # (limit + 10 s per check) lets the kernel end it even inside a long C call.
    assert compute_score("math", "\\boxed{x+2}", "2+x", timeout_s=2.0)["acc"] == 1.0
    pid = rf._pool()._idle[-1].proc.pid
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    soft = next(line for line in limits if line.startswith("Max cpu time")).split()[3]
    assert soft != "unlimited" and 12 <= int(soft) <= 12 + 60  # used CPU so far + 2 s + 10 s slack
