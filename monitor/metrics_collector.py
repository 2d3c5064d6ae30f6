"""Run discovery, incremental metric reading, run status, generation samples and GPU stats.

Offers:
    MetricsCollector(log_dir)       finds runs under --log_dir and keeps one RunState per run;
                                    `refresh()` reads only what is new since the last call.
    RunState                        one run: merged metrics table (`metrics()`), status (`status()`).
    safe_run_dir(log_dir, name)     resolves a run name from the disk or the UI to a folder inside
                                    log_dir, refusing traversal and symlinks that point outside.
    read_run_json(run_dir)          the launcher's run.json -> dict (None when absent).
    read_sample_steps(run_dir, kind)  steps that have a rollout/ or validation/ dump.
    read_samples(run_dir, kind, step) one dump -> (DataFrame, corrupt line count).
    read_gpu_stats()                per-GPU utilization/memory/temperature via NVML, else
                                    nvidia-smi, else an empty list and the reason.

A run is a folder directly under log_dir holding verl file-logger JSONL (metrics/*.jsonl or
*.jsonl at its top), a console log (*.log with verl's step lines) or the launcher's run.json.
When a run has JSONL metrics they are the source of the curves (exact values, one file per launch);
the console log is used for runs without them.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from monitor.log_parser import MetricsFile, parse_iso

__all__ = [
    "MetricsCollector",
    "RunState",
    "RunStatus",
    "safe_run_dir",
    "read_run_json",
    "read_sample_steps",
    "read_samples",
    "read_gpu_stats",
    "STEP",
    "WALL",
]

# Extra columns added to every metrics table.
STEP = "step"
WALL = "_wall_time"  # unix seconds when the step finished (estimated, see RunState._wall_times)
LAUNCH = "_launch"

_METHODS = ("grpo", "ppo", "dapo", "gspo", "sft")


class UnsafePathError(ValueError):
    """A run name or file that would resolve outside --log_dir."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def safe_run_dir(log_dir: str | os.PathLike, name: str) -> Path:
    """Resolve a run name to its folder.

    Input:  log_dir, and a run name (a single folder name as listed on the Runs tab).
    Output: the resolved Path of log_dir/name.
    Raises UnsafePathError when the name has a separator or '..', is not a folder, or resolves
    (through a symlink) outside log_dir.
    """
    root = Path(log_dir).resolve()
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UnsafePathError(f"run name {name!r} is not a folder name under {root}")
    resolved = (root / name).resolve()
    if not _inside(resolved, root) or resolved == root:
        raise UnsafePathError(f"run {name!r} resolves to {resolved}, outside --log_dir {root}: refused")
    if not resolved.is_dir():
        raise UnsafePathError(f"run {name!r} is not a folder under {root}")
    return resolved


def _safe_file(path: Path, root: Path) -> bool:
    """A file inside a run may be read only if it resolves inside log_dir."""
    try:
        return _inside(path.resolve(), root) and path.is_file()
    except OSError:
        return False


def read_run_json(run_dir: str | os.PathLike) -> tuple[dict | None, str | None]:
    """Read the launcher's run.json.

    Input:  a run folder.
    Output: (dict, None); (None, None) when absent; (None, "run.json: <problem>") when unreadable.
    """
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return None, None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        return None, f"{path}: not valid JSON ({exc}); status is inferred from the logs"
    if not isinstance(data, dict):
        return None, f"{path}: expected a JSON object; status is inferred from the logs"
    launches = data.get("launches")
    if launches is not None and not isinstance(launches, list):
        return None, f"{path}: 'launches' must be a list; status is inferred from the logs"
    return data, None


def _read_total_steps_from_config(run_dir: Path) -> int | None:
    """trainer.total_training_steps from the run's resolved config.yaml, when set."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        import yaml

        cfg = yaml.safe_load(path.read_text())
        value = (cfg or {}).get("trainer", {}).get("total_training_steps")
        return int(value) if value not in (None, "") else None
    except Exception:  # a config we cannot read must not hide the run
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@dataclass
class RunStatus:
    """What the Runs tab shows for one run."""

    name: str
    method: str
    status: str  # running | finished | failed | unknown
    detail: str
    step: int | None
    total_steps: int | None
    last_reward: float | None
    elapsed_s: float | None
    eta_s: float | None
    corrupt_lines: int
    problems: list[str] = field(default_factory=list)


class RunState:
    """Incremental state of one run folder. Not thread-safe on its own (the collector locks)."""

    def __init__(self, name: str, run_dir: Path, root: Path, stale_after_s: float = 600.0):
        self.name = name
        self.run_dir = run_dir
        self.root = root
        self.stale_after_s = stale_after_s
        self.files: dict[Path, MetricsFile] = {}
        self._df: pd.DataFrame | None = None
        self._merged: dict[int, dict[str, float]] = {}
        self._merged_launch: dict[int, int] = {}
        self.version = 0  # bumps whenever the metrics table changed
        self.refused: list[str] = []

    # ---- files -------------------------------------------------------------------------
    def _discover_files(self) -> None:
        candidates: list[tuple[Path, str]] = []
        for pattern, kind in (("metrics/*.jsonl", "jsonl"), ("*.jsonl", "jsonl"), ("*.log", "log")):
            for path in sorted(self.run_dir.glob(pattern)):
                candidates.append((path, kind))
        for path, kind in candidates:
            if path in self.files:
                continue
            if not _safe_file(path, self.root):
                msg = f"{path}: symlink pointing outside --log_dir, refused"
                if msg not in self.refused:
                    self.refused.append(msg)
                continue
            self.files[path] = MetricsFile(path, kind)

    def _ordered_sources(self) -> list[MetricsFile]:
        """Metric sources in launch order: JSONL files when there are any, else console logs."""
        jsonl = [f for f in self.files.values() if f.kind == "jsonl"]
        if jsonl:
            run_json, _ = read_run_json(self.run_dir)
            order = {}
            for i, launch in enumerate((run_json or {}).get("launches") or []):
                if isinstance(launch, dict) and launch.get("metrics_file"):
                    order[str((self.run_dir / launch["metrics_file"]).resolve())] = i
            # run.json order first; otherwise the file name (verl's <YYYYmmdd-HHMMSS>.jsonl sorts by time).
            return sorted(jsonl, key=lambda f: (order.get(str(f.path.resolve()), -1), f.path.name))
        return sorted((f for f in self.files.values() if f.kind == "log"), key=lambda f: f.path.name)

    def refresh(self) -> bool:
        """Read what is new in every file. Returns True when the metrics table changed."""
        self._discover_files()
        changed = False
        touched: set[int] = set()
        any_reset = False
        for f in list(self.files.values()):
            if not f.path.exists():
                # A file that disappeared (rotated away) no longer contributes.
                del self.files[f.path]
                any_reset = changed = True
                continue
            file_changed, reset, steps = f.update()
            changed |= file_changed
            any_reset |= reset
            touched |= steps
        if not changed and self._df is not None:
            return False
        self._merge(incremental=not any_reset, touched=touched)
        self.version += 1
        return True

    def _merge(self, incremental: bool, touched: set[int]) -> None:
        sources = self._ordered_sources()
        merged: dict[int, dict[str, float]] = {}
        launch_of: dict[int, int] = {}
        base = 0
        for f in sources:
            merged.update(f.rows)
            for step, launch in f.row_launch.items():
                launch_of[step] = base + launch
            base += max(1, len(f.launches)) if f.kind == "log" else 1
        old_max = max(self._merged) if self._merged else None
        can_append = (
            incremental
            and self._df is not None
            and old_max is not None
            and touched
            and min(touched) > old_max
            and len(merged) == len(self._merged) + len(touched)
        )
        self._merged, self._merged_launch = merged, launch_of
        if can_append:
            new_steps = sorted(touched)
            new = self._frame(new_steps)
            self._df = pd.concat([self._df, new], ignore_index=True)
        else:
            self._df = self._frame(sorted(merged))
        self._add_wall_time()

    def _frame(self, steps: list[int]) -> pd.DataFrame:
        rows = self._merged
        df = pd.DataFrame.from_records([rows[s] for s in steps]) if steps else pd.DataFrame()
        df.insert(0, STEP, np.asarray(steps, dtype=np.int64))
        df[LAUNCH] = np.asarray([self._merged_launch.get(s, 0) for s in steps], dtype=np.int64)
        return df

    def _launch_times(self) -> list[tuple[float | None, float | None]]:
        """(start, end) unix seconds per launch, from run.json, else console headers, else mtimes."""
        run_json, _ = read_run_json(self.run_dir)
        times: list[tuple[float | None, float | None]] = []
        launches = (run_json or {}).get("launches") or []
        for launch in launches:
            if not isinstance(launch, dict):
                continue
            start = parse_iso(launch.get("started"))
            end = parse_iso(launch.get("ended"))
            times.append((start.timestamp() if start else None, end.timestamp() if end else None))
        if not times:
            for f in self._ordered_sources():
                if f.kind == "log":
                    times.extend((h["started"].timestamp() if h["started"] else None, None) for h in f.launches)
        return times

    def _add_wall_time(self) -> None:
        """Estimate when each step finished.

        verl's metrics carry no timestamp. Within a launch, a step ends at the launch start plus
        the cumulative timing_s/step (verl's measured seconds per step); without timing_s/step the
        launch's steps are spread evenly between its start and its end (or the last write).
        """
        df = self._df
        if df is None or df.empty:
            return
        times = self._launch_times()
        last_write = self.last_write_time() or time.time()
        wall = np.full(len(df), np.nan)
        launch_col = df[LAUNCH].to_numpy()
        step_time = df["timing_s/step"].to_numpy(dtype=float) if "timing_s/step" in df else None
        for launch in np.unique(launch_col):
            idx = np.flatnonzero(launch_col == launch)
            start, end = times[launch] if launch < len(times) else (None, None)
            if step_time is not None and not np.all(np.isnan(step_time[idx])):
                secs = np.nan_to_num(step_time[idx], nan=float(np.nanmedian(step_time[idx])))
                if start is None:
                    start = (end or last_write) - secs.sum()
                wall[idx] = start + np.cumsum(secs)
            else:
                stop = end or last_write
                if start is None:
                    start = stop - len(idx)
                wall[idx] = np.linspace(start, stop, num=len(idx) + 1)[1:]
        df[WALL] = wall

    def metrics(self) -> pd.DataFrame:
        """The merged metrics table: one row per step (sorted), verl's keys as columns, plus
        `step`, `_launch` and `_wall_time`. Empty DataFrame when nothing was logged yet."""
        if self._df is None:
            self.refresh()
        return self._df if self._df is not None else pd.DataFrame()

    def last_write_time(self) -> float | None:
        mtimes = []
        for path in [*self.files, self.run_dir / "run.json"]:
            try:
                mtimes.append(path.stat().st_mtime)
            except OSError:
                pass
        return max(mtimes) if mtimes else None

    def corrupt(self) -> tuple[int, list[str]]:
        """(count of corrupt lines, a few examples 'file:line: reason')."""
        count, examples = 0, []
        for f in self.files.values():
            count += f.corrupt_count
            examples += [f"{Path(c.path).name}:{c.line_no}: {c.reason}" for c in f.corrupt_examples]
        return count, examples

    # ---- status ------------------------------------------------------------------------
    def method(self) -> str:
        run_json, _ = read_run_json(self.run_dir)
        if run_json and run_json.get("method") in _METHODS:
            return run_json["method"]
        for f in self.files.values():
            for header in reversed(f.launches):
                if header.get("method"):
                    return header["method"]
        df = self.metrics()
        if "train/loss" in df and not any(c.startswith("critic/") for c in df.columns):
            return "sft"
        if "critic/vf_loss" in df:
            return "ppo"
        return "unknown"

    def status(self, now: float | None = None) -> RunStatus:
        now = time.time() if now is None else now
        df = self.metrics()
        problems = list(self.refused)
        run_json, run_json_problem = read_run_json(self.run_dir)
        if run_json_problem:
            problems.append(run_json_problem)
        total = None
        if run_json and isinstance(run_json.get("total_steps"), int):
            total = run_json["total_steps"]
        if total is None:
            total = _read_total_steps_from_config(self.run_dir)
        step = int(df[STEP].iloc[-1]) if not df.empty else None
        reward = None
        for key in ("critic/score/mean", "critic/rewards/mean"):
            if key in df and df[key].notna().any():
                reward = float(df[key].dropna().iloc[-1])
                break

        status, detail = self._status_from_run_json(run_json) if run_json else (None, "")
        if status is None:
            status, detail = self._status_inferred(step, total, now)
        elapsed = self._elapsed(run_json, now)
        eta = None
        if status == "running" and total and step is not None and total > step:
            eta = self._seconds_per_step(df) * (total - step)
        count, examples = self.corrupt()
        if count:
            problems.append(f"{count} corrupt line(s) skipped, e.g. " + "; ".join(examples[:3]))
        return RunStatus(self.name, self.method(), status, detail, step, total, reward, elapsed, eta, count, problems)

    def _status_from_run_json(self, run_json: dict) -> tuple[str | None, str]:
        launches = [x for x in run_json.get("launches") or [] if isinstance(x, dict)]
        if not launches:
            return None, ""
        last = launches[-1]
        code = last.get("exit_code")
        if last.get("ended") is not None or code is not None:
            if code == 0:
                return "finished", f"launch {len(launches)} exited 0"
            return "failed", f"launch {len(launches)} exited with code {code}"
        pid, host = last.get("pid"), last.get("host")
        if host and host != socket.gethostname():
            # The pid cannot be checked on another machine: judge by log activity instead.
            age = time.time() - (self.last_write_time() or 0)
            if age < self.stale_after_s:
                return "running", f"on host {host} (not this one): last write {age:.0f} s ago"
            return "unknown", f"on host {host} (not this one), no write for {age / 60:.0f} min"
        if isinstance(pid, int) and _pid_alive(pid):
            return "running", f"pid {pid} alive"
        return "failed", f"died: pid {pid} is gone and launch {len(launches)} never recorded an exit"

    def _status_inferred(self, step, total, now) -> tuple[str, str]:
        prefix = "no run.json, inferred from the logs: "
        logs = [f for f in self.files.values() if f.kind == "log"]
        if any(f.failed_after_last_launch for f in logs):
            return "failed", prefix + "a Python traceback follows the last launch in the console log"
        if total and step is not None and step >= total:
            return "finished", prefix + f"reached step {step} of {total}"
        age = now - (self.last_write_time() or 0)
        if age < self.stale_after_s:
            return "running", prefix + f"last write {age:.0f} s ago"
        return "unknown", prefix + f"no write for {age / 60:.0f} min and no exit recorded"

    def _elapsed(self, run_json: dict | None, now: float) -> float | None:
        """Seconds spent in launches (the gaps between a crash and a resume do not count)."""
        total = 0.0
        seen = False
        last_write = self.last_write_time() or now
        times = self._launch_times()
        for i, (start, end) in enumerate(times):
            if start is None:
                continue
            is_last = i == len(times) - 1
            if end is None:
                live = run_json is not None and is_last and self._status_from_run_json(run_json)[0] == "running"
                end = now if live else last_write
            total += max(0.0, end - start)
            seen = True
        if seen:
            return total
        df = self.metrics()
        if WALL in df and not df.empty and "timing_s/step" in df:
            return float(np.nansum(df["timing_s/step"].to_numpy(dtype=float)))
        return None

    @staticmethod
    def _seconds_per_step(df: pd.DataFrame) -> float:
        """Median of the last 20 steps' timing_s/step, else the wall-time slope."""
        if "timing_s/step" in df:
            recent = df["timing_s/step"].tail(20).dropna()
            if len(recent):
                return float(recent.median())
        if WALL in df and len(df) >= 2:
            tail = df[[STEP, WALL]].tail(21).dropna()
            if len(tail) >= 2 and tail[STEP].iloc[-1] > tail[STEP].iloc[0]:
                return float((tail[WALL].iloc[-1] - tail[WALL].iloc[0]) / (tail[STEP].iloc[-1] - tail[STEP].iloc[0]))
        return math.nan


class MetricsCollector:
    """All runs under one --log_dir, refreshed incrementally. Shared by the app's handlers."""

    def __init__(self, log_dir: str | os.PathLike, stale_after_s: float = 600.0):
        self.log_dir = Path(log_dir)
        self.stale_after_s = stale_after_s
        self.runs: dict[str, RunState] = {}
        self.refused: list[str] = []
        self._lock = threading.RLock()

    @property
    def root(self) -> Path:
        return self.log_dir.resolve()

    def discover(self) -> list[str]:
        """Find run folders (new ones appear while the app is open). Returns sorted run names."""
        with self._lock:
            root = self.root
            if not root.is_dir():
                return sorted(self.runs)
            for entry in sorted(root.iterdir()):
                if entry.name in self.runs or entry.name.startswith("."):
                    continue
                try:
                    run_dir = safe_run_dir(root, entry.name)
                except UnsafePathError as exc:
                    if entry.is_symlink() and str(exc) not in self.refused:
                        self.refused.append(str(exc))
                    continue
                if _looks_like_run(run_dir):
                    self.runs[entry.name] = RunState(entry.name, run_dir, root, self.stale_after_s)
            # Runs deleted from the disk disappear from the dashboard.
            for name in [n for n, r in self.runs.items() if not r.run_dir.is_dir()]:
                del self.runs[name]
            return sorted(self.runs)

    def refresh(self) -> list[str]:
        """Discover runs and read what is new in each. Returns the names whose metrics changed."""
        with self._lock:
            self.discover()
            return [name for name, run in self.runs.items() if run.refresh()]

    def get(self, name: str) -> RunState:
        """The RunState of a listed run; KeyError with the known names otherwise."""
        with self._lock:
            if name not in self.runs:
                self.discover()
            if name not in self.runs:
                known = ", ".join(sorted(self.runs)) or "none"
                raise KeyError(f"no run named {name!r} under {self.root} (runs: {known})")
            return self.runs[name]

    def metrics(self, name: str) -> pd.DataFrame:
        with self._lock:
            run = self.get(name)
            if run._df is None:
                run.refresh()
            return run.metrics()

    def statuses(self) -> list[RunStatus]:
        with self._lock:
            self.discover()
            out = []
            for run in self.runs.values():
                if run._df is None:
                    run.refresh()
                out.append(run.status())
            return sorted(out, key=lambda s: s.name)

    def any_running(self) -> bool:
        return any(s.status == "running" for s in self.statuses())


def _looks_like_run(run_dir: Path) -> bool:
    return (
        (run_dir / "run.json").is_file()
        or any(run_dir.glob("metrics/*.jsonl"))
        or any(run_dir.glob("*.jsonl"))
        or any(run_dir.glob("*.log"))
    )


# ---- samples ------------------------------------------------------------------------------
SAMPLE_KINDS = {"rollout": "rollout", "validation": "validation"}


def read_sample_steps(run_dir: str | os.PathLike, kind: str) -> list[int]:
    """Steps with a generation dump.

    Input:  a run folder and kind "rollout" (trainer.rollout_data_dir) or "validation"
            (trainer.validation_data_dir); verl writes <dir>/<global_step>.jsonl.
    Output: sorted step numbers; [] when the folder is absent.
    """
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"sample kind {kind!r} is not one of {sorted(SAMPLE_KINDS)}")
    folder = Path(run_dir) / SAMPLE_KINDS[kind]
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.jsonl") if p.stem.isdigit())


def read_samples(run_dir: str | os.PathLike, kind: str, step: int) -> tuple[pd.DataFrame, int]:
    """One generation dump as a table.

    Input:  a run folder, kind ("rollout" | "validation") and a step listed by read_sample_steps.
    Output: (DataFrame with columns input, output, gts, score, step and verl's reward extra-info
            keys such as uid or acc; number of corrupt lines skipped). A last line still being
            written is not read.
    Raises FileNotFoundError when that step has no dump.
    """
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"sample kind {kind!r} is not one of {sorted(SAMPLE_KINDS)}")
    run_dir = Path(run_dir)
    path = run_dir / SAMPLE_KINDS[kind] / f"{int(step)}.jsonl"
    if not path.is_file() or not _inside(path.resolve(), run_dir.resolve().parent):
        raise FileNotFoundError(f"{path}: no {kind} dump for step {step}")
    data = path.read_bytes()
    end = data.rfind(b"\n")
    records, corrupt = [], 0
    for line in data[: end + 1].split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            corrupt += 1
            continue
        if not isinstance(obj, dict):
            corrupt += 1
            continue
        records.append(obj)
    df = pd.DataFrame.from_records(records)
    for col in ("input", "output", "gts", "score", "step"):
        if col not in df:
            df[col] = None
    return df, corrupt


# ---- GPU ----------------------------------------------------------------------------------
GPU_COLUMNS = ["gpu", "name", "util_pct", "mem_used_mib", "mem_total_mib", "temp_c"]


def read_gpu_stats() -> tuple[list[dict], str]:
    """Per-GPU utilization, memory and temperature of this machine.

    Output: (rows with GPU_COLUMNS, source or reason). NVML (nvidia-ml-py) first, then
            `nvidia-smi --query-gpu`; with neither, ([], "No GPU visible: <why>").
    """
    reasons = []
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            rows = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                name = pynvml.nvmlDeviceGetName(h)
                rows.append(
                    {
                        "gpu": i,
                        "name": name.decode() if isinstance(name, bytes) else name,
                        "util_pct": float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
                        "mem_used_mib": mem.used / 2**20,
                        "mem_total_mib": mem.total / 2**20,
                        "temp_c": float(pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
                    }
                )
        finally:
            pynvml.nvmlShutdown()
        if rows:
            return rows, "NVML"
        reasons.append("NVML sees 0 devices")
    except Exception as exc:  # pynvml raises NVMLError_LibraryNotFound etc. on machines without a driver
        reasons.append(f"NVML: {exc}")
    rows, reason = _nvidia_smi_stats()
    if rows:
        return rows, "nvidia-smi"
    reasons.append(reason)
    return [], "No GPU visible (" + "; ".join(reasons) + ")"


def _nvidia_smi_stats() -> tuple[list[dict], str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], "nvidia-smi: not on PATH"
    query = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu"
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi: {exc}"
    if out.returncode != 0:
        return [], f"nvidia-smi exited {out.returncode}: {(out.stderr or out.stdout).strip()[:200]}"
    rows = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 6:
            continue

        def num(text):
            try:
                return float(text)
            except ValueError:  # "[N/A]" on some boards
                return math.nan

        rows.append(
            {
                "gpu": int(num(parts[0])) if parts[0].isdigit() else parts[0],
                "name": parts[1],
                "util_pct": num(parts[2]),
                "mem_used_mib": num(parts[3]),
                "mem_total_mib": num(parts[4]),
                "temp_c": num(parts[5]),
            }
        )
    return rows, ("" if rows else "nvidia-smi listed no GPU")


def format_duration(seconds: float | None) -> str:
    """1234.5 -> '20m 34s'; None/NaN -> '-'."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
