"""Every shell script in the repository parses and passes shellcheck (all its checks, sources followed).

    .venv/bin/python -m pytest tests/test_shellcheck.py -q
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shell_scripts() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    scripts = []
    for name in listed:
        path = REPO_ROOT / name
        if not path.is_file():
            continue
        if name.endswith(".sh") or name == ".ci/run" or path.read_bytes()[:32].startswith(b"#!/usr/bin/env bash"):
            scripts.append(name)
    return sorted(set(scripts))


def test_every_script_is_found():
    scripts = _shell_scripts()
    # The entry points people type must be among them.
    for expected in ("setup_env.sh", "test.sh", ".ci/run", "common/launch.sh", "grpo/train.sh", "sft/train.sh"):
        assert expected in scripts


def test_scripts_parse():
    for script in _shell_scripts():
        result = subprocess.run(["bash", "-n", script], cwd=REPO_ROOT, capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"


def test_shellcheck_passes():
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    result = subprocess.run([shellcheck, "-x", *_shell_scripts()], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
