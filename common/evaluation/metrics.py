"""What checkpoints are compared by: small pure functions over per-prompt samples and scores.

    metrics = group_metrics(samples, scores)   # samples[i][j], scores[i][j]: prompt i, sample j

Offers:
- ks(n): the k of pass@k and maj@k: 1, 2, 4, ... (powers of 2 below n), then n.
- pass_at_k(n, c, k): the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021).
- majority_correct(preds, correct): is the most common extracted answer right? Empty answers
  do not vote; a tie goes to the answer seen first; the answer's first sample says if it is right.
- maj_at_k(preds, correct, k): majority vote over k samples, averaged over the n // k disjoint
  blocks of k consecutive samples (samples are i.i.d., so every block is an unbiased draw).
- percentile(values, q): linear interpolation between closest ranks (numpy's default).
- group_metrics(samples, scores) -> dict, keys in report order:
  prompts, samples, accuracy, mean_score, then with n > 1 samples per prompt mean@n, pass@k and
  (when the reward gives an extracted answer, `pred`) maj@k for k in ks(n); then format_rate
  (mean of the reward's `format`; None without one), mean_tokens, p95_tokens, truncated_share
  (max_new_tokens reached without a stop token), reward_errors, reward_timeouts.
- has_pred(scores): does the reward give an extracted answer (maj@k possible)?
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from common.evaluation.generation import Sample
from common.evaluation.scoring import Score


def ks(n: int) -> list[int]:
    """
    >>> ks(1), ks(4), ks(6)
    ([1], [1, 2, 4], [1, 2, 4, 6])
    """
    out, k = [], 1
    while k < n:
        out.append(k)
        k *= 2
    return out + [n]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) is correct.

    >>> pass_at_k(4, 1, 1), pass_at_k(4, 1, 4), pass_at_k(4, 0, 2)
    (0.25, 1.0, 0.0)
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_correct(preds: list[str | None], correct: list[bool]) -> bool:
    """
    >>> majority_correct(["7", "8", "8"], [True, False, False])
    False
    >>> majority_correct(["7", "", "", "8"], [True, False, False, False])  # "" does not vote; tie -> first
    True
    """
    votes = Counter(p for p in preds if p)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(p for p in preds if p and votes[p] == top)  # first seen among the tied
    return bool(correct[preds.index(winner)])


def maj_at_k(preds: list[str | None], correct: list[bool], k: int) -> float:
    """
    >>> maj_at_k(["1", "1", "2", "2"], [True, True, False, False], 2)  # blocks [1,1] right, [2,2] wrong
    0.5
    """
    blocks = len(preds) // k
    if blocks < 1:
        raise ValueError(f"maj@{k} needs at least {k} samples, got {len(preds)}")
    return sum(majority_correct(preds[b * k : (b + 1) * k], correct[b * k : (b + 1) * k]) for b in range(blocks)) / blocks


def percentile(values: list[float], q: float) -> float:
    """
    >>> percentile([1, 2, 3, 4], 50), percentile(list(range(1, 21)), 95)
    (2.5, 19.05)
    """
    return round(float(np.percentile(np.asarray(values, dtype=float), q)), 10)


def has_pred(scores: list[list[Score]]) -> bool:
    return any(s.pred is not None for per_row in scores for s in per_row if s.error is None)


def group_metrics(samples: list[list[Sample]], scores: list[list[Score]], with_maj: bool | None = None) -> dict[str, Any]:
    """Metrics over one group of prompts (a data_source, or all); see the module docstring."""
    if not samples or len(samples) != len(scores):
        raise ValueError(f"group_metrics needs one list of samples per prompt; got {len(samples)} and {len(scores)}")
    n = len(samples[0])
    flat = [s for per_row in scores for s in per_row]
    gens = [g for per_row in samples for g in per_row]
    out: dict[str, Any] = {
        "prompts": len(samples),
        "samples": len(flat),
        "accuracy": sum(s.correct for s in flat) / len(flat),
        "mean_score": sum(s.score for s in flat) / len(flat),
    }
    if n > 1:
        out[f"mean@{n}"] = sum(sum(s.correct for s in per_row) / n for per_row in scores) / len(scores)
        for k in ks(n):
            out[f"pass@{k}"] = sum(pass_at_k(n, sum(s.correct for s in per_row), k) for per_row in scores) / len(scores)
        if has_pred(scores) if with_maj is None else with_maj:
            for k in ks(n):
                out[f"maj@{k}"] = sum(
                    maj_at_k([s.pred for s in per_row], [s.correct for s in per_row], k) for per_row in scores
                ) / len(scores)
    formats = [s.format for s in flat if s.format is not None]
    tokens = [g.tokens for g in gens]
    out.update(
        {
            "format_rate": sum(formats) / len(formats) if formats else None,
            "mean_tokens": sum(tokens) / len(tokens),
            "p95_tokens": percentile(tokens, 95),
            "truncated_share": sum(g.truncated for g in gens) / len(gens),
            "reward_errors": sum(s.error is not None and not s.timed_out for s in flat),
            "reward_timeouts": sum(s.timed_out for s in flat),
        }
    )
    return out
