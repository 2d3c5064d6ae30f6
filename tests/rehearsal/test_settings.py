"""What the rehearsal changes in a launch config for the CPU, and its own knobs.

    .venv/bin/python -m pytest tests/rehearsal/test_settings.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from common.knobs import ConfigError
from common.rehearsal.settings import Settings, prepare
from tests.rehearsal.runner import compose


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REHEARSAL_STEPS": "0"}, "REHEARSAL_STEPS=0 must be at least 1"),  # why: zero steps train nothing
        ({"REHEARSAL_STEPS": "two"}, "REHEARSAL_STEPS='two' is not an integer"),  # why: a typo
        ({"REHEARSAL_MODEL": "small"}, "REHEARSAL_MODEL='small' is not one of: full, tiny"),  # why: unknown mode
        ({"REHEARSAL_EVAL_ROWS": "-1"}, "REHEARSAL_EVAL_ROWS=-1 must be at least 0"),  # why: negative rows
    ],
)
def test_bad_rehearsal_knobs_name_the_knob(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env, Path("/tmp/run"))


def test_defaults(tmp_path):
    settings = Settings.from_env({}, tmp_path / "run")
    assert (settings.steps, settings.model, settings.eval_rows) == (1, "full", 4)
    assert settings.folder == tmp_path / "run" / "rehearsal"


@pytest.mark.parametrize("method", ["ppo", "sft"])
def test_prepare_changes_only_what_the_cpu_forces(tmp_path, tiny_model_dir, method):
    plan, cfg = compose(method, {"MODEL_PATH": str(tiny_model_dir)}, tmp_path)
    before = OmegaConf.to_yaml(cfg)
    settings = Settings.from_env({}, plan.run_dir)
    prepared, changes = prepare(plan, cfg, settings)
    assert OmegaConf.to_yaml(cfg) == before  # the launch config itself is untouched
    text = "\n".join(changes)
    assert "fsdp -> fsdp2" in text and str(settings.folder) in text
    folder = str(plan.run_dir / "rehearsal")
    assert prepared.trainer.default_local_dir == f"{folder}/checkpoints"
    assert prepared.trainer.resume_mode == "disable"
    if method == "sft":
        assert prepared.engine.strategy == "fsdp2" and prepared.trainer.device == "cpu"
        assert prepared.model.path == str(tiny_model_dir)
        assert prepared.optim.lr == cfg.optim.lr and prepared.data.train_batch_size == cfg.data.train_batch_size
    else:
        assert {prepared.actor_rollout_ref.actor.strategy, prepared.critic.strategy} == {"fsdp2"}
        assert prepared.trainer.rollout_data_dir == f"{folder}/rollout"
        # every training knob keeps the launch's value
        for key in ("actor_rollout_ref.actor.optim.lr", "critic.optim.lr", "actor_rollout_ref.rollout.n",
                    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", "algorithm.adv_estimator"):
            assert OmegaConf.select(prepared, key) == OmegaConf.select(cfg, key), key


def test_tiny_model_swaps_every_model_path(tmp_path, tiny_model_dir):
    plan, cfg = compose("ppo", {"MODEL_PATH": str(tiny_model_dir)}, tmp_path)
    settings = Settings.from_env({"REHEARSAL_MODEL": "tiny"}, plan.run_dir)
    settings.folder.mkdir(parents=True)
    prepared, changes = prepare(plan, cfg, settings)
    tiny = prepared.actor_rollout_ref.model.path
    assert tiny.startswith(str(settings.folder)) and prepared.critic.model.path == tiny
    assert any("REHEARSAL_MODEL=tiny" in change for change in changes)


def test_a_model_not_on_disk_stops_before_verl_tries_the_network(tmp_path):
    plan, cfg = compose("grpo", {"MODEL_PATH": "nobody/not-cached-0.5B"}, tmp_path)
    with pytest.raises(ConfigError, match="not on this machine, and nothing is downloaded here.*REHEARSAL_MODEL=tiny"):
        prepare(plan, cfg, Settings.from_env({}, plan.run_dir))


def test_gpu_rehearsal_keeps_the_launch_strategy_and_attention(tmp_path, tiny_model_dir):
    plan, cfg = compose("grpo", {"MODEL_PATH": str(tiny_model_dir), "ATTN_IMPL": "flash_attention_2"}, tmp_path)
    prepared, changes = prepare(plan, cfg, Settings.from_env({"REHEARSAL_DEVICE": "cuda"}, plan.run_dir))
    assert prepared.actor_rollout_ref.actor.strategy == cfg.actor_rollout_ref.actor.strategy == "fsdp"
    assert prepared.actor_rollout_ref.model.override_config.attn_implementation == "flash_attention_2"
    assert not any("fsdp2" in change for change in changes)
    with pytest.raises(ConfigError, match="REHEARSAL_DEVICE='tpu' is not one of: cpu, cuda"):
        Settings.from_env({"REHEARSAL_DEVICE": "tpu"}, plan.run_dir)


def test_a_failure_names_the_stage_it_broke_in():
    from common.rehearsal import _stage_of, stage

    with pytest.raises(KeyError) as caught:
        with stage("the actor update"), stage("the loss"):
            raise KeyError("advantages")
    assert _stage_of(caught.value) == "the loss"  # the innermost stage names where it broke
    assert _stage_of(ValueError("no stage")) == "setup"
