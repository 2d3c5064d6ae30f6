"""Parallel sizes: rollout engines against the GPUs and attention heads, Ulysses sequence parallel.

Offers:
- parallel_checks(cfg, shape=None): ROLLOUT_TP x DP x PP against the GPU count, heads % TP, SP
  against heads and remove-padding (shape: common.memory.ModelShape, when the model is known).
"""

from __future__ import annotations

from common.checks.result import Result, gpus_in_run


def parallel_checks(cfg, shape=None) -> list[Result]:
    """Rollout tensor parallel vs GPUs and heads; Ulysses SP vs heads and remove-padding."""
    rollout = cfg.actor_rollout_ref.rollout
    world = gpus_in_run(cfg)
    tp = int(rollout.tensor_model_parallel_size)
    dp = int(rollout.get("data_parallel_size", 1) or 1)
    pp = int(rollout.get("pipeline_model_parallel_size", 1) or 1)
    per_replica = tp * dp * pp
    if per_replica > world:
        return [
            Result.fail(
                "parallel sizes",
                f"one rollout engine needs ROLLOUT_TP x DP x PP = {per_replica} GPUs but there are {world}: "
                f"verl would start zero engines (set ROLLOUT_TP <= {world})",
                "ROLLOUT_TP",
                "N_GPUS_PER_NODE",
            )
        ]
    if world % per_replica:
        return [
            Result.fail(
                "parallel sizes",
                f"{world} GPUs cannot be split into rollout engines of {per_replica} GPUs "
                "(verl asserts world_size % infer_world_size == 0)",
                "ROLLOUT_TP",
                "N_GPUS_PER_NODE",
            )
        ]
    results: list[Result] = []
    sp = int(cfg.actor_rollout_ref.actor.get("ulysses_sequence_parallel_size", 1) or 1)
    if shape is not None:
        if shape.heads % tp:
            results.append(
                Result.fail("parallel sizes", f"ROLLOUT_TP={tp} does not divide the model's {shape.heads} attention heads "
                      f"(vLLM/SGLang refuse to start); use one of {[d for d in range(1, world + 1) if shape.heads % d == 0 and world % d == 0]}",
                      "ROLLOUT_TP")
            )
        if sp > 1 and (shape.heads % sp or (shape.kv_heads % sp and sp % shape.kv_heads)):
            results.append(
                Result.fail("parallel sizes", f"SP_SIZE={sp} must divide the {shape.heads} attention heads and divide or be a "
                      f"multiple of the {shape.kv_heads} KV heads (verl's Ulysses all-to-all splits heads)", "SP_SIZE")
            )
    if sp > 1 and not cfg.actor_rollout_ref.model.get("use_remove_padding", False):
        results.append(Result.fail("parallel sizes", f"SP_SIZE={sp} needs actor_rollout_ref.model.use_remove_padding=true "
                             "(verl's Ulysses path works on unpadded sequences)", "SP_SIZE"))
    if not results:
        note = "" if shape is not None else " (heads unchecked: model shape unknown here)"
        results.append(Result.ok("parallel sizes", f"{world // per_replica} rollout engine(s) of {per_replica} GPU(s), SP {sp}{note}"))
    return results
