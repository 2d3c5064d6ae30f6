"""Batch arithmetic verl asserts only inside its workers, minutes into a launch.

Offers:
- batch_checks(cfg): the RL actor's mini/micro batches, the log-prob passes, the critic, dynamic
  batching token budgets (verl/workers/engine_workers.py, verl/workers/engine/utils.py).
- sft_checks(cfg): the SFT step's batch per GPU and micro batch.
- consistent_batch_sizes(train, n, dp, mini, micro): PPO_MINI_BATCH_SIZE and MICRO_BATCH_SIZE_PER_GPU
  (and TRAIN_BATCH_SIZE when it must move) that satisfy every rule at once, closest to the values given.
- divisor_near(total, wanted): the largest divisor of total that is at most wanted.

Several broken rules come back as one failure with one consistent set of values to use, so
fixing one knob never just moves the error to the next.
"""

from __future__ import annotations

from common.checks.result import Result, gpus_in_run


def _micro_check(results, what: str, per_rank: int, micro, how: str, *knobs: str) -> None:
    """verl/workers/engine/utils.py prepare_micro_batches: assert data size % micro == 0."""
    if micro and per_rank % int(micro):
        results.append(
            Result.fail(
                "batch sizes",
                f"{what}: each GPU gets {per_rank} sequences ({how}), not a multiple of the micro batch "
                f"({micro}); verl asserts this inside its workers. Try {knobs[0]}={divisor_near(per_rank, int(micro))}",
                *knobs,
            )
        )


def batch_checks(cfg) -> list[Result]:
    """Mini/micro batch arithmetic of the actor, the log-prob passes and the critic, as one result."""
    results = _batch_problems(cfg)
    failed = [r for r in results if r.failed]
    if not failed:
        return results
    actor = cfg.actor_rollout_ref.actor
    sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
    world = gpus_in_run(cfg)
    detail = "; ".join(r.detail for r in failed)
    knobs = list(dict.fromkeys(k for r in failed for k in r.knobs))
    if world % sp == 0 and not actor.use_dynamic_bsz:
        train, n, mini = int(cfg.data.train_batch_size), int(cfg.actor_rollout_ref.rollout.n), int(actor.ppo_mini_batch_size)
        micro = int(actor.ppo_micro_batch_size_per_gpu or 1)
        fix = consistent_batch_sizes(train, n, world // sp, mini, micro)
        if fix:
            given = {"TRAIN_BATCH_SIZE": train, "PPO_MINI_BATCH_SIZE": mini, "MICRO_BATCH_SIZE_PER_GPU": micro}
            words = " ".join(f"{k}={v}" for k, v in fix.items())
            changed = [k for k, v in fix.items() if given[k] != v]
            detail += (f". A consistent set for ROLLOUT_N={n} on {world} GPU(s): {words} "
                       f"(changes {', '.join(changed)})")
            knobs = list(dict.fromkeys(changed + knobs))
    return [r for r in results if not r.failed] + [Result.fail("batch sizes", detail, *knobs)]


def _divisors(total: int) -> list[int]:
    return [d for d in range(1, total + 1) if total % d == 0]


def consistent_batch_sizes(train: int, n: int, dp: int, mini: int, micro: int) -> dict[str, int] | None:
    """Values closest to (train, mini, micro) that satisfy verl's rules on dp data-parallel ranks:
    train % mini == 0, (mini x n) % dp == 0, and the micro batch divides both the per-rank update
    (mini x n / dp) and the per-rank log-prob pass (train x n / dp).

    >>> consistent_batch_sizes(32, 5, 8, 16, 8)   # 8 GPUs: 16 x 5 / 8 = 10 per GPU, micro 8 does not divide it
    {'TRAIN_BATCH_SIZE': 32, 'PPO_MINI_BATCH_SIZE': 16, 'MICRO_BATCH_SIZE_PER_GPU': 5}
    >>> consistent_batch_sizes(4, 5, 1, 2, 8)     # a small batch: the micro batch comes down with it
    {'TRAIN_BATCH_SIZE': 4, 'PPO_MINI_BATCH_SIZE': 2, 'MICRO_BATCH_SIZE_PER_GPU': 5}
    """
    import math

    if min(train, n, dp, mini, micro) < 1:
        return None
    # TRAIN_BATCH_SIZE moves only when no mini batch works: up to the next value whose sequences split evenly.
    step = dp // math.gcd(n, dp)
    for t in [train] + [train + k for k in range(1, 64 * step) if (train + k) % step == 0][:4]:
        minis = [d for d in _divisors(t) if (d * n) % dp == 0]
        if not minis:
            continue
        smaller = [d for d in minis if d <= mini]
        m = max(smaller) if smaller else min(minis)
        common = math.gcd(m * n // dp, t * n // dp)
        fits = [d for d in _divisors(common) if d <= micro]
        return {"TRAIN_BATCH_SIZE": t, "PPO_MINI_BATCH_SIZE": m, "MICRO_BATCH_SIZE_PER_GPU": max(fits)}
    return None


def _batch_problems(cfg) -> list[Result]:
    """Each rule on its own (batch_checks merges the failures)."""
    actor = cfg.actor_rollout_ref.actor
    rollout = cfg.actor_rollout_ref.rollout
    ref = cfg.actor_rollout_ref.ref
    n = int(rollout.n)
    world = gpus_in_run(cfg)
    sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    results: list[Result] = []
    if dp == 0:
        return [Result.fail("batch sizes", f"{world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]

    train = int(cfg.data.train_batch_size)
    mini = int(actor.ppo_mini_batch_size)
    if train % mini:
        results.append(
            Result.fail(
                "batch sizes",
                f"TRAIN_BATCH_SIZE ({train}) is not a multiple of PPO_MINI_BATCH_SIZE ({mini}): "
                f"the last update of every step would get {train % mini} prompts",
                "TRAIN_BATCH_SIZE",
                "PPO_MINI_BATCH_SIZE",
            )
        )
    # verl: ppo_mini_batch_size *= rollout.n; assert mini % dp == 0 (engine_workers.train_mini_batch).
    seqs = mini * n
    if seqs % dp:
        results.append(
            Result.fail(
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
    step_per_rank = train * n // dp if (train * n) % dp == 0 else 0
    if not actor.use_dynamic_bsz:
        _micro_check(results, "actor update", per_rank, actor.ppo_micro_batch_size_per_gpu,
                     f"{mini} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "PPO_MINI_BATCH_SIZE")
        if step_per_rank:
            _micro_check(results, "rollout log-prob pass", step_per_rank, rollout.log_prob_micro_batch_size_per_gpu,
                         f"{train} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
            if cfg.actor_rollout_ref.actor.use_kl_loss or cfg.algorithm.get("use_kl_in_reward", False):
                _micro_check(results, "reference log-prob pass", step_per_rank, ref.log_prob_micro_batch_size_per_gpu,
                             f"{train} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
    results += _critic_batch_checks(cfg, n, world, train)
    # engine_workers.py: assert actor.use_dynamic_bsz == rollout.log_prob_use_dynamic_bsz.
    if bool(actor.use_dynamic_bsz) != bool(rollout.log_prob_use_dynamic_bsz):
        results.append(
            Result.fail(
                "batch sizes",
                "actor.use_dynamic_bsz and rollout.log_prob_use_dynamic_bsz differ (verl asserts they agree); "
                "set both with USE_DYNAMIC_BSZ",
                "USE_DYNAMIC_BSZ",
            )
        )
    prompt, response = int(cfg.data.max_prompt_length), int(cfg.data.max_response_length)
    if actor.use_dynamic_bsz:
        for name, value in (
            ("actor.ppo_max_token_len_per_gpu", actor.ppo_max_token_len_per_gpu),
            ("rollout.log_prob_max_token_len_per_gpu", rollout.log_prob_max_token_len_per_gpu),
            ("ref.log_prob_max_token_len_per_gpu", ref.log_prob_max_token_len_per_gpu),
        ):
            budget = int(value) * sp
            if budget < prompt + response:
                results.append(
                    Result.fail(
                        "batch sizes",
                        f"{name} x SP_SIZE = {budget} tokens cannot hold one sequence of "
                        f"MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH = {prompt} + {response} = {prompt + response} tokens",
                        "MAX_TOKENS_PER_GPU",
                    )
                )
                break
    if not results:
        results.append(Result.ok("batch sizes", f"{train} prompts x {n} = {train * n} sequences; {per_rank} per GPU per update"))
    return results


def _critic_batch_checks(cfg, n: int, world: int, train: int) -> list[Result]:
    critic = cfg.critic
    enabled = critic.get("enable")
    use_critic = cfg.algorithm.adv_estimator == "gae" if enabled is None else bool(enabled)
    if not use_critic:
        return []
    results: list[Result] = []
    sp = int(critic.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    if dp == 0:
        return [Result.fail("batch sizes", f"critic: {world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]
    seqs = int(critic.ppo_mini_batch_size) * n
    if seqs % dp:
        return [
            Result.fail(
                "batch sizes",
                f"critic mini-batch {critic.ppo_mini_batch_size} x ROLLOUT_N {n} = {seqs} sequences cannot be split "
                f"over {dp} data-parallel ranks",
                "PPO_MINI_BATCH_SIZE",
                "ROLLOUT_N",
            )
        ]
    if not critic.use_dynamic_bsz:
        _micro_check(results, "critic update", seqs // dp, critic.ppo_micro_batch_size_per_gpu,
                     f"{critic.ppo_mini_batch_size} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "PPO_MINI_BATCH_SIZE")
        forward = critic.get("forward_micro_batch_size_per_gpu") or critic.ppo_micro_batch_size_per_gpu
        if (train * n) % dp == 0:
            _micro_check(results, "critic value pass", train * n // dp, forward, f"{train} x {n} / {dp}",
                         "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
    else:
        budget = int(critic.ppo_max_token_len_per_gpu) * sp
        seq = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
        if budget < seq:
            results.append(Result.fail("batch sizes", f"critic.ppo_max_token_len_per_gpu x SP = {budget} < {seq} tokens "
                                 "(MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH)", "MAX_TOKENS_PER_GPU"))
    return results


def divisor_near(total: int, wanted: int) -> int:
    """The largest divisor of total that is at most wanted (a micro batch that fits)."""
    return max(d for d in range(1, min(total, wanted) + 1) if total % d == 0)


def sft_checks(cfg) -> list[Result]:
    world = gpus_in_run(cfg)
    batch = int(cfg.data.train_batch_size)
    if batch % world:
        return [
            Result.fail(
                "batch sizes",
                f"TRAIN_BATCH_SIZE ({batch}) must be divisible by the GPU count ({world})",
                "TRAIN_BATCH_SIZE",
                "N_GPUS_PER_NODE",
            )
        ]
    sp = int((cfg.get("engine", {}) or {}).get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    if dp == 0:
        return [Result.fail("batch sizes", f"{world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]
    per_rank = batch // dp
    results: list[Result] = []
    if not cfg.data.get("use_dynamic_bsz", False):
        _micro_check(results, "SFT step", per_rank, cfg.data.get("micro_batch_size_per_gpu"), f"{batch} / {dp}",
                     "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
    elif int(cfg.data.max_token_len_per_gpu) * sp < int(cfg.data.max_length):
        results.append(Result.fail("batch sizes", f"MAX_TOKENS_PER_GPU x SP_SIZE ({int(cfg.data.max_token_len_per_gpu) * sp}) "
                             f"< MAX_LENGTH ({cfg.data.max_length}): one conversation would not fit", "MAX_TOKENS_PER_GPU"))
    return results or [Result.ok("batch sizes", f"{batch} conversations per step, {per_rank} per GPU")]
