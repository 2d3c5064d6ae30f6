"""ATTN_IMPL: what auto picks, where the choice lands in verl's config, and the preflight row.

    .venv/bin/python -m pytest tests/common/test_attention.py -q
"""

from __future__ import annotations

import pytest

from common.attention import configured, overrides, resolve
from common.checks.attention import attention_checks
from tests.rehearsal.runner import compose

HAVE = (True, "flash_attn 2.8.3 imports")
MISSING = (False, "flash_attn is not installed")


@pytest.mark.parametrize(
    ("raw", "status", "impl"),
    [
        (None, HAVE, "flash_attention_2"),  # why: auto on a GPU machine set up by setup_env.sh
        ("auto", MISSING, "sdpa"),  # why: auto without flash-attn must not crash model loading
        ("", MISSING, "sdpa"),  # why: an empty variable means auto
        ("sdpa", HAVE, "sdpa"),  # why: an explicit choice wins over what is installed
        ("flash_attention_2", MISSING, "flash_attention_2"),  # why: explicit; the preflight reports it
    ],
)
def test_resolve(raw, status, impl):
    chosen = resolve(raw, status)
    assert chosen.impl == impl
    assert chosen.remove_padding == (impl == "flash_attention_2")


def test_unknown_value_names_the_knob():
    with pytest.raises(ValueError, match="ATTN_IMPL='eager2' is not one of: auto, flash_attention_2, sdpa"):
        resolve("eager2", HAVE)


def test_overrides_reach_every_model_verl_builds():
    sdpa = overrides(resolve("sdpa"), "rl")
    assert "++actor_rollout_ref.model.override_config.attn_implementation=sdpa" in sdpa
    assert "++critic.model.override_config.attn_implementation=sdpa" in sdpa
    assert "actor_rollout_ref.model.use_remove_padding=false" in sdpa  # packed rows need flash-attn's varlen kernel
    flash = overrides(resolve("flash_attention_2"), "sft")
    assert flash == ["++model.override_config.attn_implementation=flash_attention_2"]


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    work = tmp_path_factory.mktemp("attention")
    return {
        "grpo_sdpa": compose("grpo", {"ATTN_IMPL": "sdpa"}, work),
        "grpo_flash": compose("grpo", {"ATTN_IMPL": "flash_attention_2"}, work),
        "ppo": compose("ppo", {}, work),
        "sft_sp": compose("sft", {"ATTN_IMPL": "sdpa", "SP_SIZE": "2", "N_GPUS_PER_NODE": "2"}, work),
    }


def test_composed_config_carries_the_choice(configs):
    _, cfg = configs["grpo_sdpa"]
    assert configured(cfg, "rl") == {"actor_rollout_ref.model": ("sdpa", False), "critic.model": ("sdpa", False)}
    _, cfg = configs["grpo_flash"]
    assert configured(cfg, "rl")["actor_rollout_ref.model"] == ("flash_attention_2", True)


# (config, flash-attn status, GPUs here, REHEARSAL, expected status, words in the detail)
ROWS = [
    # why: a GPU machine without flash-attn, flash asked for: the launch would crash at model loading
    ("grpo_flash", MISSING, 1, "0", "fail", ["ATTN_IMPL asks for flash_attention_2", "setup_env.sh"]),
    # why: the same config checked on a laptop: the GPU machine is another one
    ("grpo_flash", MISSING, 0, "0", "warn", ["no GPU here"]),
    # why: a rehearsal of it runs sdpa on the CPU and says so
    ("grpo_flash", MISSING, 0, "1", "warn", ["rehearsal runs sdpa"]),
    # why: flash-attn installed and asked for
    ("grpo_flash", HAVE, 1, "0", "ok", ["flash_attention_2"]),
    # why: PPO's critic loads with flash_attention_2 whatever ATTN_IMPL says (verl/utils/model.py:649)
    ("ppo", MISSING, 1, "0", "fail", ["critic needs flash-attn", "verl/utils/model.py:649"]),
    # why: sdpa for the policy while flash-attn exists: the critic still runs flash, said in the row
    ("ppo", HAVE, 1, "0", "ok", ["critic runs flash_attention_2 anyway"]),
    # why: Ulysses sequence parallelism needs packed sequences, i.e. flash-attn
    ("sft_sp", HAVE, 2, "0", "fail", ["SP_SIZE=2 needs packed sequences"]),
]


@pytest.mark.parametrize(("name", "status", "gpus", "rehearsal", "expected", "words"), ROWS)
def test_preflight_attention_row(configs, name, status, gpus, rehearsal, expected, words):
    plan, cfg = configs[name]
    env = {"ATTN_IMPL": plan_attn(cfg, plan), "REHEARSAL": rehearsal}
    (row,) = attention_checks(plan, cfg, {"env": env, "gpus_found": gpus, "flash_attn_status": status})
    assert row.check == "attention" and row.status == expected, row.detail
    for word in words:
        assert word in row.detail
    if expected == "fail":
        assert "ATTN_IMPL" in row.knobs or "SP_SIZE" in row.knobs


def plan_attn(cfg, plan) -> str:
    """The ATTN_IMPL value a config was composed with (read back from the actor's or SFT model's config)."""
    key = "model" if plan.trainer == "sft" else "actor_rollout_ref.model"
    return configured(cfg, plan.trainer)[key][0]
