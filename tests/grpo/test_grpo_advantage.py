"""GRPO's defining behaviour through the config grpo/train.sh resolves and verl's own estimator:
the ROLLOUT_N responses of a prompt form a group, and advantages are normalised inside it.

    .venv/bin/python -m pytest tests/grpo/test_grpo_advantage.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.launch_helpers import dry_run, resolved_config


@pytest.fixture(scope="module")
def algorithm(tmp_path_factory):
    from verl.utils.config import omega_conf_to_dataclass

    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path_factory.mktemp("outputs")), "ROLLOUT_N": "4"})
    assert result.returncode == 0, result.stderr
    cfg = resolved_config(result.stdout)
    return cfg.actor_rollout_ref.rollout.n, omega_conf_to_dataclass(cfg.algorithm)


def test_group_normalised_advantages(algorithm):
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    n, config = algorithm
    assert n == 4 and config.adv_estimator == "grpo"
    # Two prompts x n responses; the reward sits on the last response token, as verl places it.
    scores = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    rewards = torch.zeros(8, 3)
    rewards[:, -1] = torch.tensor(scores)
    mask = torch.ones(8, 3)
    index = np.array(["p0"] * n + ["p1"] * n, dtype=object)
    advantages, _ = get_adv_estimator_fn(config.adv_estimator)(
        token_level_rewards=rewards, response_mask=mask, index=index, norm_adv_by_std_in_grpo=config.norm_adv_by_std_in_grpo,
        config=config,
    )
    first = advantages[:n, 0]
    # (score - group mean) / group std, the same value on every token of a response.
    expected = (torch.tensor(scores[:n]) - 0.25) / torch.tensor(scores[:n]).std()
    assert torch.allclose(first, expected, atol=1e-4)
    assert torch.allclose(advantages[:n], first[:, None].expand(n, 3))
    # A group whose responses all score the same carries no signal (what DAPO's dynamic sampling drops).
    assert torch.allclose(advantages[n:], torch.zeros(n, 3))
