"""Run a method's real train.sh with DRY_RUN=1 and read back what it resolved.

    from tests.launch_helpers import dry_run, resolved_config

Offers:
- dry_run(method, env=None, args=(), cwd=None) -> CompletedProcess: `DRY_RUN=1 <method>/train.sh args...`
  with a clean copy of the environment (no GPU; OUTPUT_DIR a fresh temp folder unless env sets it).
- resolved_config(stdout) -> DictConfig: the config the launcher resolved (verl's own composition):
  printed with DRY_RUN=full, else read from the dry_run.yaml whose path the dry run printed.
- printed_command(stdout) -> list[str]: the exact command the launcher would run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_MARK = "# ---- resolved config (verl's own composition) ----"
COMMAND_MARK = "# ---- command ----"
FILE_MARK = "# full resolved config:"


def grpo_block(model_dir, out_dir, **extra: str) -> dict[str, str]:
    """grpo/train.sh's config block with the tiny local model (so model-dependent checks run) and
    every output under out_dir; extra knobs on top."""
    return {
        "MODEL_PATH": str(model_dir), "TRAIN_DATA": "data/train.parquet", "VAL_DATA": "data/val.parquet",
        "ROLLOUT_N": "5", "TRAIN_BATCH_SIZE": "32", "PPO_MINI_BATCH_SIZE": "16", "MICRO_BATCH_SIZE_PER_GPU": "8",
        "ROLLOUT_ENGINE": "vllm", "ROLLOUT_TP": "1", "N_GPUS_PER_NODE": "1", "NNODES": "1",
        "REWARD_FUNC_PATH": "reward_func.py", "MAX_PROMPT_LENGTH": "512", "MAX_RESPONSE_LENGTH": "1024",
        "OUTPUT_DIR": str(out_dir), "HOME": str(out_dir), **extra,
    }


def dry_run(method: str, env: dict[str, str] | None = None, args: tuple[str, ...] = (), timeout: int = 180, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_"))}
    # A dry run writes its dry_run.yaml into the run folder: never into the repository's outputs/.
    full_env.update({"DRY_RUN": "1", "OUTPUT_DIR": tempfile.mkdtemp(prefix="dry-run-"), **(env or {})})
    return subprocess.run(
        [str(REPO_ROOT / method / "train.sh"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def resolved_config(stdout: str):
    if CONFIG_MARK in stdout:
        start = stdout.index(CONFIG_MARK) + len(CONFIG_MARK)
        end = stdout.index(COMMAND_MARK)
        return OmegaConf.create(stdout[start:end])
    path = next(line.split(":", 1)[1].split("  (")[0].strip() for line in stdout.splitlines() if line.startswith(FILE_MARK))
    return OmegaConf.create(Path(path).read_text())


def printed_command(stdout: str) -> list[str]:
    block = stdout[stdout.index(COMMAND_MARK) + len(COMMAND_MARK) :]
    lines = []
    for line in block.splitlines():
        if line.startswith("#"):
            break
        lines.append(line.rstrip("\\").strip())
    words = shlex.split(" ".join(lines))
    return [w for w in words if "=" not in w or not w.split("=", 1)[0].isupper()]
