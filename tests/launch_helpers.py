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
