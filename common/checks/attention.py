"""The attention backend each model verl builds gets (ATTN_IMPL), and whether it can run (the
preflight's "attention" row).

Offers:
- attention_checks(plan, cfg, ctx): the backend of the actor, reference, critic (and SFT model) from
  the composed config, and why; a failure when flash_attention_2 is asked for (or, for PPO's critic,
  forced by verl) and flash-attn cannot run, naming ATTN_IMPL and how to install it; sdpa's cost.
"""

from __future__ import annotations

import os

from common.attention import INSTALL_HINT, configured, flash_attn_status, resolve
from common.checks.result import Result

# Where verl 0.9.1 ignores the choice: the critic's loader names flash_attention_2 itself.
CRITIC_HARD_CODED = "verl/utils/model.py:649, load_valuehead_model"


def _uses_critic(cfg) -> bool:
    import warnings

    from verl.trainer.ppo.utils import need_critic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(need_critic(cfg))


def attention_checks(plan, cfg, ctx) -> list[Result]:
    """Preflight row: the backend each model gets, and a failure when it cannot run here."""
    env = ctx.get("env", os.environ)
    rehearsal = (env.get("REHEARSAL") or "0").strip().lower() in {"1", "true", "yes", "on"}
    try:
        chosen = resolve(env.get("ATTN_IMPL"), ctx.get("flash_attn_status"))
    except ValueError as exc:
        return [Result("attention", "fail", str(exc), ["ATTN_IMPL"])]
    used = configured(cfg, plan.trainer)
    if plan.trainer == "rl" and not _uses_critic(cfg):
        used.pop("critic.model", None)
    impls = sorted({impl for impl, _ in used.values()})
    detail = f"{', '.join(impls) or chosen.impl} ({chosen.why})"
    usable, why = ctx.get("flash_attn_status") or flash_attn_status()
    # Without a GPU here (a dry run on a laptop, the rehearsal) the GPU machine is not this one: warn.
    here = "fail" if ctx.get("gpus_found", 0) > 0 and not rehearsal else "warn"
    elsewhere = "" if here == "fail" else (" The CPU rehearsal runs sdpa instead" if rehearsal else
                                           " (no GPU here: the GPU machine needs it)")
    if "critic.model" in used and not usable:
        message = (f"the critic needs flash-attn: verl 0.9.1 loads it with attn_implementation=flash_attention_2 "
                   f"whatever ATTN_IMPL says ({CRITIC_HARD_CODED}), and {why}")
        return [Result("attention", here, f"{detail}; {message}.{elsewhere or ' ' + INSTALL_HINT.split(', or set')[0]}",
                       ["ATTN_IMPL"])]
    if "critic.model" in used and used["critic.model"][0] != "flash_attention_2":
        detail += f"; the critic runs flash_attention_2 anyway ({CRITIC_HARD_CODED})"
    if "flash_attention_2" in impls and not usable:
        return [Result("attention", here, f"ATTN_IMPL asks for flash_attention_2 but {why}: verl would stop at model "
                       f"loading.{elsewhere or ' ' + INSTALL_HINT}", ["ATTN_IMPL"])]
    packed_off = [key for key, (_, packed) in used.items() if not packed]
    if "sdpa" in impls:
        detail += "; use_remove_padding=false (padded micro-batches: compute and memory grow with the pad share)"
        sp = int(cfg.actor_rollout_ref.actor.get("ulysses_sequence_parallel_size", 1) or 1) if plan.trainer == "rl" else \
            int((cfg.get("engine", {}) or {}).get("ulysses_sequence_parallel_size", 1) or 1)
        if sp > 1:
            return [Result("attention", "fail", f"SP_SIZE={sp} needs packed sequences, which need flash_attention_2; "
                           f"{detail}", ["SP_SIZE", "ATTN_IMPL"])]
    elif packed_off:
        detail += f"; packed sequences off for {', '.join(packed_off)}"
    return [Result("attention", "ok", detail)]
