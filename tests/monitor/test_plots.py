"""End-of-run PNG plots (monitor/plots.py) on run folders written by verl's own logger: the right
plots per method, readable images, atomic writes, the command line.

    .venv/bin/python -m pytest tests/monitor/test_plots.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.plots import write_run_plots
from tests.monitor.conftest import grpo_metrics

REPO = Path(__file__).resolve().parents[2]


def test_rl_run_plots(log_dir, make_run):
    val = {s: {"val-core/openai/gsm8k/acc/mean@1": 0.2 + s / 100} for s in (10, 20, 30)}
    run = make_run(log_dir / "grpo", [{"steps": range(1, 31), "metrics": lambda s: grpo_metrics(s), "val": val}])
    paths = write_run_plots(run)
    names = [p.name for p in paths]
    assert names[0] == "overview.png"
    assert {"reward.png", "val_accuracy.png", "policy_loss.png", "kl.png", "entropy.png", "response_length.png",
            "grad_norm.png"} <= set(names) and "sft_loss.png" not in names
    for path in paths:
        assert path.parent == run / "plots"
        img = np.asarray(Image.open(path).convert("RGB")).astype(int)
        # why: a readable plot, not a blank canvas: wide enough, and coloured curve pixels present
        assert img.shape[1] >= 700 and (np.abs(img - [46, 145, 229]).sum(axis=2) < 60).sum() > 200, path.name
    assert not [p for p in (run / "plots").iterdir() if p.suffix != ".png"]  # no temporary file left


def test_sft_run_plots_its_losses(log_dir, make_run):
    run = make_run(log_dir / "sft", [{"steps": range(1, 21), "metrics": lambda s: {"train/loss": 2.0 / s},
                                      "val": {10: {"val/loss": 0.5}, 20: {"val/loss": 0.3}}}], method="sft")
    assert [p.name for p in write_run_plots(run)] == ["overview.png", "sft_loss.png"]


def test_a_failed_write_leaves_no_partial_file(log_dir, make_run, monkeypatch):
    run = make_run(log_dir / "grpo", [{"steps": range(1, 5), "metrics": lambda s: grpo_metrics(s)}])
    from matplotlib.figure import Figure

    def broken(self, f, **kw):
        f.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        write_run_plots(run)
    assert list((run / "plots").iterdir()) == []


def test_command_line(log_dir, make_run, tmp_path):
    run = make_run(log_dir / "grpo", [{"steps": range(1, 5), "metrics": lambda s: grpo_metrics(s)}])
    out = subprocess.run([sys.executable, "-m", "monitor.plots", str(run)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and str(run / "plots" / "overview.png") in out.stdout
    missing = subprocess.run([sys.executable, "-m", "monitor.plots", str(tmp_path / "nope")], cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "is not a run folder" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([sys.executable, "-m", "monitor.plots", str(tmp_path / "empty")], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 1 and "has no metrics to plot" in empty.stderr
