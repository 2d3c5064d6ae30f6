"""GSPO's defining behaviour, through the config gspo/train.sh resolves and verl's own loss:
importance ratios are clipped per sequence (3e-4 / 4e-4), not per token.

    .venv/bin/python -m pytest tests/gspo/test_gspo_loss.py -q
"""

from __future__ import annotations

import pytest
import torch

from tests.launch_helpers import dry_run, resolved_config


@pytest.fixture(scope="module")
def actor_config(tmp_path_factory):
    from verl.utils.config import omega_conf_to_dataclass

    result = dry_run("gspo", env={"OUTPUT_DIR": str(tmp_path_factory.mktemp("outputs"))})
    assert result.returncode == 0, result.stderr
    cfg = resolved_config(result.stdout)
    return cfg.actor_rollout_ref.actor.policy_loss.loss_mode, omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


def _loss(actor_config, token_log_ratio: torch.Tensor):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    mode, config = actor_config
    old = torch.zeros_like(token_log_ratio)
    mask = torch.ones_like(token_log_ratio)
    advantages = torch.ones_like(token_log_ratio)  # positive advantage: ratios above 1 + eps_high are clipped
    return get_policy_loss_fn(mode)(old, token_log_ratio, advantages, mask, config.loss_agg_mode, config)


def test_resolved_config_is_verls_gspo(actor_config):
    mode, config = actor_config
    assert mode == "gspo"
    assert (config.clip_ratio_low, config.clip_ratio_high) == (3e-4, 4e-4)
    assert config.loss_agg_mode == "seq-mean-token-mean"


@pytest.mark.parametrize(
    ("token_log_ratios", "clipped"),
    [
        # why: every token moved by +1e-4: the sequence ratio e^1e-4 is inside [1 - 3e-4, 1 + 4e-4]
        ([1e-4, 1e-4, 1e-4, 1e-4], 0.0),
        # why: one token far outside a token-level range (+1e-3) but the sequence mean is only 2.5e-4
        ([1e-3, 0.0, 0.0, 0.0], 0.0),
        # why: the mean +5e-4 exceeds 4e-4: the whole sequence is clipped, every token alike
        ([5e-4, 5e-4, 5e-4, 5e-4], 1.0),
        # why: the mean exceeds 4e-4 though one token went down: still the whole sequence
        ([2e-3, 2e-3, -1e-3, 0.0], 1.0),
    ],
)
def test_clipping_is_per_sequence(actor_config, token_log_ratios, clipped):
    _, metrics = _loss(actor_config, torch.tensor([token_log_ratios]))
    assert metrics["actor/pg_clipfrac"] == pytest.approx(clipped)
