"""Memory estimator: parameter counts from config.json, the breakdown, and the suggestions.

    .venv/bin/python -m pytest tests/common/test_memory.py -q
"""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from common.memory import KNOWN_CONFIGS, estimate_rl, gpu_memory_gb, shape_for, shape_from_config


def rl_cfg(gpus=1, micro=8, util=0.5, offload=False, lora=0, tp=1):
    return OmegaConf.create({
        "trainer": {"n_gpus_per_node": gpus, "nnodes": 1},
        "data": {"max_prompt_length": 512, "max_response_length": 1024},
        "algorithm": {"adv_estimator": "grpo", "use_kl_in_reward": False},
        "critic": {"enable": False},
        "actor_rollout_ref": {
            "model": {"lora_rank": lora, "enable_gradient_checkpointing": True},
            "actor": {"use_dynamic_bsz": False, "ppo_micro_batch_size_per_gpu": micro, "use_kl_loss": True,
                      "fsdp_config": {"param_offload": offload, "optimizer_offload": offload}},
            "ref": {"fsdp_config": {}},
            "rollout": {"gpu_memory_utilization": util, "tensor_model_parallel_size": tp},
        },
    })


@pytest.mark.parametrize(
    "model, published",
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", 0.494e9),  # why: tied embeddings; model card says 0.49B
        ("Qwen/Qwen2.5-7B-Instruct", 7.62e9),  # why: untied embeddings; model card says 7.61B
    ],
)
def test_parameter_count_from_config_matches_model_cards(model, published):
    counted = shape_from_config(KNOWN_CONFIGS[model]).params
    assert counted == pytest.approx(published, rel=0.02)


def test_local_config_json_wins(tiny_model_dir):
    shape = shape_for(str(tiny_model_dir))
    assert shape.heads == 4 and shape.kv_heads == 2 and str(tiny_model_dir) in shape.source


def test_unknown_model_is_none():
    assert shape_for("nobody/not-a-model") is None


def test_7b_full_finetune_on_one_gpu_does_not_fit_and_says_how_to_fix():
    est = estimate_rl(rl_cfg(), shape_for("Qwen/Qwen2.5-7B-Instruct"), 80)
    # 7.6B x 16 bytes of fp32 weights + grads + Adam = 114 GiB alone on one GPU.
    assert not est.fits and est.parts["optimizer"] == pytest.approx(7.62e9 * 8 / 2**30, rel=0.01)
    text = " ".join(est.suggestions)
    assert "OPTIMIZER_OFFLOAD=true" in text and "USE_LORA=true" in text and "N_GPUS_PER_NODE" in text


def test_sharding_and_lora_shrink_the_estimate():
    shape = shape_for("Qwen/Qwen2.5-7B-Instruct")
    one, eight = estimate_rl(rl_cfg(), shape, 80), estimate_rl(rl_cfg(gpus=8), shape, 80)
    lora = estimate_rl(rl_cfg(lora=32), shape, 80)
    assert eight.parts["optimizer"] == pytest.approx(one.parts["optimizer"] / 8)
    assert lora.parts["weights"] < one.parts["weights"] and "optimizer" not in lora.parts
    assert eight.fits


def test_kv_cache_too_small_for_one_sequence():
    est = estimate_rl(rl_cfg(util=0.05), shape_for("Qwen/Qwen2.5-7B-Instruct"), 24)
    assert any("KV cache" in s for s in est.suggestions)


def test_gpu_size_falls_back_to_the_knob():
    gb, how = gpu_memory_gb({"GPU_MEMORY_GB": "40"})
    assert (gb, "GPU_MEMORY_GB=40" in how) == (40.0, True) or "NVML" in how
