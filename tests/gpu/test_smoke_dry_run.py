"""tests/gpu/smoke.sh on a CPU: shell hygiene and its --dry-run mode (every config verl would run).

    .venv/bin/python -m pytest tests/gpu/test_smoke_dry_run.py -q

The GPU part of smoke.sh (training, merging, scoring) needs NVIDIA GPUs and is not run here; its
knob assertions (REHEARSAL=1, common/rehearsal) are, on the CPU, with SMOKE_REHEARSAL=1.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess

import pytest

from tests.launch_helpers import REPO_ROOT

SMOKE = REPO_ROOT / "tests" / "gpu" / "smoke.sh"


def test_no_gpu_says_how_to_dry_run(tmp_path):
    env = {**os.environ, "SMOKE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}  # no nvidia-smi on PATH
    env.pop("N_GPUS_PER_NODE", None)
    result = subprocess.run([str(SMOKE), "grpo"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "--dry-run" in result.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_dry_run_accepts_every_smoke_config(tmp_path):
    methods = [m for m in ("grpo", "sft") if (REPO_ROOT / m / "train.sh").exists()]
    assert methods == ["grpo", "sft"], "grpo/train.sh and sft/train.sh are part of the project"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_", "RAY_"))}
    env["SMOKE_DIR"] = str(tmp_path)
    result = subprocess.run([str(SMOKE), "--dry-run", *methods], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for method in methods:
        assert f"{method:5} PASS  dry run" in result.stdout
    # The dry runs used the smoke settings and the model the script built.
    grpo_log = (tmp_path / "grpo.console.log").read_text()
    assert "total_training_steps: 2" in grpo_log and "save_freq: 2" in grpo_log
    assert f"path: {tmp_path / 'tiny_model'}" in grpo_log
    assert (tmp_path / "tiny_model" / "config.json").is_file()
    # A dry run trains nothing: the run folder holds only the resolved config it checked.
    assert [p.name for p in (tmp_path / "smoke-grpo").iterdir()] == ["dry_run.yaml"]


def test_dry_run_reports_a_config_verl_rejects(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_", "RAY_"))}
    # tgi is not a rollout engine verl knows: the dry run must fail and say FAIL.
    env.update(SMOKE_DIR=str(tmp_path), ROLLOUT_ENGINE="tgi")
    result = subprocess.run([str(SMOKE), "--dry-run", "grpo"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "grpo  FAIL  dry run" in result.stdout and "smoke: FAILED" in result.stderr


@pytest.mark.slow
def test_dry_run_rehearses_and_asserts_the_knob_table(tmp_path):
    # The knob assertions smoke.sh makes on a GPU (REHEARSAL_DEVICE=cuda), made here on the CPU.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_", "RAY_"))}
    env.update(SMOKE_DIR=str(tmp_path), SMOKE_REHEARSAL="1")
    result = subprocess.run([str(SMOKE), "--dry-run", "sft"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("sft "))
    assert "PASS  dry run" in line and "rehearsal:" in line and "knob values arrived" in line
    summary = json.loads((tmp_path / "smoke-sft" / "rehearsal" / "summary.json").read_text())
    assert summary["exit_code"] == 0 and all(row["ok"] for row in summary["knob_table"])


# (what the summary says, what smoke_check must answer)
SUMMARIES = [
    # why: a knob that did not arrive fails, naming it and both values
    ({"exit_code": 1, "knob_table": [{"knob": "ACTOR_LR", "where": "actor optimizer", "expected": 3e-6,
                                      "observed": 1e-6, "ok": False}]}, "ACTOR_LR (actor optimizer: block 3e-06"),
    # why: the rehearsal crashed before it could build a table
    ({"exit_code": 1, "error": "RuntimeError: boom", "knob_table": []}, "RuntimeError: boom"),
    # why: a NaN loss is a failure even when every knob arrived
    ({"exit_code": 0, "merged_model": "m", "knob_table": [{"knob": "LR", "where": "w", "expected": 1, "observed": 1,
                                                          "ok": True}], "metrics": [{"train/loss": float("nan")}]},
     "train/loss=nan is not finite"),
]


@pytest.mark.parametrize(("summary", "message"), SUMMARIES)
def test_smoke_check_rehearsal_reports_why(tmp_path, summary, message):
    from tests.gpu.smoke_check import main

    (tmp_path / "rehearsal").mkdir()
    (tmp_path / "rehearsal" / "summary.json").write_text(json.dumps(summary))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["rehearsal", str(tmp_path)])
    assert code == 1 and message in out.getvalue()
