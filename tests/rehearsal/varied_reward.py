"""A reward that differs between responses, so a rehearsal of a random model has something to learn.

    REWARD_FUNC_PATH=tests/rehearsal/varied_reward.py REHEARSAL=1 ./grpo/train.sh

A random model's responses are all wrong: the project's reward gives every one 0, every GRPO
advantage is 0 and the optimizer step moves nothing. This one maps the response text to a score
in [0, 1) (a hash: different texts, different scores) and `acc` to whether it is above 0.5.

>>> compute_score("openai/gsm8k", "abc", "7") == compute_score("openai/gsm8k", "abc", "1")
True
"""

from __future__ import annotations

import hashlib


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    score = int(hashlib.md5(solution_str.encode()).hexdigest()[:8], 16) / 2**32
    return {"score": score, "acc": float(score > 0.5)}
