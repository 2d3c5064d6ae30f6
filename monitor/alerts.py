"""Health rules for RL/SFT training runs: pure functions over a metrics table.

Offers:
    Alert                  name, severity, step (first step of the episode), last_step, message, advice.
    DEFAULT_THRESHOLDS     every threshold a rule reads, with its default.
    check_alerts(metrics, thresholds, run_config) -> list[Alert]
                           metrics: a pandas DataFrame with a `step` column and verl's metric keys
                           as columns, or a list of dicts (flat {"step": N, key: value} or verl's
                           file-logger records {"step": N, "data": {...}}); run_config: what the
                           share rules need from the run's config.yaml ({"train_batch_size": int,
                           "rollout_n": int}; see run_config_from()).
    reward_error_alerts(error_times, timeout_times, step_ends, step_starts, steps, batch_samples,
                        thresholds) -> list[Alert]
                           the reward guard's failures (reward_errors.jsonl) placed into steps by
                           wall time: a step whose error share passes `reward_error_share_max`,
                           and any timeout at all.
    dynamic_sampling_share(metrics, train_batch_size) -> np.ndarray
                           per step, the share of generated prompt groups DAPO filtered out.
    run_config_from(cfg) -> dict   train_batch_size and rollout_n from a verl config mapping.
    alert_keys(columns) -> list[str]   the metric keys the rules read (load only these).

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

__all__ = [
    "Alert",
    "DEFAULT_THRESHOLDS",
    "check_alerts",
    "reward_error_alerts",
    "dynamic_sampling_share",
    "run_config_from",
    "alert_keys",
    "to_frame",
    "DAPO_EVICTED_KEY",
    "ROLLOUT_CORR_PREFIX",
]


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
    # DAPO without a known batch size (no config.yaml): prompt groups filtered per step above this.
    "dapo_evicted_max": 512,
    # DAPO: share of the prompt groups generated in a step that dynamic sampling filtered out
    # (evicted / (evicted + train_batch_size)); 0.5 = every kept group cost two generations.
    "dapo_filtered_share_max": 0.5,
    # Rollout correction (algorithm.rollout_correction): |rollout_corr/kl| above this. verl's
    # docs/algo/rollout_corr.md health check warns at |kl| > 0.1.
    "rollout_corr_kl_max": 0.1,
    # rollout_corr/ppl_ratio (training PPL / rollout PPL) above this or below its inverse:
    # exp(0.1) = 1.105, the same 0.1 nats per token as the KL limit.
    "rollout_corr_ppl_ratio_max": 1.1,
    # rollout_corr/chi2_token above this: verl's docs call chi2 > 1.0 a severe distribution shift.
    "rollout_corr_chi2_token_max": 1.0,
    # rollout_corr/rollout_is_mean outside [low, high]: verl's troubleshooting range (0.5, 2.0).
    "rollout_corr_is_mean_low": 0.5,
    "rollout_corr_is_mean_high": 2.0,
    # rollout_corr/rollout_is_eff_sample_size below this: verl's docs warn below 0.3.
    "rollout_corr_ess_min": 0.3,
    # rollout_corr/rollout_rs_masked_fraction above this: rejection sampling throws away half the
    # tokens (verl's "too much data discarded" symptom, > 0.5).
    "rollout_corr_masked_max": 0.5,
    # Reward guard: failed reward calls in a step / (train_batch_size x rollout.n) above this.
    "reward_error_share_max": 0.01,
}

# verl 0.9.1 V1 replay buffer (trainer/ppo/v1/replay_buffer.py::_evict_terminal_groups) logs
# f"{prefix}/filter_groups/evicted_samples" with prefix "training" for the train partition. Despite
# the name it counts prompt groups (uids), summed over the polls of one step.
DAPO_EVICTED_KEY = "training/filter_groups/evicted_samples"
# verl/trainer/ppo/rollout_corr_helper.py prefixes every mismatch metric with "rollout_corr/".
ROLLOUT_CORR_PREFIX = "rollout_corr/"

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
    if df["step"].is_monotonic_increasing and df["step"].is_unique:
        return df.reset_index(drop=True)  # the dashboard's tables already are (no copy of 50k rows)
    return df.drop_duplicates("step", keep="last").sort_values("step", kind="stable").reset_index(drop=True)


def _numeric(df: pd.DataFrame, key: str) -> np.ndarray:
    """Column as float (None -> NaN); all-NaN when absent."""
    if key not in df:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[key], errors="coerce").to_numpy(dtype=float)


def _episodes(mask: np.ndarray, patience: int) -> list[tuple[int, int]]:
    """(start, end) index pairs of runs of True at least `patience` long (vectorised: a
    50,000-step table is one numpy pass, not a Python loop)."""
    flags = np.asarray(mask, dtype=bool)
    if not flags.any():
        return []
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    keep = ends - starts + 1 >= patience
    return list(zip(starts[keep].tolist(), ends[keep].tolist()))


def _fmt(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _thresholds(thresholds: dict | None) -> dict:
    th = dict(DEFAULT_THRESHOLDS)
    unknown = sorted(set(thresholds or {}) - set(th))
    if unknown:
        raise ValueError(f"unknown alert threshold(s) {unknown}; known: {sorted(th)}")
    for key, value in (thresholds or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ValueError(f"alert threshold {key!r} must be a finite number, got {value!r}")
        th[key] = value
    return th


def check_alerts(metrics: pd.DataFrame | list[dict], thresholds: dict | None = None,
                 run_config: dict | None = None) -> list[Alert]:
    """Run every rule.

    Input:  metrics (see module docstring); thresholds overriding DEFAULT_THRESHOLDS (unknown keys
            raise ValueError naming them, so a typo in config.yaml does not silently disable a rule);
            run_config {"train_batch_size": int, "rollout_n": int} when known (None: the share
            rules fall back to absolute counts).
    Output: alerts sorted by step, critical first within a step.
    """
    th = _thresholds(thresholds)
    df = to_frame(metrics)
    if df.empty:
        return []
    steps = df["step"].to_numpy()
    patience = max(1, int(th["patience"]))
    alerts: list[Alert] = []
    for rule in (_nan_loss, _kl, _entropy, _length, _no_signal, _reward_down_kl_up, _rollout_mismatch):
        alerts.extend(rule(df, steps, th, patience))
    alerts.extend(_dynamic_sampling(df, steps, th, patience, run_config or {}))
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(alerts, key=lambda a: (a.step, order.get(a.severity, 3), a.name))


def run_config_from(cfg) -> dict:
    """{"train_batch_size", "rollout_n"} from a verl config (dict or DictConfig); missing -> absent."""
    out: dict = {}

    def get(node, *path):
        for part in path:
            try:
                node = node.get(part) if hasattr(node, "get") else None
            except Exception:  # an OmegaConf node with a missing value (???) raises on access
                return None
            if node is None:
                return None
        return node

    for key, path in (("train_batch_size", ("data", "train_batch_size")),
                      ("rollout_n", ("actor_rollout_ref", "rollout", "n"))):
        value = get(cfg, *path)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            out[key] = value
    return out


def alert_keys(columns) -> list[str]:
    """The metric keys the rules read, out of `columns` (a table may hold 80+; the rules use ~25)."""
    wanted = set(_KL_KEYS) | set(_REWARD_KEYS) | {
        "actor/entropy", "response_length/mean", "response_length/clip_ratio", "actor/pg_clipfrac",
        "critic/score/max", "critic/score/min", "critic/score/std", "critic/rewards/std",
        "critic/advantages/max", "critic/advantages/min", DAPO_EVICTED_KEY,
    }
    return [c for c in columns if c in wanted or "loss" in c or "grad_norm" in c or c.startswith(ROLLOUT_CORR_PREFIX)]


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


def dynamic_sampling_share(metrics: pd.DataFrame, train_batch_size: int) -> np.ndarray:
    """Per step, the share of generated prompt groups that DAPO's dynamic sampling filtered out.

    verl keeps train_batch_size groups per step and regenerates each filtered one, so a step
    generated evicted + train_batch_size groups: share = evicted / (evicted + train_batch_size).
    (Counted in groups; in samples both terms carry the same factor rollout.n.) NaN where the step
    logged no eviction count (verl logs the key only when something was filtered: read as 0 then).
    """
    evicted = _numeric(metrics, DAPO_EVICTED_KEY)
    evicted = np.where(np.isnan(evicted), 0.0, evicted)
    return evicted / (evicted + float(train_batch_size))


def _dynamic_sampling(df, steps, th, patience, run_config):
    if DAPO_EVICTED_KEY not in df:
        return []
    batch = run_config.get("train_batch_size")
    evicted = _numeric(df, DAPO_EVICTED_KEY)
    advice = ("Most generated groups are always solved or never solved: generation time goes to groups that "
              "carry no signal, and verl 0.9.1 regenerates them without a bound (algorithm.filter_groups."
              "max_num_gen_batches is ignored). Use harder (or easier) data, raise ROLLOUT_N, or turn "
              "DYNAMIC_SAMPLING=false.")
    out = []
    if batch:
        share = dynamic_sampling_share(df, batch)
        for a, b in _episodes(share > th["dapo_filtered_share_max"], patience):
            out.append(Alert(
                "dynamic_sampling_heavy", "warning", int(steps[a]),
                f"DAPO filtered out more than {_fmt(th['dapo_filtered_share_max'] * 100)}% of the prompt groups it "
                f"generated for {b - a + 1} steps (steps {int(steps[a])}-{int(steps[b])}; peak "
                f"{_fmt(float(np.nanmax(share[a:b + 1])) * 100)}%: {int(np.nanmax(evicted[a:b + 1]))} groups "
                f"filtered for {batch} kept).",
                advice, metric=DAPO_EVICTED_KEY, last_step=int(steps[b])))
        return out
    for a, b in _episodes(evicted > th["dapo_evicted_max"], patience):
        out.append(Alert(
            "dynamic_sampling_heavy", "info", int(steps[a]),
            f"DAPO filtered out more than {_fmt(th['dapo_evicted_max'])} prompt groups per step for {b - a + 1} "
            f"steps (peak {_fmt(float(np.nanmax(evicted[a:b + 1])))}; the run's config.yaml was not found, so the "
            f"share of the batch is unknown).",
            advice, metric=DAPO_EVICTED_KEY, last_step=int(steps[b])))
    return out


# (key, predicate on values and thresholds, description of the limit) for the rollout correction rule.
_MISMATCH_CHECKS = (
    ("kl", lambda v, th: np.abs(v) > th["rollout_corr_kl_max"], lambda th: f"|value| > {_fmt(th['rollout_corr_kl_max'])}"),
    ("ppl_ratio", lambda v, th: (v > th["rollout_corr_ppl_ratio_max"]) | (v < 1 / th["rollout_corr_ppl_ratio_max"]),
     lambda th: f"outside [{_fmt(1 / th['rollout_corr_ppl_ratio_max'])}, {_fmt(th['rollout_corr_ppl_ratio_max'])}]"),
    ("chi2_token", lambda v, th: v > th["rollout_corr_chi2_token_max"], lambda th: f"> {_fmt(th['rollout_corr_chi2_token_max'])}"),
    ("rollout_is_mean", lambda v, th: (v < th["rollout_corr_is_mean_low"]) | (v > th["rollout_corr_is_mean_high"]),
     lambda th: f"outside [{_fmt(th['rollout_corr_is_mean_low'])}, {_fmt(th['rollout_corr_is_mean_high'])}]"),
    ("rollout_is_eff_sample_size", lambda v, th: v < th["rollout_corr_ess_min"], lambda th: f"< {_fmt(th['rollout_corr_ess_min'])}"),
    ("rollout_rs_masked_fraction", lambda v, th: v > th["rollout_corr_masked_max"], lambda th: f"> {_fmt(th['rollout_corr_masked_max'])}"),
)


def _rollout_mismatch(df, steps, th, patience):
    """The rollout engine's log-probs disagree with the trainer's (verl's algorithm.rollout_correction
    metrics, rollout_corr/*): the data is more off-policy than the correction is tuned for."""
    out = []
    for name, bad, limit in _MISMATCH_CHECKS:
        key = ROLLOUT_CORR_PREFIX + name
        if key not in df:
            continue
        values = _numeric(df, key)
        with np.errstate(invalid="ignore", divide="ignore"):
            mask = bad(values, th) & np.isfinite(values)
        for a, b in _episodes(mask, patience):
            window = values[a:b + 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                # Farthest from ideal: ratios from 1 (in log space), the effective sample size lowest, others largest.
                distance = (np.abs(np.log(np.abs(window))) if name in ("ppl_ratio", "rollout_is_mean")
                            else -window if name == "rollout_is_eff_sample_size" else np.abs(window))
            worst = float(window[np.nanargmax(np.where(np.isfinite(distance), distance, -np.inf))])
            out.append(Alert(
                "rollout_mismatch", "warning", int(steps[a]),
                f"{key} was {limit(th)} for {b - a + 1} steps (steps {int(steps[a])}-{int(steps[b])}, worst {_fmt(worst)}).",
                "The rollout engine (vLLM/SGLang) and the trainer disagree on the sampled tokens' probabilities "
                "more than verl's rollout correction is tuned for. Check that rollout and training use the same "
                "dtype and model weights (a failed weight sync shows as a jump here), tighten "
                "algorithm.rollout_correction.rollout_is_threshold, or turn on rejection sampling "
                "(rollout_rs, e.g. the geo_rs preset).",
                metric=key, last_step=int(steps[b])))
    return out


def reward_error_alerts(error_times: np.ndarray, timeout_times: np.ndarray, steps: np.ndarray,
                        step_starts: np.ndarray, step_ends: np.ndarray, batch_samples: int | None,
                        thresholds: dict | None = None) -> list[Alert]:
    """Failed reward calls placed into steps by wall time.

    Input:  unix times of every failed reward call and of the timeouts among them (sorted);
            per logged step its number and the wall-time interval it covered (start, end];
            the samples scored per step (train_batch_size x rollout.n; None when unknown).
    Output: `reward_errors` per step whose failures / batch_samples passes reward_error_share_max
            (patience does not apply: one bad step is already rewards the policy learns from), and
            one `reward_timeout` alert when any call timed out.
    """
    th = _thresholds(thresholds)
    out: list[Alert] = []
    error_times = np.asarray(error_times, dtype=np.float64)
    timeout_times = np.asarray(timeout_times, dtype=np.float64)
    ok = np.isfinite(step_starts) & np.isfinite(step_ends)
    steps, starts, ends = np.asarray(steps)[ok], np.asarray(step_starts)[ok], np.asarray(step_ends)[ok]
    advice = ("The reward function failed on part of the batch, so those samples got a default reward: read the "
              "distinct errors (Alerts tab, reward_errors.jsonl), fix the reward function or its inputs, and "
              "check the reward API's capacity for timeouts.")
    if batch_samples and len(steps) and len(error_times):
        counts = np.searchsorted(error_times, ends, side="right") - np.searchsorted(error_times, starts, side="right")
        share = counts / float(batch_samples)
        for a, b in _episodes(share > th["reward_error_share_max"], 1):
            peak = a + int(np.argmax(share[a:b + 1]))
            out.append(Alert(
                "reward_errors", "critical" if share[peak] > 0.1 else "warning", int(steps[a]),
                f"{int(counts[a:b + 1].sum())} reward call(s) failed in "
                f"{f'steps {int(steps[a])}-{int(steps[b])}' if b > a else f'step {int(steps[a])}'}: up to "
                f"{_fmt(share[peak] * 100)}% of the {batch_samples} samples of step {int(steps[peak])} "
                f"(limit {_fmt(th['reward_error_share_max'] * 100)}%).",
                advice, metric="reward_errors.jsonl", last_step=int(steps[b])))
    elif len(error_times) and not batch_samples:
        out.append(Alert(
            "reward_errors", "warning", int(steps[0]) if len(steps) else 0,
            f"{len(error_times)} reward call(s) failed (the run's config.yaml was not found, so the share per "
            f"step is unknown).", advice, metric="reward_errors.jsonl",
            last_step=int(steps[-1]) if len(steps) else None))
    if len(timeout_times):
        where = np.searchsorted(ends, timeout_times, side="left")
        first = int(steps[where[0]]) if len(steps) and where[0] < len(steps) else (int(steps[-1]) + 1 if len(steps) else 0)
        last = int(steps[where[-1]]) if len(steps) and where[-1] < len(steps) else first
        out.append(Alert(
            "reward_timeout", "critical", first,
            f"{len(timeout_times)} reward call(s) timed out (first near step {first}).",
            "A reward call ran past its time limit and was scored as a failure. Raise the reward timeout, "
            "lower the reward's concurrency, or look for inputs that make the reward function hang "
            "(the excerpts on the Alerts tab).",
            metric="reward_errors.jsonl", last_step=last))
    return out
