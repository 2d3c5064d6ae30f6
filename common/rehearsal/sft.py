"""One real SFT step of the launch config, on the CPU: verl's own SFTTrainer, in this process.

    result = run_sft(plan, cfg, settings, out)     # inside device.process_group()

Offers:
- SFTResult: the engine, what it trained on (recorded micro-batches and the batch settings it
  received), the metrics verl logged, the checkpoint folder.
- run_sft(plan, cfg, settings, out) -> SFTResult: builds verl.trainer.sft_trainer.SFTTrainer from
  the config (MultiTurnSFTDataset on the `messages` data, TrainingWorker with sft_loss, the
  optimizer and its schedule over the launch's full length, CheckpointHandler), then runs its own
  fit() until REHEARSAL_STEPS: the steps, a validation pass and a checkpoint in verl's SFT layout
  (global_step_N/ with the shards, latest_checkpointed_iteration.txt). Two settings differ from
  the launch and are printed: the validation pass reads TRAIN_BATCH_SIZE rows (data.val_max_samples;
  a launch validates on all of VAL_DATA), and the data loads in this process (data.num_workers=0).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SFTResult:
    engine: object = None
    recorder: object = None
    batch_settings: dict = field(default_factory=dict)
    train_calls: list = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    checkpoint: Path | None = None
    changed: tuple[int, int, float] | None = None


_SETTINGS = ("use_dynamic_bsz", "micro_batch_size_per_gpu", "max_token_len_per_gpu", "use_remove_padding")


def run_sft(plan, cfg, settings, out) -> SFTResult:
    from omegaconf import open_dict

    from common.rehearsal import stage
    from common.rehearsal.engines import MicroBatchRecorder, changed_since, trainable_snapshot
    from common.rehearsal.rl import parameters_note
    from verl.trainer.sft_trainer import SFTTrainer
    from verl.utils import tensordict_utils as tu

    result = SFTResult()
    with open_dict(cfg):
        cfg.data.val_max_samples = int(cfg.data.train_batch_size)
        cfg.data.num_workers = 0
    out(f"{settings.changed} validation on {cfg.data.val_max_samples} VAL_DATA rows "
        "(data.val_max_samples), data loaded in this process (data.num_workers=0)")
    metrics_path = settings.folder / "metrics.jsonl"
    previous = os.environ.get("VERL_FILE_LOGGER_PATH")
    os.environ["VERL_FILE_LOGGER_PATH"] = str(metrics_path)
    try:
        with stage("building verl's SFT trainer"):
            trainer = SFTTrainer(config=cfg)
        out(f"[rehearsal] data: {len(trainer.train_dataset)} conversations in {cfg.data.train_files}; the optimizer "
            f"schedule spans {trainer.total_training_steps} steps, as in the launch")
        result.engine = trainer.engine
        result.recorder = MicroBatchRecorder(trainer.loss_fn)
        trainer.training_client.set_loss_fn(result.recorder)
        train_batch = trainer.training_client.train_batch

        def recording_train_batch(data):
            for key in _SETTINGS:
                result.batch_settings[key] = tu.get_non_tensor_data(data=data, key=key, default=None)
            first = len(result.recorder.calls)
            output = train_batch(data=data)
            result.train_calls += result.recorder.calls[first:]  # validation calls the same loss: keep training's
            return output

        trainer.training_client.train_batch = recording_train_batch
        before = trainable_snapshot(trainer.engine)
        first_lr = float(trainer.engine.optimizer.param_groups[0]["lr"])
        # Stop after the rehearsal's steps; the schedule above keeps the launch's length.
        trainer.total_training_steps = settings.steps
        with stage("the SFT step (verl's SFTTrainer.fit)"):
            trainer.fit()
        result.changed = changed_since(trainer.engine, before)
        out(parameters_note(*result.changed, first_lr=first_lr))
    finally:
        if previous is None:
            os.environ.pop("VERL_FILE_LOGGER_PATH", None)
        else:
            os.environ["VERL_FILE_LOGGER_PATH"] = previous
    if metrics_path.is_file():
        result.metrics = [json.loads(line)["data"] for line in metrics_path.read_text().splitlines() if line.strip()]
    result.checkpoint = Path(cfg.trainer.default_local_dir) / f"global_step_{settings.steps}"
    return result
