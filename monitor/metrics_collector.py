"""Run discovery, lazy columnar metric reading, run status, generation samples and GPU stats.

Offers:
    MetricsCollector(log_dir)       finds runs under --log_dir and keeps one RunState per run;
                                    `refresh()` reads only what is new in the runs already loaded;
                                    `statuses()` needs only each run's tail; `frames(names, keys)`
                                    gives curves data (a run too big to parse at once is shown from
                                    an evenly spaced preview while a background thread loads it);
                                    loaded tables beyond `memory_budget_mb` are dropped, least
                                    recently used first. A run that cannot be read becomes that
                                    run's problem, never another run's.
    RunState                        one run: `load()`, `metrics()` (DataFrame), `frame(keys)`,
                                    `summary()` (from the tail), `status()`, `wall_times()`.
    RunStatus                       what the Runs tab shows for one run.
    safe_run_dir(log_dir, name)     resolves a run name to a folder inside log_dir, refusing
                                    traversal and symlinks that point outside.
    resolve_run(log_dir, name)      "folder" or "project/experiment" (verl's own layout) -> (folder, file).
    read_run_json(run_dir)          the launcher's run.json -> (dict | None, problem | None).
    read_run_config(run_dir)        train_batch_size, rollout_n, total_training_steps from config.yaml.
    read_error_lines(log_path)      the last error (traceback) of a console log, redacted.
    read_sample_steps(run_dir, kind)  steps that have a rollout/ or validation/ dump.
    read_samples(run_dir, kind, step) one dump -> (DataFrame, corrupt line count).
    read_gpu_stats()                per-GPU utilization/memory/temperature via NVML, else
                                    nvidia-smi, else an empty list and the reason.
    format_duration(seconds)        1234.5 -> '20m 34s'.

A run is
  * a folder directly under log_dir holding the launcher's files (run.json, metrics/*.jsonl,
    *.log): JSONL launches are merged by step; the console log is read for metrics only when the
    run has no JSONL;
  * one JSONL file of verl's own file-logger layout, <project>/<experiment>.jsonl (a folder with
    JSONL files and none of the launcher's): named "project/experiment"; or a top-level
    <experiment>.jsonl when --log_dir is the project folder itself.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from monitor.log_parser import (
    TRACEBACK_MARKERS,
    CorruptLine,
    TailReader,
    parse_console_line,
    parse_iso,
    parse_jsonl_line,
    parse_launch_header,
    read_tail_lines,
)
from monitor.metrics_store import (
    MAX_EXAMPLES,
    MAX_KEYS,
    Block,
    ConsoleState,
    MetricsStore,
    parse_console_block,
    parse_jsonl_block,
)
from common.redaction import redact_for_display as redact
from monitor.reward_errors import REWARD_ERRORS_FILE, RewardErrorLog

__all__ = [
    "MetricsCollector",
    "RunState",
    "RunStatus",
    "UnsafePathError",
    "safe_run_dir",
    "resolve_run",
    "read_run_json",
    "read_run_config",
    "read_error_lines",
    "read_sample_steps",
    "read_samples",
    "read_gpu_stats",
    "format_duration",
    "STEP",
    "WALL",
    "LAUNCH",
]

# Extra columns of every metrics table.
STEP = "step"
WALL = "_wall_time"  # unix seconds when the step finished (estimated, see RunState.wall_times)
LAUNCH = "_launch"

_METHODS = ("grpo", "ppo", "dapo", "gspo", "sft")
REWARD_KEYS = ("critic/score/mean", "critic/rewards/mean")
SFT_LOSS_KEYS = ("train/loss", "val/loss")
# The runs table reads this much of each run's newest metrics file: ~85 records of 80 metrics.
TAIL_BYTES = 256 * 1024
# Runs whose metric files total less than this are parsed at once (~0.1 s); bigger ones are shown
# from a preview first and parsed by the background loader (a 154 MB, 50,000-step file: ~2 s).
SYNC_LOAD_BYTES = 8 * 2**20
# Points of a preview: the curves draw at most max_points_per_curve (2,000) points anyway.
PREVIEW_POINTS = 2000
# The launcher names each launch's metrics file after its start: metrics/20261121-100000.jsonl.
_FILE_TS_RE = re.compile(r"(\d{8}-\d{6})")
# Error lines shown for a failed run, and the console-log tail searched for them.
ERROR_LINES = 12
_ERROR_HINT_RE = re.compile(rb"(Error|Exception|error:|Killed|FAILED|Traceback|CUDA out of memory|OOM)")
_ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class UnsafePathError(ValueError):
    """A run name or file that would resolve outside --log_dir."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _bad_name(name: str) -> bool:
    return not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name


def safe_run_dir(log_dir: str | os.PathLike, name: str) -> Path:
    """Resolve a folder name to its folder.

    Input:  log_dir, and a folder name (a single path component).
    Output: the resolved Path of log_dir/name.
    Raises UnsafePathError when the name has a separator or '..', is not a folder, or resolves
    (through a symlink) outside log_dir.
    """
    root = Path(log_dir).resolve()
    if not isinstance(name, str) or _bad_name(name):
        raise UnsafePathError(f"run name {name!r} is not a folder name under {root}")
    resolved = (root / name).resolve()
    if not _inside(resolved, root) or resolved == root:
        raise UnsafePathError(f"run {name!r} resolves to {resolved}, outside --log_dir {root}: refused")
    if not resolved.is_dir():
        raise UnsafePathError(f"run {name!r} is not a folder under {root}")
    return resolved


def resolve_run(log_dir: str | os.PathLike, name: str) -> tuple[Path, Path | None]:
    """A run name -> (folder, single JSONL file or None).

    "exp" is a launcher run folder (or, when log_dir/exp.jsonl is a file, that file); "proj/exp" is
    proj/exp.jsonl of verl's own layout. Raises UnsafePathError for anything resolving outside log_dir.
    """
    root = Path(log_dir).resolve()
    if not isinstance(name, str):
        raise UnsafePathError(f"run name {name!r} is not text")
    folder, sep, stem = name.partition("/")
    if not sep:
        candidate = root / f"{name}.jsonl"
        if not _bad_name(name) and not (root / name).is_dir() and candidate.is_file():
            resolved = candidate.resolve()
            if not _inside(resolved, root):
                raise UnsafePathError(f"run {name!r} resolves to {resolved}, outside --log_dir {root}: refused")
            return root, resolved
        return safe_run_dir(root, name), None
    if _bad_name(stem):
        raise UnsafePathError(f"run name {name!r} is not project/experiment under {root}")
    run_dir = safe_run_dir(root, folder)
    file = (run_dir / f"{stem}.jsonl").resolve()
    if not _inside(file, root) or not file.is_file():
        raise UnsafePathError(f"run {name!r}: {run_dir / (stem + '.jsonl')} is not a file inside --log_dir")
    return run_dir, file


def _safe_file(path: Path, root: Path) -> bool:
    """A file inside a run may be read only if it resolves inside log_dir."""
    try:
        return _inside(path.resolve(), root) and path.is_file()
    except OSError:
        return False


# run.json is written by the launcher; a few KB. Anything past 4 MB is not one.
_MAX_SMALL_FILE = 4 * 2**20


def read_run_json(run_dir: str | os.PathLike) -> tuple[dict | None, str | None]:
    """Read the launcher's run.json.

    Input:  a run folder.
    Output: (dict, None); (None, None) when absent; (None, "run.json: <problem>") when unreadable.
    """
    path = Path(run_dir) / "run.json"
    try:
        if not path.is_file():
            return None, None
        if path.stat().st_size > _MAX_SMALL_FILE:
            return None, f"{path}: larger than 4 MB, not the launcher's run.json; status is inferred from the logs"
        raw = path.read_bytes()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # Python's json also reads integers past 64 bits and NaN literals (one odd value
            # must not make the whole file unreadable); it raises what orjson would otherwise.
            data = json.loads(raw)
    except (OSError, ValueError, RecursionError) as exc:
        return None, f"{path}: not valid JSON ({str(exc)[:120]}); status is inferred from the logs"
    if not isinstance(data, dict):
        return None, f"{path}: expected a JSON object; status is inferred from the logs"
    launches = data.get("launches")
    if launches is not None and not isinstance(launches, list):
        return None, f"{path}: 'launches' must be a list; status is inferred from the logs"
    return data, None


def _positive_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 0 < value < 2**53 else None


_CONFIG_CACHE: dict[str, tuple[float, int, dict]] = {}
_CONFIG_LOCK = threading.Lock()


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """What the dashboard needs from the run's resolved config.yaml.

    Output: {"train_batch_size", "rollout_n", "total_training_steps"} where present and sane
            ({} when the file is absent, unreadable or not a mapping). Cached by mtime.
    """
    path = Path(run_dir) / "config.yaml"
    try:
        st = path.stat()
    except OSError:
        return {}
    key = str(path)
    with _CONFIG_LOCK:
        hit = _CONFIG_CACHE.get(key)
        if hit and hit[0] == st.st_mtime and hit[1] == st.st_size:
            return hit[2]
    out: dict = {}
    if stat.S_ISREG(st.st_mode) and st.st_size <= _MAX_SMALL_FILE:
        try:
            import yaml

            cfg = yaml.safe_load(path.read_text(errors="replace"))
        except Exception:  # a config we cannot read must not hide the run
            cfg = None
        if isinstance(cfg, dict):
            def get(*keys):
                node = cfg
                for k in keys:
                    node = node.get(k) if isinstance(node, dict) else None
                return node

            for name, keys in (("train_batch_size", ("data", "train_batch_size")),
                               ("rollout_n", ("actor_rollout_ref", "rollout", "n")),
                               ("total_training_steps", ("trainer", "total_training_steps"))):
                value = _positive_int(get(*keys))
                if value is not None:
                    out[name] = value
    with _CONFIG_LOCK:
        _CONFIG_CACHE[key] = (st.st_mtime, st.st_size, out)
    return out


def read_error_lines(log_path: str | os.PathLike, max_lines: int = ERROR_LINES, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The last error of a console log, read from its end only.

    Output: the last Python traceback (its first lines and its last lines, the exception message
            last), else the last lines that look like errors; ANSI colours stripped, secrets
            redacted; [] when the tail has no error.
    """
    # A progress bar rewrites its line with carriage returns: keep what a terminal shows (the last part).
    lines = [_ANSI_RE.sub(b"", line).rstrip(b"\r").rsplit(b"\r", 1)[-1] for line in read_tail_lines(log_path, max_bytes)]
    start = None
    for i in range(len(lines) - 1, -1, -1):
        if any(m in lines[i] for m in TRACEBACK_MARKERS):
            start = i
            break
    if start is not None:
        block = [line for line in lines[start:] if line.strip()]
        # Ray repeats the traceback of a failed actor; the end holds the exception that ended the run.
        if len(block) > max_lines:
            block = block[:2] + [b"..."] + block[-(max_lines - 3):]
    else:
        block = [line for line in lines if _ERROR_HINT_RE.search(line)][-max_lines:]
    return [redact(line.decode("utf-8", errors="replace"))[:400] for line in block]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def _launcher_alive(pid: int) -> bool:
    """The launcher (a Python process) recorded in run.json is alive: its pid exists and, where
    /proc tells, still runs Python. A run that died long ago leaves a pid the system may have
    given to another program since."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError, OverflowError):
        return True  # no /proc (macOS) or not ours to read: the pid is all we know
    return b"python" in cmdline.lower() or not cmdline  # empty: a zombie or a kernel thread's view


def _file_timestamp(path: Path) -> float | None:
    m = _FILE_TS_RE.search(path.stem)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def _shown(value, limit: int = 20) -> str:
    """A run.json value in a message: redacted whole, then cut (never cut first: a cut secret
    no longer looks like one)."""
    return redact(str(value))[:limit]


def _ts(value) -> float | None:
    dt = parse_iso(value)
    return dt.timestamp() if dt else None


@dataclass
class RunStatus:
    """What the Runs tab shows for one run."""

    name: str
    method: str
    status: str  # running | finished | failed | unknown | unreadable
    detail: str
    step: int | None
    total_steps: int | None
    last_reward: float | None
    elapsed_s: float | None
    eta_s: float | None
    corrupt_lines: int | None  # None: the run's files were not read in full yet
    problems: list[str] = field(default_factory=list)
    last_loss: float | None = None  # SFT: train/loss
    last_val_loss: float | None = None
    reward_errors: int = 0
    error_lines: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """A run's newest records, read from the end of its newest metrics file."""

    last_step: int | None = None
    last: dict[str, float] = field(default_factory=dict)  # key -> last finite value
    step_time: float = math.nan  # median timing_s/step of the last 20 records
    keys: set[str] = field(default_factory=set)
    method_hint: str | None = None
    corrupt_in_tail: int = 0


class MetricSource:
    """One metrics file of a run (verl JSONL or a console log) and its incremental parse state."""

    def __init__(self, path: Path, kind: str):
        self.path = path
        self.kind = kind  # "jsonl" | "log"
        self.reader = TailReader(path)
        self.console = ConsoleState()
        self.corrupt_count = 0
        self.examples: list[CorruptLine] = []

    def read(self) -> tuple[list[Block], bool]:
        """New blocks since the last read, and whether the file was reset (re-read from byte 0)."""
        blocks = []
        for data, first in self.reader.read_chunks():
            if self.kind == "jsonl":
                block, examples, count = parse_jsonl_block(data, first, str(self.path))
            else:
                block, examples, count = parse_console_block(data, first, str(self.path), self.console)
            self._corrupt(examples, count)
            if len(block):
                blocks.append(block)
        if self.reader.overlong:
            self._corrupt([CorruptLine(str(self.path), n, "line longer than 32 MiB (binary data?), skipped")
                           for n in self.reader.overlong], len(self.reader.overlong))
            self.reader.overlong = []
        return blocks, self.reader.reset

    def _corrupt(self, examples: list[CorruptLine], count: int) -> None:
        self.corrupt_count += count
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(examples[:room])


class RunState:
    """One run. Its metrics are parsed only when asked (`load()`); the Runs tab needs only
    `summary()`, read from the end of the newest file. Thread-safe through `lock`."""

    def __init__(self, name: str, run_dir: Path, root: Path, stale_after_s: float = 600.0,
                 only_file: Path | None = None):
        self.name = name
        self.run_dir = run_dir
        self.root = root
        self.only_file = only_file
        self.stale_after_s = stale_after_s
        self.lock = threading.RLock()
        self.store: MetricsStore | None = None
        self.sources: dict[Path, MetricSource] = {}
        self._order: list[Path] = []
        self.version = 0  # bumps whenever the loaded table changed
        self.refused: list[str] = []
        self.last_used = 0.0
        self.load_error: str | None = None
        self._wall: tuple[int, np.ndarray] | None = None
        self._tail: tuple[tuple, RunSummary] | None = None
        self._preview: tuple[tuple, MetricsStore] | None = None
        self._errors_cache: tuple[tuple, list[str]] | None = None
        self._alerts_cache: tuple | None = None  # (key, alerts) kept by the Alerts tab
        self.reward_errors = RewardErrorLog(run_dir / REWARD_ERRORS_FILE) if only_file is None else None

    # ---- files ---------------------------------------------------------------------------
    def metric_files(self) -> tuple[list[Path], str]:
        """The files the metrics come from, in launch order, and their kind ("jsonl" or "log")."""
        if self.only_file is not None:
            return [self.only_file], "jsonl"
        jsonl, logs = [], []
        for pattern, bucket in (("metrics/*.jsonl", jsonl), ("*.jsonl", jsonl), ("*.log", logs)):
            for path in sorted(self.run_dir.glob(pattern)):
                if path.name == REWARD_ERRORS_FILE:
                    continue
                if not _safe_file(path, self.root):
                    msg = f"{path}: symlink pointing outside --log_dir, refused"
                    if msg not in self.refused and path.is_symlink():
                        self.refused.append(msg)
                    continue
                bucket.append(path)
        if jsonl:
            run_json, _ = read_run_json(self.run_dir)
            order = {}
            for i, launch in enumerate((run_json or {}).get("launches") or []):
                if isinstance(launch, dict) and isinstance(launch.get("metrics_file"), str):
                    order[str((self.run_dir / launch["metrics_file"]).resolve())] = i
            # run.json order first; otherwise the file name (<YYYYmmdd-HHMMSS>.jsonl sorts by time).
            return sorted(jsonl, key=lambda p: (order.get(str(p.resolve()), -1), p.name)), "jsonl"
        return logs, "log"

    def _sizes(self) -> tuple:
        files, _ = self.metric_files()
        out = []
        for p in files:
            try:
                st = p.stat()
                out.append((str(p), st.st_size, st.st_mtime))
            except OSError:
                pass
        return tuple(out)

    def data_version(self) -> tuple:
        """Changes whenever what frame() would return changes (loaded: the table's version)."""
        return ("loaded", self.version) if self.store is not None else ("files", self._sizes())

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self._sizes())

    # ---- loading -------------------------------------------------------------------------
    def load(self) -> bool:
        """Parse everything not yet parsed (all of it the first time). True when the table changed."""
        with self.lock:
            self.last_used = time.monotonic()
            try:
                changed = self._load()
                self.load_error = None
            except Exception as exc:  # a file we cannot parse is this run's problem, not the app's
                self.load_error = f"reading the metrics failed: {type(exc).__name__}: {redact(str(exc))[:300]}"
                changed = False
                if self.store is None:
                    self.store = MetricsStore()
                    changed = True
            if changed:
                self.version += 1
            return changed

    def _load(self) -> bool:
        files, kind = self.metric_files()
        cold = self.store is None or files[: len(self._order)] != self._order
        if cold:
            self.store, self.sources, self._order = MetricsStore(), {}, []
        changed = cold
        for path in self._order:
            if not path.exists():
                # A launch's file was deleted: its rows must go, so read everything again.
                self.store, self.sources, self._order = MetricsStore(), {}, []
                return self._load() or True
        self._order = list(files)
        for launch, path in enumerate(files):
            src = self.sources.get(path)
            if src is None:
                src = self.sources[path] = MetricSource(path, kind)
            if not src.reader.changed() and not cold:
                continue
            blocks, reset = src.read()
            if reset and not cold:
                # Truncated or rewritten (verl reopens its file with "wb"): rebuild from scratch.
                self.store, self.sources, self._order = MetricsStore(), {}, []
                return self._load() or True
            for block in blocks:
                if kind == "log" and block.launch is not None:
                    block.launch = block.launch + launch * 10_000
                self.store.upsert(block, launch)
                changed = True
        if cold:
            self.store.compact()
        return changed

    def drop(self) -> None:
        """Forget the parsed table (memory budget); the next load() parses the files again."""
        with self.lock:
            self.store, self.sources, self._order, self._wall = None, {}, [], None

    @property
    def loaded(self) -> bool:
        return self.store is not None

    # ---- tables --------------------------------------------------------------------------
    def metrics(self) -> pd.DataFrame:
        """The merged metrics table: one row per step (sorted), verl's keys as columns, plus
        `step`, `_launch` and `_wall_time`. Empty DataFrame when nothing was logged yet."""
        with self.lock:
            if self.store is None:
                self.load()
            return self.frame(None)

    def frame(self, keys: list[str] | None = None) -> pd.DataFrame:
        """Loaded table -> DataFrame with step, _launch, _wall_time and the requested keys."""
        with self.lock:
            self.last_used = time.monotonic()
            store = self.store if self.store is not None else MetricsStore()
            return store.frame(keys, extra={WALL: self.wall_times() if self.store is not None else np.zeros(0)})

    def columns(self) -> list[str]:
        store = self.store if self.store is not None else self.preview()
        return store.keys

    def preview(self, points: int | None = None) -> MetricsStore:
        """Evenly spaced records of the run's files (one seek each), merged like the full table.

        For drawing a big run at once while it loads: the curves show at most ~2,000 points per
        run anyway. Cached until the files change.
        """
        points = points or PREVIEW_POINTS
        key = self._sizes()
        hit = self._preview
        if hit is not None and hit[0] == key:
            return hit[1]
        files, kind = self.metric_files()
        store = MetricsStore()
        total = sum(size for _, size, _ in key) or 1
        for launch, (path, size, _) in enumerate(key):
            k = max(2, int(points * size / total))
            lines = _sample_lines(Path(path), size, k)
            if not lines:
                continue
            data = b"\n".join(lines) + b"\n"
            if kind == "jsonl":
                # One pyarrow read of the ~2,000 sampled lines (line by line only if one of them is odd).
                block, _, _ = parse_jsonl_block(data, 1, path)
            else:
                block, _, _ = parse_console_block(data, 1, path, ConsoleState())
                block.launch = None
            store.upsert(block, launch)
        self._preview = (key, store)
        return store

    def preview_frame(self, keys: list[str] | None = None) -> pd.DataFrame:
        store = self.preview()
        return store.frame(keys, extra={WALL: self._wall_for(store)})

    def wall_times(self) -> np.ndarray:
        """Estimated unix time each loaded step finished (cached per table version)."""
        with self.lock:
            if self.store is None:
                return np.zeros(0)
            if self._wall is not None and self._wall[0] == self.version:
                return self._wall[1]
            wall = self._wall_for(self.store)
            self._wall = (self.version, wall)
            return wall

    def _launch_times(self) -> dict[int, tuple[float | None, float | None]]:
        """launch index -> (start, end) unix seconds.

        JSONL: the run.json record whose metrics_file is that file (start, end), else the start in
        the file name (metrics/<YYYYmmdd-HHMMSS>.jsonl) and the file's last write as its end (the
        file logger writes once per step, so its mtime is when the last step finished).
        Console logs: the launcher's header lines (start only).
        """
        files, kind = self.metric_files()
        times: dict[int, tuple[float | None, float | None]] = {}
        if kind == "jsonl":
            run_json, _ = read_run_json(self.run_dir)
            by_file = {}
            for launch in (run_json or {}).get("launches") or []:
                if isinstance(launch, dict) and isinstance(launch.get("metrics_file"), str):
                    by_file[str((self.run_dir / launch["metrics_file"]).resolve())] = launch
            for i, path in enumerate(files):
                rec = by_file.get(str(path.resolve()), {})
                start = _ts(rec.get("started")) or _file_timestamp(path)
                end = _ts(rec.get("ended"))
                try:
                    # The file's last write is its last step; "ended" may come much later (a hang
                    # before a crash, the checkpoint merge): the earlier of the two.
                    mtime = path.stat().st_mtime
                    end = mtime if end is None else min(end, mtime)
                except OSError:
                    pass
                times[i] = (start, end)
            return times
        for i, path in enumerate(files):
            src = self.sources.get(path)
            for h, header in enumerate(src.console.launches if src else []):
                times[i * 10_000 + h] = (header["started"].timestamp() if header.get("started") else None, None)
        return times

    def _wall_for(self, store: MetricsStore) -> np.ndarray:
        """Within a launch, a step ends at the launch's end minus the timing_s/step of the steps
        after it (or at its start plus the cumulative timing_s/step when the end is unknown);
        without timing_s/step the launch's steps are spread evenly over its span."""
        n = store.n
        if n == 0:
            return np.zeros(0)
        times = self._launch_times()
        last_write = self.last_write_time() or time.time()
        wall = np.full(n, np.nan)
        launch_col = store.launch
        step_time = store.column("timing_s/step") if "timing_s/step" in store.keys else None
        for launch in np.unique(launch_col):
            idx = np.flatnonzero(launch_col == launch)
            start, end = times.get(int(launch), (None, None))
            # Steps of this launch that a resumed launch logged again came after the ones kept.
            lost_s, lost_rows = store.superseded.get(int(launch), (0.0, 0))
            secs = None
            if step_time is not None:
                raw = step_time[idx]
                finite = np.isfinite(raw) & (raw >= 0)
                if finite.any():
                    secs = np.where(finite, raw, float(np.median(raw[finite])))
            if secs is not None:
                if end is None and start is None:
                    end = last_write
                if end is not None:
                    after = np.cumsum(secs[::-1])[::-1] - secs
                    wall[idx] = end - lost_s - after
                else:
                    wall[idx] = start + np.cumsum(secs)
            else:
                stop = end or last_write
                begin = start if start is not None else stop - len(idx) - lost_rows
                wall[idx] = np.linspace(begin, stop, num=len(idx) + lost_rows + 1)[1: len(idx) + 1]
        with np.errstate(invalid="ignore", over="ignore"):
            wall[~np.isfinite(wall)] = np.nan
        return wall

    def last_write_time(self) -> float | None:
        files, _ = self.metric_files()
        mtimes = []
        for path in [*files, self.run_dir / "run.json"] if self.only_file is None else files:
            try:
                mtimes.append(path.stat().st_mtime)
            except OSError:
                pass
        return max(mtimes) if mtimes else None

    def corrupt(self) -> tuple[int | None, list[str]]:
        """(corrupt lines in the parsed files, or None before a full parse; a few 'file:line: why')."""
        if self.store is None:
            return None, []
        count, examples = 0, []
        for src in list(self.sources.values()):
            count += src.corrupt_count
            examples += [f"{Path(c.path).name}:{c.line_no}: {redact(c.reason)}" for c in src.examples]
        return count, examples

    # ---- the tail ------------------------------------------------------------------------
    def summary(self) -> RunSummary:
        """Last step, last reward/loss and recent step time from the newest file's last 256 KB."""
        files, kind = self.metric_files()
        key = self._sizes()
        if self._tail is not None and self._tail[0] == key:
            return self._tail[1]
        out = RunSummary()
        times = []
        for path in reversed(files):
            records = []
            for line in read_tail_lines(path, TAIL_BYTES):
                if kind == "log" and b"==== launch" in line:
                    header = parse_launch_header(line)
                    if header and header.get("method"):
                        out.method_hint = header["method"]
                    continue
                try:
                    parsed = parse_jsonl_line(line) if kind == "jsonl" else parse_console_line(line)
                except ValueError:
                    out.corrupt_in_tail += 1
                    continue
                if parsed is not None:
                    records.append(parsed)
            if not records:
                continue
            out.last_step = max(step for step, _ in records)
            for step, metrics in records:
                out.keys.update(metrics)
                for k, v in metrics.items():
                    if math.isfinite(v):
                        out.last[k] = v
                if "timing_s/step" in metrics and math.isfinite(metrics["timing_s/step"]):
                    times.append(metrics["timing_s/step"])
            break
        if times:
            out.step_time = float(np.median(times[-20:]))
        self._tail = (key, out)
        return out

    def error_lines(self) -> list[str]:
        """The last error printed into the run's console log (train.log), redacted."""
        if self.only_file is not None:
            return []
        logs = sorted(p for p in self.run_dir.glob("*.log") if _safe_file(p, self.root))
        if not logs:
            return []
        log = max(logs, key=lambda p: p.stat().st_mtime)
        st = log.stat()
        key = (str(log), st.st_size, st.st_mtime)
        if self._errors_cache is not None and self._errors_cache[0] == key:
            return self._errors_cache[1]
        lines = read_error_lines(log)
        self._errors_cache = (key, lines)
        return lines

    # ---- status --------------------------------------------------------------------------
    def method(self, summary: RunSummary | None = None, run_json: dict | None = None) -> str:
        if run_json and run_json.get("method") in _METHODS:
            return run_json["method"]
        summary = summary or self.summary()
        if summary.method_hint in _METHODS:
            return summary.method_hint
        if self.only_file is None and not summary.method_hint:
            log = self.run_dir / "train.log"
            for line in read_tail_lines(log, TAIL_BYTES) if log.is_file() and _safe_file(log, self.root) else []:
                header = parse_launch_header(line) if b"==== launch" in line else None
                if header and header.get("method") in _METHODS:
                    summary.method_hint = header["method"]
            if summary.method_hint in _METHODS:
                return summary.method_hint
        keys = summary.keys
        if "train/loss" in keys and not any(k.startswith("critic/") for k in keys):
            return "sft"
        if "critic/vf_loss" in keys:
            return "ppo"
        return "unknown"

    def status(self, now: float | None = None) -> RunStatus:
        now = time.time() if now is None else now
        summary = self.summary()
        problems = list(self.refused)
        run_json, run_json_problem = read_run_json(self.run_dir) if self.only_file is None else (None, None)
        if run_json_problem:
            problems.append(run_json_problem)
        if self.load_error:
            problems.append(self.load_error)
        store = self.store
        if store is not None and store.dropped_count:
            problems.append(f"{store.dropped_count} metric key(s) past the first {MAX_KEYS} were not read, e.g. "
                            + ", ".join(sorted(k[:60] for k in store.dropped_keys)))
        total = _positive_int((run_json or {}).get("total_steps"))
        if total is None and self.only_file is None:
            total = read_run_config(self.run_dir).get("total_training_steps")
        step = summary.last_step
        reward = next((summary.last[k] for k in REWARD_KEYS if k in summary.last), None)
        status, detail = self._status_from_run_json(run_json) if run_json else (None, "")
        if status is None:
            status, detail = self._status_inferred(step, total, now)
        errors = self.error_lines() if status in ("failed", "unknown") else []
        if status == "failed" and errors:
            detail += f": {errors[-1][:200]}"
        elapsed = self._elapsed(run_json, now, summary)
        eta = None
        if status == "running" and total and step is not None and total > step:
            eta = _seconds_per_step(summary) * (total - step)
        count, examples = self.corrupt()
        if count:
            problems.append(f"{count} corrupt line(s) skipped, e.g. " + "; ".join(examples[:3]))
        elif count is None and summary.corrupt_in_tail:
            problems.append(f"{summary.corrupt_in_tail} corrupt line(s) among the last records")
        n_errors = 0
        if self.reward_errors is not None:
            self.reward_errors.refresh()
            n_errors = self.reward_errors.count
        return RunStatus(self.name, self.method(summary, run_json), status, detail, step, total, reward, elapsed, eta,
                         count, problems, last_loss=summary.last.get("train/loss"),
                         last_val_loss=summary.last.get("val/loss"), reward_errors=n_errors, error_lines=errors)

    def _status_from_run_json(self, run_json: dict) -> tuple[str | None, str]:
        launches = [x for x in run_json.get("launches") or [] if isinstance(x, dict)]
        if not launches:
            return None, ""
        last = launches[-1]
        code = last.get("exit_code")
        if isinstance(code, str) and re.fullmatch(r"-?[0-9]{1,9}", code.strip()):
            code = int(code)  # "1" written by hand or by another tool
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            return "unknown", (f"run.json: launch {len(launches)}'s exit_code {_shown(code)} is not an integer "
                               "(the launcher writes the process's exit code, e.g. 0 or 1)")
        if last.get("ended") is not None or code is not None:
            if code == 0:
                return "finished", f"launch {len(launches)} exited 0"
            return "failed", f"launch {len(launches)} exited with code {_shown(code)}"
        pid, host = last.get("pid"), last.get("host")
        if isinstance(host, str) and host and host != socket.gethostname():
            # The pid cannot be checked on another machine: judge by log activity instead.
            age = time.time() - (self.last_write_time() or 0)
            if age < self.stale_after_s:
                return "running", f"on host {_shown(host, 60)} (not this one): last write {age:.0f} s ago"
            return "unknown", f"on host {_shown(host, 60)} (not this one), no write for {age / 60:.0f} min"
        if isinstance(pid, int) and not isinstance(pid, bool) and _pid_alive(pid):
            if _launcher_alive(pid):
                return "running", f"pid {pid} alive"
            return "failed", (f"died: pid {pid} now belongs to another program (not Python) and launch "
                              f"{len(launches)} never recorded an exit")
        return "failed", f"died: pid {_shown(pid)} is gone and launch {len(launches)} never recorded an exit"

    def _status_inferred(self, step, total, now) -> tuple[str, str]:
        prefix = "no run.json, inferred from the logs: "
        if self.only_file is None:
            for log in self.run_dir.glob("*.log"):
                if not _safe_file(log, self.root):
                    continue
                tail = read_tail_lines(log, TAIL_BYTES)
                last_header = max((i for i, line in enumerate(tail) if b"==== launch" in line), default=-1)
                if any(m in line for line in tail[last_header + 1:] for m in TRACEBACK_MARKERS):
                    return "failed", prefix + "a Python traceback follows the last launch in the console log"
        if total and step is not None and step >= total:
            return "finished", prefix + f"reached step {step} of {total}"
        age = now - (self.last_write_time() or 0)
        if age < self.stale_after_s:
            return "running", prefix + f"last write {age:.0f} s ago"
        return "unknown", prefix + f"no write for {age / 60:.0f} min and no exit recorded"

    def _elapsed(self, run_json: dict | None, now: float, summary: RunSummary) -> float | None:
        """Seconds spent in launches (the gaps between a crash and a resume do not count)."""
        total, seen = 0.0, False
        launches = [x for x in (run_json or {}).get("launches") or [] if isinstance(x, dict)]
        last_write = self.last_write_time() or now
        for i, launch in enumerate(launches):
            start, end = _ts(launch.get("started")), _ts(launch.get("ended"))
            if start is None:
                continue
            if end is None:
                live = i == len(launches) - 1 and self._status_from_run_json(run_json)[0] == "running"
                end = now if live else last_write
            total += max(0.0, end - start)
            seen = True
        if seen:
            return total
        times = [t for t in self._launch_times().values() if t[0] is not None and t[1] is not None]
        if times:
            return float(sum(max(0.0, end - start) for start, end in times))
        if summary.last_step is not None and math.isfinite(summary.step_time):
            return summary.last_step * summary.step_time
        return None


def _seconds_per_step(summary: RunSummary) -> float:
    return summary.step_time


def _sample_lines(path: Path, size: int, k: int) -> list[bytes]:
    """One complete line after each of k evenly spaced offsets, plus the file's last line."""
    out = []
    try:
        with open(path, "rb") as f:
            for offset in np.linspace(0, size, num=k, endpoint=False).astype(np.int64):
                f.seek(int(offset))
                data = f.read(16 * 1024)
                begin = 0 if offset == 0 else data.find(b"\n") + 1
                if offset and begin == 0:
                    continue
                end = data.find(b"\n", begin)
                while end < 0 and len(data) < 1024 * 1024:
                    more = f.read(64 * 1024)
                    if not more:
                        break
                    data += more
                    end = data.find(b"\n", begin)
                if end > begin:
                    out.append(data[begin:end])
    except OSError:
        return out
    tail = read_tail_lines(path, 64 * 1024)
    if tail:
        out.append(tail[-1])
    return out


class MetricsCollector:
    """All runs under one --log_dir. Shared by the app's handlers (thread-safe)."""

    def __init__(self, log_dir: str | os.PathLike, stale_after_s: float = 600.0, memory_budget_mb: float = 768.0,
                 background: bool = True):
        self.log_dir = Path(log_dir)
        self.stale_after_s = stale_after_s
        self.memory_budget = int(memory_budget_mb * 2**20)
        self.background = background
        self.runs: dict[str, RunState] = {}
        self.refused: list[str] = []
        self._lock = threading.RLock()
        self._created: dict[str, tuple[float, str]] = {}
        self._queue: list[str] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_refresh = 0.0

    @property
    def root(self) -> Path:
        return self.log_dir.resolve()

    # ---- discovery -----------------------------------------------------------------------
    def discover(self) -> list[str]:
        """Find runs (new ones appear while the app is open). Returns sorted run names."""
        with self._lock:
            root = self.root
            if not root.is_dir():
                return sorted(self.runs)
            found: dict[str, tuple[Path, Path | None]] = {}
            try:
                entries = sorted(root.iterdir())
            except OSError:
                entries = []
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    self._discover_entry(root, entry, found)
                except (OSError, UnsafePathError) as exc:
                    if entry.is_symlink() and str(exc) not in self.refused:
                        self.refused.append(str(exc))
            for name, (run_dir, only_file) in found.items():
                if name not in self.runs:
                    self.runs[name] = RunState(name, run_dir, root, self.stale_after_s, only_file)
            # Runs deleted from the disk disappear from the dashboard.
            for name in [n for n in self.runs if n not in found]:
                del self.runs[name]
            return sorted(self.runs)

    def _discover_entry(self, root: Path, entry: Path, found: dict) -> None:
        if entry.suffix == ".jsonl" and not entry.is_dir():
            # --log_dir is verl's project folder itself: each <experiment>.jsonl is a run.
            if (root / entry.stem).is_dir() or entry.name == REWARD_ERRORS_FILE:
                return
            if not _safe_file(entry, root):
                raise UnsafePathError(f"{entry}: symlink pointing outside --log_dir, refused")
            found[entry.stem] = (root, entry.resolve())
            return
        if not entry.is_dir():
            return
        run_dir = safe_run_dir(root, entry.name)
        launcher = ((run_dir / "run.json").is_file() or any(run_dir.glob("metrics/*.jsonl"))
                    or any(run_dir.glob("*.log")))
        top = [p for p in sorted(run_dir.glob("*.jsonl")) if p.name != REWARD_ERRORS_FILE]
        if launcher or not top:
            if launcher:
                found[entry.name] = (run_dir, None)
            return
        # verl's own file logger: <project>/<experiment>.jsonl, one run per experiment.
        for path in top:
            if _safe_file(path, root) and not _bad_name(path.stem):
                found[f"{entry.name}/{path.stem}"] = (run_dir, path.resolve())
            elif path.is_symlink():
                msg = f"{path}: symlink pointing outside --log_dir, refused"
                if msg not in self.refused:
                    self.refused.append(msg)

    def get(self, name: str) -> RunState:
        """The RunState of a listed run; KeyError with the known names otherwise."""
        with self._lock:
            if name not in self.runs:
                self.discover()
            if name not in self.runs:
                known = ", ".join(sorted(self.runs)[:20]) or "none"
                raise KeyError(f"no run named {str(name)[:80]!r} under {self.root} (runs: {known})")
            return self.runs[name]

    def run_order(self) -> list[str]:
        """Run names by creation (first launch start; else the name): a new run goes last, so a
        colour picked by this position stays the same whatever else is selected."""
        names = self.discover()
        for name in names:
            if name not in self._created:
                self._created[name] = (self._creation_time(self.runs[name]), name)
        return sorted(names, key=lambda n: self._created[n])

    @staticmethod
    def _creation_time(run: RunState) -> float:
        try:
            if run.only_file is None:
                run_json, _ = read_run_json(run.run_dir)
                for launch in (run_json or {}).get("launches") or []:
                    start = _ts(launch.get("started")) if isinstance(launch, dict) else None
                    if start is not None:
                        return start
            files, _ = run.metric_files()
            stamps = [t for t in (_file_timestamp(p) for p in files) if t is not None]
            if stamps:
                return min(stamps)
        except Exception:  # creation order is cosmetic: never fail on it
            pass
        return math.inf

    # ---- reading -------------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Discover runs and read what is new in each loaded one. Returns the names that are new
        or whose loaded table changed."""
        with self._lock:
            before = set(self.runs)
            self.discover()
            runs = list(self.runs.items())
            self._last_refresh = time.monotonic()
        changed = [name for name in self.runs if name not in before]
        for name, run in runs:
            if run.store is None:
                continue
            if not run.lock.acquire(blocking=False):
                continue  # the background loader has it; its result bumps the version anyway
            try:
                if run.load():
                    changed.append(name)
            finally:
                run.lock.release()
        return changed

    def refresh_if_stale(self, min_interval_s: float = 1.0) -> None:
        """refresh() unless one ran in the last second (every tab's timer asks at once)."""
        if time.monotonic() - self._last_refresh >= min_interval_s:
            self.refresh()

    def metrics(self, name: str) -> pd.DataFrame:
        """The full table of one run (parsed now if needed)."""
        run = self.get(name)
        with run.lock:
            run.load()
            df = run.frame(None)
        self._evict(keep=name)
        return df

    def frames(self, names: list[str], keys: list[str] | None = None,
               wait: bool = False) -> dict[str, tuple[pd.DataFrame, bool]]:
        """{run: (table with the requested keys, is_preview)} for drawing.

        Runs already loaded or small enough are read now; a big unloaded run comes from its
        preview and is queued for the background loader (wait=True parses it now instead).
        A run that cannot be read is left out (its problem shows on the Runs tab).
        """
        out = {}
        for name in names or []:
            try:
                run = self.get(name)
            except KeyError:
                continue
            try:
                if run.store is None and (wait or not self.background or run.total_bytes() <= SYNC_LOAD_BYTES):
                    run.load()
                    self._evict(keep=name)
                if run.store is not None:
                    out[name] = (run.frame(keys), False)
                else:
                    self.request_load([name])
                    out[name] = (run.preview_frame(keys), True)
            except Exception as exc:  # noqa: BLE001 - one bad run must not take the others down
                run.load_error = f"drawing failed: {type(exc).__name__}: {redact(str(exc))[:300]}"
        return out

    def columns(self, names: list[str]) -> list[str]:
        keys: dict[str, None] = {}
        for name in names or []:
            try:
                keys.update(dict.fromkeys(self.get(name).columns()))
            except Exception:  # noqa: BLE001
                continue
        return list(keys)

    def statuses(self) -> list[RunStatus]:
        """Every run's status from its tail (no run is parsed in full for this)."""
        out = []
        for name in self.discover():
            run = self.runs.get(name)
            if run is None:
                continue
            try:
                out.append(run.status())
            except Exception as exc:  # noqa: BLE001 - one bad run must not take the others down
                out.append(RunStatus(name, "unknown", "unreadable", f"{type(exc).__name__}: {redact(str(exc))[:200]}",
                                     None, None, None, None, None, None,
                                     [f"reading this run failed: {type(exc).__name__}: {redact(str(exc))[:300]}"]))
        return sorted(out, key=lambda s: s.name)

    def any_running(self) -> bool:
        return any(s.status == "running" for s in self.statuses())

    # ---- background loading and the memory budget ---------------------------------------
    def request_load(self, names: list[str]) -> None:
        """Queue runs for a full parse by the background thread (one at a time)."""
        with self._cond:
            for name in names:
                if name not in self._queue:
                    self._queue.append(name)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loader, name="monitor-loader", daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self) -> list[str]:
        with self._cond:
            return list(self._queue)

    def _loader(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait(timeout=30)
                    if not self._queue:
                        return
                if self._closed:
                    return
                name = self._queue[0]
            run = self.runs.get(name)
            try:
                if run is not None and run.store is None:
                    run.load()
                    self._evict(keep=name)
                # pyarrow's allocator keeps freed blocks for reuse: hand them back (~30 MB a run).
                pa.default_memory_pool().release_unused()
            except Exception:  # noqa: BLE001 - load() records its own errors
                pass
            finally:
                with self._cond:
                    if name in self._queue:
                        self._queue.remove(name)
                    self._cond.notify_all()

    def wait_loaded(self, timeout: float = 60.0) -> bool:
        """Block until the background queue is empty (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(timeout=left)
        return True

    def _evict(self, keep: str | None = None) -> None:
        """Drop the least recently used tables while the loaded ones pass the memory budget."""
        loaded = [(r.last_used, n, r) for n, r in list(self.runs.items()) if r.store is not None]
        total = sum(r.store.nbytes for _, _, r in loaded if r.store is not None)
        for _, name, run in sorted(loaded):
            if total <= self.memory_budget:
                break
            if name == keep or not run.lock.acquire(blocking=False):
                continue
            try:
                if run.store is not None:
                    total -= run.store.nbytes
                    run.drop()
            finally:
                run.lock.release()

    def loaded_bytes(self) -> int:
        return sum(r.store.nbytes for r in list(self.runs.values()) if r.store is not None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# ---- samples ------------------------------------------------------------------------------
SAMPLE_KINDS = {"rollout": "rollout", "validation": "validation"}
# A dump of 512 prompts x 16 responses x 4 KB is ~32 MB; past 256 MB a dump is not read whole.
MAX_DUMP_BYTES = 256 * 2**20


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
    return sorted(int(p.stem) for p in folder.glob("*.jsonl")
                  if p.stem.isdigit() and len(p.stem) < 16 and p.is_file())


def read_samples(run_dir: str | os.PathLike, kind: str, step: int) -> tuple[pd.DataFrame, int]:
    """One generation dump as a table.

    Input:  a run folder, kind ("rollout" | "validation") and a step listed by read_sample_steps.
    Output: (DataFrame with columns input, output, gts, score, step and verl's reward extra-info
            keys such as uid or acc; number of corrupt lines skipped). A last line still being
            written is not read; a dump over 256 MB is read only in its first 256 MB.
    Raises FileNotFoundError when that step has no dump.
    """
    if kind not in SAMPLE_KINDS:
        raise ValueError(f"sample kind {kind!r} is not one of {sorted(SAMPLE_KINDS)}")
    run_dir = Path(run_dir)
    path = run_dir / SAMPLE_KINDS[kind] / f"{int(step)}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {kind} dump for step {step}")
    if not _inside(path.resolve(), run_dir.resolve().parent):
        raise PermissionError(f"{path}: resolves outside --log_dir (a symlink?), refused")
    with open(path, "rb") as f:
        data = f.read(MAX_DUMP_BYTES)
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
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame()
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
    """1234.5 -> '20m 34s'; None/NaN -> '-'; absurd values (over 10 years) -> '> 10 years'."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "-"
    if seconds > 10 * 365 * 86400:
        return "> 10 years"
    seconds = int(round(max(0.0, seconds)))
    d, rem = divmod(seconds, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h:02d}h"
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"
