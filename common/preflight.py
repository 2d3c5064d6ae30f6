"""Checks verl only runs after Ray has started and the models have loaded, run here in seconds.

    DRY_RUN=1 ./grpo/train.sh            # runs them (every launch runs them first)

Offers:
- Result: one check's outcome (check, status ok|warn|fail|skipped, detail, knobs to change).
- rl_checks(cfg) / sft_checks(cfg): the arithmetic verl checks inside its workers, from the config alone.
- run_checks(plan, cfg) -> list[Result]: every check for the plan's trainer.
- format_table(results): the short report printed by the launcher.

Each rule below mirrors a check in verl 0.9.1's workers (file named beside it), so a config that
would crash minutes into a launch fails here instead, naming the config-block variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    check: str
    status: str  # ok | warn | fail | skipped
    detail: str
    knobs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def _fail(check: str, detail: str, *knobs: str) -> Result:
    return Result(check, "fail", detail, list(knobs))


def _ok(check: str, detail: str) -> Result:
    return Result(check, "ok", detail)


def batch_checks(cfg) -> list[Result]:
    """Mini/micro batch arithmetic of the actor and critic (verl/workers/actor, fsdp workers)."""
    actor = cfg.actor_rollout_ref.actor
    rollout = cfg.actor_rollout_ref.rollout
    n = int(rollout.n)
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    results: list[Result] = []
    if dp == 0:
        return [_fail("batch sizes", f"{world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]

    train = int(cfg.data.train_batch_size)
    mini = int(actor.ppo_mini_batch_size)
    if train % mini:
        results.append(
            _fail(
                "batch sizes",
                f"TRAIN_BATCH_SIZE ({train}) is not a multiple of PPO_MINI_BATCH_SIZE ({mini}): "
                f"the last update of every step would get {train % mini} prompts",
                "TRAIN_BATCH_SIZE",
                "PPO_MINI_BATCH_SIZE",
            )
        )
    # verl: ppo_mini_batch_size *= rollout.n; //= dp; assert > 0 (fsdp_workers / engine workers).
    seqs = mini * n
    if seqs % dp:
        results.append(
            _fail(
                "batch sizes",
                f"PPO_MINI_BATCH_SIZE x ROLLOUT_N = {mini} x {n} = {seqs} sequences cannot be split evenly "
                f"over {dp} data-parallel ranks",
                "PPO_MINI_BATCH_SIZE",
                "ROLLOUT_N",
                "N_GPUS_PER_NODE",
            )
        )
        return results
    per_rank = seqs // dp
    if not actor.use_dynamic_bsz:
        micro = actor.ppo_micro_batch_size_per_gpu
        if micro and per_rank % int(micro):
            results.append(
                _fail(
                    "batch sizes",
                    f"each GPU updates on {per_rank} sequences per mini-batch ({mini} x {n} / {dp} GPUs), "
                    f"not a multiple of MICRO_BATCH_SIZE_PER_GPU ({micro}); try {_divisor_near(per_rank, int(micro))}",
                    "MICRO_BATCH_SIZE_PER_GPU",
                    "PPO_MINI_BATCH_SIZE",
                )
            )
    # verl asserts the two agree (the rollout's log-prob pass reuses the actor's batching).
    if bool(actor.use_dynamic_bsz) != bool(rollout.log_prob_use_dynamic_bsz):
        results.append(
            _fail(
                "batch sizes",
                "actor.use_dynamic_bsz and rollout.log_prob_use_dynamic_bsz differ; set both with USE_DYNAMIC_BSZ",
                "USE_DYNAMIC_BSZ",
            )
        )
    prompt, response = int(cfg.data.max_prompt_length), int(cfg.data.max_response_length)
    if actor.use_dynamic_bsz:
        budget = int(actor.ppo_max_token_len_per_gpu) * sp
        if budget < prompt + response:
            results.append(
                _fail(
                    "batch sizes",
                    f"MAX_TOKENS_PER_GPU x SP_SIZE = {budget} tokens cannot hold one sequence of "
                    f"{prompt} + {response} = {prompt + response} tokens",
                    "MAX_TOKENS_PER_GPU",
                )
            )
    if not results:
        results.append(_ok("batch sizes", f"{train} prompts x {n} = {train * n} sequences; {per_rank} per GPU per update"))
    return results


def _divisor_near(total: int, wanted: int) -> int:
    """The largest divisor of total that is at most wanted (a micro batch that fits)."""
    return max(d for d in range(1, min(total, wanted) + 1) if total % d == 0)


def parallel_checks(cfg) -> list[Result]:
    """Rollout tensor parallel against the GPU count (verl/workers/rollout replicas)."""
    rollout = cfg.actor_rollout_ref.rollout
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    tp = int(rollout.tensor_model_parallel_size)
    dp = int(rollout.get("data_parallel_size", 1) or 1)
    pp = int(rollout.get("pipeline_model_parallel_size", 1) or 1)
    per_replica = tp * dp * pp
    if per_replica > world:
        return [
            _fail(
                "parallel sizes",
                f"one rollout engine needs ROLLOUT_TP x DP x PP = {per_replica} GPUs but there are {world}: "
                f"verl would start zero engines (set ROLLOUT_TP <= {world})",
                "ROLLOUT_TP",
                "N_GPUS_PER_NODE",
            )
        ]
    if world % per_replica:
        return [
            _fail(
                "parallel sizes",
                f"{world} GPUs cannot be split into rollout engines of {per_replica} GPUs",
                "ROLLOUT_TP",
                "N_GPUS_PER_NODE",
            )
        ]
    return [_ok("parallel sizes", f"{world // per_replica} rollout engine(s) of {per_replica} GPU(s)")]


def rl_checks(cfg) -> list[Result]:
    return batch_checks(cfg) + parallel_checks(cfg)


def sft_checks(cfg) -> list[Result]:
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    batch = int(cfg.data.train_batch_size)
    if batch % world:
        return [
            _fail(
                "batch sizes",
                f"TRAIN_BATCH_SIZE ({batch}) must be divisible by the GPU count ({world})",
                "TRAIN_BATCH_SIZE",
                "N_GPUS_PER_NODE",
            )
        ]
    return [_ok("batch sizes", f"{batch} conversations per step, {batch // world} per GPU")]


def run_checks(plan, cfg) -> list[Result]:
    return sft_checks(cfg) if plan.trainer == "sft" else rl_checks(cfg)


def format_table(results: list[Result]) -> str:
    width = max((len(r.check) for r in results), default=5)
    lines = [f"{'check':{width}}  result   detail"]
    for r in results:
        lines.append(f"{r.check:{width}}  {r.status:7}  {r.detail}")
    return "\n".join(lines)
