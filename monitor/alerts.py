"""Health rules for RL/SFT training runs: pure functions over a metrics table.

Offers:
    Alert                  name, severity, step (first step of the episode), last_step, message, advice.
    DEFAULT_THRESHOLDS     every threshold a rule reads, with its default.
    check_alerts(metrics, thresholds) -> list[Alert]
                           metrics: a pandas DataFrame with a `step` column and verl's metric keys
                           as columns, or a list of dicts (flat {"step": N, key: value} or verl's
                           file-logger records {"step": N, "data": {...}}).

Usage from a training loop (e.g. to print into the console log every few steps):

    >>> from monitor.alerts import check_alerts
    >>> rows = [{"step": s, "actor/kl_loss": 0.3} for s in range(1, 7)]
    >>> [a.name for a in check_alerts(rows, {})]
    ['kl_high']

Each rule looks for an *episode*: the condition holding on `patience` consecutive logged steps.
One alert is returned per episode (per metric key), stamped with its first and last step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["Alert", "DEFAULT_THRESHOLDS", "check_alerts", "to_frame"]


@dataclass(frozen=True)
class Alert:
    """One alert. `severity` is "critical", "warning" or "info"."""

    name: str
    severity: str
    step: int
    message: str
    advice: str
    metric: str = ""
    last_step: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_THRESHOLDS: dict[str, float] = {
    # Consecutive logged steps a condition must hold before it is an alert (1 noisy step is not).
    "patience": 5,
    # KL to the reference policy above this: the policy drifts away faster than the KL term allows.
    "kl_high": 0.1,
    # KL below this after the warm-up: the reference term no longer constrains anything.
    "kl_low": 1e-4,
    # Steps ignored by the kl_low rule: at step 1 the policy equals the reference (KL = 0).
    "kl_low_warmup_steps": 10,
    # Entropy (nats/token) below this is a collapse to near-greedy sampling.
    "entropy_min": 0.05,
    # ... or entropy below this fraction of its mean over the first 5 steps.
    "entropy_drop_ratio": 0.1,
    # Mean response length above this multiple of its median over the previous window.
    "length_blowup_ratio": 2.0,
    # Fraction of responses cut at max_response_length above this.
    "clip_ratio_max": 0.2,
    # Fraction of tokens clipped by the PPO ratio clip above this.
    "pg_clipfrac_max": 0.3,
    # Reward max - min (or std) within a batch below this: every sample got the same reward.
    "reward_flat_eps": 1e-6,
    # Window (steps) for the trend rules (length blow-up baseline, reward down while KL up).
    "trend_window": 20,
    # Reward falling by more than this over the window ...
    "reward_drop_min": 0.05,
    # ... while KL grows by more than this factor over the same window.
    "kl_rise_ratio": 1.5,
    # DAPO: groups evicted by algorithm.filter_groups per step above this many samples.
    "dapo_evicted_max": 512,
}

_KL_KEYS = ("actor/kl_loss", "actor/reward_kl_penalty", "actor/ppo_kl")
_KL_LOW_KEYS = ("actor/kl_loss", "actor/reward_kl_penalty")
_REWARD_KEYS = ("critic/score/mean", "critic/rewards/mean")


def to_frame(metrics: pd.DataFrame | list[dict]) -> pd.DataFrame:
    """Normalise the accepted inputs to a DataFrame sorted by step (later rows win per step)."""
    if isinstance(metrics, pd.DataFrame):
        df = metrics
    else:
        rows = []
        for i, row in enumerate(metrics):
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError(f"metrics[{i}] must be a dict with a 'step' key, got {type(row).__name__}")
            if isinstance(row.get("data"), dict):
                rows.append({"step": row["step"], **row["data"]})
            else:
                rows.append(row)
        df = pd.DataFrame.from_records(rows)
    if df.empty:
        return pd.DataFrame({"step": pd.Series([], dtype="int64")})
    if "step" not in df:
        raise ValueError("metrics table needs a 'step' column")
    df = df.drop_duplicates("step", keep="last").sort_values("step", kind="stable").reset_index(drop=True)
    return df


def _numeric(df: pd.DataFrame, key: str) -> np.ndarray:
    """Column as float (None -> NaN); all-NaN when absent."""
    if key not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[key], errors="coerce").to_numpy(dtype=float)


def _episodes(mask: np.ndarray, patience: int) -> list[tuple[int, int]]:
    """(start, end) index pairs of runs of True at least `patience` long."""
    out, start = [], None
    for i, flag in enumerate(np.append(mask, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= patience:
                out.append((start, i - 1))
            start = None
    return out


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def check_alerts(metrics: pd.DataFrame | list[dict], thresholds: dict | None = None) -> list[Alert]:
    """Run every rule.

    Input:  metrics (see module docstring); thresholds overriding DEFAULT_THRESHOLDS (unknown keys
            raise ValueError naming them, so a typo in config.yaml does not silently disable a rule).
    Output: alerts sorted by step, critical first within a step.
    """
    th = dict(DEFAULT_THRESHOLDS)
    unknown = sorted(set(thresholds or {}) - set(th))
    if unknown:
        raise ValueError(f"unknown alert threshold(s) {unknown}; known: {sorted(th)}")
    for key, value in (thresholds or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"alert threshold {key!r} must be a finite number, got {value!r}")
        th[key] = value
    df = to_frame(metrics)
    if df.empty:
        return []
    steps = df["step"].to_numpy()
    patience = max(1, int(th["patience"]))
    alerts: list[Alert] = []
    for rule in (_nan_loss, _kl, _entropy, _length, _no_signal, _reward_down_kl_up):
        alerts.extend(rule(df, steps, th, patience))
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(alerts, key=lambda a: (a.step, order.get(a.severity, 3), a.name))


def _nan_loss(df, steps, th, patience):
    """NaN/inf in any loss or gradient norm: one alert per key, at its first bad step.

    A table cannot tell a NaN value from a step that did not log the key (val/loss is logged
    every test_freq steps; verl's FileLogger writes a real NaN as null). So inf is always bad,
    and NaN is bad where the key was finite on the previous row and on at least half of the
    rows before (a key logged every step that turned NaN).
    """
    out = []
    for key in df.columns:
        if key == "step" or not ("loss" in key or "grad_norm" in key):
            continue
        values = _numeric(df, key)
        finite = np.isfinite(values)
        prev_finite = np.concatenate([[False], finite[:-1]])
        # Share of earlier rows where the key was finite: >= 0.5 means it is logged every step.
        dense = np.cumsum(np.concatenate([[0], finite[:-1]])) >= 0.5 * np.arange(len(finite))
        bad = np.isinf(values) | (np.isnan(values) & prev_finite & dense)
        if not bad.any():
            continue
        # Once a key went NaN it stays NaN: count the whole non-finite tail as bad steps.
        first = int(np.argmax(bad))
        bad_all = ~finite
        bad_all[:first] = False
        n_bad = int(bad_all.sum())
        last = int(np.flatnonzero(bad_all)[-1])
        out.append(
            Alert(
                "nan_loss",
                "critical",
                int(steps[first]),
                f"{key} is {_fmt(values[first])} at step {int(steps[first])} "
                f"({n_bad} non-finite step(s) from there on).",
                "Training diverged or a batch produced no valid tokens. Resume from the last good "
                "checkpoint with a lower ACTOR_LR (actor.optim.lr), check grad clipping (actor.grad_clip), "
                "and look for empty responses or reward NaNs in the rollout dump of that step.",
                metric=key,
                last_step=int(steps[last]),
            )
        )
    return out


def _kl(df, steps, th, patience):
    out = []
    for key in _KL_KEYS:
        if key not in df:
            continue
        kl = _numeric(df, key)
        for a, b in _episodes(np.abs(kl) > th["kl_high"], patience):
            out.append(
                Alert(
                    "kl_high",
                    "warning",
                    int(steps[a]),
                    f"{key} stayed above {_fmt(th['kl_high'])} for {b - a + 1} steps "
                    f"(steps {int(steps[a])}-{int(steps[b])}, peak {_fmt(np.nanmax(np.abs(kl[a : b + 1])))}).",
                    "The policy moves away from the reference faster than the KL term allows: "
                    "lower ACTOR_LR, raise KL_LOSS_COEF (actor.kl_loss_coef; KL_COEF for KL in the reward), "
                    "or reduce PPO_EPOCHS / the number of mini-batches per step.",
                    metric=key,
                    last_step=int(steps[b]),
                )
            )
        if key in _KL_LOW_KEYS:
            low = (np.abs(kl) < th["kl_low"]) & (steps > th["kl_low_warmup_steps"])
            for a, b in _episodes(low, patience):
                out.append(
                    Alert(
                        "kl_low",
                        "info",
                        int(steps[a]),
                        f"{key} stayed below {_fmt(th['kl_low'])} for {b - a + 1} steps "
                        f"(steps {int(steps[a])}-{int(steps[b])}).",
                        "The policy is not moving away from the reference: the learning rate may be "
                        "too low, the reward may give no signal (see no_signal), or the actor may "
                        "not be updating (check actor/grad_norm and actor/lr).",
                        metric=key,
                        last_step=int(steps[b]),
                    )
                )
    return out


def _entropy(df, steps, th, patience):
    if "actor/entropy" not in df:
        return []
    ent = _numeric(df, "actor/entropy")
    finite = ent[np.isfinite(ent)]
    if finite.size == 0:
        return []
    initial = float(np.mean(finite[:5]))
    low = (ent < th["entropy_min"]) | (ent < th["entropy_drop_ratio"] * initial)
    out = []
    for a, b in _episodes(low, patience):
        out.append(
            Alert(
                "entropy_collapse",
                "warning",
                int(steps[a]),
                f"actor/entropy fell to {_fmt(float(np.nanmin(ent[a : b + 1])))} (started at "
                f"{_fmt(initial)}) for {b - a + 1} steps (steps {int(steps[a])}-{int(steps[b])}).",
                "The policy became near-deterministic and stops exploring: raise the rollout "
                "TEMPERATURE, use a higher CLIP_RATIO_HIGH (DAPO clip-higher) or ENTROPY_MODE=clip_cov, "
                "add an entropy bonus (ENTROPY_COEFF) or lower ACTOR_LR.",
                metric="actor/entropy",
                last_step=int(steps[b]),
            )
        )
    return out


def _length(df, steps, th, patience):
    out = []
    window = max(2, int(th["trend_window"]))
    if "response_length/mean" in df:
        length = pd.Series(_numeric(df, "response_length/mean"))
        baseline = length.shift(1).rolling(window, min_periods=min(5, window)).median().to_numpy()
        blow = length.to_numpy() > th["length_blowup_ratio"] * baseline
        for a, b in _episodes(blow, patience):
            out.append(
                Alert(
                    "length_blowup",
                    "warning",
                    int(steps[a]),
                    f"response_length/mean jumped above {_fmt(th['length_blowup_ratio'])}x its recent "
                    f"median ({_fmt(baseline[a])} -> {_fmt(length.iloc[b])}) for {b - a + 1} steps.",
                    "Responses grow out of control (repetition or reward hacking by length): read the "
                    "rollout samples of these steps, add an overlong penalty (DAPO overlong_buffer), "
                    "or check the reward for a length bias.",
                    metric="response_length/mean",
                    last_step=int(steps[b]),
                )
            )
    for key, limit, name, advice in (
        (
            "response_length/clip_ratio",
            th["clip_ratio_max"],
            "clip_ratio_spike",
            "Many responses hit the length limit and are cut before an answer: raise "
            "MAX_RESPONSE_LENGTH (data.max_response_length), or add an overlong penalty "
            "(DAPO's OVERLONG_SHAPING) so truncated samples stop being rewarded.",
        ),
        (
            "actor/pg_clipfrac",
            th["pg_clipfrac_max"],
            "pg_clipfrac_spike",
            "The PPO ratio clip is active on many tokens: the update is too large for the data. "
            "Lower ACTOR_LR or PPO_EPOCHS, or use more mini-batches (a smaller PPO_MINI_BATCH_SIZE).",
        ),
    ):
        if key not in df:
            continue
        values = _numeric(df, key)
        for a, b in _episodes(values > limit, patience):
            out.append(
                Alert(
                    name,
                    "warning",
                    int(steps[a]),
                    f"{key} stayed above {_fmt(limit)} for {b - a + 1} steps "
                    f"(steps {int(steps[a])}-{int(steps[b])}, peak {_fmt(np.nanmax(values[a : b + 1]))}).",
                    advice,
                    metric=key,
                    last_step=int(steps[b]),
                )
            )
    return out


def _no_signal(df, steps, th, patience):
    """Every sample (or every group) got the same reward: the advantage is zero, nothing is learned."""
    eps = th["reward_flat_eps"]
    flat = np.zeros(len(df), dtype=bool)
    evidence = []
    if "critic/score/max" in df and "critic/score/min" in df:
        flat |= np.abs(_numeric(df, "critic/score/max") - _numeric(df, "critic/score/min")) < eps
        evidence.append("critic/score max == min")
    for key in ("critic/score/std", "critic/rewards/std"):
        if key in df:
            flat |= _numeric(df, key) < eps
            evidence.append(f"{key} ~ 0")
    if "critic/advantages/max" in df and "critic/advantages/min" in df:
        adv_zero = (np.abs(_numeric(df, "critic/advantages/max")) < eps) & (
            np.abs(_numeric(df, "critic/advantages/min")) < eps
        )
        flat |= adv_zero
        evidence.append("critic/advantages all 0")
    out = []
    for a, b in _episodes(flat, patience):
        out.append(
            Alert(
                "no_signal",
                "critical",
                int(steps[a]),
                f"All rewards in the batch were equal for {b - a + 1} steps (steps {int(steps[a])}-{int(steps[b])}; "
                f"seen as: {', '.join(evidence)}).",
                "With equal rewards in every group the GRPO/RLOO advantage is 0 and nothing is learned. "
                "Check the reward function on a few rollout samples (format mismatch? always 0?), "
                "make the data easier or harder, raise rollout.n, or enable DAPO's "
                "algorithm.filter_groups.",
                metric="critic/score",
                last_step=int(steps[b]),
            )
        )
    for key in ("training/filter_groups/evicted_samples",):
        if key not in df:
            continue
        evicted = _numeric(df, key)
        for a, b in _episodes(evicted > th["dapo_evicted_max"], patience):
            out.append(
                Alert(
                    "groups_filtered",
                    "info",
                    int(steps[a]),
                    f"DAPO filtered out more than {_fmt(th['dapo_evicted_max'])} samples per step "
                    f"(groups with equal rewards) for {b - a + 1} steps (peak {_fmt(np.nanmax(evicted[a : b + 1]))}).",
                    "Many prompts are always solved or never solved: generation time is spent on groups "
                    "that carry no signal. Filter the data set by difficulty or raise rollout.n.",
                    metric=key,
                    last_step=int(steps[b]),
                )
            )
    return out


def _slope(y: np.ndarray) -> float:
    x = np.arange(len(y), dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


def _reward_down_kl_up(df, steps, th, patience):
    """Reward falling while KL rises over the last window: the policy optimises something else."""
    reward_key = next((k for k in _REWARD_KEYS if k in df), None)
    kl_key = next((k for k in _KL_KEYS if k in df), None)
    window = max(3, int(th["trend_window"]))
    if reward_key is None or kl_key is None or len(df) < window:
        return []
    reward = _numeric(df, reward_key)[-window:]
    kl = np.abs(_numeric(df, kl_key)[-window:])
    drop = -_slope(reward) * (window - 1)
    start_kl = float(np.nanmean(kl[: max(1, window // 4)]))
    end_kl = float(np.nanmean(kl[-max(1, window // 4) :]))
    if not (math.isfinite(drop) and math.isfinite(start_kl) and math.isfinite(end_kl)):
        return []
    if drop > th["reward_drop_min"] and _slope(kl) > 0 and end_kl > th["kl_rise_ratio"] * max(start_kl, 1e-12):
        return [
            Alert(
                "reward_down_kl_up",
                "warning",
                int(steps[-window]),
                f"Over the last {window} steps {reward_key} fell by {_fmt(drop)} while {kl_key} rose "
                f"from {_fmt(start_kl)} to {_fmt(end_kl)}.",
                "The policy drifts without improving the reward (instability or reward hacking on a "
                "component you do not plot): lower the learning rate, raise the KL coefficient, and "
                "compare rollout samples from before and after the drop.",
                metric=reward_key,
                last_step=int(steps[-1]),
            )
        ]
    return []
