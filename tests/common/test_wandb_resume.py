"""A relaunch that resumes a run logs into the same wandb run: the id lives in the run folder's run.json.

    .venv/bin/python -m pytest tests/common/test_wandb_resume.py -q

The plan reads the id and never writes (a dry run leaves no trace); a real launch records it.
The slow test launches twice through local_run with a tiny Hydra app that logs through verl's own
Tracking (wandb backend, offline: no key, no network) and reads the run id wandb itself used.
"""

from __future__ import annotations

import json
import time

import pytest

from common import launch, local_run, run_folder
from tests.launch_helpers import REPO_ROOT

BLOCK = {"ROLLOUT_ENGINE": "vllm", "ROLLOUT_TP": "1", "TRAIN_BATCH_SIZE": "4", "PPO_MINI_BATCH_SIZE": "2",
         "MICRO_BATCH_SIZE_PER_GPU": "1", "EXPERIMENT_NAME": "exp", "USE_WANDB": "true"}


def plan_for(tmp_path, args=(), **env):
    return launch.make_plan(REPO_ROOT / "grpo", {**BLOCK, "OUTPUT_DIR": str(tmp_path), **env}, list(args),
                            detect=lambda: (1, "test"))


def test_plan_reuses_the_run_folders_id_and_writes_nothing(tmp_path):
    first = plan_for(tmp_path)
    run_dir = tmp_path / "exp"
    assert first.env["WANDB_RUN_ID"] == first.wandb_id and first.env["WANDB_RESUME"] == "allow"
    assert len(first.wandb_id) == 8 and first.wandb_id.isalnum()
    assert not run_dir.exists()  # making a plan (a dry run) writes nothing
    assert plan_for(tmp_path).wandb_id != first.wandb_id  # nothing recorded yet: each plan draws a new id
    # The first real launch records it ...
    cfg = launch.compose_config(first)
    run_folder.update_run_json(first, cfg)
    assert json.loads((run_dir / "run.json").read_text())["wandb_id"] == first.wandb_id
    # ... and every plan after it resumes it, unless the run starts over.
    assert plan_for(tmp_path).wandb_id == first.wandb_id
    assert plan_for(tmp_path, RESUME_MODE="resume_path").wandb_id == first.wandb_id
    assert plan_for(tmp_path, RESUME_MODE="disable").wandb_id != first.wandb_id
    assert plan_for(tmp_path, args=("trainer.resume_mode=disable",)).wandb_id != first.wandb_id


def test_no_wandb_no_id(tmp_path):
    plan = plan_for(tmp_path, USE_WANDB="false")
    assert plan.wandb_id is None and "WANDB_RUN_ID" not in plan.env


def test_an_unreadable_run_json_starts_a_new_id(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "run.json").write_text("{not json")
    assert len(plan_for(tmp_path).wandb_id) == 8


FAKE_TRAINER = '''
import os, sys, hydra
from verl.utils.tracking import Tracking

@hydra.main(config_path=None, config_name=None, version_base=None)
def main(cfg):
    tracker = Tracking(cfg.trainer.project_name, cfg.trainer.experiment_name, default_backend=list(cfg.trainer.logger))
    start = int(os.environ.get("FAKE_START", "1"))
    for step in range(start, start + 2):
        tracker.log({"critic/score/mean": step / 10}, step=step)
    import wandb
    print("WANDB_ID_USED", wandb.run.id, flush=True)
    tracker.finish()

if __name__ == "__main__":
    main()
'''


def _launch(tmp_path, monkeypatch, **env):
    (tmp_path / "fake_wandb_trainer.py").write_text(FAKE_TRAINER)
    monkeypatch.syspath_prepend(str(tmp_path))
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(key, raising=False)
    block = {**BLOCK, "TRAINER_MODULE": "fake_wandb_trainer", "OUTPUT_DIR": str(tmp_path / "outputs"),
             "MODEL_PATH": "Qwen/Qwen2.5-0.5B-Instruct", "PYTHONPATH": str(tmp_path), "EXPORT_AFTER_TRAIN": "false", **env}
    for key, value in block.items():
        monkeypatch.setenv(key, value)
    plan = launch.make_plan(REPO_ROOT / "grpo", block, [], detect=lambda: (1, "test"))
    return plan, local_run.run(plan, launch.compose_config(plan))


@pytest.mark.slow
def test_a_relaunch_logs_into_the_same_wandb_run(tmp_path, monkeypatch):
    plan1, code1 = _launch(tmp_path, monkeypatch)
    time.sleep(1.1)  # launch ids have one-second resolution
    plan2, code2 = _launch(tmp_path, monkeypatch, FAKE_START="3")
    assert code1 == code2 == 0
    run_dir = tmp_path / "outputs" / "exp"
    used = [line.split()[-1] for line in (run_dir / "train.log").read_text().splitlines() if line.startswith("WANDB_ID_USED")]
    assert used == [plan1.wandb_id, plan1.wandb_id] and plan2.wandb_id == plan1.wandb_id
    # wandb wrote both launches' offline runs under the run folder, with the one id.
    offline = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(name.endswith(plan1.wandb_id) for name in offline)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["wandb_id"] == plan1.wandb_id and [e["wandb_id"] for e in meta["launches"]] == [plan1.wandb_id] * 2
