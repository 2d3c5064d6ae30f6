"""KEEP_BEST_METRIC / EXPORT_CHECKPOINT: the best checkpoint survives verl's MAX_CKPT_TO_KEEP rotation
and the end-of-run export takes it.

    .venv/bin/python -m pytest tests/common/test_best_checkpoint.py -q

A fake training loop plays verl's V1 trainer step by step (trainer/ppo/v1/trainer_base.py fit: save the
checkpoint, validate, log the step): metrics go through verl's own Tracking file logger, checkpoints
are laid out as verl lays them out, and old ones are removed by verl's own rotation code
(utils/checkpoint/checkpoint_manager.py: ensure_checkpoint_capacity before a save, register_checkpoint
after it). The launcher's Watcher polls between steps, as its 5 s thread does during a real run. The
slow test exports from a real verl FSDP checkpoint of the tiny model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import best_checkpoint
from common.callbacks import Context, Settings, Watcher, export_target, on_end
from common.knobs import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "val-core/openai/gsm8k/acc/mean@1"


def verl_rotation():
    """verl's BaseCheckpointManager rotation state, without a model (its rotation needs none)."""
    from verl.utils.checkpoint.checkpoint_manager import BaseCheckpointManager

    manager = object.__new__(BaseCheckpointManager)
    manager.previous_saved_paths = []
    return manager


class FakeVerl:
    """Writes what verl's V1 trainer writes, step by step, into one run folder."""

    def __init__(self, run_dir: Path, monkeypatch, keep: int, save_freq: int, test_freq: int, launch: str = "1"):
        from verl.utils.tracking import Tracking

        self.ckpt = run_dir / "checkpoints"
        self.metrics_file = run_dir / "metrics" / f"{launch}.jsonl"
        self.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(self.metrics_file))
        self.tracker = Tracking(project_name="p", experiment_name="e", default_backend=["file"])
        self.rotation = verl_rotation()
        self.keep, self.save_freq, self.test_freq = keep, save_freq, test_freq

    def save(self, step: int) -> None:
        actor = self.ckpt / f"global_step_{step}" / "actor"
        self.rotation.ensure_checkpoint_capacity(self.keep)
        actor.mkdir(parents=True)
        (actor / "model_world_size_1_rank_0.pt").write_bytes(f"weights of step {step}".encode())
        (actor / "huggingface").mkdir()
        (actor / "huggingface" / "config.json").write_text("{}")
        self.rotation.register_checkpoint(str(actor), self.keep)
        (actor.parent / "data.pt").write_bytes(b"dataloader")
        (self.ckpt / "latest_checkpointed_iteration.txt").write_text(str(step))

    def step(self, step: int, score: float | None, last: bool = False) -> None:
        if last or step % self.save_freq == 0:
            self.save(step)
        metrics = {"actor/pg_loss": 0.1}
        if score is not None and (last or step % self.test_freq == 0):
            metrics[KEY] = score
        self.tracker.log(data=metrics, step=step)

    def finish(self):
        self.tracker.logger["file"].finish()


def watcher_for(fake: FakeVerl, lines: list, resume_mode: str = "auto", **settings) -> Watcher:
    ctx = Context(run_dir=fake.ckpt.parent, checkpoints_dir=fake.ckpt, metrics_file=fake.metrics_file,
                  settings=Settings(**settings), save_freq=fake.save_freq, test_freq=fake.test_freq,
                  resume_mode=resume_mode, out=lines.append)
    return Watcher(ctx)


def weights(folder: Path) -> bytes:
    return (folder / "actor" / "model_world_size_1_rank_0.pt").read_bytes()


# (why, MAX_CKPT_TO_KEEP, SAVE_FREQ, TEST_FREQ, scores by step (None: no validation), mode, expected best step)
SCHEDULES = [
    ("best early, keep 1: verl removes it at the next save", 1, 1, 1, [0.2, 0.6, 0.4, 0.3, 0.5, 0.1], "max", 2),
    ("keep 2, best in the middle", 2, 2, 2, [None, 0.3, None, 0.7, None, 0.5, None, 0.6], "max", 4),
    # why: 0.9 at step 3 has no checkpoint; the best saved step is 6 (0.35), not 4 (0.3)
    ("validation twice as often as saves: only saved steps count", 1, 2, 1, [0.1, 0.2, 0.9, 0.3, 0.4, 0.35, 0.25, 0.2],
     "max", 6),
    ("a loss: lower is better", 1, 1, 1, [0.9, 0.4, 0.5, 0.45], "min", 2),
    ("the last step is the best", 2, 1, 1, [0.1, 0.2, 0.3], "max", 3),
]


@pytest.mark.parametrize("case", SCHEDULES, ids=[c[0] for c in SCHEDULES])
def test_best_survives_verls_rotation_and_export_takes_it(case, tmp_path, monkeypatch):
    _, keep, save_freq, test_freq, scores, mode, best_step = case
    fake = FakeVerl(tmp_path, monkeypatch, keep, save_freq, test_freq)
    lines: list[str] = []
    watcher = watcher_for(fake, lines, keep_best_metric=KEY, keep_best_mode=mode, export_checkpoint="best")
    for step, score in enumerate(scores, start=1):
        fake.step(step, score, last=step == len(scores))
        watcher.poll()
    fake.finish()
    watcher.stop()
    record = best_checkpoint.read_best(fake.ckpt)
    assert record is not None and record.step == best_step, lines
    kept = record.path(fake.ckpt)
    assert weights(kept) == f"weights of step {best_step}".encode()
    assert (kept / "data.pt").is_file() and (kept / "actor" / "huggingface" / "config.json").is_file()
    # verl kept only its MAX_CKPT_TO_KEEP newest actors; the best is one of them or lives on in best/ only.
    alive = sorted(int(p.parent.name.split("_")[-1]) for p in fake.ckpt.glob("global_step_*/actor"))
    assert len(alive) == keep
    if best_step not in alive:
        assert os.stat(kept / "actor" / "model_world_size_1_rank_0.pt").st_nlink == 1  # verl's copy is gone
    folder, step, what = export_target(watcher.ctx)
    assert folder == kept and step == best_step and "best checkpoint" in what
    assert any(f"new best checkpoint: step {best_step}" in line for line in lines)


def test_hard_links_cost_no_space_while_verl_keeps_its_copy(tmp_path, monkeypatch):
    fake = FakeVerl(tmp_path, monkeypatch, keep=3, save_freq=1, test_freq=1)
    watcher = watcher_for(fake, [], keep_best_metric=KEY, keep_best_mode="max")
    fake.step(1, 0.5)
    watcher.poll()
    original = fake.ckpt / "global_step_1" / "actor" / "model_world_size_1_rank_0.pt"
    kept = fake.ckpt / "best" / "global_step_1" / "actor" / "model_world_size_1_rank_0.pt"
    assert os.stat(original).st_ino == os.stat(kept).st_ino and os.stat(kept).st_nlink == 2
    record = json.loads((fake.ckpt / "best" / "best.json").read_text())
    assert record["linked_files"] == 3 and record["copied_files"] == 0 and record["value"] == 0.5


def test_a_score_logged_before_its_checkpoint_is_kept_once_the_save_completes(tmp_path, monkeypatch):
    # verl's SFT trainer validates a step and logs val/loss before it saves that step (sft_trainer.py).
    fake = FakeVerl(tmp_path, monkeypatch, keep=1, save_freq=2, test_freq=2)
    lines: list[str] = []
    watcher = watcher_for(fake, lines, keep_best_metric="val/loss", keep_best_mode="min")
    fake.tracker.log(data={"val/loss": 0.8}, step=2)
    watcher.poll()
    assert best_checkpoint.read_best(fake.ckpt) is None  # no checkpoint of step 2 yet: pending
    fake.save(2)
    watcher.poll()
    record = best_checkpoint.read_best(fake.ckpt)
    assert record is not None and record.step == 2 and record.value == 0.8


def test_a_best_score_without_a_checkpoint_is_reported_not_kept(tmp_path, monkeypatch):
    fake = FakeVerl(tmp_path, monkeypatch, keep=1, save_freq=2, test_freq=1)
    lines: list[str] = []
    watcher = watcher_for(fake, lines, keep_best_metric="val_acc", keep_best_mode="max")
    for step, score in enumerate([0.1, 0.2, 0.9, 0.3], start=1):  # 0.9 at step 3, saves at 2 and 4 only
        fake.step(step, score)
        watcher.poll()
    assert best_checkpoint.read_best(fake.ckpt).step == 4  # the best of the saved steps 2 (0.2) and 4 (0.3)
    assert any("step 3" in line and "no checkpoint was saved at that step" in line for line in lines)


def test_a_relaunch_compares_with_the_kept_best(tmp_path, monkeypatch):
    fake = FakeVerl(tmp_path, monkeypatch, keep=1, save_freq=1, test_freq=1)
    watcher = watcher_for(fake, [], keep_best_metric=KEY, keep_best_mode="max")
    for step, score in enumerate([0.3, 0.8], start=1):
        fake.step(step, score)
        watcher.poll()
    fake.finish()
    # The relaunch resumes at step 3 with its own metrics file; its scores are all below 0.8.
    again = FakeVerl(tmp_path, monkeypatch, keep=1, save_freq=1, test_freq=1, launch="2")
    lines: list[str] = []
    watcher = watcher_for(again, lines, keep_best_metric=KEY, keep_best_mode="max")
    assert any("best checkpoint so far: step 2" in line for line in lines)
    for step, score in enumerate([0.5, 0.7], start=3):
        again.step(step, score)
        watcher.poll()
    assert best_checkpoint.read_best(again.ckpt).step == 2


def test_restarting_the_run_folder_detaches_best_from_files_verl_may_rewrite(tmp_path, monkeypatch):
    fake = FakeVerl(tmp_path, monkeypatch, keep=3, save_freq=1, test_freq=1)
    watcher = watcher_for(fake, [], keep_best_metric=KEY, keep_best_mode="max")
    fake.step(1, 0.9)
    watcher.poll()
    fake.finish()
    # RESUME_MODE=disable: verl will save global_step_1 again, truncating the file in place (torch.save).
    lines: list[str] = []
    again = FakeVerl(tmp_path, monkeypatch, keep=3, save_freq=1, test_freq=1, launch="2")
    watcher_for(again, lines, keep_best_metric=KEY, keep_best_mode="max", resume_mode="disable")
    with open(fake.ckpt / "global_step_1" / "actor" / "model_world_size_1_rank_0.pt", "wb") as f:
        f.write(b"weights of a new run")
    assert weights(fake.ckpt / "best" / "global_step_1") == b"weights of step 1"
    assert any("copied so verl cannot overwrite them" in line for line in lines)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        # why: the default export stays the last checkpoint when nothing defines "best"
        ({}, (None, "max", "last")),
        # why: a metric turns the export to the best by default; its mode comes from its name
        ({"KEEP_BEST_METRIC": "val_acc"}, ("val_acc", "max", "best")),
        ({"KEEP_BEST_METRIC": "val/loss"}, ("val/loss", "min", "best")),
        # why: an explicit mode and export win
        ({"KEEP_BEST_METRIC": "val/loss", "KEEP_BEST_MODE": "max", "EXPORT_CHECKPOINT": "last"}, ("val/loss", "max", "last")),
    ],
)
def test_settings_from_the_config_block(env, expected):
    s = Settings.from_env(env)
    assert (s.keep_best_metric, s.keep_best_mode, s.export_checkpoint) == expected


@pytest.mark.parametrize(
    ("env", "words"),
    [
        # why: "best" is undefined without a metric
        ({"EXPORT_CHECKPOINT": "best"}, "EXPORT_CHECKPOINT=best needs KEEP_BEST_METRIC"),
        ({"EXPORT_CHECKPOINT": "first"}, "EXPORT_CHECKPOINT='first' is not one of"),
        ({"KEEP_BEST_METRIC": "val_acc", "KEEP_BEST_MODE": "highest"}, "KEEP_BEST_MODE='highest'"),
        # why: a name that says neither higher nor lower is better
        ({"KEEP_BEST_METRIC": "response_length/mean"}, "set KEEP_BEST_MODE=max or KEEP_BEST_MODE=min"),
    ],
)
def test_bad_settings_name_the_knob(env, words):
    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)


def test_val_acc_averages_the_data_sources():
    metrics = {"val-core/openai/gsm8k/acc/mean@4": 0.5, "val-core/math/acc/mean@4": 0.25,
               "val-aux/openai/gsm8k/acc/std@4": 0.1, "val-core/math/acc/best@4/mean": 0.9}
    assert best_checkpoint.metric_value("val_acc", metrics) == pytest.approx(0.375)
    assert best_checkpoint.metric_value("val_acc", {"actor/pg_loss": 1.0}) is None
    assert best_checkpoint.metric_value(KEY, {KEY: None}) is None  # verl's file logger writes NaN as null


@pytest.mark.slow
def test_export_merges_the_best_real_verl_checkpoint_after_rotation(tmp_path, monkeypatch):
    """verl's FSDP checkpoints of the tiny model (step 1 and step 2, weights differ); step 1 scores best,
    verl's rotation (MAX_CKPT_TO_KEEP=1) removes it, and the export merges the kept copy."""
    import torch
    from safetensors.torch import load_file

    subprocess.run([sys.executable, "-m", "tests.common.test_test_model_checkpoint", str(tmp_path / "built")],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    built = tmp_path / "built" / "experiment"
    fake = FakeVerl(tmp_path / "run", monkeypatch, keep=1, save_freq=1, test_freq=1)
    lines: list[str] = []
    watcher = watcher_for(fake, lines, keep_best_metric="val_acc", keep_best_mode="max", export_checkpoint="best")
    for step, score in ((1, 0.7), (2, 0.4)):
        fake.rotation.ensure_checkpoint_capacity(1)
        fake.ckpt.mkdir(parents=True, exist_ok=True)
        os.rename(built / f"global_step_{step}", fake.ckpt / f"global_step_{step}")
        fake.rotation.register_checkpoint(str(fake.ckpt / f"global_step_{step}" / "actor"), 1)
        (fake.ckpt / "latest_checkpointed_iteration.txt").write_text(str(step))
        fake.tracker.log(data={KEY: score}, step=step)
        watcher.poll()
    assert not (fake.ckpt / "global_step_1" / "actor").exists()  # removed by verl's rotation
    result = on_end(0, watcher.ctx, watcher)
    merged = Path(result["hf_path"])
    assert result["step"] == 1 and merged == fake.ckpt / "best" / "global_step_1" / "actor" / "huggingface_merged"
    key = "model.layers.0.self_attn.q_proj.weight"
    state = torch.load(fake.ckpt / "global_step_2" / "actor" / "model_world_size_1_rank_0.pt", map_location="cpu",
                       weights_only=False)
    step2 = state[key].to_local() if hasattr(state[key], "to_local") else state[key]
    # Step 1's weights are step 2's minus 0.01 (the builder's fake update), up to bf16 rounding.
    torch.testing.assert_close(load_file(merged / "model.safetensors")[key].float(), step2.float() - 0.01, atol=1e-2, rtol=1e-2)
    assert any("exported the best checkpoint (step 1, val_acc=0.7)" in line for line in lines)
