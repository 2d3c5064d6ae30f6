"""GRPO's default reward: common.reward_functions.compute_score (accuracy, format and pred).

    REWARD_FUNC_PATH=reward_func.py ./train.sh      # the default in grpo/train.sh

verl loads this file by path (reward.custom_reward_function.path) inside its reward workers, so
the project root is put on sys.path here rather than relying on the working directory.
Extra keyword arguments come from `+reward.custom_reward_function.reward_kwargs.KEY=VALUE`, e.g.
`format_weight=0.1` to reward the <think>/<answer> layout as well.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# REWARD_KEYS tells common/reward_guard.py the keys before the first call (keep it if you copy this file).
from common.reward_functions import REWARD_KEYS, compute_score  # noqa: E402

__all__ = ["REWARD_KEYS", "compute_score"]
