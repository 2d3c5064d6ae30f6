"""The algorithm's own settings that verl cannot check for this project's additions.

Offers:
- top_entropy_checks(plan, cfg, ctx): TOP_ENTROPY_QUANTILE < 1 needs verl's V1 trainer, the
  log-prob pass (no rollout_correction bypass) and no distillation (common/top_entropy.py).
"""

from __future__ import annotations

from common.checks.result import Result


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
