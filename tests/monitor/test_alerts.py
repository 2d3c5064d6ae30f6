"""Health rules in monitor/alerts.py, one table-driven case per rule: the metrics rules, DAPO's
dynamic-sampling share, rollout/training mismatch (rollout_corr/*) and the reward guard's errors.

    .venv/bin/python -m pytest tests/monitor/test_alerts.py -q
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor.alerts import (
    DAPO_EVICTED_KEY,
    DEFAULT_THRESHOLDS,
    alert_keys,
    check_alerts,
    dynamic_sampling_share,
    reward_error_alerts,
    run_config_from,
)


def healthy(step: int) -> dict:
    return {
        "step": step,
        "critic/score/mean": 0.2 + 0.01 * step,
        "critic/score/max": 1.0,
        "critic/score/min": 0.0,
        "critic/advantages/max": 1.2,
        "critic/advantages/min": -1.2,
        "actor/pg_loss": 0.01,
        "actor/kl_loss": 0.001 + 0.0001 * step,
        "actor/entropy": 1.0,
        "response_length/mean": 300.0,
        "response_length/clip_ratio": 0.01,
        "actor/pg_clipfrac": 0.02,
    }


def table(n=40, **patch):
    """n healthy steps; patch maps key -> fn(step, value) -> new value."""
    rows = [healthy(s) for s in range(1, n + 1)]
    for key, fn in patch.items():
        for r in rows:
            r[key] = fn(r["step"], r.get(key))
    return rows


CASES = [
    # (rows, expected alert name, expected first step)
    # why: a healthy run raises nothing
    (table(), None, None),
    # why: KL above 0.1 for 5+ steps
    (table(**{"actor/kl_loss": lambda s, v: 0.3 if 20 <= s <= 26 else v}), "kl_high", 20),
    # why: 4 steps above is below the patience of 5: no alert
    (table(**{"actor/kl_loss": lambda s, v: 0.3 if 20 <= s <= 23 else v}), None, None),
    # why: KL stuck at ~0 after the warm-up
    (table(**{"actor/kl_loss": lambda s, v: 0.0}), "kl_low", 11),
    # why: entropy collapses below 0.05
    (table(**{"actor/entropy": lambda s, v: 0.01 if s >= 30 else v}), "entropy_collapse", 30),
    # why: response length triples
    (table(**{"response_length/mean": lambda s, v: 1000.0 if s >= 30 else v}), "length_blowup", 30),
    # why: a quarter of responses truncated
    (table(**{"response_length/clip_ratio": lambda s, v: 0.25 if s >= 30 else v}), "clip_ratio_spike", 30),
    # why: PPO ratio clip active on 40% of tokens
    (table(**{"actor/pg_clipfrac": lambda s, v: 0.4 if s >= 30 else v}), "pg_clipfrac_spike", 30),
    # why: loss turns NaN (verl's FileLogger writes it as null -> None)
    (table(**{"actor/pg_loss": lambda s, v: None if s >= 25 else v}), "nan_loss", 25),
    # why: inf is bad even on the first row
    (table(**{"actor/pg_loss": lambda s, v: math.inf if s == 1 else v}), "nan_loss", 1),
    # why: every sample got the same reward (score max == min)
    (table(**{"critic/score/max": lambda s, v: 0.0 if s >= 10 else v, "critic/score/min": lambda s, v: 0.0}),
     "no_signal", 10),
    # why: GRPO advantages all zero = every group had equal rewards
    (table(**{"critic/advantages/max": lambda s, v: 0.0 if s >= 5 else v,
              "critic/advantages/min": lambda s, v: 0.0 if s >= 5 else v}), "no_signal", 5),
    # why: DAPO filters many groups per step and the batch size is unknown (no config.yaml): absolute count
    (table(**{DAPO_EVICTED_KEY: lambda s, v: 1000 if s >= 10 else 0}), "dynamic_sampling_heavy", 10),
    # why: reward falls while KL rises over the last 20 steps
    (table(**{"critic/score/mean": lambda s, v: 0.8 - 0.01 * s, "actor/kl_loss": lambda s, v: 0.001 * s}),
     "reward_down_kl_up", 21),
]


@pytest.mark.parametrize("rows,name,step", CASES)
def test_rules(rows, name, step):
    alerts = check_alerts(rows, {})
    check_alerts_fast = check_alerts(pd.DataFrame(rows), {})
    assert [a.name for a in alerts] == [a.name for a in check_alerts_fast]
    names = [a.name for a in alerts]
    if name is None:
        assert alerts == []
        return
    assert name in names, names
    alert = next(a for a in alerts if a.name == name)
    assert alert.step == step
    assert alert.message and alert.advice and alert.severity in ("critical", "warning", "info")


def test_sparse_validation_loss_is_not_nan():
    # why: SFT logs val/loss every test_freq steps; the missing steps must not read as NaN losses
    rows = [{"step": s, "train/loss": 1.0, **({"val/loss": 0.9} if s % 10 == 0 else {})} for s in range(1, 41)]
    assert check_alerts(rows, {}) == []


def test_accepts_dataframe_and_verl_records_alike():
    rows = table(**{"actor/kl_loss": lambda s, v: 0.5})
    records = [{"step": r.pop("step"), "data": r} for r in [dict(x) for x in rows]]
    a = [x.name for x in check_alerts(pd.DataFrame(rows), {})]
    b = [x.name for x in check_alerts(records, {})]
    assert a == b and "kl_high" in a


def test_thresholds_override_and_typos_rejected():
    rows = table(**{"actor/kl_loss": lambda s, v: 0.05})
    assert "kl_high" not in [a.name for a in check_alerts(rows, {})]
    assert "kl_high" in [a.name for a in check_alerts(rows, {"kl_high": 0.01})]
    with pytest.raises(ValueError, match="kl_hihg"):
        check_alerts(rows, {"kl_hihg": 0.01})
    with pytest.raises(ValueError, match="patience"):
        check_alerts(rows, {"patience": "5"})
    assert set(DEFAULT_THRESHOLDS) >= {"kl_high", "kl_low", "patience"}


# DAPO dynamic sampling with train_batch_size = 64 prompts: share = evicted / (evicted + 64).
DYNAMIC_SAMPLING_CASES = [
    # (evicted groups per step from step 10 on, expected alert name or None)
    (0, None),  # why: nothing filtered
    (32, None),  # why: 32 / 96 = 33% filtered, under the 50% default
    (64, None),  # why: 64 / 128 = exactly 50% is not above the threshold
    (65, "dynamic_sampling_heavy"),  # why: just above half of the generated groups thrown away
    (1216, "dynamic_sampling_heavy"),  # why: 95% filtered: each kept group cost 20 generations
]


@pytest.mark.parametrize("evicted,name", DYNAMIC_SAMPLING_CASES)
def test_dynamic_sampling_share_rule(evicted, name):
    rows = table(**{DAPO_EVICTED_KEY: lambda s, v: evicted if s >= 10 else 0})
    alerts = [a for a in check_alerts(rows, {}, {"train_batch_size": 64, "rollout_n": 8}) if a.name == "dynamic_sampling_heavy"]
    if name is None:
        assert alerts == []
        return
    assert alerts[0].step == 10 and alerts[0].severity == "warning"
    assert f"{evicted} groups filtered for 64 kept" in alerts[0].message
    assert "DYNAMIC_SAMPLING=false" in alerts[0].advice and "ROLLOUT_N" in alerts[0].advice


def test_dynamic_sampling_share_counts_missing_steps_as_zero():
    # why: verl logs the eviction count only on steps that evicted something
    df = pd.DataFrame({"step": [1, 2, 3], DAPO_EVICTED_KEY: [np.nan, 192.0, 64.0]})
    assert dynamic_sampling_share(df, 64).tolist() == [0.0, 0.75, 0.5]


# Rollout correction (verl's rollout_corr/* mismatch metrics), limits from verl's docs/algo/rollout_corr.md.
MISMATCH_CASES = [
    # (key, healthy value, bad value)
    ("rollout_corr/kl", 0.01, 0.15),  # why: |KL(rollout || training)| > 0.1
    ("rollout_corr/kl", -0.01, -0.2),  # why: the KL estimator can be negative; its size counts
    ("rollout_corr/ppl_ratio", 1.02, 1.2),  # why: training PPL 20% above rollout PPL
    ("rollout_corr/ppl_ratio", 0.98, 0.85),  # why: ... or below (1 / 1.1)
    ("rollout_corr/chi2_token", 0.1, 1.5),  # why: chi2 > 1: severe distribution shift
    ("rollout_corr/rollout_is_mean", 1.0, 2.5),  # why: mean importance weight far from 1
    ("rollout_corr/rollout_is_mean", 1.0, 0.4),
    ("rollout_corr/rollout_is_eff_sample_size", 0.9, 0.2),  # why: weights concentrated on few samples
    ("rollout_corr/rollout_rs_masked_fraction", 0.05, 0.6),  # why: rejection sampling drops most tokens
]


@pytest.mark.parametrize("key,good,bad", MISMATCH_CASES)
def test_rollout_mismatch_rule(key, good, bad):
    assert [a for a in check_alerts(table(**{key: lambda s, v: good}), {}) if a.name == "rollout_mismatch"] == []
    alerts = [a for a in check_alerts(table(**{key: lambda s, v: bad if s >= 20 else good}), {})
              if a.name == "rollout_mismatch"]
    assert len(alerts) == 1 and alerts[0].metric == key and alerts[0].step == 20
    assert f"worst {bad:.3g}" in alerts[0].message


T0 = 1_790_000_000.0


def _error_case(per_step: dict[int, int], timeouts=(), batch=100):
    """Steps 1-10 of 30 s each from T0; per_step: step -> failed calls inside it."""
    steps = np.arange(1, 11)
    ends = T0 + 30.0 * steps
    starts = ends - 30.0
    times = np.sort(np.concatenate([starts[s - 1] + np.linspace(1, 29, n) for s, n in per_step.items()] or [np.zeros(0)]))
    return reward_error_alerts(times, np.asarray(sorted(timeouts), dtype=float), steps, starts, ends, batch, {})


REWARD_ERROR_CASES = [
    # (failed calls per step, timeouts, expected alert names, first step)
    ({}, (), [], None),  # why: no errors
    ({3: 1}, (), [], None),  # why: 1 of 100 samples = 1%, not above the 1% default
    ({3: 2}, (), ["reward_errors"], 3),  # why: 2% of step 3's samples failed
    ({5: 50}, (), ["reward_errors"], 5),  # why: half of a step failed (critical)
    ({}, (T0 + 95.0,), ["reward_timeout"], 4),  # why: any timeout alerts, placed in its step (90-120 s = step 4)
]


@pytest.mark.parametrize("per_step,timeouts,names,step", REWARD_ERROR_CASES)
def test_reward_error_rules(per_step, timeouts, names, step):
    alerts = _error_case(per_step, timeouts)
    assert sorted(a.name for a in alerts) == names
    if names:
        assert alerts[0].step == step and alerts[0].advice
    if per_step.get(5) == 50:
        assert alerts[0].severity == "critical" and "50%" in alerts[0].message


def test_reward_errors_without_a_batch_size_still_alert():
    steps = np.arange(1, 4)
    ends = T0 + 30.0 * steps
    alerts = reward_error_alerts(np.array([T0 + 10.0]), np.zeros(0), steps, ends - 30, ends, None, {})
    assert [a.name for a in alerts] == ["reward_errors"] and "config.yaml was not found" in alerts[0].message


def test_run_config_from_and_alert_keys():
    cfg = {"data": {"train_batch_size": 512}, "actor_rollout_ref": {"rollout": {"n": 16}}}
    assert run_config_from(cfg) == {"train_batch_size": 512, "rollout_n": 16}
    assert run_config_from({"data": {"train_batch_size": "???"}}) == {}
    keys = alert_keys(["actor/pg_loss", "perf/throughput", "rollout_corr/kl", DAPO_EVICTED_KEY, "timing_s/gen"])
    assert keys == ["actor/pg_loss", "rollout_corr/kl", DAPO_EVICTED_KEY]


def test_a_long_noisy_run_is_checked_in_vectorised_time():
    # why: 50,000 steps must not take a Python loop per step per rule (the dashboard checks 20 such runs)
    rng = np.random.default_rng(0)
    n = 50_000
    df = pd.DataFrame({"step": np.arange(1, n + 1), "actor/kl_loss": rng.random(n) * 0.2,
                       "actor/entropy": 1.0, "response_length/mean": 300.0, "actor/pg_loss": rng.normal(size=n)})
    alerts = check_alerts(df, {})
    assert any(a.name == "kl_high" for a in alerts)
