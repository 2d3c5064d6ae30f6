"""Knobs verl 0.9.1 used to ignore, each now reaching the code that reads it (or removed).

    .venv/bin/python -m pytest tests/common/test_knob_fixes.py -q

The rehearsal's knob table (tests/rehearsal/test_rehearsal.py) shows the same values inside the
engines; these tests check the config each knob produces, in seconds.
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from common.knobs import SFT_KNOBS
from tests.rehearsal.runner import compose


def _critic_engine(cfg):
    """The critic engine config exactly as verl's V1 trainer derives it ("define critic class")."""
    from verl.utils.config import omega_conf_to_dataclass

    critic = omega_conf_to_dataclass(cfg.critic)
    critic.engine.infer_max_token_len_per_gpu = critic.ppo_infer_max_token_len_per_gpu
    critic.engine.max_token_len_per_gpu = critic.ppo_infer_max_token_len_per_gpu
    return critic.engine


@pytest.mark.parametrize(
    ("env", "dynamic", "micro", "tokens"),
    [
        # why: the config block's micro-batches, not verl's default dynamic batching, reach the critic
        ({"USE_DYNAMIC_BSZ": "false", "MICRO_BATCH_SIZE_PER_GPU": "4"}, False, 4, 32768),
        # why: MAX_TOKENS_PER_GPU is the critic's budget too (verl reads ppo_infer_max_token_len_per_gpu only)
        ({"USE_DYNAMIC_BSZ": "true", "MAX_TOKENS_PER_GPU": "4096"}, True, 8, 4096),
    ],
)
def test_critic_batch_knobs_reach_the_engine_verl_builds(tmp_path, tiny_model_dir, env, dynamic, micro, tokens):
    _, cfg = compose("ppo", {"MODEL_PATH": str(tiny_model_dir), **env}, tmp_path)
    engine = _critic_engine(cfg)
    assert engine.use_dynamic_bsz is dynamic
    assert engine.micro_batch_size_per_gpu == micro and engine.infer_micro_batch_size_per_gpu == micro
    assert engine.max_token_len_per_gpu == tokens and engine.infer_max_token_len_per_gpu == tokens


def test_memory_estimate_counts_the_critic_as_verl_builds_it(tmp_path, tiny_model_dir):
    from common.memory import ModelShape, estimate_rl

    shape = ModelShape(params=5e8, layers=24, hidden=896, intermediate=4864, heads=14, kv_heads=2, vocab=151936)
    _, dynamic = compose("ppo", {"MODEL_PATH": str(tiny_model_dir), "USE_DYNAMIC_BSZ": "true",
                                 "MAX_TOKENS_PER_GPU": "65536"}, tmp_path)
    _, micro = compose("ppo", {"MODEL_PATH": str(tiny_model_dir), "USE_DYNAMIC_BSZ": "false",
                               "MICRO_BATCH_SIZE_PER_GPU": "1"}, tmp_path)
    big, small = estimate_rl(dynamic, shape, 80), estimate_rl(micro, shape, 80)
    # 65,536 critic tokens per micro-batch against 1 x 1,536: the critic's activations dominate
    assert big.parts["activations"] > 10 * small.parts["activations"]


def test_seed_reaches_the_rl_shuffles_and_is_not_an_sft_knob(tmp_path, tiny_model_dir):
    _, cfg = compose("grpo", {"MODEL_PATH": str(tiny_model_dir), "SEED": "5"}, tmp_path)
    for key in ("data.seed", "actor_rollout_ref.actor.data_loader_seed", "critic.data_loader_seed"):
        assert OmegaConf.select(cfg, key) == 5, key
    # verl 0.9.1's SFT trainer reads no seed (trainer.seed is unused): the knob is gone rather than ignored.
    assert "SEED" not in {knob.name for knob in SFT_KNOBS}
    _, sft = compose("sft", {"MODEL_PATH": str(tiny_model_dir), "SEED": "5"}, tmp_path)
    assert sft.trainer.seed == 1  # verl's default, untouched


@pytest.mark.parametrize("method", ["grpo", "ppo", "gspo"])
def test_overlong_shaping_works_for_every_rl_method(tmp_path, tiny_model_dir, method):
    from transformers import AutoTokenizer

    from verl.experimental.reward_loop.reward_manager.dapo import DAPORewardManager

    env = {"MODEL_PATH": str(tiny_model_dir), "OVERLONG_SHAPING": "true", "MAX_RESPONSE_LENGTH": "512"}
    _, cfg = compose(method, env, tmp_path)
    assert cfg.reward.reward_manager.name == "dapo"  # the manager that applies the penalty
    overlong = cfg.reward.reward_kwargs.overlong_buffer_cfg
    assert (overlong.enable, overlong.len, overlong.penalty_factor) == (True, 128, 1.0)
    assert cfg.reward.reward_kwargs.max_resp_len == 512
    manager = DAPORewardManager(cfg, AutoTokenizer.from_pretrained(tiny_model_dir), compute_score=None)
    assert manager.overlong_buffer_cfg.enable and manager.max_resp_len == 512  # verl's own checks pass


def test_overlong_keeps_an_explicit_reward_manager(tmp_path, tiny_model_dir):
    env = {"MODEL_PATH": str(tiny_model_dir), "OVERLONG_SHAPING": "true", "OVERLONG_BUFFER_LEN": "64",
           "REWARD_MANAGER": "naive"}
    _, cfg = compose("grpo", env, tmp_path)
    assert cfg.reward.reward_manager.name == "naive" and cfg.reward.reward_kwargs.overlong_buffer_cfg.len == 64


def test_lora_sets_verls_rollout_requirements(tmp_path, tiny_model_dir):
    _, on = compose("gspo", {"MODEL_PATH": str(tiny_model_dir), "USE_LORA": "true"}, tmp_path)
    assert on.actor_rollout_ref.rollout.load_format == "safetensors"  # docs/advance/ppo_lora.rst: required
    assert on.actor_rollout_ref.rollout.layered_summon is True
    _, off = compose("gspo", {"MODEL_PATH": str(tiny_model_dir), "USE_LORA": "false"}, tmp_path)
    assert off.actor_rollout_ref.rollout.load_format != "safetensors" and not off.actor_rollout_ref.rollout.layered_summon


@pytest.mark.parametrize(
    ("method", "env", "status"),
    [
        ("grpo", {"USE_LORA": "true"}, "warn"),  # why: ACTOR_LR=1e-6, the full-weight rate
        ("grpo", {"USE_LORA": "true", "ACTOR_LR": "3e-5"}, "ok"),  # why: verl's LoRA example rate
        ("sft", {"USE_LORA": "true"}, "warn"),  # why: LR=1e-5, the full fine-tuning rate
        ("grpo", {"USE_LORA": "false"}, None),  # why: no LoRA, no row
    ],
)
def test_lora_learning_rate_warning(tmp_path, tiny_model_dir, method, env, status):
    from common.checks.lora import lora_checks

    plan, cfg = compose(method, {"MODEL_PATH": str(tiny_model_dir), **env}, tmp_path)
    rows = lora_checks(plan, cfg, {})
    assert [r.status for r in rows] == ([status] if status else [])
    if status == "warn":
        assert rows[0].knobs == (["LR"] if method == "sft" else ["ACTOR_LR"]) and "order of magnitude" in rows[0].detail
