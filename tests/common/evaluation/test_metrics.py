"""common/evaluation/metrics.py on hand-computed tables: pass@k, maj@k, percentiles, a whole group.

    .venv/bin/python -m pytest tests/common/evaluation/test_metrics.py -q
"""

from __future__ import annotations

import math

import pytest

from common.evaluation.generation import Sample
from common.evaluation.metrics import group_metrics, ks, maj_at_k, majority_correct, pass_at_k, percentile
from common.evaluation.scoring import Score


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (4, 0, 1, 0.0),  # why: no correct sample, never a pass
        (4, 4, 1, 1.0),  # why: all correct
        (4, 1, 1, 0.25),  # why: pass@1 is the plain accuracy c/n
        (4, 1, 2, 0.5),  # why: 1 - C(3,2)/C(4,2) = 1 - 3/6
        (4, 3, 2, 1.0),  # why: fewer than k wrong samples, every draw of 2 has a correct one
        (10, 2, 5, 1 - 56 / 252),  # why: 1 - C(8,5)/C(10,5)
        (6, 2, 4, 1 - 1 / 15),  # why: n not a power of 2: 1 - C(4,4)/C(6,4)
        (1, 1, 1, 1.0),  # why: one sample
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize("n,c,k", [(4, 5, 1), (4, 1, 5), (4, 1, 0), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    "n,expected",
    [(1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (16, [1, 2, 4, 8, 16]), (17, [1, 2, 4, 8, 16, 17])],
)
def test_ks(n, expected):
    assert ks(n) == expected


@pytest.mark.parametrize(
    "preds,correct,expected",
    [
        (["5", "5", "4"], [True, True, False], True),  # why: the right answer has the majority
        (["4", "5", "4"], [False, True, False], False),  # why: a wrong answer has the majority
        (["5", "4"], [True, False], True),  # why: a tie goes to the answer seen first
        (["4", "5"], [False, True], False),  # why: same tie, the wrong answer came first
        (["", "", "5"], [False, False, True], True),  # why: empty answers (nothing extracted) do not vote
        ([None, None, "5"], [False, False, True], True),  # why: failed scorings (no pred) do not vote
        (["", None], [False, False], False),  # why: nobody voted: not correct
        (["5", "5"], [False, True], False),  # why: the winning answer's first sample says whether it is right
        (["7"], [True], True),  # why: one sample
    ],
)
def test_majority_correct(preds, correct, expected):
    assert majority_correct(preds, correct) is expected


@pytest.mark.parametrize(
    "preds,correct,k,expected",
    [
        (["1", "1", "2", "2"], [True, True, False, False], 2, 0.5),  # why: blocks [1,1] right, [2,2] wrong
        (["1", "2", "2", "2"], [True, False, False, False], 4, 0.0),  # why: one block, "2" wins
        (["1", "2", "1", "1"], [True, False, True, True], 1, 0.75),  # why: k=1 is per-sample accuracy
        (["1", "2", "2", "2", "1", "1"], [True, False, False, False, True, True], 4, 0.0),  # why: 6 // 4 = 1 block
        (["1", "", "", "2"], [True, False, False, False], 2, 0.5),  # why: [1,""] -> 1 right; ["",2] -> 2 wrong
    ],
)
def test_maj_at_k(preds, correct, k, expected):
    assert maj_at_k(preds, correct, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    "values,q,expected",
    [
        (list(range(1, 21)), 95, 19.05),  # why: rank 0.95 * 19 = 18.05 -> 19 + 0.05 * (20 - 19)
        ([5], 95, 5.0),  # why: one value
        ([1, 2], 95, 1.95),  # why: rank 0.95 between the two
        ([3, 1, 2], 50, 2.0),  # why: unsorted input: the median
    ],
)
def test_percentile(values, q, expected):
    assert percentile(values, q) == pytest.approx(expected)


def _sample(tokens: int, truncated: bool = False) -> Sample:
    return Sample(text="x", tokens=tokens, truncated=truncated, latency_s=0.0)


def _ok(correct: bool, pred: str, fmt: float, own_timeout: bool = False) -> Score:
    # score = acc + 0.1 * format, like compute_score(format_weight=0.1): differs from correct
    return Score(float(correct) + 0.1 * fmt, correct, fmt, pred, timed_out=own_timeout)


# Three prompts x four samples; every number in EXPECTED below is worked out by hand in its comment.
GROUP_SAMPLES = [
    [_sample(10), _sample(20), _sample(30), _sample(40, truncated=True)],  # A
    [_sample(5), _sample(5), _sample(5), _sample(5)],  # B
    [_sample(1), _sample(2), _sample(3), _sample(4, truncated=True)],  # C
]
GROUP_SCORES = [
    [_ok(True, "5", 1.0), _ok(False, "4", 0.0), _ok(True, "5", 1.0), _ok(True, "5", 1.0)],  # A: 3 right
    [_ok(False, "3", 0.0), _ok(False, "3", 0.0), _ok(False, "", 0.0), _ok(False, "7", 0.5)],  # B: none
    [
        Score(0.0, False, None, None, error="ValueError: bad ground truth"),  # a failed scoring
        _ok(True, "9", 1.0),
        Score(0.0, False, None, None, timed_out=True, error="timeout: no result within 1 s"),  # killed
        _ok(False, "8", 0.0, own_timeout=True),  # the reward's own timeout flag (math-verify)
    ],  # C: 1 right
]
EXPECTED = {
    "prompts": 3,
    "samples": 12,
    "accuracy": 4 / 12,  # 3 + 0 + 1 correct samples
    "mean_score": (3.3 + 0.05 + 1.1) / 12,  # A 1.1+0+1.1+1.1, B 0.05, C 1.1
    "mean@4": (3 / 4 + 0 + 1 / 4) / 3,
    "pass@1": (3 / 4 + 0 + 1 / 4) / 3,  # c/n per prompt
    "pass@2": (1.0 + 0 + 0.5) / 3,  # A: n-c=1 < 2 -> 1; C: 1 - C(3,2)/C(4,2) = 0.5
    "pass@4": (1 + 0 + 1) / 3,
    "maj@1": (3 / 4 + 0 + 1 / 4) / 3,  # C: only the "9" sample votes right
    "maj@2": (1.0 + 0 + 0.5) / 3,  # A: [5,4] tie -> 5 right, [5,5] right; C: [-,9] right, [,8] wrong
    "maj@4": (1 + 0 + 1) / 3,  # B: "3" twice, wrong; C: 9 vs 8 tie -> 9 (first) right
    "format_rate": (3 + 0.5 + 1) / 10,  # mean of the 10 format values present (C has 2 None)
    "mean_tokens": (100 + 20 + 10) / 12,
    "p95_tokens": 34.5,  # sorted [1,2,3,4,5,5,5,5,10,20,30,40]: rank 10.45 -> 30 + 0.45 * 10
    "truncated_share": 2 / 12,
    "reward_errors": 1,  # the ValueError; the kill counts as a timeout
    "reward_timeouts": 2,  # the kill and the reward's own timeout flag
}


def test_group_metrics_hand_computed():
    got = group_metrics(GROUP_SAMPLES, GROUP_SCORES)
    assert list(got) == list(EXPECTED)  # the report's column order
    for key, value in EXPECTED.items():
        assert got[key] == pytest.approx(value), key


def test_group_metrics_without_pred_or_format_has_no_maj_and_no_format_rate():
    scores = [[Score(s.score, s.correct, None, None) for s in row] for row in GROUP_SCORES]
    got = group_metrics(GROUP_SAMPLES, scores)
    assert not [k for k in got if k.startswith("maj@")]  # a float reward: no extracted answer to vote on
    assert got["format_rate"] is None and got["pass@4"] == pytest.approx(EXPECTED["pass@4"])


def test_group_metrics_one_sample_has_no_k_columns():
    got = group_metrics([[_sample(3)], [_sample(5)]], [[_ok(True, "1", 1.0)], [_ok(False, "2", 0.0)]])
    assert not [k for k in got if "@" in k]
    assert got["accuracy"] == 0.5 and got["mean_tokens"] == 4 and got["p95_tokens"] == pytest.approx(4.9)
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in got.values())
