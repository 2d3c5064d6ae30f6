"""Run a method's real train.sh with DRY_RUN=1 and read back what it resolved.

    from tests.launch_helpers import dry_run, resolved_config

Offers:
- dry_run(method, env=None, args=()) -> CompletedProcess: `DRY_RUN=1 <method>/train.sh args...`
  with a clean copy of the environment (no GPU, outputs under a temp folder if OUTPUT_DIR is set).
- resolved_config(stdout) -> DictConfig: the config the launcher printed (verl's own composition).
- printed_command(stdout) -> list[str]: the exact command the launcher would run.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_MARK = "# ---- resolved config (verl's own composition) ----"
COMMAND_MARK = "# ---- command ----"


def dry_run(method: str, env: dict[str, str] | None = None, args: tuple[str, ...] = (), timeout: int = 180):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_"))}
    full_env.update({"DRY_RUN": "1", **(env or {})})
    return subprocess.run(
        [str(REPO_ROOT / method / "train.sh"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def resolved_config(stdout: str):
    start = stdout.index(CONFIG_MARK) + len(CONFIG_MARK)
    end = stdout.index(COMMAND_MARK)
    return OmegaConf.create(stdout[start:end])


def printed_command(stdout: str) -> list[str]:
    block = stdout[stdout.index(COMMAND_MARK) + len(COMMAND_MARK) :]
    lines = []
    for line in block.splitlines():
        if line.startswith("#"):
            break
        lines.append(line.rstrip("\\").strip())
    words = shlex.split(" ".join(lines))
    return [w for w in words if "=" not in w or not w.split("=", 1)[0].isupper()]
