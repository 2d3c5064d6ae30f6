"""Static checks on every Python file: no undefined names, unused imports or syntax errors.

    .venv/bin/python -m pytest tests/test_lint.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_ruff_pyflakes_rules_pass():
    ruff = Path(sys.executable).with_name("ruff")
    # F: pyflakes (undefined names, unused imports and variables); E9: syntax and IO errors.
    result = subprocess.run([str(ruff), "check", "--select", "F,E9", "--no-cache", "."], cwd=REPO_ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
