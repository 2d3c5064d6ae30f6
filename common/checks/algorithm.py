"""The algorithm's keys that verl reads only at the first training step: estimator, policy loss, rollout correction,
and this project's own policy-loss extension.

    ALGORITHM=rloo ROLLOUT_N=1 DRY_RUN=1 ./grpo/train.sh      # fails here, not after the models load

Offers:
- algorithm_checks(plan, cfg, ctx): the advantage estimator and the policy loss are registered in
  verl (core_algos.get_adv_estimator_fn / get_policy_loss_fn raise only when the first batch is
  trained); group estimators have a group (ROLLOUT_N >= 2); losses that ignore loss_agg_mode
  (sapo, geo_mean) or the clip ratios (kl_cov) say so; the covariance ratios are positive.
- rollout_correction_checks(plan, cfg, ctx): algorithm.rollout_correction is one verl applies:
  rollout_is in {null, token, sequence}, a threshold verl can parse, rollout_rs with a threshold, and
  the rollout's log-probs on (without actor_rollout_ref.rollout.calculate_log_probs the V1 trainer
  skips the correction without a word: trainer/ppo/v1/trainer_base.py).
- top_entropy_checks(plan, cfg, ctx): TOP_ENTROPY_QUANTILE < 1 needs verl's V1 trainer, the
  log-prob pass (no rollout_correction bypass) and no distillation (common/top_entropy.py).
"""

from __future__ import annotations

from common.checks.result import Result

# Estimators whose baseline is the prompt's group of ROLLOUT_N responses (trainer/ppo/core_algos.py).
GROUP_ESTIMATORS = {"grpo", "grpo_vectorized", "rloo", "rloo_vectorized", "reinforce_plus_plus_baseline", "grpo_passk",
                    "gdpo", "opo", "gpg"}
# Policy losses that aggregate on their own (core_algos.py): sapo always seq-mean-token-mean, geo_mean one
# mean over sequences.
_OWN_AGGREGATION = {"sapo": "seq-mean-token-mean", "geo_mean": "a mean over sequences of the geometric-mean ratio"}


def _registered(plan, cfg, kind: str, name: str) -> tuple[bool, str]:
    """Is name registered in verl (after importing the model's external_lib, as verl's workers do)?"""
    import importlib

    from verl.trainer.ppo import core_algos

    registry = core_algos.ADV_ESTIMATOR_REGISTRY if kind == "estimator" else core_algos.POLICY_LOSS_REGISTRY
    if name in registry:
        return True, ""
    lib = cfg.actor_rollout_ref.model.get("external_lib")
    if lib:
        try:
            importlib.import_module(str(lib))
        except Exception as exc:  # the user's module: report, never crash the preflight
            return False, f" (importing model.external_lib={lib} failed: {type(exc).__name__}: {exc})"
        if name in registry:
            return True, ""
    return False, f"; verl has: {', '.join(sorted(registry))}"


def algorithm_checks(plan, cfg, ctx) -> list[Result]:
    if plan.trainer != "rl":
        return []
    results: list[Result] = []
    actor = cfg.actor_rollout_ref.actor
    estimator = str(cfg.algorithm.adv_estimator)
    loss_mode = str(actor.policy_loss.get("loss_mode", "vanilla"))
    ok, why = _registered(plan, cfg, "estimator", estimator)
    if not ok:
        results.append(Result.fail("algorithm", f"algorithm.adv_estimator={estimator} is not a verl advantage estimator{why}",
                                   "ALGORITHM"))
    ok, why = _registered(plan, cfg, "loss", loss_mode)
    if not ok:
        results.append(Result.fail("algorithm", f"actor.policy_loss.loss_mode={loss_mode} is not a registered policy "
                                   f"loss{why}", "ALGORITHM", "ENTROPY_MODE", "POLICY_LOSS"))
    n = int(cfg.actor_rollout_ref.rollout.n)
    if estimator in GROUP_ESTIMATORS and n < 2:
        results.append(Result.fail("algorithm", f"adv_estimator={estimator} compares the ROLLOUT_N responses of a prompt, "
                                   f"but ROLLOUT_N={n}: there is no group, so no baseline (use 4-16)", "ROLLOUT_N"))
    agg = str(actor.loss_agg_mode)
    if loss_mode == "sapo" and agg != "seq-mean-token-mean":
        results.append(Result.warn("algorithm", f"loss_mode=sapo aggregates {_OWN_AGGREGATION['sapo']} whatever "
                                   f"LOSS_AGG_MODE={agg} says (core_algos.compute_policy_loss_sapo)", "LOSS_AGG_MODE"))
    if loss_mode == "geo_mean" and agg != "token-mean":
        results.append(Result.warn("algorithm", f"loss_mode=geo_mean takes {_OWN_AGGREGATION['geo_mean']}; "
                                   f"LOSS_AGG_MODE={agg} has no effect", "LOSS_AGG_MODE"))
    rules = {"clip_cov": ("clip_cov_ratio", "CLIP_COV_RATIO"), "kl_cov": ("kl_cov_ratio", "KL_COV_RATIO")}
    if loss_mode in rules:
        key, knob = rules[loss_mode]
        ratio = float(actor.policy_loss.get(key) or 0)
        if ratio <= 0:
            # verl asserts it at the first update (core_algos.compute_policy_loss_clip_cov / _kl_cov).
            results.append(Result.fail("algorithm", f"policy_loss.{key}={ratio} must be > 0 for loss_mode={loss_mode}", knob))
        if loss_mode == "clip_cov" and float(actor.policy_loss.clip_cov_lb) >= float(actor.policy_loss.clip_cov_ub):
            results.append(Result.fail("algorithm", f"clip_cov_lb={actor.policy_loss.clip_cov_lb} >= clip_cov_ub="
                                       f"{actor.policy_loss.clip_cov_ub}: no token can be selected", "CLIP_COV_LB", "CLIP_COV_UB"))
    if not results:
        detail = f"adv_estimator={estimator}, loss_mode={loss_mode}, loss_agg_mode={agg}"
        if loss_mode == "kl_cov":
            detail += " (kl_cov clips no ratio: CLIP_RATIO_LOW/HIGH have no effect)"
        results.append(Result.ok("algorithm", detail))
    return results


def _threshold_problem(spec) -> str | None:
    """Why verl's _parse_rollout_is_threshold (rollout_corr_helper.py) would reject spec, or None."""
    if isinstance(spec, bool) or spec is None:
        return f"{spec!r} is not a threshold"
    if isinstance(spec, (int, float)):
        return None if spec > 0 else f"{spec} must be > 0"
    text = str(spec).strip()
    try:
        if "_" in text:
            lower, upper = (float(x) for x in text.split("_", 1))
            return None if lower < upper else f"{text}: lower {lower} must be below upper {upper}"
        return None if float(text) > 0 else f"{text} must be > 0"
    except ValueError:
        return f"{text!r} is neither a number nor LOWER_UPPER"


def rollout_correction_checks(plan, cfg, ctx) -> list[Result]:
    if plan.trainer != "rl":
        return []
    rc = cfg.algorithm.get("rollout_correction") or {}
    level, rs = rc.get("rollout_is"), rc.get("rollout_rs")
    logprobs = bool(cfg.actor_rollout_ref.rollout.get("calculate_log_probs", False))
    results: list[Result] = []
    if level not in (None, "token", "sequence"):
        results.append(Result.fail("rollout correction", f"rollout_correction.rollout_is={level!r}: verl accepts token, "
                                   "sequence or null (it raises at the first step)", "ROLLOUT_CORRECTION"))
    if level is not None:
        problem = _threshold_problem(rc.get("rollout_is_threshold"))
        if problem:
            results.append(Result.fail("rollout correction", f"rollout_is_threshold {problem}", "ROLLOUT_CORRECTION_THRESHOLD"))
    if rs is not None and rc.get("rollout_rs_threshold") is None:
        results.append(Result.fail("rollout correction", f"rollout_rs={rs} without rollout_rs_threshold: verl raises at the "
                                   "first step", "ROLLOUT_CORRECTION"))
    correcting = level is not None or rs is not None or bool(rc.get("bypass_mode"))
    if correcting and not logprobs:
        results.append(Result.fail("rollout correction", "algorithm.rollout_correction is on but the rollout does not return "
                                   "its log-probs (actor_rollout_ref.rollout.calculate_log_probs=false): verl's V1 trainer "
                                   "would skip the correction without a word; ROLLOUT_CORRECTION=token|sequence sets both",
                                   "ROLLOUT_CORRECTION"))
    if results:
        return results
    if not logprobs:
        return [Result.ok("rollout correction", "off, and no mismatch metrics: the rollout returns no log-probs "
                          "(actor_rollout_ref.rollout.calculate_log_probs=false)")]
    what = "off (no importance weights)" if not correcting else (
        f"{level or 'no'}-level importance weights (threshold {rc.get('rollout_is_threshold')})"
        + (f", rejection {rs} ({rc.get('rollout_rs_threshold')})" if rs else ""))
    return [Result.ok("rollout correction", f"{what}; verl logs the mismatch as rollout_corr/kl, rollout_corr/k3_kl, "
                      "rollout_corr/log_ppl_abs_diff, rollout_corr/chi2_token ... and training/rollout_probs_diff_*")]


def top_entropy_checks(plan, cfg, ctx) -> list[Result]:
    if plan.trainer == "sft":
        return []
    policy_loss = cfg.actor_rollout_ref.actor.policy_loss
    quantile = policy_loss.get("top_entropy_quantile")
    if quantile is None or float(quantile) >= 1.0:
        return []
    from common import top_entropy

    problems = top_entropy.config_problems(cfg)
    if problems:
        return [Result.fail("top-entropy mask", "; ".join(problems), "TOP_ENTROPY_QUANTILE")]
    return [Result.ok("top-entropy mask", top_entropy.summary(float(quantile)))]
