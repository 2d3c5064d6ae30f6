"""End-of-run PNG plots of a run's main curves, written into <run_dir>/plots/: a run can be judged
from its folder alone, without starting the dashboard (like LLaMA-Factory's training_loss.png).

    .venv/bin/python -m monitor.plots outputs/grpo-Qwen2.5-0.5B-Instruct      # by hand, any time
    (the launcher calls write_run_plots at the end of every run: common/callbacks.py on_end)

Offers:
    PLOTS                     (file name, title, keys) of each plot; a plot whose keys were never
                              logged is not written (an SFT run gets loss plots, an RL run reward...).
    write_run_plots(run_dir, smoothing=0.8) -> list[Path]
                              overview.png (every available plot in one grid) plus one PNG per plot;
                              the EMA-smoothed curve over the raw values drawn faint; validation
                              points as markers. Each file is written atomically (a temporary file
                              in plots/, then os.replace); nothing is left half-written.
    main(argv) -> exit code

Uses matplotlib's Agg canvas directly (no pyplot): no display, no global backend switch in the
process that calls it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from monitor.metrics_collector import RunState  # noqa: E402
from monitor.smoothing import ema  # noqa: E402

__all__ = ["PLOTS", "write_run_plots", "main"]

# (file, title, keys; a "prefix*" entry matches every key with that prefix except std@/std keys)
PLOTS = (
    ("reward.png", "Reward (score) per step", ("critic/score/mean|critic/rewards/mean",)),
    ("val_accuracy.png", "Validation", ("val-core/*",)),
    ("policy_loss.png", "Policy loss", ("actor/pg_loss",)),
    ("kl.png", "KL", ("actor/kl_loss", "actor/ppo_kl")),
    ("entropy.png", "Entropy", ("actor/entropy",)),
    ("response_length.png", "Response length (tokens)", ("response_length/mean", "response_length/max")),
    ("grad_norm.png", "Gradient norm", ("actor/grad_norm", "critic/grad_norm", "train/grad_norm")),
    ("sft_loss.png", "SFT loss", ("train/loss", "val/loss")),
)
_COLOURS = ["#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100"]


def _keys(spec: tuple[str, ...], columns: list[str]) -> list[str]:
    out = []
    for item in spec:
        if item.endswith("*"):
            out += sorted(c for c in columns if c.startswith(item[:-1]) and "std" not in c.rsplit("/", 1)[-1])
        else:
            first = next((k for k in item.split("|") if k in columns), None)
            if first:
                out.append(first)
    return out


def _draw(ax, steps: np.ndarray, frame, keys: list[str], smoothing: float) -> bool:
    drawn = False
    for i, key in enumerate(keys):
        raw = frame[key].to_numpy(dtype=float)
        ok = np.isfinite(raw)
        if not ok.any():
            continue
        colour = _COLOURS[i % len(_COLOURS)]
        label = key
        if ok.sum() < 0.5 * len(raw):  # logged every test_freq steps: points, not a smoothed line
            ax.plot(steps[ok], raw[ok], marker="o", markersize=3, linewidth=1.2, color=colour, label=label)
        else:
            ax.plot(steps[ok], raw[ok], linewidth=0.8, alpha=0.25, color=colour)
            smooth = ema(raw, smoothing)
            ax.plot(steps[ok], smooth[ok], linewidth=1.8, color=colour,
                    label=f"{label} (EMA {smoothing:g})" if smoothing > 0 else label)
        drawn = True
    if drawn:
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("step")
        ax.legend(fontsize=7, loc="best")
    return drawn


def _save(fig, path: Path) -> None:
    """Render to a temporary file next to `path`, then rename: readers never see half a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run_plots(run_dir: str | os.PathLike, smoothing: float = 0.8) -> list[Path]:
    """Write <run_dir>/plots/*.png from the run's metrics.

    Input:  a run folder (the launcher's layout: metrics/*.jsonl, or a console log); EMA smoothing.
    Output: the PNGs written (overview.png first); [] when the run logged no metrics.
    Raises FileNotFoundError when run_dir is not a folder.
    """
    from matplotlib.figure import Figure

    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run folder (expected outputs/<experiment>/)")
    run = RunState(run_dir.name, run_dir, run_dir.parent)
    frame = run.metrics()
    if frame.empty:
        return []
    steps = frame["step"].to_numpy()
    columns = list(frame.columns)
    plots = [(name, title, keys) for name, title, spec in PLOTS if (keys := _keys(spec, columns))]
    if not plots:
        return []
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    written = []
    cols = 2 if len(plots) > 1 else 1
    rows = math.ceil(len(plots) / cols)
    overview = Figure(figsize=(6.4 * cols, 3.4 * rows), layout="constrained")
    overview.suptitle(f"{run_dir.name}: steps {int(steps[0])}-{int(steps[-1])}", fontsize=12)
    for i, (_, title, keys) in enumerate(plots):
        ax = overview.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=10)
        _draw(ax, steps, frame, keys, smoothing)
    path = out_dir / "overview.png"
    _save(overview, path)
    written.append(path)
    for name, title, keys in plots:
        fig = Figure(figsize=(7, 4), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        ax.set_title(f"{run_dir.name}: {title}", fontsize=10)
        _draw(ax, steps, frame, keys, smoothing)
        path = out_dir / name
        _save(fig, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write PNG plots of a run's main curves into <run_dir>/plots/.")
    parser.add_argument("run_dir", help="a run folder, e.g. outputs/grpo-Qwen2.5-0.5B-Instruct")
    parser.add_argument("--smoothing", type=float, default=0.8, help="EMA smoothing in [0, 1) (default: %(default)s)")
    args = parser.parse_args(argv)
    if not 0 <= args.smoothing < 1:
        print(f"error: --smoothing {args.smoothing} must be in [0, 1)", file=sys.stderr)
        return 2
    try:
        written = write_run_plots(args.run_dir, args.smoothing)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # plots/ is a file, a read-only folder, a full disk
        print(f"error: cannot write the plots into {Path(args.run_dir) / 'plots'}: {exc.strerror or exc}; "
              "make that path a writable folder (or remove the file in its way) and run again", file=sys.stderr)
        return 1
    if not written:
        print(f"error: {args.run_dir} has no metrics to plot (metrics/*.jsonl or a console log with step lines)",
              file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
