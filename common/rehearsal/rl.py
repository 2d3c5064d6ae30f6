"""One real RL step (PPO, GRPO, DAPO, GSPO) of the launch config, on the CPU, with verl's own pieces.

    result = run_rl(plan, cfg, settings, out)      # cfg from settings.prepare; inside device.process_group()

Offers:
- RLResult: what the step produced (metrics per step, the engines' host, the DAPO group counts,
  the pad share of the batch, the checkpoint folder).
- run_rl(plan, cfg, settings, out) -> RLResult. In order, each piece verl's:
  1. tokenizer and processor from HFModelConfig; RLHFDataset, create_rl_sampler and collate_fn on
     TRAIN_DATA (trainer_base.py _init_dataloader), the optimizer's schedule length as the trainer
     computes it (steps per epoch x epochs, or TOTAL_STEPS);
  2. engines: common/rehearsal/engines.py (actor, reference, critic as the trainer builds them);
  3. generation: verl's AgentLoopWorker (single-turn agent loop, chat template, padding, position
     ids) asks common/rehearsal/rollout.py's GenerateClient for ROLLOUT_N responses per prompt;
  4. reward: verl's RewardLoopWorker with the configured reward manager, called per response by the
     agent loop (or after generation for a colocated reward model, as verl does);
  5. DAPO: verl's ReplayBuffer group filter on the batch; the kept/dropped groups are reported;
  6. old log-probs, reference log-probs, critic values, KL in the reward (apply_kl_penalty),
     advantages (the V1 trainer's compute_advantage_for_multi_trajectories), critic update, actor
     update: verl's stage methods on verl's engines; metrics by verl's metric_utils, printed in
     verl's console format (step:N - key:value - ...) and written by verl's file logger;
  7. a checkpoint by the workers' FSDP checkpoint managers in verl's layout (global_step_N/actor,
     /critic, data.pt, latest_checkpointed_iteration.txt, as trainer_base.py _save_checkpoint).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RLResult:
    metrics: list[dict] = field(default_factory=list)
    host: object = None
    dapo: dict | None = None
    pad_share: float | None = None
    checkpoint: Path | None = None
    rollout: object = None
    sampler_seed: int | None = None
    kl_ctrl: object = None
    prompts: int | None = None
    responses_per_prompt: int | None = None
    changed: tuple[int, int, float] | None = None
    reward_model_scored: int | None = None
    actor_updates: int | None = None
    critic_updates: int | None = None
    reward_kwargs: dict | None = None  # the kwargs verl's reward manager calls the reward function with


def _total_training_steps(cfg, dataset_len: int) -> int:
    """trainer_base.py _init_dataloader: steps per epoch x epochs, unless total_training_steps is set."""
    steps_per_epoch = dataset_len // int(cfg.data.train_batch_size)
    total = steps_per_epoch * int(cfg.trainer.total_epochs)
    if cfg.trainer.get("total_training_steps") is not None:
        total = int(cfg.trainer.total_training_steps)
    return total


def _pad_share(batch) -> float:
    """Share of pad positions in the padded (prompt | response) batch verl would train on unpacked."""
    mask = batch.batch["attention_mask"]
    lengths = mask.sum(dim=-1)
    longest = int(lengths.max())
    return 1.0 - float(lengths.sum()) / float(longest * len(lengths)) if longest else 0.0


def _print_metrics(metrics: dict, step: int, out) -> None:
    from verl.utils.logger.aggregate_logger import concat_dict_to_str

    out(concat_dict_to_str(metrics, step=step))


def _file_logger(path: Path):
    from verl.utils.tracking import FileLogger

    previous = os.environ.get("VERL_FILE_LOGGER_PATH")
    os.environ["VERL_FILE_LOGGER_PATH"] = str(path)
    try:
        return FileLogger("rehearsal", "rehearsal")
    finally:
        if previous is None:
            os.environ.pop("VERL_FILE_LOGGER_PATH", None)
        else:
            os.environ["VERL_FILE_LOGGER_PATH"] = previous


def run_rl(plan, cfg, settings, out) -> RLResult:
    import numpy as np
    import torch
    from omegaconf import open_dict
    from torchdata.stateful_dataloader import StatefulDataLoader

    from common.rehearsal import reward as rewards
    from common.rehearsal import stage
    from common.rehearsal.engines import build_rl, changed_since, trainable_snapshot
    from common.rehearsal.rollout import GenerateClient, RewardModelServer
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.protocol import DataProto
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.core_algos import agg_loss
    from verl.trainer.ppo.metric_utils import compute_data_metrics, compute_throughout_metrics, compute_timing_metrics
    from verl.trainer.ppo.ray_trainer import apply_kl_penalty, compute_response_mask
    from verl.trainer.ppo.reward import extract_reward
    from verl.trainer.ppo.utils import create_rl_dataset, create_rl_sampler
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.dataset.rl_dataset import collate_fn
    from verl.utils.debug import marked_timer
    from verl.utils.metric import reduce_metrics

    result = RLResult()
    # 1. tokenizer, data, schedule length.
    model_config = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    tokenizer, processor = model_config.tokenizer, model_config.processor
    with stage("the dataset"):
        dataset = create_rl_dataset(cfg.data.train_files, cfg.data, tokenizer, processor, is_train=True,
                                    max_samples=cfg.data.get("train_max_samples", -1))
        sampler = create_rl_sampler(cfg.data, dataset)
    generator = getattr(sampler, "generator", None)
    result.sampler_seed = int(generator.initial_seed()) if generator is not None else None
    batch_size = int(cfg.data.train_batch_size)
    if len(dataset) < batch_size:
        raise RuntimeError(f"TRAIN_DATA has {len(dataset)} usable rows, fewer than TRAIN_BATCH_SIZE ({batch_size})")
    loader = StatefulDataLoader(dataset=dataset, batch_size=batch_size, num_workers=0, drop_last=True,
                                collate_fn=collate_fn, sampler=sampler)
    total_steps = _total_training_steps(cfg, len(dataset))
    with open_dict(cfg):
        cfg.actor_rollout_ref.actor.optim.total_training_steps = total_steps
        cfg.critic.optim.total_training_steps = total_steps
    out(f"[rehearsal] data: {len(dataset)} prompts in {cfg.data.train_files}; the optimizer schedule spans "
        f"{total_steps} steps, as in the launch")
    out(f"{settings.changed} data loaded in this process (data.dataloader_num_workers "
        f"{cfg.data.get('dataloader_num_workers')} -> 0), one batch of TRAIN_BATCH_SIZE prompts")

    # 2. engines.
    start = time.monotonic()
    with stage("building verl's engines"):
        host = build_rl(cfg)
    result.host = host
    before = trainable_snapshot(host.actor.engine)
    first_lr = float(host.actor.engine.optimizer.param_groups[0]["lr"])
    built = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in host.build_seconds.items())
    out(f"[rehearsal] engines built in {time.monotonic() - start:.1f}s ({built})")
    for note in host.notes:
        out(f"{settings.changed} {note}")

    # 3-4. rollout stand-in, reward worker(s), verl's agent loop worker.
    # One event loop for the whole step: verl's reward managers keep the loop they were built on
    # (reward_manager/base.py, get_event_loop), as each Ray actor of a launch keeps its own.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    rm_server = None
    if cfg.reward.reward_model.enable:
        rm_attn = cfg.actor_rollout_ref.model.get("override_config", {}).get("attn_implementation", "sdpa")
        with stage("the reward model server"):
            rm_server = RewardModelServer(str(cfg.reward.reward_model.model_path), attn_implementation=rm_attn,
                                          device=settings.device)
        out(f"[rehearsal] reward model {cfg.reward.reward_model.model_path}: transformers answers vLLM's /classify "
            f"at {rm_server.address} (verl's RewardLoopWorker sends the requests)")
    try:
        with stage("verl's reward loop worker (the reward manager and function)"):
            worker = rewards.reward_worker(cfg, rm_server.address if rm_server else None)
        result.reward_kwargs = rewards.function_kwargs(worker)
        streaming = not cfg.reward.reward_model.enable or cfg.reward.reward_model.enable_resource_pool
        with stage("the rollout stand-in"):
            client = GenerateClient(host.actor.engine, cfg.actor_rollout_ref.rollout, model_config.hf_config, tokenizer,
                                    model_config.generation_config, device=settings.device)
        result.rollout = client
        with stage("verl's agent loop worker"):
            agent = AgentLoopWorker(cfg, llm_client=client, teacher_client=None,
                                    reward_loop_worker_handles=[rewards.LocalHandle(worker)] if streaming else None)
        n = int(cfg.actor_rollout_ref.rollout.n)
        iterator = iter(loader)
        logger = _file_logger(settings.folder / "metrics.jsonl")
        kl_ctrl = core_algos.get_kl_controller(cfg.algorithm.kl_ctrl) if cfg.algorithm.use_kl_in_reward else None
        result.kl_ctrl = kl_ctrl
        for step in range(1, settings.steps + 1):
            metrics: dict = {}
            timing = {}
            with marked_timer("step", timing):
                batch = DataProto.from_single_dict(next(iterator))
                batch.meta_info["temperature"] = cfg.actor_rollout_ref.rollout.temperature
                batch.non_tensor_batch["uid"] = np.array([str(uuid.uuid4()) for _ in range(len(batch))], dtype=object)
                gen_batch = host._get_gen_batch(batch)
                gen_batch.meta_info["global_steps"] = step
                gen_batch = gen_batch.repeat(repeat_times=n, interleave=True)
                with stage("generation"), marked_timer("gen", timing):
                    gen_out = loop.run_until_complete(agent.generate_sequences(gen_batch))
                batch = batch.repeat(repeat_times=n, interleave=True).union(gen_out)
                uids = list(batch.non_tensor_batch["uid"])
                result.prompts = len(set(uids))
                result.responses_per_prompt = max(uids.count(uid) for uid in set(uids))
                if "response_mask" not in batch.batch.keys():
                    batch.batch["response_mask"] = compute_response_mask(batch)
                batch.meta_info["global_token_num"] = torch.sum(batch.batch["attention_mask"], dim=-1).tolist()
                batch.meta_info["images_seqlens"] = []
                # V1 keys each trajectory {uid}_{session}_{output}; rows repeat each prompt n times in order.
                keys = [f"{uid}_{i % n}_0" for i, uid in enumerate(batch.non_tensor_batch["uid"])]
                with stage("the reward"), marked_timer("reward", timing):
                    if "rm_scores" not in batch.batch.keys():
                        batch = batch.union(rewards.score_colocated(worker, cfg, batch, loop))
                    reward_tensor, reward_extra = extract_reward(batch)
                with stage("DAPO's group filter"):
                    groups = rewards.dapo_filter(host, batch, keys)
                if groups is not None:
                    kept, dropped, values = groups
                    result.dapo = {"kept": len(kept), "groups": len(kept) + len(dropped), "dropped_values": values}
                    metrics["rehearsal/dapo_kept_groups"] = len(kept)
                    out(f"[rehearsal] DAPO group filter (verl's ReplayBuffer, metric "
                        f"{cfg.algorithm.filter_groups.metric}): kept {len(kept)} of {len(kept) + len(dropped)} groups"
                        + (f"; dropped groups' shared values {values}" if values else "")
                        + ("; a launch replaces the dropped groups with new generations, with no cap in verl 0.9.1 "
                           "(max_num_gen_batches is ignored); the rehearsal trains on the batch as generated"
                           if dropped else ""))
                result.pad_share = _pad_share(batch)
                packed = cfg.actor_rollout_ref.model.get("use_remove_padding", True)
                out(f"[rehearsal] padding: {result.pad_share:.0%} of this batch's (prompt | response) positions are pad "
                    + ("tokens, skipped by the packed (use_remove_padding) path" if packed else
                       f"tokens, which padded micro-batches compute (use_remove_padding=false, as with sdpa: "
                       f"~{1 / max(1e-9, 1 - result.pad_share):.2f}x the tokens of packed rows)"))
                with stage("the actor's log-probs"), marked_timer("old_log_prob", timing):
                    old_log_prob, old_mfu = host._compute_old_log_prob(batch)
                    actor_cfg = cfg.actor_rollout_ref.actor
                    entropy = agg_loss(loss_mat=old_log_prob.batch["entropys"], loss_mask=batch.batch["response_mask"],
                                       loss_agg_mode=actor_cfg.loss_agg_mode, loss_scale_factor=actor_cfg.loss_scale_factor)
                    metrics.update({"actor/entropy": entropy.detach().item(), "perf/mfu/actor_infer": old_mfu})
                    old_log_prob.batch.pop("entropys")
                    batch = batch.union(old_log_prob)
                if host.use_reference_policy:
                    with stage("the reference log-probs"), marked_timer("ref", timing):
                        batch = batch.union(host._compute_ref_log_prob(batch))
                if host.use_critic:
                    with stage("the critic's values"), marked_timer("values", timing):
                        batch = batch.union(host._compute_values(batch))
                with stage("the advantages"), marked_timer("adv", timing):
                    batch.batch["token_level_scores"] = reward_tensor
                    if reward_extra:
                        batch.non_tensor_batch.update({k: np.array(v) for k, v in reward_extra.items()})
                    if kl_ctrl is not None:
                        batch, kl_metrics = apply_kl_penalty(batch, kl_ctrl=kl_ctrl, kl_penalty=cfg.algorithm.kl_penalty)
                        metrics.update(kl_metrics)
                    else:
                        batch.batch["token_level_rewards"] = batch.batch["token_level_scores"]
                    batch = compute_advantage_for_multi_trajectories(
                        batch, batch_keys=keys, adv_estimator=cfg.algorithm.adv_estimator, gamma=cfg.algorithm.gamma,
                        lam=cfg.algorithm.lam, num_repeat=n,
                        norm_adv_by_std_in_grpo=cfg.algorithm.get("norm_adv_by_std_in_grpo", True), config=cfg.algorithm)
                if host.use_critic:
                    with stage("the critic update"), marked_timer("update_critic", timing):
                        raw = host._update_critic(batch).meta_info["metrics"]
                        result.critic_updates = len(raw.get("critic/grad_norm", []))  # one per mini-batch
                        metrics.update(reduce_metrics(raw))
                if int(cfg.trainer.critic_warmup) <= step:
                    with stage("the actor update"), marked_timer("update_actor", timing):
                        raw = host._update_actor(batch).meta_info["metrics"]
                        result.actor_updates = len(raw.get("actor/grad_norm", []))  # one optimizer step per mini-batch
                        metrics.update(reduce_metrics(raw))
                    # What update_weights does for vLLM after each step: the rollout gets the new weights.
                    with stage("the rollout weight sync"), marked_timer("update_weights", timing):
                        client.sync()
            metrics.update({"training/global_step": step, "training/epoch": 0})
            metrics.update(compute_data_metrics(batch=batch, use_critic=host.use_critic))
            metrics.update(compute_timing_metrics(batch=batch, timing_raw=timing))
            metrics.update(compute_throughout_metrics(batch=batch, timing_raw=timing, n_gpus=1))
            result.metrics.append(metrics)
            _print_metrics(metrics, step, out)
            logger.log(data=metrics, step=step)
        if rm_server is not None:
            result.reward_model_scored = rm_server.scored
            out(f"[rehearsal] the reward model scored {rm_server.scored} responses through verl's reward loop")
        result.changed = changed_since(host.actor.engine, before)
        out(parameters_note(*result.changed, first_lr=first_lr))
        # 7. checkpoint, as trainer_base.py _save_checkpoint lays it out.
        with stage("the checkpoint"):
            result.checkpoint = save_checkpoint(host, cfg, settings.steps, loader)
    finally:
        if rm_server is not None:
            rm_server.close()
        asyncio.set_event_loop(None)
        loop.close()
    return result


def parameters_note(changed: int, compared: int, largest: float, first_lr: float | None = None) -> str:
    if changed:
        return (f"[rehearsal] the optimizer step moved the weights: {changed} of {compared} sampled trainable tensors "
                f"changed (largest change {largest:.3g})")
    why = ("the first step's learning rate is 0 (the warm-up starts at 0; LR_WARMUP_RATIO)" if first_lr == 0 else
           "the gradient was zero (e.g. every group's responses scored alike, so every advantage is 0)")
    return f"[rehearsal] the optimizer step left the {compared} sampled trainable tensors unchanged: {why}"


def save_checkpoint(host, cfg, step: int, loader) -> Path:
    import torch

    from verl.utils.fs import local_mkdir_safe

    root = Path(cfg.trainer.default_local_dir)
    folder = root / f"global_step_{step}"
    host.actor_rollout_wg.save_checkpoint(str(folder / "actor"), None, step, max_ckpt_to_keep=None)
    if host.use_critic:
        host.critic_wg.save_checkpoint(str(folder / "critic"), None, step, max_ckpt_to_keep=None)
    local_mkdir_safe(str(folder))
    torch.save(loader.state_dict(), folder / "data.pt")
    tracker = root / "latest_checkpointed_iteration.txt"
    tmp = tracker.with_name(f".{tracker.name}.tmp-{os.getpid()}")
    tmp.write_text(str(step))
    os.replace(tmp, tracker)
    return folder
