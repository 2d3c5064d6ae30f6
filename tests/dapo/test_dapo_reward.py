"""DAPO's overlong reward shaping, end to end: the config dapo/train.sh resolves, verl's own dapo
reward manager and loader, our reward function, real token ids from the tiny tokenizer.

    .venv/bin/python -m pytest tests/dapo/test_dapo_reward.py -q
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from tests.launch_helpers import dry_run, resolved_config

MAX_RESPONSE, BUFFER = 64, 16  # penalty ramps over tokens 49..64


@pytest.fixture(scope="module")
def dapo_cfg(tmp_path_factory):
    out = tmp_path_factory.mktemp("outputs")
    result = dry_run("dapo", env={"OUTPUT_DIR": str(out), "MAX_RESPONSE_LENGTH": str(MAX_RESPONSE),
                                  "OVERLONG_BUFFER_LEN": str(BUFFER)})
    assert result.returncode == 0, result.stderr
    return resolved_config(result.stdout)


def _score(cfg, tokenizer, n_tokens: int, answer: str) -> dict:
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.trainer.ppo.reward import get_custom_reward_fn

    tail = tokenizer.encode(f" #### {answer}", add_special_tokens=False)
    filler = tokenizer.encode(" the", add_special_tokens=False)
    ids = filler * (n_tokens - len(tail)) + tail
    assert len(ids) == n_tokens
    pad = tokenizer.pad_token_id
    responses = torch.tensor([ids + [pad] * (MAX_RESPONSE - n_tokens)])
    prompt_len = 4
    mask = torch.tensor([[1] * prompt_len + [1] * n_tokens + [0] * (MAX_RESPONSE - n_tokens)])
    data = DataProto.from_dict(
        tensors={"responses": responses, "attention_mask": mask},
        non_tensors={"data_source": np.array(["openai/gsm8k"], dtype=object),
                     "reward_model": np.array([{"ground_truth": "7", "style": "rule"}], dtype=object),
                     "extra_info": np.array([{"index": 0}], dtype=object)},
    )
    manager_cls = get_reward_manager_cls(cfg.reward.reward_manager.name)

    async def run():
        return await manager_cls(cfg, tokenizer, get_custom_reward_fn(cfg)).run_single(data)

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("n_tokens", "answer", "expected"),
    [
        (20, "7", 1.0),  # why: well inside the limit, right answer: no penalty
        (48, "7", 1.0),  # why: exactly at the start of the buffer (64 - 16): still no penalty
        (56, "7", 0.5),  # why: 8 of 16 buffer tokens used: -8/16 x penalty factor 1.0
        (64, "7", 0.0),  # why: at the maximum length the whole factor is taken
        (56, "8", -0.5),  # why: wrong and overlong: 0 accuracy plus the same penalty
    ],
)
def test_overlong_penalty_from_the_resolved_dapo_config(dapo_cfg, tiny_tokenizer, n_tokens, answer, expected):
    assert dapo_cfg.reward.reward_manager.name == "dapo"
    out = _score(dapo_cfg, tiny_tokenizer, n_tokens, answer)
    assert out["reward_score"] == pytest.approx(expected)
    info = out["reward_extra_info"]
    # Our function's keys come through (acc is what dynamic sampling filters groups on) ...
    assert info["acc"] == (1.0 if answer == "7" else 0.0)
    # ... and the manager logs the shaping it applied.
    assert info["overlong"] == (n_tokens > MAX_RESPONSE - BUFFER)
