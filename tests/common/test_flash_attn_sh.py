"""common/flash_attn.sh: the prebuilt wheel setup_env.sh looks for, from torch/CUDA/Python facts.

    .venv/bin/python -m pytest tests/common/test_flash_attn_sh.py -q
"""

from __future__ import annotations

import subprocess

import pytest

from tests.launch_helpers import REPO_ROOT


def _bash(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"source {REPO_ROOT}/common/flash_attn.sh; {script}"],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("facts", "name"),
    [
        # why: the layout of the flash-attention release assets (CUDA major only, torch major.minor)
        ("2.8.0+cu128 12.8 cp311 TRUE linux_x86_64", "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"),
        # why: verl's GPU pin; no official asset exists for it, the name is still what is tried first
        ("2.11.0+cu128 12.8 cp312 TRUE linux_x86_64", "flash_attn-2.8.3+cu12torch2.11cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"),
        # why: the pre-C++11 ABI builds and ARM machines get their own wheels
        ("2.6.0 12.4 cp310 FALSE linux_aarch64", "flash_attn-2.8.3+cu12torch2.6cxx11abiFALSE-cp310-cp310-linux_aarch64.whl"),
        # why: CUDA 13 builds
        ("2.9.1+cu130 13.0 cp313 TRUE linux_x86_64", "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp313-cp313-linux_x86_64.whl"),
    ],
)
def test_wheel_name(facts, name):
    result = _bash(f"flash_attn_wheel_name {facts}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ("2.13.0+cpu None cp311 TRUE linux_x86_64", "has no CUDA build"),  # why: a CPU torch has no wheel
        ("2.8.0 12.8 py311 TRUE linux_x86_64", "cannot read"),  # why: a malformed python tag
        ("2.8.0 12.8 cp311 maybe linux_x86_64", "must be TRUE or FALSE"),  # why: garbage ABI flag
    ],
)
def test_wheel_name_refuses_what_has_no_wheel(facts, message):
    result = _bash(f"flash_attn_wheel_name {facts}")
    assert result.returncode == 1 and message in result.stderr


def test_wheel_url_escapes_the_local_version():
    result = _bash('flash_attn_wheel_url "$(flash_attn_wheel_name 2.8.0 12.8 cp311 TRUE linux_x86_64)"')
    assert result.stdout.strip() == ("https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
                                     "flash_attn-2.8.3%2Bcu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl")


def test_install_reports_and_never_fails_silently(tmp_path):
    # On this CPU machine: a CPU torch has no wheel and no nvcc exists, so auto warns loudly and goes on;
    # INSTALL_FLASH_ATTN=yes turns the same outcome into a failure.
    python = f"{REPO_ROOT}/.venv/bin/python"
    auto = _bash(f"ROOT={REPO_ROOT}; PATH=/usr/bin:/bin install_flash_attn {python}")
    assert auto.returncode == 0
    assert "WARNING flash-attn is not usable" in auto.stderr and "sdpa" in auto.stderr
    required = _bash(f"ROOT={REPO_ROOT}; PATH=/usr/bin:/bin INSTALL_FLASH_ATTN=yes install_flash_attn {python}")
    assert required.returncode == 1
    skipped = _bash(f"ROOT={REPO_ROOT}; INSTALL_FLASH_ATTN=no install_flash_attn {python}")
    assert skipped.returncode == 0 and "skipped" in skipped.stdout
