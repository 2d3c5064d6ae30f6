"""Health rules in monitor/alerts.py, one table-driven case per rule.

    .venv/bin/python -m pytest tests/monitor/test_alerts.py -q
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from monitor.alerts import DEFAULT_THRESHOLDS, check_alerts


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
    # why: DAPO filters many groups per step
    (table(**{"training/filter_groups/evicted_samples": lambda s, v: 1000 if s >= 10 else 0}), "groups_filtered", 10),
    # why: reward falls while KL rises over the last 20 steps
    (table(**{"critic/score/mean": lambda s, v: 0.8 - 0.01 * s, "actor/kl_loss": lambda s, v: 0.001 * s}),
     "reward_down_kl_up", 21),
]


@pytest.mark.parametrize("rows,name,step", CASES)
def test_rules(rows, name, step):
    alerts = check_alerts(rows, {})
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
