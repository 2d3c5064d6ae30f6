"""The shared launcher, through grpo/train.sh: composition, verl's checks, errors, run folders.

    .venv/bin/python -m pytest tests/common/test_launch.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from hydra import compose, initialize_config_dir

from common import launch, local_run
from common.redaction import SecretFilter
from tests.launch_helpers import REPO_ROOT, dry_run, printed_command, resolved_config


@pytest.fixture(scope="module")
def grpo_default(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    result = dry_run("grpo", env={"OUTPUT_DIR": str(out)})
    assert result.returncode == 0, result.stderr
    return out, result


def test_dry_run_prints_command_and_config_verl_accepts(grpo_default):
    out, result = grpo_default
    command = printed_command(result.stdout)
    assert command[1:4] == ["-m", "verl.trainer.main_ppo", "--config-path"]
    assert command[4] == str(REPO_ROOT / "grpo") and command[5:7] == ["--config-name", "config"]
    # The printed overrides, composed again by verl's own Hydra configs, pass verl's own checks.
    from verl.trainer.ppo.utils import need_reference_policy
    from verl.utils.config import validate_config

    with initialize_config_dir(config_dir=str(REPO_ROOT / "grpo"), version_base=None):
        cfg = compose("config", overrides=command[7:])
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=False)
    assert cfg == resolved_config(result.stdout) or cfg.algorithm.adv_estimator == "grpo"


def test_grpo_keys_at_the_paths_verl_reads(grpo_default):
    out, result = grpo_default
    cfg = resolved_config(result.stdout)
    assert cfg.algorithm.adv_estimator == "grpo"
    assert cfg.actor_rollout_ref.rollout.n == 5
    assert cfg.actor_rollout_ref.actor.use_kl_loss is True
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 1  # verl's 2 gives no engine on 1 GPU
    # 0.9.x reads the reward function here; the legacy top-level key stays empty.
    # ... through the reward guard, which calls the block's function under a time limit.
    assert cfg.reward.custom_reward_function.path == str(REPO_ROOT / "common" / "reward_guard.py")
    assert cfg.reward.custom_reward_function.reward_kwargs.guard_target_path == str(REPO_ROOT / "grpo" / "reward_func.py")
    assert cfg.custom_reward_function.path is None
    # Outputs: checkpoints saved by default, every dump inside the run folder, console + file logs.
    run_dir = out / "grpo-Qwen2.5-0.5B-Instruct"
    assert cfg.trainer.save_freq > 0 and cfg.trainer.resume_mode == "auto"
    assert cfg.trainer.default_local_dir == str(run_dir / "checkpoints")
    assert cfg.trainer.rollout_data_dir == str(run_dir / "rollout")
    assert cfg.trainer.validation_data_dir == str(run_dir / "validation")
    assert list(cfg.trainer.logger) == ["console", "file"]
    assert f"VERL_FILE_LOGGER_PATH={run_dir}/metrics/" in result.stdout
    # A dry run writes only the full resolved config it checked, and says where.
    assert sorted(p.name for p in run_dir.iterdir()) == ["dry_run.yaml"]
    assert f"# full resolved config: {run_dir / 'dry_run.yaml'}" in result.stdout


def test_environment_knobs_and_passthrough_overrides(tmp_path):
    result = dry_run(
        "grpo",
        env={"OUTPUT_DIR": str(tmp_path), "ROLLOUT_N": "8", "USE_LORA": "true", "LORA_RANK": "16"},
        args=("trainer.total_epochs=1", "actor_rollout_ref.actor.optim.lr=3e-6"),
    )
    assert result.returncode == 0, result.stderr
    cfg = resolved_config(result.stdout)
    assert cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.actor_rollout_ref.model.lora_rank == 16
    assert cfg.trainer.total_epochs == 1  # the argument wins over the block's TOTAL_EPOCHS
    assert cfg.actor_rollout_ref.actor.optim.lr == pytest.approx(3e-6)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # why: 16 x 5 = 80 sequences per mini-batch cannot be cut into micro-batches of 3
        ({"MICRO_BATCH_SIZE_PER_GPU": "3"}, "MICRO_BATCH_SIZE_PER_GPU"),
        # why: a mini-batch larger than the whole batch (verl's ActorConfig.validate)
        ({"TRAIN_BATCH_SIZE": "8", "PPO_MINI_BATCH_SIZE": "16"}, "PPO_MINI_BATCH_SIZE"),
        # why: not a number at all; caught before verl is even imported
        ({"ROLLOUT_N": "five"}, "ROLLOUT_N"),
        # why: an engine verl does not know (RolloutConfig's own check)
        ({"ROLLOUT_ENGINE": "tgi"}, "ROLLOUT_ENGINE"),
        # why: booleans are spelled true/false
        ({"USE_KL_LOSS": "maybe"}, "USE_KL_LOSS"),
        # why: template arguments are a JSON object, not Hydra's key=value
        ({"CHAT_TEMPLATE_KWARGS": "enable_thinking=false"}, "CHAT_TEMPLATE_KWARGS"),
        # why: a preset name that does not exist
        ({"ALGORITHM": "ppo2"}, "ALGORITHM"),
        # why: the watcher's knobs are checked before anything is written too
        ({"EXPORT_CHECKPOINT": "best"}, "EXPORT_CHECKPOINT"),
    ],
)
def test_broken_block_fails_before_launch_naming_the_variable(tmp_path, env, named):
    started = time.monotonic()
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), **env})
    assert result.returncode == 2
    assert named in result.stderr, result.stderr
    assert "config error" in result.stderr
    assert time.monotonic() - started < 60
    assert not any(tmp_path.iterdir())


def test_dry_run_shows_the_preset_and_the_keys_it_set(tmp_path):
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), "ALGORITHM": "gmpo", "USE_KL_LOSS": "false"})
    assert result.returncode == 0, result.stderr
    note = next(line for line in result.stdout.splitlines() if line.startswith("# note: ALGORITHM=gmpo:"))
    assert "arXiv 2507.20673" in note and "policy_loss.loss_mode=geo_mean" in note and "clip_ratio_low=0.4" in note
    assert "# note: USE_KL_LOSS=false overrides ALGORITHM=gmpo's actor_rollout_ref.actor.use_kl_loss=True" in result.stdout
    cfg = resolved_config(result.stdout)
    assert cfg.actor_rollout_ref.actor.policy_loss.loss_mode == "geo_mean" and cfg.actor_rollout_ref.actor.use_kl_loss is False


def test_no_gpu_exits_fast_and_says_how_to_dry_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    env.update(OUTPUT_DIR=str(tmp_path), PATH=os.environ["PATH"])
    result = subprocess.run([str(REPO_ROOT / "grpo" / "train.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no NVIDIA GPU found" in result.stderr and "DRY_RUN=1" in result.stderr
    assert not any(tmp_path.iterdir())


def test_secrets_never_printed(tmp_path):
    secret = "wandb-secret-value-123"
    # A reward function that takes an API key as a keyword (keys belong in the environment, but
    # one passed on the command line must not be echoed either).
    reward = tmp_path / "keyed_reward.py"
    reward.write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None, api_key=None):\n"
                      "    return float(solution_str.strip().endswith(ground_truth))\n")
    result = dry_run(
        "grpo",
        env={"OUTPUT_DIR": str(tmp_path), "USE_WANDB": "true", "WANDB_API_KEY": secret, "JUDGE_API_KEY": "judge-key-456",
             "REWARD_FUNC_PATH": str(reward)},
        args=("+reward.custom_reward_function.reward_kwargs.api_key=judge-key-456",),
    )
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    assert "judge-key-456" not in result.stdout + result.stderr
    assert list(resolved_config(result.stdout).trainer.logger) == ["console", "file", "wandb"]
    assert "WANDB_MODE=offline" not in result.stdout  # a key is present: wandb stays online


def test_wandb_without_key_runs_offline(tmp_path):
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), "USE_WANDB": "true"})
    assert result.returncode == 0, result.stderr
    assert "WANDB_MODE=offline" in result.stdout


FAKE_TRAINER = '''
import os, sys, hydra
from verl.utils.tracking import Tracking

@hydra.main(config_path=None, config_name=None, version_base=None)
def main(cfg):
    print(os.environ.get("FAKE_PRINT", ""), flush=True)
    steps = int(os.environ.get("FAKE_STEPS", "3"))
    start = int(os.environ.get("FAKE_START", "1"))
    tracker = Tracking(cfg.trainer.project_name, cfg.trainer.experiment_name, default_backend=list(cfg.trainer.logger))
    for step in range(start, start + steps):
        tracker.log({"critic/score/mean": step / 10, "actor/pg_loss": 0.1}, step=step)
    tracker.finish()
    sys.exit(int(os.environ.get("FAKE_EXIT", "0")))

if __name__ == "__main__":
    main()
'''


def _launch(tmp_path, monkeypatch, **env):
    """One launch through local_run.run() with a tiny Hydra app in place of verl's trainer."""
    (tmp_path / "fake_trainer.py").write_text(FAKE_TRAINER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    block = {
        "TRAINER_MODULE": "fake_trainer",
        "OUTPUT_DIR": str(tmp_path / "outputs"),
        "EXPERIMENT_NAME": "exp",
        "ROLLOUT_ENGINE": "vllm",
        "TRAIN_BATCH_SIZE": "4",
        "PPO_MINI_BATCH_SIZE": "2",
        "MICRO_BATCH_SIZE_PER_GPU": "1",
        "ROLLOUT_TP": "1",
        "MODEL_PATH": "Qwen/Qwen2.5-0.5B-Instruct",
        "PYTHONPATH": str(tmp_path),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plan = launch.make_plan(REPO_ROOT / "grpo", {**block, **env}, [], detect=lambda: (1, "test"))
    # The child is a Hydra app reading the same overrides; it must not go through verl's trainer.
    cfg = launch.compose_config(plan)
    return plan, local_run.run(plan, cfg)


def test_run_tees_output_and_keeps_every_launch_metrics(tmp_path, monkeypatch, capfd):
    plan1, code1 = _launch(tmp_path, monkeypatch)
    assert code1 == 0
    time.sleep(1.1)  # launch ids have one-second resolution
    plan2, code2 = _launch(tmp_path, monkeypatch, FAKE_START="4", FAKE_EXIT="3")
    assert code2 == 3
    run_dir = tmp_path / "outputs" / "exp"
    files = sorted((run_dir / "metrics").glob("*.jsonl"))
    assert [f.name for f in files] == [f"{plan1.launch_id}.jsonl", f"{plan2.launch_id}.jsonl"]
    steps = [json.loads(line)["step"] for f in files for line in f.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # the resume did not truncate the first launch's history
    log = (run_dir / "train.log").read_text()
    assert log.count("==== launch") == 2 and "step:6" in log
    assert "step:6" in capfd.readouterr().out  # tee'd to the console too
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["method"] == "grpo" and [launch_["exit_code"] for launch_ in meta["launches"]] == [0, 3]
    assert (run_dir / "config.yaml").read_text().count("adv_estimator: grpo") == 1


@pytest.mark.parametrize("cut", [1, 5, 11, 17])
def test_secret_filter_hides_values_split_across_chunks(cut):
    env = {"JUDGE_API_KEY": "sk-0123456789abcdef", "HF_TOKEN": "hf_token_value", "PATH": "/usr/bin"}
    stream = b"config: {'api_key': 'sk-0123456789abcdef'} hf=hf_token_value path=/usr/bin\n"
    secrets = SecretFilter(env)
    out = b"".join(secrets.feed(stream[i : i + cut]) for i in range(0, len(stream), cut)) + secrets.flush()
    assert out == b"config: {'api_key': '***'} hf=*** path=/usr/bin\n"


def test_run_keeps_secrets_out_of_train_log(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-in-the-environment")
    plan, code = _launch(tmp_path, monkeypatch, FAKE_PRINT="key=wandb-secret-in-the-environment")
    assert code == 0
    log = (tmp_path / "outputs" / "exp" / "train.log").read_text()
    assert "key=***" in log and "wandb-secret-in-the-environment" not in log


def test_help_runs_without_verl(tmp_path):
    result = subprocess.run([sys.executable, "-m", "common.launch", "--help"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and "DRY_RUN=1" in result.stdout
