"""Fixtures for the monitor tests: run folders written by verl's own Tracking logger.

    .venv/bin/python -m pytest tests/monitor -q

`write_verl_run` drives verl.utils.tracking.Tracking with the console and file backends (file ->
metrics/<ts>.jsonl through VERL_FILE_LOGGER_PATH, console captured into train.log), in the
launcher's folder layout (run.json, train.log with "==== launch ... ====" headers).
`write_reward_errors` writes the reward guard's reward_errors.jsonl in its documented format;
`write_run_config` the resolved config.yaml keys the dashboard reads.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest


def grpo_metrics(step: int, *, seed: int = 0, reward_slope: float = 0.01, nan_from: int | None = None) -> dict:
    """Realistic verl GRPO metric names and magnitudes (numpy scalars, as verl logs them)."""
    rng = np.random.default_rng(seed * 100_003 + step)
    reward = min(0.95, 0.1 + reward_slope * step + rng.normal(0, 0.02))
    pg_loss = float("nan") if nan_from is not None and step >= nan_from else rng.normal(0, 0.05)
    return {
        "critic/score/mean": np.float64(reward),
        "critic/score/max": np.float64(1.0),
        "critic/score/min": np.float64(0.0),
        "critic/rewards/mean": np.float64(reward),
        "critic/advantages/mean": np.float64(0.0),
        "critic/advantages/max": np.float64(1.5),
        "critic/advantages/min": np.float64(-1.5),
        "actor/pg_loss": np.float64(pg_loss),
        "actor/kl_loss": np.float64(0.001 + 0.0005 * step),
        "actor/ppo_kl": np.float64(abs(rng.normal(0, 1e-3))),
        "actor/entropy": np.float64(1.2 - 0.005 * step),
        "actor/grad_norm": np.float64(0.5 + rng.random()),
        "actor/pg_clipfrac": np.float64(0.01),
        "actor/lr": 1e-6,
        "response_length/mean": np.float64(300 + 2 * step),
        "response_length/max": np.int64(1024),
        "response_length/clip_ratio": np.float64(0.01),
        "perf/throughput": np.float64(1500 + rng.normal(0, 50)),
        "timing_s/gen": np.float64(20.0),
        "timing_s/update_actor": np.float64(8.0),
        "timing_s/step": np.float64(30.0),
        "training/global_step": step,
    }


def write_verl_run(
    run_dir: Path,
    launches: list[dict],
    *,
    method: str = "grpo",
    total_steps: int | None = 20,
    write_run_json: bool = True,
) -> Path:
    """Write a run folder the way the launcher + verl do.

    launches: [{"steps": range, "metrics": fn(step) -> dict, "exit_code": int|None,
                "pid": int, "started": datetime, "val": {step: dict}}]; each launch logs through
    a fresh verl Tracking(console + file) into its own metrics/<ts>.jsonl and appends its console
    output to train.log after the launcher's header line.
    """
    from verl.utils.tracking import Tracking

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics").mkdir(exist_ok=True)
    records = []
    for i, launch in enumerate(launches):
        started = launch.get("started") or datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc) + timedelta(hours=i)
        ts = started.strftime("%Y%m%d-%H%M%S")
        metrics_file = f"metrics/{ts}.jsonl"
        pid = launch.get("pid", 999_999_0 + i)
        header = f"==== launch {started.strftime('%Y-%m-%dT%H:%M:%SZ')} pid={pid} method={method} ====\n"
        buf = io.StringIO()
        old = os.environ.get("VERL_FILE_LOGGER_PATH")
        os.environ["VERL_FILE_LOGGER_PATH"] = str(run_dir / metrics_file)
        try:
            with contextlib.redirect_stdout(buf):
                tracker = Tracking("proj", run_dir.name, default_backend=["console", "file"])
                for step in launch["steps"]:
                    tracker.log(data=launch["metrics"](step), step=step)
                    if step in launch.get("val", {}):
                        tracker.log(data=launch["val"][step], step=step)
                tracker.finish()
        finally:
            if old is None:
                os.environ.pop("VERL_FILE_LOGGER_PATH", None)
            else:
                os.environ["VERL_FILE_LOGGER_PATH"] = old
        # Ray prefixes the TaskRunner's stdout and colours the prefix.
        prefixed = "".join(f"\x1b[36m(TaskRunner pid={pid})\x1b[0m {line}\n" for line in buf.getvalue().splitlines())
        if launch.get("traceback"):
            prefixed += "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: CUDA error\n"
        with open(run_dir / "train.log", "a") as f:
            f.write(header + prefixed)
        code = launch.get("exit_code", 0)
        ended = launch.get("ended", started + timedelta(seconds=30 * len(launch["steps"])) if code is not None else None)
        records.append({
            "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pid": pid,
            "host": launch.get("host", socket.gethostname()),
            "metrics_file": metrics_file,
            "ended": ended.strftime("%Y-%m-%dT%H:%M:%SZ") if ended else None,
            "exit_code": code,
        })
    if write_run_json:
        (run_dir / "run.json").write_text(json.dumps({
            "method": method, "experiment": run_dir.name, "project": "proj",
            "total_steps": total_steps, "launches": records,
        }))
    return run_dir


def write_dump(run_dir: Path, kind: str, step: int, n: int = 8, seed: int = 0, group: int = 4) -> Path:
    """A generation dump in the exact layout of verl's _write_generations (json.dumps per line): prompts
    of `group` responses each, uid "<prompt uid>_<rollout>_<output>" as verl's rollout dump writes it."""
    folder = run_dir / kind
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + step)
    path = folder / f"{step}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            g = i // group
            score = float(rng.integers(0, 2))
            entry = {"input": f"user\nWhat is {g} + {step}?\nassistant\n",
                     "output": f"<think>add {g} and {step}\nstep by step</think>\nThe answer is \\boxed{{{g + step if score else 0}}}",
                     "gts": str(g + step), "score": score, "step": step, "acc": bool(score),
                     "uid": f"u{g}_{i % group}_0"}
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def write_reward_errors(run_dir: Path, entries: list[dict]) -> Path:
    """reward_errors.jsonl: one {"time", "kind", "data_source", "error", "excerpt", "first"} per entry;
    entries give "time" as a datetime (others default), "first" is set on each distinct error's first line."""
    seen = set()
    path = run_dir / "reward_errors.jsonl"
    with open(path, "a") as f:
        for e in entries:
            error = e.get("error", "ValueError: could not parse the answer")
            kind = e.get("kind", "exception")
            rec = {"time": e["time"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "kind": kind,
                   "data_source": e.get("data_source", "openai/gsm8k"), "error": error,
                   "excerpt": e.get("excerpt", "The answer is \\boxed{4"), "first": (kind, error) not in seen}
            seen.add((kind, error))
            f.write(json.dumps(rec) + "\n")
    return path


def write_run_config(run_dir: Path, train_batch_size: int = 8, n: int = 4, total_steps: int | None = None) -> Path:
    """The launcher's resolved config.yaml, reduced to the keys the dashboard reads."""
    import yaml

    cfg = {"data": {"train_batch_size": train_batch_size}, "actor_rollout_ref": {"rollout": {"n": n}},
           "trainer": {"total_training_steps": total_steps}}
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def log_dir(tmp_path) -> Path:
    d = tmp_path / "outputs"
    d.mkdir()
    return d


@pytest.fixture
def make_run():
    return write_verl_run


@pytest.fixture
def make_dump():
    return write_dump


__all__ = ["grpo_metrics", "write_verl_run", "write_dump", "write_reward_errors", "write_run_config", "math"]
