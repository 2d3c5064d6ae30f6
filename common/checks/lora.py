"""LoRA settings verl accepts but that would waste a run (the preflight's "lora" row).

    DRY_RUN=1 USE_LORA=true ./grpo/train.sh      # warns: ACTOR_LR is still the full-weight 1e-6

Offers:
- LORA_LR_FLOOR: {trainer: the learning rate below which LoRA barely moves} — the full-weight
  defaults of the train.sh files (RL 1e-6, SFT 1e-5). verl's LoRA guide
  (docs/advance/ppo_lora.rst, "Best Practices") recommends raising the learning rate by an order of
  magnitude for LoRA; its 72B example trains at 3e-5.
- lora_checks(plan, cfg, ctx) -> list of preflight Results: ok (with the adapter's size), or a
  warning naming ACTOR_LR / LR with verl's recommended range when the rate was not raised, or
  nothing when LoRA is off.
"""

from __future__ import annotations

from common.checks.result import Result

# The full-weight learning rates of the config blocks: LoRA at these barely moves.
LORA_LR_FLOOR = {"rl": 1e-6, "sft": 1e-5}
# verl's recommendation: an order of magnitude above full fine-tuning.
LORA_LR_RANGE = {"rl": "1e-5 to 3e-5 (verl's LoRA example: 3e-5)", "sft": "1e-4 to 3e-4"}


def lora_checks(plan, cfg, ctx) -> list[Result]:
    model = cfg.model if plan.trainer == "sft" else cfg.actor_rollout_ref.model
    rank = int(model.get("lora_rank", 0) or 0)
    if rank <= 0:
        return []
    knob = "LR" if plan.trainer == "sft" else "ACTOR_LR"
    lr = float(cfg.optim.lr if plan.trainer == "sft" else cfg.actor_rollout_ref.actor.optim.lr)
    detail = f"rank {rank}, alpha {model.get('lora_alpha')}, targets {model.get('target_modules')}, {knob}={lr:g}"
    if lr <= LORA_LR_FLOOR[plan.trainer]:
        return [Result("lora", "warn", f"{detail}: the full-weight learning rate, at which LoRA adapters barely move. "
                       f"verl's LoRA guide raises it by an order of magnitude: {knob}="
                       f"{LORA_LR_RANGE[plan.trainer]}", [knob])]
    return [Result("lora", "ok", detail)]
