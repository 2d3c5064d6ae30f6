"""Tests for common/reward_functions.py and common/math_answer.py (CPU, ~40 s; starts math-verify workers).

    .venv/bin/python -m pytest tests/common/test_reward_functions.py -q

LABELLED (several hundred answer pairs, each with why) and ADVERSARIAL are also read by
benchmarks/bench_reward.py, which prints math-verify's own verdicts and the speed on them.
"""

import asyncio
import doctest
import random
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

import common.math_answer as ma
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
def _warm_workers():
    # A check waits for a math-verify worker only until its own deadline; start one up front so
    # that a busy machine's slow sympy import cannot turn an early check into a time-out.
    assert rf._pool().warm(wait_s=120)
    yield
    rf.shutdown_verifiers()


@pytest.mark.parametrize("module, minimum", [(rf, 30), (ma, 18)])
def test_doctests_pass(module, minimum):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    # why: every public function carries an example; make sure they ran, not just that none failed
    assert result.attempted >= minimum
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
        ("<think>a</think><think>b</think><answer>\\boxed{1}</answer>", 1.0),  # why: two think blocks, then the answer
        ("<think>a</think><answer>x</answer><answer>\\boxed{1}</answer>", 0.5),  # why: the first answer pair is the one read
        ("<think>a</think><answer>" * 2000, 0.0),  # why: 2,000 unclosed pairs (the old regex backtracked for minutes)
    ],
)
def test_format_reward(text, expected):
    assert format_reward(text) == expected


def test_format_reward_is_linear_on_repeated_tags():
    # The regex it replaces took ~55 s on 250 repeats and ~4 minutes on 2,000; four str.find
    # calls take microseconds. 2 s only absorbs a busy machine.
    start = time.monotonic()
    format_reward("<think>a</think><answer>" * 20_000)
    assert time.monotonic() - start < 2


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
        ("so \\boxed{1} no wait \\boxed{2}", "2"),  # why: the last box wins over a draft followed by text
        ("\\boxed{\\frac{a^{2}}{b_{1}}}", "\\frac{a^{2}}{b_{1}}"),  # why: nested braces kept whole
        ("\\fbox{7}", "7"),  # why: \\fbox is a box too
        ("\\boxed 5.", "5"),  # why: MATH's unbraced form
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # why: escaped braces do not close the box
        ("first \\boxed{3} then \\boxed{4", ""),  # why: truncated last box is no answer (not the older one)
        ("\\boxed{1} and \\boxed{2}", "1, 2"),  # why: boxes joined by "and" are one list answer
        ("$\\boxed{1}$, $\\boxed{2}$ or $\\boxed{3}$", "1, 2, 3"),  # why: commas and "or" join boxes too
        ("$x=\\boxed{1}$ and $x=\\boxed{2}$", "1, 2"),  # why: an assignment before each box still joins them
        ("\\boxed{2} and \\boxed{2}", "2"),  # why: the same answer twice is one answer
        ("<think>x</think><answer> 12 </answer>", "12"),  # why: answer tag, whitespace trimmed
        ("<answer>1</answer> ... <answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"),  # why: last tag wins
        ("<answer>we get 5 apples</answer>", "5"),  # why: prose in the tag: its last number
        ("<answer>x = 3</answer>", "x = 3"),  # why: a math-only tag is kept whole
        ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),  # why: Minerva line
        ("Final answer: 18.", "18"),  # why: trailing full stop dropped
        ("Final Answer: The final answer is 18", "18"),  # why: the last phrase on the line wins
        ("Work...\nAnswer: -7", "-7"),  # why: DAPO's "Answer: X" last line
        ("**Answer:** 3", "3"),  # why: markdown-bold answer line
        ("Answer $$ 9 $$", "9"),  # why: "Answer" right before display math
        ("The answer is 5 apples, since 2 + 3 = 5.", "5"),  # why: the first number after the phrase
        ("#### 1,234", "1,234"),  # why: the GSM8K marker is a phrase too
        ("The answer might be 5", "5"),  # why: no marker: the last number
        ("So x = -5", "-5"),  # why: the last number keeps its sign
        ("Thus $y = 2$ and so on.", "y = 2"),  # why: the last LaTeX span ends after the last number
        ("The probability is \\frac{3}{4}", "\\frac{3}{4}"),  # why: an undelimited \\frac is one number
        ("about 2\\sqrt{3} units", "2\\sqrt{3}"),  # why: an undelimited radical with a coefficient
        ("x^2 is the answer", ""),  # why: a digit glued to "^" is no number
        ("I am not sure.", ""),  # why: nothing to extract
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
        ("each bag weighs 2,5 kg", "2.5"),  # why: a decimal comma is read as a decimal point
        ("#### 1 250", "1250"),  # why: a space as thousands separator
        ("#### 1,250", "1250"),  # why: a comma as thousands separator
    ],
)
def test_extract_gsm8k_answer(text, expected):
    assert extract_gsm8k_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("#### 72", "72"),  # why: the marker counts in strict mode
        ("\\boxed{72} clips", "72"),  # why: so does a box
        ("she has 72 clips", ""),  # why: no marker: the last-number fallback is off
        ("<answer>72</answer>", ""),  # why: answer tags are no marker for GSM8K
    ],
)
def test_extract_gsm8k_answer_strict(text, expected):
    assert extract_gsm8k_answer(text, strict_boxed=True) == expected


@pytest.mark.parametrize(
    "data_source, response, gold, loose, strict",
    [
        ("math", "\\boxed{12}", "12", 1.0, 1.0),  # why: a boxed answer counts either way
        ("math", "The answer is 12.", "12", 1.0, 0.0),  # why: a phrase counts only without strict_boxed
        ("math", "<answer>12</answer>", "12", 1.0, 0.0),  # why: so do answer tags
        ("math", "... so 12", "12", 1.0, 0.0),  # why: and the last number
        ("gsm8k", "#### 12", "12", 1.0, 1.0),  # why: GSM8K's marker counts either way
        ("gsm8k", "so 12 in all", "12", 1.0, 0.0),  # why: GSM8K's last-number fallback is off in strict mode
    ],
)
def test_strict_boxed(data_source, response, gold, loose, strict):
    assert compute_score(data_source, response, gold)["acc"] == loose
    assert compute_score(data_source, response, gold, strict_boxed=True)["acc"] == strict


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
        (("math", "\\boxed{1}", "1"), {"strict_boxed": "yes"}, ValueError, "strict_boxed"),  # why: a string from YAML
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


# ---------------------------------------------------------------------------------------------
# The labelled table: answers as models write them, against ground truths as datasets store them
# ---------------------------------------------------------------------------------------------

# (response, ground truth, label): label is True when the response's final answer equals the
# ground truth, whatever the reward says. A fourth element KNOWN_MISS marks the rows the reward
# gets wrong on purpose or by limitation (math-verify's verdict, which the reward follows, or an
# answer no extraction rule reads); those rows expect the opposite of the label.
KNOWN_MISS = "known miss"
LABELLED = [
    # -- integers --------------------------------------------------------------------------
    ("The answer is $\\boxed{42}$.", "42", True),  # why: the ordinary boxed integer
    ("The answer is $\\boxed{41}$.", "42", False),  # why: off by one
    ("So $\\boxed{-7}$.", "-7", True),  # why: negative integer
    ("So $\\boxed{7}$.", "-7", False),  # why: sign dropped
    ("So $\\boxed{-7}$.", "7", False),  # why: sign added
    ("Thus \\boxed{0}.", "0", True),  # why: zero
    ("Thus \\boxed{-0}.", "0", True),  # why: negative zero is zero
    ("Thus \\boxed{ 12 }.", "12", True),  # why: spaces inside the box
    ("Thus \\boxed{012}.", "12", True),  # why: a leading zero
    ("Thus \\boxed{+5}.", "5", True),  # why: explicit plus sign
    ("Thus \\boxed{5.0}.", "5", True),  # why: integer written with .0
    ("Thus \\boxed{5.00}.", "5", True),  # why: integer written with .00
    ("Thus \\boxed{5.01}.", "5", False),  # why: a decimal near an integer
    ("Thus \\boxed{4.9999999}.", "5", False),  # why: an integer gold is not rounded to
    ("Thus \\boxed{100}.", "10^2", True),  # why: a power in the ground truth
    ("Thus \\boxed{2^{10}}.", "1024", True),  # why: a power in the answer
    ("Thus \\boxed{2^{10}}.", "1000", False),  # why: 1024 is not 1000
    ("Thus \\boxed{10^{-3}}.", "0.001", True),  # why: a negative power against a decimal
    ("Thus \\boxed{3 \\times 10^{4}}.", "30000", True),  # why: scientific form with \times
    ("Thus \\boxed{5 \\cdot 10^{2}}.", "500", True),  # why: scientific form with \cdot
    ("Thus \\boxed{123456789012345678901234567890}.", "123456789012345678901234567890", True),  # why: 30 digits
    ("Thus \\boxed{123456789012345678901234567891}.", "123456789012345678901234567890", False),  # why: differs in the last digit
    ("\\boxed{7} is what we get.", "7", True),  # why: text after the box
    ("First \\boxed{6}. Then we find the real answer \\boxed{7}.", "7", True),  # why: the last box wins
    ("$$\\boxed{2023}$$", "2023", True),  # why: display math around the box
    ("\\fbox{9}", "9", True),  # why: \fbox is a box too
    ("\\boxed 9.", "9", True),  # why: MATH's unbraced \boxed form
    ("The final answer is $\\boxed{\\text{17}}$.", "17", True),  # why: a number inside \text
    ("\\boxed{\\mathbf{8}}", "8", True),  # why: bold number
    ("We get \\boxed{8} apples.", "8", True),  # why: units after the box
    ("We get \\boxed{8 \\text{ apples}}.", "8", True),  # why: units inside the box
    ("We get \\boxed{8\\text{ cm}}.", "8", True),  # why: a unit in \text inside the box
    ("We get \\boxed{8 \\mbox{cm}}.", "8", True),  # why: a unit in \mbox
    ("We get \\boxed{8\\, \\mathrm{cm}}.", "8", True),  # why: a thin space then \mathrm unit
    ("We get \\boxed{8 \\text{ cm}^2}.", "8", True),  # why: a squared unit
    ("We get \\boxed{9}.", "8\\text{ cm}", False),  # why: a unit in the gold, wrong number
    ("The angle is \\boxed{30^\\circ}.", "30", True),  # why: degree sign in the answer
    ("The angle is \\boxed{30^{\\circ}}.", "30", True),  # why: braced degree sign
    ("The angle is \\boxed{30°}.", "30", True),  # why: a Unicode degree sign
    ("The angle is \\boxed{30}.", "30^\\circ", True),  # why: degree sign in the gold
    ("The angle is \\boxed{60^\\circ}.", "30^\\circ", False),  # why: wrong angle with degree signs
    ("The cost is \\boxed{\\$12}.", "12", True),  # why: an escaped dollar sign
    ("The cost is \\boxed{12}.", "\\$12", True),  # why: a dollar sign in the gold
    ("The cost is \\boxed{\\$12.50}.", "12.5", True),  # why: dollars and cents
    ("The cost is \\boxed{\\$13}.", "12", False),  # why: wrong amount in dollars
    ("<think>2+2=4</think><answer>\\boxed{4}</answer>", "4", True),  # why: box inside answer tags
    # -- integers without a box ---------------------------------------------------------------
    ("-5", "-5", True),  # why: a bare negative number
    ("5", "-5", False),  # why: a bare number, sign wrong
    ("42", "42", True),  # why: a bare integer
    ("The answer is 42.", "42", True),  # why: "the answer is" phrase
    ("The answer is 43.", "42", False),  # why: phrase with a wrong number
    ("So the answer is -12.", "-12", True),  # why: phrase, negative
    ("Answer: 18", "18", True),  # why: "Answer:" line
    ("Answer: 19", "18", False),  # why: "Answer:" line, wrong
    ("Work...\nAnswer: 204", "204", True),  # why: DAPO's last line
    ("**Answer:** 3", "3", True),  # why: markdown bold answer line
    ("**Final Answer:** 3", "3", True),  # why: markdown bold final answer
    ("Final answer: 18.", "18", True),  # why: trailing full stop
    ("Final Answer: The final answer is $10,455$. I hope it is correct.", "10455", True),  # why: Minerva, separators
    ("Final Answer: The final answer is $10,456$. I hope it is correct.", "10455", False),  # why: Minerva, wrong
    ("The final answer is 7. I hope it is correct.", "7", True),  # why: Minerva without dollars
    ("Answer $$ 9 $$", "9", True),  # why: "Answer" followed by display math
    ("Answer $$ 8 $$", "9", False),  # why: display math, wrong
    ("#### 72", "72", True),  # why: GSM8K marker in a math row
    ("She sold 48/2 = 24 clips.\n#### 72", "72", True),  # why: marker after working
    ("She sold 48/2 = 24 clips.\n#### 73", "72", False),  # why: marker, wrong
    ("Subtracting, we get -5", "-5", True),  # why: the last number of the response
    ("Subtracting 3 from 8 we get 5", "-5", False),  # why: last number, sign wrong
    ("So x = 4.", "4", True),  # why: an assignment without delimiters
    ("The total is 1,000.99", "1,000.99", True),  # why: separators and cents
    ("The total is 1,000.99", "1000.99", True),  # why: separators against none
    ("The total is 1,000.98", "1000.99", False),  # why: a cent off
    ("She has 72 clips.", "72", True),  # why: a unit word after the last number
    ("It fell to -3 degrees.", "-3", True),  # why: negative number in prose
    ("<think>3*24</think><answer>72</answer>", "72", True),  # why: answer tags
    ("<think>3*24</think><answer>71</answer>", "72", False),  # why: answer tags, wrong
    ("<think>x</think><answer>5 apples</answer>", "5", True),  # why: a unit word inside the tag
    ("<think>x</think><answer>The answer is 12</answer>", "12", True),  # why: a phrase inside the tag
    ("<answer>1</answer> on second thought <answer>2</answer>", "2", True),  # why: the last tag wins
    ("The result is $x = 9$.", "9", True),  # why: the last LaTeX span is an assignment
    ("We find that $n=15$ works, so there are 15 of them.", "15", True),  # why: the last number after a span
    ("The probability is \\frac{3}{4}", "\\frac{3}{4}", True),  # why: an undelimited \frac after a phrase
    ("Therefore the sum is $\\dfrac{3}{4}$.", "0.75", True),  # why: the last LaTeX span, a fraction
    ("I am not sure.", "5", False),  # why: no answer at all
    ("", "5", False),  # why: empty response
    ("The answer is \\boxed{}.", "5", False),  # why: an empty box
    ("so the answer is \\boxed{12", "12", False),  # why: cut off inside the box: no answer
    # -- separators ----------------------------------------------------------------------------
    ("\\boxed{1,000}", "1000", True),  # why: thousands comma
    ("\\boxed{1000}", "1,000", True),  # why: thousands comma in the gold
    ("\\boxed{1{,}000}", "1000", True),  # why: LaTeX's braced comma
    ("\\boxed{1,000,000}", "1000000", True),  # why: two separators
    ("\\boxed{1,000,001}", "1000000", False),  # why: separators, off by one
    ("\\boxed{12,345.5}", "12345.5", True),  # why: separators with a decimal part
    ("\\boxed{1,000.00}", "1000", True),  # why: separators and trailing zeros
    ("\\boxed{1\\,000}", "1000", True, KNOWN_MISS),  # why: thin-space separator; math-verify reads 1*000
    ("\\boxed{1 000}", "1000", True, KNOWN_MISS),  # why: space separator; math-verify reads a product
    ("\\boxed{1.000}", "1000", False),  # why: a European separator is a decimal point here
    ("\\boxed{100,000}", "10000", False),  # why: one zero too many
    ("The population is 2,345,678.", "2345678", True),  # why: separators in prose
    ("#### 1,234", "1234", True),  # why: separators after the marker
    # -- fractions -----------------------------------------------------------------------------
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", True),  # why: identical fractions
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", True),  # why: \dfrac
    ("\\boxed{\\tfrac{1}{2}}", "\\frac{1}{2}", True),  # why: \tfrac
    ("\\boxed{\\frac12}", "\\frac{1}{2}", True),  # why: unbraced \frac12
    ("\\boxed{1/2}", "\\frac{1}{2}", True),  # why: slash form
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),  # why: unreduced
    ("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}", False),  # why: different fraction
    ("\\boxed{\\frac{2}{3}}", "\\frac{3}{2}", False),  # why: reciprocal
    ("\\boxed{-\\frac{1}{2}}", "-\\frac{1}{2}", True),  # why: negative fraction
    ("\\boxed{\\frac{-1}{2}}", "-\\frac{1}{2}", True),  # why: minus in the numerator
    ("\\boxed{\\frac{1}{-2}}", "-\\frac{1}{2}", True),  # why: minus in the denominator
    ("\\boxed{\\frac{1}{2}}", "-\\frac{1}{2}", False),  # why: sign lost
    ("\\boxed{-1/2}", "-\\frac{1}{2}", True),  # why: negative slash form
    ("\\boxed{\\frac{7}{2}}", "3\\frac{1}{2}", True),  # why: mixed number in the gold
    ("\\boxed{3\\frac{1}{2}}", "3.5", True),  # why: mixed number against a decimal
    ("\\boxed{-2\\frac{1}{2}}", "-\\frac{5}{2}", True),  # why: negative mixed number
    ("\\boxed{\\frac{10}{4}}", "2.5", True),  # why: unreduced against a decimal
    ("\\boxed{\\frac{5}{2}}", "2.4", False),  # why: fraction against a wrong decimal
    ("\\boxed{\\frac{1}{3}}", "0.333333", True),  # why: math-verify rounds decimals to 6 places
    ("\\boxed{\\frac{1}{3}}", "0.3333", False),  # why: 4 places are not enough
    ("\\boxed{0.33}", "\\frac{1}{3}", False),  # why: a rough decimal is wrong
    ("\\boxed{\\frac{4}{2}}", "2", True),  # why: a fraction equal to an integer
    ("\\boxed{\\frac{3}{0}}", "3", False),  # why: division by zero is no number
    ("\\boxed{\\left(\\frac{1}{2}\\right)}", "\\frac{1}{2}", True),  # why: parenthesised with \left/\right
    ("\\boxed{\\dfrac{22}{7}}", "\\pi", False),  # why: 22/7 is not pi
    ("The ratio is 3/4.", "\\frac{3}{4}", True),  # why: unboxed slash form
    ("The ratio is 3/5.", "\\frac{3}{4}", False),  # why: unboxed, wrong
    ("\\boxed{\\frac{100}{3}}", "33\\frac{1}{3}", True),  # why: improper against mixed
    # -- decimals ------------------------------------------------------------------------------
    ("\\boxed{0.5}", "\\frac{1}{2}", True),  # why: decimal against fraction
    ("\\boxed{.5}", "0.5", True),  # why: no leading zero
    ("\\boxed{0.50}", "0.5", True),  # why: trailing zero
    ("\\boxed{2.50}", "2.5", True),  # why: trailing zero, larger
    ("\\boxed{2.05}", "2.5", False),  # why: digits swapped
    ("\\boxed{3.14}", "3.1400001", True),  # why: equal at 6 places
    ("\\boxed{3.14}", "3.141", False),  # why: different at the third place
    ("\\boxed{-0.125}", "-\\frac{1}{8}", True),  # why: negative decimal against fraction
    ("\\boxed{0.125}", "-\\frac{1}{8}", False),  # why: sign lost
    ("\\boxed{1.5}", "\\frac{3}{2}", True),  # why: one decimal place
    ("\\boxed{0.1}", "\\frac{1}{10}", True),  # why: a decimal with no exact binary form
    ("\\boxed{0.3333333}", "\\frac{1}{3}", True),  # why: seven places round to the gold
    ("\\boxed{0.666667}", "\\frac{2}{3}", True),  # why: rounded up at 6 places
    ("\\boxed{0.6667}", "\\frac{2}{3}", False),  # why: 4 places
    ("\\boxed{123.456}", "123.456", True),  # why: identical decimals
    ("\\boxed{123.465}", "123.456", False),  # why: transposed digits
    ("\\boxed{1e3}", "1000", False),  # why: e-notation is not read as a number by math-verify
    ("\\boxed{0.0001}", "10^{-4}", True),  # why: small decimal against a power
    ("The mean is 2.75.", "\\frac{11}{4}", True),  # why: an unboxed decimal
    ("\\boxed{12.5}", "12\\frac{1}{2}", True),  # why: decimal against a mixed number
    # -- radicals ------------------------------------------------------------------------------
    ("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", True),  # why: simplified radical
    ("\\boxed{\\sqrt{12}}", "2\\sqrt{3}", True),  # why: unsimplified radical
    ("\\boxed{3\\sqrt{2}}", "\\sqrt{18}", True),  # why: another simplification
    ("\\boxed{2\\sqrt{2}}", "\\sqrt{18}", False),  # why: wrong coefficient
    ("\\boxed{\\sqrt{2}}", "\\sqrt{3}", False),  # why: different radicand
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}", True),  # why: rationalised denominator
    ("\\boxed{\\frac{\\sqrt{3}}{3}}", "\\frac{1}{\\sqrt{3}}", True),  # why: rationalised, 3
    ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}", True),  # why: slash with a radical
    ("\\boxed{\\frac{\\sqrt{2}}{3}}", "\\frac{\\sqrt{2}}{2}", False),  # why: wrong denominator
    ("\\boxed{\\sqrt2}", "\\sqrt{2}", True),  # why: unbraced \sqrt2
    ("\\boxed{\\sqrt{4}}", "2", True),  # why: a perfect square
    ("\\boxed{\\sqrt{8}}", "2.828427", True),  # why: radical against a 6-place decimal
    ("\\boxed{2.83}", "2\\sqrt{2}", False),  # why: a rough decimal of a radical
    ("\\boxed{\\frac{3\\sqrt{5}}{5}}", "\\frac{3}{\\sqrt{5}}", True),  # why: coefficient and rationalised
    ("\\boxed{5\\sqrt{2}}", "\\sqrt{50}", True),  # why: 50 = 25 * 2
    ("\\boxed{\\sqrt{3}\\sqrt{2}}", "\\sqrt{6}", True),  # why: product of radicals
    ("\\boxed{-\\sqrt{5}}", "\\sqrt{5}", False),  # why: sign
    ("\\boxed{\\sqrt[3]{8}}", "2", True),  # why: a cube root (math-verify's call)
    ("\\boxed{4\\sqrt{3}}", "\\sqrt{48}", True),  # why: 48 = 16 * 3
    ("\\boxed{6\\sqrt{3}}", "\\sqrt{48}", False),  # why: 6 is not 4
    ("The side is $2\\sqrt{5}$.", "\\sqrt{20}", True),  # why: an unboxed radical in a span
    # -- multiples of pi -----------------------------------------------------------------------
    ("\\boxed{2\\pi}", "2\\pi", True),  # why: identical
    ("\\boxed{2 \\pi}", "2\\pi", True),  # why: a space
    ("\\boxed{\\frac{\\pi}{2}}", "\\frac{1}{2}\\pi", True),  # why: pi in the numerator
    ("\\boxed{\\frac{3\\pi}{4}}", "\\frac{3}{4}\\pi", True),  # why: coefficient and pi
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}", True),  # why: slash with pi
    ("\\boxed{\\frac{\\pi}{3}}", "\\frac{\\pi}{2}", False),  # why: wrong denominator
    ("\\boxed{6.283185}", "2\\pi", True),  # why: 6-place decimal of 2 pi
    ("\\boxed{6.28}", "2\\pi", False),  # why: a rough decimal
    ("\\boxed{3.14}", "\\pi", False),  # why: 3.14 is not pi
    ("\\boxed{\\pi^2}", "\\pi^{2}", True),  # why: power of pi, braces
    ("\\boxed{\\frac{\\pi^2}{6}}", "\\frac{\\pi^{2}}{6}", True),  # why: Basel sum
    ("\\boxed{\\frac{\\pi^2}{6}}", "1.644934", True),  # why: Basel sum as a decimal
    ("\\boxed{4\\pi}", "2\\pi", False),  # why: double
    ("\\boxed{-\\pi}", "\\pi", False),  # why: sign
    ("\\boxed{2\\sqrt{3}\\pi}", "2\\pi\\sqrt{3}", True),  # why: factor order
    ("\\boxed{\\pi}", "180^\\circ", False),  # why: radians against degrees (math-verify compares numbers)
    ("\\boxed{100\\pi}", "100\\pi", True),  # why: large multiple
    ("\\boxed{\\frac{4}{3}\\pi}", "\\frac{4\\pi}{3}", True),  # why: sphere volume coefficient
    ("The area is $9\\pi$ square units.", "9\\pi", True),  # why: unboxed, in a span, units after
    # -- tuples --------------------------------------------------------------------------------
    ("\\boxed{(1,2,3)}", "(1,2,3)", True),  # why: identical triple
    ("\\boxed{(1, 2, 3)}", "(1,2,3)", True),  # why: spaces
    ("\\boxed{(3,2,1)}", "(1,2,3)", False),  # why: order matters in a tuple
    ("\\boxed{(1,2,4)}", "(1,2,3)", False),  # why: one coordinate wrong
    ("\\boxed{\\left(1, 2\\right)}", "(1,2)", True),  # why: \left( \right)
    ("\\boxed{(2,1)}", "(1,2)", False),  # why: ordered pair reversed
    ("\\boxed{(-1,5)}", "(-1,5)", True),  # why: negative coordinate
    ("\\boxed{(1,-5)}", "(-1,5)", False),  # why: signs on the wrong coordinate
    ("\\boxed{(\\frac{1}{2}, 3)}", "(0.5,3)", True),  # why: a fraction coordinate against a decimal
    ("\\boxed{(2,3)}", "(2,3,4)", False),  # why: wrong arity
    ("\\boxed{(1,2,3,4)}", "(1,2,3,4)", True),  # why: quadruple
    ("The point is $(3, -4)$.", "(3,-4)", True),  # why: unboxed tuple in a span
    ("The point is $(3, 4)$.", "(3,-4)", False),  # why: unboxed, sign wrong
    ("\\boxed{(5,5)}", "(5,5)", True),  # why: equal coordinates
    ("\\boxed{(2, \\sqrt{3})}", "(2,\\sqrt{3})", True),  # why: a radical coordinate
    # -- equations -----------------------------------------------------------------------------
    ("\\boxed{x=3}", "3", True),  # why: assignment against a number
    ("\\boxed{3}", "x=3", True),  # why: number against an assignment
    ("\\boxed{x = 3}", "x=3", True),  # why: spaces around "="
    ("\\boxed{x=4}", "x=3", False),  # why: wrong value
    ("\\boxed{y=3}", "x=3", False),  # why: different variable
    ("\\boxed{x=-\\frac{1}{2}}", "-0.5", True),  # why: assignment of a fraction
    ("\\boxed{k=7}", "7", True),  # why: another variable name
    ("\\boxed{a = 2\\sqrt{2}}", "\\sqrt{8}", True),  # why: assignment of a radical
    ("\\boxed{n = 10}", "n=10", True),  # why: both assignments
    ("\\boxed{x=2, y=3}", "x=2, y=3", True),  # why: two assignments (math-verify's call)
    ("\\boxed{y = 2x + 3}", "y=2x+3", True),  # why: a line (math-verify's call)
    ("\\boxed{y = 2x + 4}", "y=2x+3", False),  # why: a different line
    ("So $t = 12$ seconds.", "12", True),  # why: an unboxed assignment with units
    # -- percentages ---------------------------------------------------------------------------
    ("\\boxed{50\\%}", "50", True),  # why: percent sign against the number
    ("\\boxed{50}", "50\\%", True),  # why: number against a percent gold
    ("\\boxed{50\\%}", "50\\%", True),  # why: both with percent signs
    ("\\boxed{50\\%}", "0.5", False),  # why: math-verify does not equate 50% with 0.5
    ("\\boxed{12.5\\%}", "12.5", True),  # why: decimal percent
    ("\\boxed{12.50\\%}", "12.5\\%", True),  # why: trailing zero in a percent
    ("\\boxed{13\\%}", "12\\%", False),  # why: wrong percent
    ("\\boxed{25 \\%}", "25", True),  # why: a space before the sign
    ("The rate is 40%.", "40", True),  # why: unboxed bare percent sign
    ("The rate is 45%.", "40", False),  # why: unboxed wrong percent
    ("\\boxed{33\\frac{1}{3}\\%}", "33\\frac{1}{3}", True, KNOWN_MISS),  # why: mixed-number percent; math-verify reads 33
    ("\\boxed{150\\%}", "150", True),  # why: above a hundred
    # -- intervals -----------------------------------------------------------------------------
    ("\\boxed{[0,1)}", "[0,1)", True),  # why: half-open interval
    ("\\boxed{[0, 1)}", "[0,1)", True),  # why: a space
    ("\\boxed{[0,1]}", "[0,1)", False),  # why: closed against half-open
    ("\\boxed{(0,1)}", "[0,1)", False),  # why: open against half-open
    ("\\boxed{(-\\infty, 3]}", "(-\\infty,3]", True),  # why: infinite left end
    ("\\boxed{(-\\infty, 3)}", "(-\\infty,3]", False),  # why: open right end
    ("\\boxed{[-\\infty, 3]}", "(-\\infty,3]", True),  # why: a bracket at infinity is still open
    ("\\boxed{(2, \\infty)}", "(2,\\infty)", True),  # why: infinite right end
    ("\\boxed{(2, +\\infty)}", "(2,\\infty)", True),  # why: +infinity
    ("\\boxed{(3, \\infty)}", "(2,\\infty)", False),  # why: wrong left end
    ("\\boxed{(-\\infty,2)\\cup(3,\\infty)}", "(-\\infty,2)\\cup(3,\\infty)", True),  # why: union
    ("\\boxed{(3,\\infty)\\cup(-\\infty,2)}", "(-\\infty,2)\\cup(3,\\infty)", True),  # why: union in another order
    ("\\boxed{(-\\infty,2]\\cup(3,\\infty)}", "(-\\infty,2)\\cup(3,\\infty)", False),  # why: one end closed
    ("\\boxed{(-\\infty,2)\\cup(4,\\infty)}", "(-\\infty,2)\\cup(3,\\infty)", False),  # why: wrong end in a union
    ("\\boxed{(-\\infty, \\infty)}", "(-\\infty,\\infty)", True),  # why: the whole line
    ("\\boxed{\\left[ \\frac{1}{2}, 3 \\right)}", "[0.5,3)", True),  # why: fraction end against a decimal
    ("\\boxed{(1,3)\\cup(2,4)}", "(1,4)", True),  # why: overlapping union (math-verify's call)
    ("\\boxed{[-2, 5]}", "[-2,5]", True),  # why: negative left end
    ("\\boxed{[-2, 6]}", "[-2,5]", False),  # why: wrong right end
    ("$x \\in [1, 2]$", "[1,2]", True),  # why: unboxed membership (math-verify's call)
    # -- sets and several answers --------------------------------------------------------------
    ("\\boxed{\\{1, 2\\}}", "\\{1,2\\}", True),  # why: a set
    ("\\boxed{\\{2, 1\\}}", "\\{1,2\\}", True),  # why: sets are unordered
    ("\\boxed{\\{1, 3\\}}", "\\{1,2\\}", False),  # why: a wrong element
    ("\\boxed{\\{1, 2, 3\\}}", "\\{1,2\\}", False),  # why: an extra element
    ("\\boxed{1, 2}", "1, 2", True),  # why: a comma list
    ("\\boxed{2, 1}", "1, 2", True),  # why: a comma list in another order (math-verify reads a set)
    ("\\boxed{1, 3}", "1, 2", False),  # why: a wrong list
    ("\\boxed{1} and \\boxed{2}", "\\{1,2\\}", True),  # why: two boxes form the set
    ("\\boxed{2} and \\boxed{1}", "1, 2", True),  # why: two boxes in another order
    ("$\\boxed{-1}$, $\\boxed{3}$", "-1, 3", True),  # why: boxes separated by a comma
    ("\\boxed{1} or \\boxed{4}", "1, 2", False),  # why: two boxes, one wrong
    ("The roots are $x = \\boxed{-3}$ and $x = \\boxed{2}$.", "-3, 2", True),  # why: boxes inside assignments
    ("\\boxed{1} or \\boxed{2}", "2", False),  # why: hedging between two answers is not the answer
    ("\\boxed{2} and \\boxed{2}", "2", True),  # why: the same box twice is one answer
    ("Try \\boxed{1}. Hmm, that fails; the answer is \\boxed{2}.", "2", True),  # why: a draft box, then the answer
    ("\\boxed{\\{1,1,2\\}}", "\\{1,2\\}", True),  # why: a repeated element
    ("\\boxed{\\{-1, \\frac{1}{2}\\}}", "\\{\\frac{1}{2}, -1\\}", True),  # why: a set with a fraction
    ("\\boxed{\\{5\\}}", "5", True),  # why: a one-element set against a number (math-verify's call)
    ("\\boxed{3, 5, 7}", "3,5,7", True),  # why: a three-element list
    ("\\boxed{3, 5, 8}", "3,5,7", False),  # why: one wrong element
    ("The solutions are $1$ and $2$.", "1, 2", True),  # why: unboxed spans joined by "and" form a list
    ("The solutions are 1, 2.", "1, 2", True, KNOWN_MISS),  # why: a bare list in prose: the last number (2) is read
    ("\\boxed{\\emptyset}", "\\emptyset", True),  # why: the empty set (math-verify's call)
    # -- symbolic answers (math-verify's call) -------------------------------------------------
    ("\\boxed{(x+1)^2}", "x^2+2x+1", True),  # why: a polynomial identity
    ("\\boxed{x^2+1}", "(x+1)^2", False),  # why: a wrong polynomial
    ("\\boxed{\\frac{x}{2}}", "0.5x", True),  # why: coefficient forms
    ("\\boxed{2x}", "x+x", True),  # why: like terms
    ("\\boxed{\\sin^2 x + \\cos^2 x}", "1", True),  # why: a trigonometric identity
    ("\\boxed{e^{i\\pi}}", "-1", True, KNOWN_MISS),  # why: Euler's identity; math-verify does not evaluate it
    ("\\boxed{\\ln 8}", "3\\ln 2", True),  # why: log rules
    ("\\boxed{\\log_2 8}", "3", True),  # why: a log to an integer
    ("\\boxed{\\binom{5}{2}}", "10", True),  # why: a binomial coefficient
    ("\\boxed{5!}", "120", True),  # why: a factorial
    ("\\boxed{\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", True),  # why: a matrix
    ("\\boxed{\\begin{pmatrix}1&2\\\\4&3\\end{pmatrix}}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", False),  # why: swapped entries
    ("\\boxed{\\text{(B)}}", "B", True),  # why: a multiple-choice letter
    ("\\boxed{C}", "B", False),  # why: a different letter
    ("\\boxed{10^{10^{10}}}", "1", False),  # why: too big to check: a time-out, scored 0
    # -- LaTeX variants ------------------------------------------------------------------------
    ("\\boxed{\\displaystyle \\frac{1}{2}}", "\\frac{1}{2}", True),  # why: \displaystyle
    ("\\boxed{\\!\\frac{1}{2}}", "\\frac{1}{2}", True),  # why: negative thin space
    ("\\boxed{\\;42\\;}", "42", True),  # why: LaTeX spaces around
    ("\\boxed{~42}", "42", True, KNOWN_MISS),  # why: a tie; math-verify does not read "~42" as 42
    ("\\boxed{\\quad 42}", "42", True),  # why: \quad
    ("\\boxed{\\left[0,1\\right)}", "[0,1)", True),  # why: \left[ \right)
    ("\\boxed{−3}", "-3", True),  # why: a Unicode minus
    ("\\boxed{\\mathrm{4}}", "4", True),  # why: \mathrm around a number
    ("\\(\\boxed{4}\\)", "4", True),  # why: \( \) delimiters
    ("\\[\\boxed{4}\\]", "4", True),  # why: \[ \] delimiters
    ("The answer is \\(\\frac{5}{6}\\).", "\\frac{5}{6}", True),  # why: \( \) span without a box
    ("The answer is \\[\\frac{5}{6}\\]", "\\frac{5}{6}", True),  # why: \[ \] span without a box
    ("The answer is \\(\\frac{5}{7}\\).", "\\frac{5}{6}", False),  # why: \( \) span, wrong
    # -- written the way models write (cases not designed for) --------------------------------
    ("The answer is: $\\boxed{5}$", "5", True),  # why: colon before the box
    ("Therefore, $a+b = \\boxed{11}$.", "11", True),  # why: the box closes an equation
    ("Thus, it takes $\\boxed{3}$ hours.", "3", True),  # why: units after a boxed span
    ("\\boxed{7}\n\nLet me double check: 2+5=7. Yes.", "7", True),  # why: a check with numbers after the box
    ("The answer is \\boxed{5} (since 2+3=5).", "5", True),  # why: a parenthetical after the box
    ("The final answer is **5**.", "5", True),  # why: bold number after the phrase
    ("**5**", "5", True),  # why: a bare bold number
    ("Final answer: \\(\\frac{1}{2}\\)", "\\frac{1}{2}", True),  # why: phrase then \( \) span
    ("So the answer is 1/2.", "0.5", True),  # why: phrase then a slash fraction
    ("Answer: x = 7", "7", True),  # why: phrase then an assignment
    ("Answer: 3. Wait, let me recheck.\nAnswer: 4", "4", True),  # why: the last phrase wins
    ("The answer is 5, since 2 + 3 = 5.", "5", True),  # why: a reason after the answer
    ("The answer is 5 or 6.", "5", False),  # why: hedging after the phrase
    ("The answer is not 5, it is 6.", "6", True, KNOWN_MISS),  # why: a negation: the first number after the phrase is read
    ("The answer is 12 dollars and 50 cents.", "12.5", True, KNOWN_MISS),  # why: an amount in words is not converted
    ("The answer is $18.", "18", True),  # why: a currency sign that opens no math
    ("He has 5 apples left. #### 5", "5", True),  # why: the marker at the end of a line
    ("\\boxed{\\frac {1} {2}}", "0.5", True),  # why: spaces between \\frac and its arguments
    ("\\boxed{ \\dfrac{ 3 }{ 4 } }", "0.75", True),  # why: spaces everywhere
    ("\\boxed{\\frac{1}{2}}.", "\\frac{1}{2}", True),  # why: a full stop after the box
    ("\\boxed{3\\sqrt2}", "\\sqrt{18}", True),  # why: unbraced radicand after a coefficient
    ("\\boxed{\\sqrt{2}\\cdot 3}", "3\\sqrt{2}", True),  # why: a coefficient after the radical
    ("\\boxed{\\frac{\\sqrt{6}}{2}}", "\\sqrt{\\frac{3}{2}}", True),  # why: the root of a fraction (math-verify's call)
    ("\\boxed{1.2 \\times 10^{5}}", "120000", True),  # why: a decimal in scientific form (math-verify's call)
    ("\\boxed{10!}", "3628800", True),  # why: a factorial value
    ("\\boxed{0.1}", "0.01", False),  # why: a place off
    ("\\boxed{\\frac{1}{4}}", "0.2", False),  # why: a quarter is not a fifth
    ("\\boxed{14}", "41", False),  # why: swapped digits
    ("\\boxed{1/3}", "3", False),  # why: the reciprocal
    ("It is approximately 3.14159.", "\\pi", False),  # why: 5 places of pi are not pi at 6
    ("\\boxed{\\pm 3}", "3, -3", True),  # why: plus-minus against a list (math-verify's call)
    ("\\boxed{1 < x < 2}", "(1,2)", True, KNOWN_MISS),  # why: an inequality against an interval; math-verify keeps them apart
    ("\\boxed{x \\in (1, 2)}", "(1,2)", True),  # why: membership written out (math-verify's call)
    ("\\boxed{\\text{three}}", "3", True, KNOWN_MISS),  # why: a number in words is not read
    ("\\boxed{\\text{No solution}}", "\\text{No solution}", True),  # why: a text answer equal to the gold
    ("\\boxed{2\\pi r}", "2\\pi r", True),  # why: a symbolic answer with pi
    ("\\boxed{\\frac{5}{3}}", "1.67", False),  # why: a 2-place decimal is not 5/3
    ("\\boxed{1.67}", "1.67", True),  # why: identical decimals
    ("\\boxed{-3.5}", "-\\frac{7}{2}", True),  # why: negative decimal against a negative fraction
    ("\\boxed{\\frac{7}{2}}", "-3.5", False),  # why: sign lost against a decimal
    ("\\boxed{(0, \\frac{1}{2}]}", "(0,0.5]", True),  # why: interval with a fraction end
    ("\\boxed{(1, 2)}", "1, 2", True),  # why: an open interval against a bare pair, compared as (start, end)
    ("\\boxed{x=1, x=2}", "1, 2", True),  # why: a list of assignments (math-verify's call)
    ("\\boxed{7, 8}", "7", False),  # why: a list against one number
    ("\\boxed{10\\%}", "10", True),  # why: a percent in the box, plain gold
    ("\\boxed{0.10}", "10\\%", False),  # why: a fraction of one against a percent
    ("\\boxed{45^\\circ}", "45", True),  # why: degrees in the box
    ("\\boxed{\\$1,250}", "1250", True),  # why: dollars and separators together
    ("\\boxed{1,250.5}", "1250.50", True),  # why: separators against trailing zeros
    ("\\boxed{\\frac{3}{4}\\text{ of the pie}}", "\\frac{3}{4}", True),  # why: words after the value in \\text
    ("\\boxed{\\textbf{12}}", "12", True),  # why: \\textbf
    ("\\boxed{12 \\, \\text{m}^2}", "12", True),  # why: a thin space before a squared unit
    ("\\boxed{-\\dfrac{\\sqrt{3}}{2}}", "-\\frac{\\sqrt{3}}{2}", True),  # why: negative radical fraction
    ("\\boxed{\\dfrac{\\sqrt{3}}{2}}", "-\\frac{\\sqrt{3}}{2}", False),  # why: sign lost on a radical fraction
    ("\\boxed{0.866025}", "\\frac{\\sqrt{3}}{2}", True),  # why: 6-place decimal of a radical
    ("\\boxed{0.8660}", "\\frac{\\sqrt{3}}{2}", False),  # why: 4-place decimal of a radical
    ("\\boxed{2^{-2}}", "\\frac{1}{4}", True),  # why: a negative power against a fraction
    ("\\boxed{3^3}", "27", True),  # why: an unbraced power
    ("\\boxed{3^3}", "9", False),  # why: a power, wrong
    ("\\boxed{\\left\\{ 1, 2 \\right\\}}", "\\{1,2\\}", True),  # why: \\left\\{ \\right\\}
    ("\\boxed{\\{ 0 \\}}", "\\{0\\}", True),  # why: a one-element set
    ("\\boxed{\\{-2, 2\\}}", "\\{2, -2\\}", True),  # why: a symmetric set in another order
    ("\\boxed{\\{-2, 2\\}}", "\\{2\\}", False),  # why: an extra element
    ("<answer>\\frac{2}{3}</answer>", "\\dfrac{2}{3}", True),  # why: LaTeX inside answer tags without a box
    ("<answer>$(1, 2)$</answer>", "(1,2)", True),  # why: a span inside answer tags
    ("<answer>x = -1</answer>", "-1", True),  # why: an assignment inside answer tags
    ("<answer></answer> so 9", "9", True),  # why: an empty tag falls through to the last number
    # -- ground truths written differently -----------------------------------------------------
    ("\\boxed{5}", "\\boxed{5}", True),  # why: a ground truth stored boxed
    ("\\boxed{5}", "$5$", True),  # why: a ground truth in dollars
    ("\\boxed{5}", " 5 ", True),  # why: spaces around the ground truth
    ("\\boxed{0.5}", "\\dfrac{1}{2}", True),  # why: a ground truth with \dfrac
    ("\\boxed{2}", "\\text{2}", True),  # why: a ground truth inside \text
    ("\\boxed{4, 9}", "\\boxed{9} and \\boxed{4}", True),  # why: a ground truth stored as two boxes is a set
    ("\\boxed{4, 9}", "\\(\\boxed{9}\\) or \\(\\boxed{4}\\)", True),  # why: boxes in \( \) joined by "or"
    ("\\boxed{4}", "\\boxed{9} and \\boxed{4}", False),  # why: one element of a two-element set
    ("\\boxed{3,5}", "3,5", True),  # why: a pair against a pair, both without spaces
    ("\\boxed{3.5}", "3,5", True),  # why: one number against a decimal comma (math-verify reads "3,5" bare as 3.5)
    # -- numbers in prose, decimal commas and spaced thousands ----------------------------------
    ("In total we pay 2 500 euros.", "2500", True),  # why: a space as thousands separator in prose
    ("So the population grows to 3 400 000 people.", "3400000", True),  # why: several spaced groups
    ("The mean is 12 345.5 points.", "12345.5", True),  # why: spaced groups with a decimal part
    ("The average mass is 4,75 kg.", "4.75", True),  # why: a decimal comma in prose
    ("The average mass is 4,75 kg.", "475", False),  # why: a decimal comma is no thousands separator
    ("It weighs 0,250 kg.", "0.25", True),  # why: "0,250" cannot be thousands: a decimal comma
    ("It weighs 0,250 kg.", "250", False),  # why: ... so it is not 250
    ("\\boxed{41, 600}", "41600", False),  # why: a comma and a space separate items, never thousands
    ("\\boxed{41,600}", "41600", True),  # why: the same digits without the space are thousands
    # -- a final-answer sentence -------------------------------------------------------------------
    ("Final Answer: The area of $PQRS$ is 48. I hope it is correct.", "48", True),  # why: letters in dollars before "is"
    ("Final Answer: The smallest $k$ is 17.", "17", True),  # why: a variable named before the value
    ("Final Answer: The number of roots of $g(x)$ is 3.", "3", True),  # why: a function named before the value
    ("Final answer: 42. This is because 6 times 7 is 42.", "42", True),  # why: "is" in a later sentence is not the answer
    ("We first try \\boxed{16}, but 16 is too small.\nFinal Answer: The final answer is $18$. I hope it is correct.", "18", True),  # why: a Minerva final answer after a drafted box wins
    ("\\boxed{16}. The final answer is the value in the box above.", "16", True),  # why: a final-answer phrase with no value leaves the box
    ("Final Answer: The final answer is $3$ and $7$. I hope it is correct.", "3, 7", True),  # why: two spans joined by "and"
    ("$\\boxed{2}$ cats and $\\boxed{5}$ dogs", "2, 5", True),  # why: a unit word between boxes joined by "and"
    ("\\boxed{2}, which is wrong. Instead \\boxed{5}", "5", True),  # why: prose between boxes: the earlier box is a draft
]


def _expected(row) -> float:
    label = row[2]
    return float(not label) if KNOWN_MISS in row[3:] else float(label)


@pytest.mark.parametrize("row", LABELLED, ids=[f"{i}:{r[0][:30]}" for i, r in enumerate(LABELLED)])
def test_labelled_table(row):
    response, gold = row[:2]
    result = compute_score("math", response, gold)
    assert result["acc"] == _expected(row)
    assert tuple(result) == REWARD_KEYS


def test_labelled_table_is_wide_and_mostly_right():
    # why: a goal met only on easy cases is not met; the table must hold several hundred pairs,
    # both verdicts, and at most 3% known misses (the bar: 97% agreement).
    assert len(LABELLED) >= 350
    assert 0.3 < sum(row[2] for row in LABELLED) / len(LABELLED) < 0.8
    misses = sum(KNOWN_MISS in row[3:] for row in LABELLED)
    assert misses / len(LABELLED) <= 0.03


def _math_verify_path(gold: str, pred: str) -> bool:
    # What the reward's worker runs when the exact forms leave a pair to math-verify.
    return verify(parse(f"${rf._normalize_for_verify(gold)}$"), parse(f"${rf._normalize_for_verify(pred)}$"))


def test_exact_forms_never_contradict_math_verify():
    # The exact forms may answer only when math-verify would answer the same; checked on every
    # pair of the table they decide, and on a seeded sample of the benchmark's ten kinds.
    from benchmarks.bench_reward import KINDS, cross_kind_pair, typical_pair

    rng = random.Random(7)
    pairs = [(rf.extract_math_answer(row[0]), g) for row in LABELLED for g in rf._gold_list(row[1])]
    pairs += [typical_pair(kind, rng)[::-1] for kind in KINDS for _ in range(15)]
    pairs += [cross_kind_pair(rng)[::-1] for _ in range(100)]
    decided, differ = 0, []
    for pred, gold in pairs:
        fast = ma.compare(ma.canonical(pred), ma.canonical(gold)) if pred else None
        if fast is None:
            continue
        decided += 1
        if fast != _math_verify_path(gold, pred):
            differ.append((pred, gold, fast))
    assert differ == []
    assert decided >= 400  # why: most pairs are decided without math-verify (the speed rests on it)


# ---------------------------------------------------------------------------------------------
# Adversarial inputs: every call returns within its limit, keys unchanged
# ---------------------------------------------------------------------------------------------

# (name, data_source, response, ground truth). benchmarks/bench_reward.py times them too.
ADVERSARIAL = [
    ("empty", "math", "", "1"),  # why: nothing at all
    ("1 MB", "math", "x" * 2**20 + " \\boxed{1}", "1"),  # why: only the last 16 KB are scanned
    ("1 MB, box at the start", "math", "\\boxed{1}" + "x" * 2**20, "1"),  # why: a box outside the scanned tail
    ("repeated tags", "math", "<think>a</think><answer>" * 2000, "1"),  # why: the old format regex backtracked
    ("unclosed braces", "math", "\\boxed{" + "{" * 10_000, "1"),  # why: a box that never closes
    ("100k nested braces", "math", "\\boxed{" + "{" * 100_000 + "1" + "}" * 100_000 + "}", "1"),  # why: depth
    ("5,000 nested braces", "math", "\\boxed{" + "{" * 5_000 + "1" + "}" * 5_000 + "}", "1"),  # why: math-verify's recursion
    ("nested fractions", "math", "\\boxed{" + "\\frac{1}{" * 1000 + "2" + "}" * 1000 + "}", "1"),  # why: sympy depth
    ("10^{10^{10}}", "math", "\\boxed{10^{10^{10}}}", "1"),  # why: sympy would expand it for minutes
    ("10^{10^{10}} gold", "math", "\\boxed{1}", "10^{10^{10}}"),  # why: the same in the ground truth
    ("5,000-digit answer", "math", "\\boxed{" + "9" * 5000 + "}", "9" * 5000),  # why: past int()'s 4,300 digits
    ("5,000-digit gold", "math", "\\boxed{12}", "9" * 5000),  # why: the same in the ground truth only
    ("5,000-digit gsm8k", "gsm8k", "#### " + "9" * 5000, "9" * 5000),  # why: the GSM8K path
    ("5,000-digit int gold", "math", "\\boxed{1}", 10**5000),  # why: an int that str() refuses
    ("digit run", "math", "1" * 100_000, "1"),  # why: one 16 KB number
    ("comma run", "math", "1," * 50_000, "1"),  # why: a list of 8,000 numbers
    ("dollar run", "math", "$" * 100_000, "1"),  # why: 50,000 empty math spans
    ("backslash run", "math", "\\" * 100_000, "1"),  # why: escapes everywhere
    ("answer phrases", "math", "Answer: " * 10_000, "1"),  # why: thousands of phrases with nothing after
    ("non-ASCII", "math", "答案是 \\boxed{४२} — Ответ ½ 🙂\u200b", "42"),  # why: other scripts' digits are no digits
    ("NUL bytes", "math", "\x00" * 1000 + "\\boxed{1}", "1"),  # why: control characters
    ("None ground truth", "math", "\\boxed{1}", None),  # why: a missing answer in the data
]


@pytest.mark.parametrize("name, source, response, gold", ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_inputs_return_in_time(name, source, response, gold):
    start = time.monotonic()
    if gold is None:
        # why: a data bug raises a clear error (the guard turns it into a counted reward_error)
        with pytest.raises(ValueError, match="ground_truth"):
            compute_score(source, response, gold, timeout_s=2.0)
        return
    result = compute_score(source, response, gold, timeout_s=2.0)
    elapsed = time.monotonic() - start
    assert tuple(result) == REWARD_KEYS
    assert all(isinstance(result[k], float) and np.isfinite(result[k]) for k in REWARD_KEYS if k != "pred")
    assert len(result["pred"]) <= 1000
    # 2 s limit for the whole call, a math-verify worker's start-up included; 6 s more only
    # absorbs a busy machine (killing a worker, thread switches), a hang takes minutes.
    assert elapsed < 8, f"{name} took {elapsed:.1f} s"
