"""Named presets of verl settings: ALGORITHM, ENTROPY_MODE and ROLLOUT_CORRECTION.

    .venv/bin/python -m common.presets        # every preset: its paper, the keys it sets and where each value comes from
    ALGORITHM=dr_grpo ./grpo/train.sh         # one of ALGORITHMS below, for any RL method (grpo/ lists it)
    ENTROPY_MODE=kl_cov ./dapo/train.sh       # one of ENTROPY_MODES below
    ROLLOUT_CORRECTION=token ./grpo/train.sh  # off | token | sequence, for every RL method

A preset is data: the verl keys it sets, each with the value of its paper or of verl's own example
and where that value was read. Nothing here is new algorithm code: every preset selects verl 0.9.1's
own advantage estimators (trainer/ppo/core_algos.py, register_adv_est), policy losses
(register_policy_loss), loss aggregations (agg_loss) and RolloutCorrectionConfig presets
(trainer/config/algorithm.py).

common/plan.py puts a preset's keys on the command line before the config-block knobs, so the
precedence is, weakest first:

    method config.yaml  <  ALGORITHM  <  ENTROPY_MODE  <  ROLLOUT_CORRECTION
                        <  a knob set in train.sh or the environment  <  arguments after train.sh

A knob left empty in train.sh (e.g. `USE_KL_LOSS=${USE_KL_LOSS:-}`) leaves the preset's value in
place; the dry run prints each preset and each knob that overrides one of its keys. Two presets
that set one key to different values are refused, naming both.

Offers:
- Setting(path, value, source, raw): one verl key; raw values go to Hydra as written (interpolations).
- Preset(name, title, paper, source, settings): a named group of settings.
- ALGORITHMS, ENTROPY_MODES: name -> Preset.
- ROLLOUT_CORRECTION_MODES: the accepted ROLLOUT_CORRECTION values.
- rollout_correction(mode, threshold): the Preset built from verl's own RolloutCorrectionConfig factories.
- chosen(env, trainer): [(knob, Preset)] the config block selects, each value checked (ConfigError names the knob).
- settings_of(chosen): [(knob, Preset, Setting)] in precedence order; two presets disagreeing on a key: ConfigError.
- describe(knob, preset): the dry run's one-line note for a preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.knobs import ConfigError

_ACTOR = "actor_rollout_ref.actor"
_LOSS = f"{_ACTOR}.policy_loss"
_RC = "algorithm.rollout_correction"


@dataclass(frozen=True)
class Setting:
    path: str
    value: object
    source: str  # where the value comes from (paper section, verl file, recipe script)
    raw: bool = False  # written to Hydra as is: an interpolation such as ${data.max_response_length}


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    paper: str
    source: str  # the script or document the values were read from
    settings: tuple[Setting, ...] = ()


# verl's examples/ folder at verl-project/verl (the 0.9.x examples, read at commit 1dda039b9).
_EX = "verl examples/"
# GRPO's KL loss as verl's GRPO examples set it, kept by the examples built on them.
_GRPO_KL_LOSS = (
    Setting(f"{_ACTOR}.use_kl_loss", True, "the example keeps GRPO's KL loss"),
    Setting(f"{_ACTOR}.kl_loss_coef", 0.001, "the example's KL weight"),
    Setting(f"{_ACTOR}.kl_loss_type", "low_var_kl", "the example's KL estimator (k3)"),
)

ALGORITHMS: dict[str, Preset] = {
    "grpo": Preset(
        "grpo", "GRPO: (reward - group mean) / group std, the method's own config.yaml",
        "DeepSeekMath, arXiv 2402.03300", "grpo/config.yaml",
        (
            Setting("algorithm.adv_estimator", "grpo", "the paper's group-relative advantage"),
            Setting("algorithm.norm_adv_by_std_in_grpo", True, "the paper divides by the group's std (verl's default)"),
        ),
    ),
    "dr_grpo": Preset(
        "dr_grpo", "Dr. GRPO: GRPO without its length and std normalisations",
        "Understanding R1-Zero-Like Training, arXiv 2503.20783", "verl docs/algo/grpo.md, section DrGRPO",
        (
            Setting("algorithm.adv_estimator", "grpo", "the group mean stays the baseline"),
            Setting("algorithm.norm_adv_by_std_in_grpo", False, "no division by the group's std (the paper's question-level difficulty bias)"),
            Setting(f"{_ACTOR}.loss_agg_mode", "seq-mean-token-sum-norm",
                    "token losses summed and divided by a constant, not by the response's length (the paper's response-level length bias)"),
            Setting(f"{_ACTOR}.loss_scale_factor", "${data.max_response_length}",
                    "that constant: the generation budget MAX_RESPONSE_LENGTH, as the paper's MAX_TOKENS (verl docs: 'e.g. max response length')",
                    raw=True),
            Setting(f"{_ACTOR}.use_kl_loss", False, "verl docs/algo/grpo.md: 'Please set it to False for DrGRPO'"),
        ),
    ),
    "rloo": Preset(
        "rloo", "RLOO: each response's baseline is the mean reward of the other n - 1",
        "Back to Basics (REINFORCE leave-one-out), arXiv 2402.14740", f"{_EX}rloo_trainer/run_qwen3_8b_fsdp.sh",
        (
            Setting("algorithm.adv_estimator", "rloo", "verl's leave-one-out estimator"),
            Setting("algorithm.use_kl_in_reward", True, "the example: KL as a per-token reward penalty, not a loss term"),
            Setting("algorithm.kl_penalty", "kl", "the example's KL estimator in the reward"),
            Setting("algorithm.kl_ctrl.kl_coef", 0.001, "the example's penalty weight"),
            Setting(f"{_ACTOR}.use_kl_loss", False, "the example: no KL loss term"),
        ),
    ),
    "reinforce_pp_baseline": Preset(
        "reinforce_pp_baseline", "REINFORCE++-baseline: reward - group mean, then whitened over the whole batch",
        "REINFORCE++, arXiv 2501.03262", f"{_EX}reinforce_plus_plus_trainer/run_qwen3_8b_fsdp.sh with ADV_ESTIMATOR=reinforce_plus_plus_baseline",
        (
            Setting("algorithm.adv_estimator", "reinforce_plus_plus_baseline", "verl's REINFORCE++-baseline estimator"),
            Setting("algorithm.use_kl_in_reward", True, "the example (and the paper): a token-level KL penalty in the reward"),
            Setting("algorithm.kl_ctrl.kl_coef", 0.001, "verl's default weight, which the example keeps"),
            Setting(f"{_ACTOR}.use_kl_loss", False, "the example: no KL loss term"),
        ),
    ),
    "cispo": Preset(
        "cispo", "CISPO: clipped, stop-gradient importance weights times log-prob, every token keeps its gradient",
        "MiniMax-M1, arXiv 2506.13585", f"{_EX}cispo_trainer/run_qwen3_8b_fsdp.sh and its README",
        (
            Setting("algorithm.adv_estimator", "grpo", "the example: GRPO's group advantages"),
            Setting(f"{_LOSS}.loss_mode", "cispo", "verl's registered CISPO loss"),
            Setting(f"{_ACTOR}.clip_ratio_low", 10.0, "the example: 1 - 10 < 0, so the weight is not clipped from below"),
            Setting(f"{_ACTOR}.clip_ratio_high", 0.2, "the example: weights capped at 1 + 0.2"),
            *_GRPO_KL_LOSS,
        ),
    ),
    "sapo": Preset(
        "sapo", "SAPO: a smooth sigmoid gate on the ratio instead of a hard clip",
        "SAPO, arXiv 2511.20347 (the paper verl's compute_policy_loss_sapo cites)", f"{_EX}sapo_trainer/run_qwen3_8b_fsdp.sh",
        (
            Setting("algorithm.adv_estimator", "grpo", "the example: GRPO's group advantages"),
            Setting(f"{_LOSS}.loss_mode", "sapo", "verl's registered SAPO loss"),
            Setting(f"{_ACTOR}.tau_pos", 1.0, "the example's TAU_POS; verl 0.9.1 reads it from the actor (the example's "
                    "+policy_loss.tau_pos is not where compute_policy_loss_sapo looks)"),
            Setting(f"{_ACTOR}.tau_neg", 1.05, "the example's TAU_NEG: a slightly sharper gate for negative advantages"),
            Setting(f"{_ACTOR}.loss_agg_mode", "seq-mean-token-mean", "verl's SAPO loss aggregates this way whatever "
                    "loss_agg_mode says; set so the config shows what runs"),
            Setting(f"{_ACTOR}.use_kl_loss", False, "the example: no KL term"),
        ),
    ),
    "gmpo": Preset(
        "gmpo", "GMPO: the geometric mean of token ratios per sequence, clipped in log space",
        "Geometric-Mean Policy Optimization, arXiv 2507.20673", f"{_EX}gmpo_trainer/run_qwen3_8b_fsdp.sh and its README",
        (
            Setting("algorithm.adv_estimator", "grpo", "the example: GRPO's group advantages"),
            Setting(f"{_LOSS}.loss_mode", "geo_mean", "verl's registered GMPO loss"),
            Setting(f"{_ACTOR}.clip_ratio_low", 0.4, "the README's key configuration: log-ratio clipped to [-0.4, 0.4]"),
            Setting(f"{_ACTOR}.clip_ratio_high", 0.4, "the same upper bound"),
            *_GRPO_KL_LOSS,
        ),
    ),
}

# verl-project/verl-recipe entropy/ (read at commit 48ea0a7): the 7B scripts; the 32B ones differ only
# in kl_cov_ratio (0.0002) and token budgets.
_ENTROPY_PAPER = "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models, arXiv 2505.22617"

ENTROPY_MODES: dict[str, Preset] = {
    "vanilla": Preset("vanilla", "DAPO's clipped objective with clip-higher (config.yaml)", "DAPO, arXiv 2503.14476",
                      "dapo/config.yaml"),
    "clip_cov": Preset(
        "clip_cov", "Clip-Cov: a random 0.02% of the tokens with covariance in [1, 5] get no gradient",
        _ENTROPY_PAPER, "verl-recipe entropy/7b_clip_cov.sh",
        (
            Setting(f"{_LOSS}.loss_mode", "clip_cov", "verl's registered Clip-Cov loss"),
            Setting(f"{_ACTOR}.clip_ratio_low", 1.0, "the recipe: PPO's own clip widened to [0, 2]; Clip-Cov does the restraining"),
            Setting(f"{_ACTOR}.clip_ratio_high", 1.0, "the recipe's upper bound"),
            Setting(f"{_LOSS}.clip_cov_ratio", 0.0002, "the recipe: 0.02% of response tokens"),
            Setting(f"{_LOSS}.clip_cov_lb", 1.0, "the recipe's lower covariance bound"),
            Setting(f"{_LOSS}.clip_cov_ub", 5.0, "the recipe's upper covariance bound"),
        ),
    ),
    "kl_cov": Preset(
        "kl_cov", "KL-Cov: the top 0.2% of tokens by covariance get a |log ratio| penalty, no ratio clipping",
        _ENTROPY_PAPER, "verl-recipe entropy/7b_kl_cov.sh",
        (
            Setting(f"{_LOSS}.loss_mode", "kl_cov", "verl's registered KL-Cov loss"),
            Setting(f"{_LOSS}.kl_cov_ratio", 0.002, "the recipe's 7B value (0.0002 for 32B): 0.2% of response tokens"),
            Setting(f"{_LOSS}.ppo_kl_coef", 1.0, "the recipe's penalty weight (verl's default is 0.1)"),
            Setting(f"{_ACTOR}.clip_ratio_low", 0.2, "the recipe's value; KL-Cov clips no ratio, so it has no effect"),
            Setting(f"{_ACTOR}.clip_ratio_high", 0.2, "the recipe's value; no effect under KL-Cov"),
        ),
    ),
}

ROLLOUT_CORRECTION_MODES = ("off", "token", "sequence")
# RolloutCorrectionConfig's fields, as the override paths under algorithm.rollout_correction.
_RC_FIELDS = ("rollout_is", "rollout_is_threshold", "rollout_is_batch_normalize", "rollout_rs",
              "rollout_rs_threshold", "bypass_mode", "loss_type")
_RC_PAPER = "When Speed Kills Stability (Liu, Li et al. 2025, https://richardli.xyz/rl-collapse); arXiv 2512.23075"


def parse_threshold(raw: str) -> float | str:
    """ROLLOUT_CORRECTION_THRESHOLD: a number > 0 (truncated IS) or 'lower_upper' (IcePop), as verl accepts.

    >>> parse_threshold("2")
    2.0
    >>> parse_threshold("0.5_5.0")
    '0.5_5.0'
    """
    text = raw.strip()
    try:
        if "_" in text:
            lower, upper = (float(part) for part in text.split("_", 1))
            if not 0 <= lower < upper:
                raise ValueError
            return text
        value = float(text)
        if not value > 0:
            raise ValueError
        return value
    except ValueError:
        raise ConfigError(f"ROLLOUT_CORRECTION_THRESHOLD={raw!r}: use a number > 0 (the weights' upper bound, e.g. 2.0) "
                          "or LOWER_UPPER with 0 <= LOWER < UPPER (IcePop, e.g. 0.5_5.0)") from None


def rollout_correction(mode: str, threshold: float | str = 2.0) -> Preset:
    """The ROLLOUT_CORRECTION preset, from verl's own RolloutCorrectionConfig factories."""
    from verl.trainer.config.algorithm import RolloutCorrectionConfig

    logprobs = Setting("actor_rollout_ref.rollout.calculate_log_probs", True,
                       "the V1 trainer computes the correction only when the engine returns its log-probs "
                       "(trainer/ppo/v1/trainer_base.py: 'rollout_log_probs' in data.batch)")
    if mode == "off":
        # verl's own default: rollout_is null, so no weights; the rollout still returns its log-probs
        # (rollout.yaml: calculate_log_probs: True), so the V1 trainer still logs the rollout_corr/* metrics.
        return Preset("off", "no importance weights; the mismatch metrics are still logged (verl's default)", _RC_PAPER,
                      "verl's algorithm/rollout_correction.yaml and rollout/rollout.yaml")
    if mode == "token":
        config, factory = RolloutCorrectionConfig.decoupled_token_is(threshold=threshold), f"decoupled_token_is(threshold={threshold})"
        title = f"token-level truncated importance sampling (weights capped at {threshold})"
    elif mode == "sequence":
        config, factory = RolloutCorrectionConfig.decoupled_seq_is(threshold=threshold), f"decoupled_seq_is(threshold={threshold})"
        title = f"sequence-level truncated importance sampling (weights capped at {threshold})"
    else:
        raise ConfigError(f"ROLLOUT_CORRECTION={mode!r} is not one of: {', '.join(ROLLOUT_CORRECTION_MODES)}")
    if isinstance(threshold, str) and mode in ("token", "sequence"):
        title = title.replace(f"weights capped at {threshold}", f"IcePop: weights outside [{threshold.replace('_', ', ')}] zeroed")
    source = f"verl RolloutCorrectionConfig.{factory} (trainer/config/algorithm.py)"
    settings = tuple(Setting(f"{_RC}.{name}", getattr(config, name), f"RolloutCorrectionConfig.{factory}") for name in _RC_FIELDS)
    return Preset(mode, title, _RC_PAPER, source, settings + (logprobs,))


def _pick(table: dict[str, Preset], knob: str, raw: str) -> Preset:
    name = raw.strip()
    if name not in table:
        raise ConfigError(f"{knob}={raw!r} is not one of: {', '.join(table)}")
    return table[name]


def chosen(env: dict[str, str], trainer: str = "rl") -> list[tuple[str, Preset]]:
    """The presets the config block selects, weakest first; unknown names are a ConfigError naming the knob."""
    names = ("ALGORITHM", "ENTROPY_MODE", "ROLLOUT_CORRECTION", "ROLLOUT_CORRECTION_THRESHOLD")
    given = {name: (env.get(name) or "").strip() for name in names}
    if trainer != "rl":
        # off / vanilla choose nothing, so an exported default does not stop an SFT launch.
        extra = [name for name, value in given.items() if value and value not in ("off", "vanilla")]
        if extra:
            raise ConfigError(f"{', '.join(extra)} apply to the RL methods (grpo, dapo, gspo, ppo), not to SFT: unset them")
        return []
    out: list[tuple[str, Preset]] = []
    if given["ALGORITHM"]:
        out.append(("ALGORITHM", _pick(ALGORITHMS, "ALGORITHM", given["ALGORITHM"])))
    if given["ENTROPY_MODE"]:
        out.append(("ENTROPY_MODE", _pick(ENTROPY_MODES, "ENTROPY_MODE", given["ENTROPY_MODE"])))
    mode = given["ROLLOUT_CORRECTION"] or "off"
    if mode not in ROLLOUT_CORRECTION_MODES:
        raise ConfigError(f"ROLLOUT_CORRECTION={mode!r} is not one of: {', '.join(ROLLOUT_CORRECTION_MODES)}")
    threshold = given["ROLLOUT_CORRECTION_THRESHOLD"]
    if threshold and mode not in ("token", "sequence"):
        raise ConfigError(f"ROLLOUT_CORRECTION_THRESHOLD={threshold} applies to ROLLOUT_CORRECTION=token or sequence "
                          f"(it is {mode}): unset it or choose one of those")
    if mode != "off":
        out.append(("ROLLOUT_CORRECTION", rollout_correction(mode, parse_threshold(threshold) if threshold else 2.0)))
    return out


def settings_of(selected: list[tuple[str, Preset]]) -> list[tuple[str, Preset, Setting]]:
    """Every key the selected presets set, in order; two presets giving one key different values: ConfigError."""
    out: list[tuple[str, Preset, Setting]] = []
    seen: dict[str, tuple[str, Preset, Setting]] = {}
    for knob, preset in selected:
        for setting in preset.settings:
            earlier = seen.get(setting.path)
            if earlier and earlier[2].value != setting.value:
                raise ConfigError(
                    f"{earlier[0]}={earlier[1].name} and {knob}={preset.name} both set {setting.path} "
                    f"({earlier[2].value!r} vs {setting.value!r}): choose one of them"
                )
            seen[setting.path] = (knob, preset, setting)
            out.append((knob, preset, setting))
    return out


def _short(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def describe(knob: str, preset: Preset) -> str:
    """One line for the dry run: the preset, its paper and source, and the keys it set."""
    keys = ", ".join(f"{s.path.removeprefix('actor_rollout_ref.')}={_short(s.value)}" for s in preset.settings)
    return f"{knob}={preset.name}: {preset.title} ({preset.paper}; values from {preset.source}) set {keys or 'nothing'}"


def main() -> None:
    tables = (("ALGORITHM", ALGORITHMS), ("ENTROPY_MODE", ENTROPY_MODES),
              ("ROLLOUT_CORRECTION", {m: rollout_correction(m) for m in ROLLOUT_CORRECTION_MODES}))
    for knob, table in tables:
        print(f"# {knob}")
        for preset in table.values():
            print(f"{knob}={preset.name}: {preset.title}\n  paper: {preset.paper}\n  values: {preset.source}")
            for s in preset.settings:
                print(f"    {s.path}={_short(s.value)}    # {s.source}")
        print()


if __name__ == "__main__":
    main()
