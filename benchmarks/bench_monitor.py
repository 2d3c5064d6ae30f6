"""The dashboard at scale: a synthetic set of runs in a temporary folder, the real server started
on it, each measurement printed next to a plain pyarrow read (pyarrow.json.read_json) of the same
files in the same run.

    .venv/bin/python benchmarks/bench_monitor.py            # 4 runs x 10,000 steps x 80 metrics (~2-3 min, 2 cores)
    .venv/bin/python benchmarks/bench_monitor.py --full     # 20 runs x 50,000 steps x 80 metrics (~3 GB, ~15 min)
    .venv/bin/python benchmarks/bench_monitor.py --runs 8 --steps 20000 --log-mb 200 --keep /tmp/monitor-set

The set: one folder per run in the launcher's layout (run.json, metrics/<launch>.jsonl written by
verl's own FileLogger, a train.log; one run has a big train.log full of console lines). Goals
(issue 14, on the --full set):
    runs table + first curves   within 3 s of opening the page (gradio_client, from the first request,
                                once the server says it is ready)
    server memory               peak RSS under 1.5 GB, after every run was parsed (Alerts on all runs)
    refresh after new steps     under 50 ms (10 steps appended to a loaded run)
    cold parse of one run       at most 1.5x pyarrow.json.read_json of the same file
Exit code 0 when every goal is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import orjson
import pyarrow.json as pj
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.metrics_collector import MetricsCollector  # noqa: E402
from monitor.panels.curves import groups_for  # noqa: E402

GOAL_PAGE_S = 3.0
GOAL_RSS_MB = 1536
GOAL_REFRESH_MS = 50.0
GOAL_COLD_RATIO = 1.5


def metric_names(n: int) -> list[str]:
    base = ["critic/score/mean", "critic/score/max", "critic/score/min", "critic/rewards/mean", "critic/advantages/max",
            "critic/advantages/min", "actor/pg_loss", "actor/kl_loss", "actor/ppo_kl", "actor/entropy", "actor/grad_norm",
            "actor/pg_clipfrac", "actor/lr", "response_length/mean", "response_length/max", "response_length/clip_ratio",
            "perf/throughput", "timing_s/gen", "timing_s/update_actor", "timing_s/step"]
    return (base + [f"extra/metric_{i:02d}/mean" for i in range(n)])[:n]


def write_run(run_dir: Path, steps: int, n_metrics: int, seed: int, start: datetime, log_bytes: int) -> Path:
    """One run folder as the launcher and verl write it; metrics through verl's FileLogger."""
    from verl.utils.tracking import FileLogger

    (run_dir / "metrics").mkdir(parents=True)
    ts = start.strftime("%Y%m%d-%H%M%S")
    path = run_dir / "metrics" / f"{ts}.jsonl"
    os.environ["VERL_FILE_LOGGER_PATH"] = str(path)
    logger = FileLogger("bench", run_dir.name)
    names = metric_names(n_metrics)
    rng = np.random.default_rng(seed)
    values = rng.random((steps, n_metrics))
    values[:, names.index("timing_s/step")] = 30.0 + rng.random(steps)
    for step in range(1, steps + 1):
        logger.log(dict(zip(names, values[step - 1].tolist())), step)
    logger.finish()
    ended = start + timedelta(seconds=31 * steps)
    (run_dir / "run.json").write_text(json.dumps({
        "method": "grpo", "project": "bench", "experiment": run_dir.name, "total_steps": steps,
        "launches": [{"started": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "ended": ended.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "pid": 1, "host": socket.gethostname(), "exit_code": 0, "metrics_file": f"metrics/{ts}.jsonl"}]}))
    header = f"==== launch {start.strftime('%Y-%m-%dT%H:%M:%SZ')} pid=1 method=grpo ====\n".encode()
    line = b"(TaskRunner pid=1) " + b" - ".join(f"{k}:np.float64(0.5)".encode() for k in names[:40]) + b"\n"
    with open(run_dir / "train.log", "wb") as f:
        f.write(header)
        block = b"".join(b"step:%d - " % i + line for i in range(1, 1001))
        written = 0
        while written < log_bytes:
            f.write(block)
            written += len(block)
    return path


def pyarrow_read(path: Path) -> float:
    t0 = time.perf_counter()
    table = pj.read_json(path)
    elapsed = time.perf_counter() - t0
    del table
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(log_dir: Path) -> tuple[subprocess.Popen, str, float, float]:
    """Start monitor/app.py; return it, its URL, seconds until it answers and until it says it is
    ready (its warm-up read every run's tail and the first curves' preview)."""
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / "monitor" / "app.py"), "--log_dir", str(log_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    answering = None
    for line in proc.stdout:  # "monitor: <dir> on http://..." then "monitor: ready (N runs)"
        if answering is None and " on http://" in line:
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except OSError:
                    time.sleep(0.1)
            answering = time.perf_counter() - t0
        if line.startswith("monitor: ready"):
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep the pipe drained
            return proc, url, answering or float("nan"), time.perf_counter() - t0
    proc.kill()
    raise RuntimeError("the dashboard exited before it was ready")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="20 runs x 50,000 steps x 80 metrics, a 1 GB train.log")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--metrics", type=int, default=80)
    ap.add_argument("--log-mb", type=int, default=64, help="size of the one big train.log (MB)")
    ap.add_argument("--keep", type=Path, default=None, help="build the set here and keep it (default: a temp dir, deleted)")
    args = ap.parse_args()
    if args.full:
        args.runs, args.steps, args.metrics, args.log_mb = 20, 50_000, 80, 1024
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    log_dir = base / "outputs"
    results: list[tuple[str, str, str, bool | None]] = []
    proc = None
    try:
        t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
        files = []
        for i in tqdm(range(args.runs), desc=f"writing {args.runs} runs x {args.steps} steps x {args.metrics} metrics",
                      unit="run"):
            files.append(write_run(log_dir / f"run-{i:02d}", args.steps, args.metrics, i, t0 + timedelta(days=i),
                                   args.log_mb * 2**20 if i == 0 else 256 * 1024))
        total_mb = sum(f.stat().st_size for f in files) / 2**20
        print(f"set: {log_dir}  {args.runs} runs, {total_mb:,.0f} MB of metrics JSONL, train.log of run-00: "
              f"{(log_dir / 'run-00' / 'train.log').stat().st_size / 2**20:,.0f} MB")

        # Baselines: pyarrow's columnar read of the same files, in this process.
        per_file = [pyarrow_read(f) for f in tqdm(files, desc="pyarrow.json.read_json of every run", unit="run")]
        arrow_all = sum(per_file)
        newest = [f"run-{i:02d}" for i in range(args.runs - 1, max(-1, args.runs - 4), -1)]
        arrow_selected = sum(per_file[int(n[-2:])] for n in newest)

        # Cold parse of one run, in process, interleaved with pyarrow's read of the same file; the best
        # of 5 each (other processes on a shared machine only ever add time).
        cold, arrow = [], []
        for _ in range(5):
            arrow.append(pyarrow_read(files[-1]))
            t = time.perf_counter()
            df = MetricsCollector(log_dir, background=False).metrics(newest[0])
            cold.append(time.perf_counter() - t)
            assert len(df) == args.steps and df.shape[1] >= args.metrics + 3
            del df
        cold_s, arrow_one = min(cold), min(arrow)

        # Refresh after new steps, in process: 10 steps appended to a loaded run, then the curves' data.
        collector = MetricsCollector(log_dir, background=False)
        collector.metrics(newest[0])
        keys = sorted({k for _, ks in groups_for(collector.get(newest[0]).columns()) for k in ks})
        names = metric_names(args.metrics)
        refresh, step = [], args.steps
        path = files[-1]
        for _ in range(5):
            with open(path, "ab") as f:
                for _ in range(10):
                    step += 1
                    f.write(orjson.dumps({"step": step, "data": dict.fromkeys(names, 0.5)}) + b"\n")
            t = time.perf_counter()
            collector.refresh()
            frames = collector.frames([newest[0]], keys)
            refresh.append(time.perf_counter() - t)
            assert int(frames[newest[0]][0]["step"].iloc[-1]) == step
        refresh_ms = statistics.median(refresh) * 1000
        del collector, frames

        # The server: the page's first requests, then every run parsed (Alerts on all runs).
        from gradio_client import Client

        proc, url, startup_s, ready_s = start_server(log_dir)
        t = time.perf_counter()
        client = Client(url, verbose=False)
        table, _ = client.predict(api_name="/runs")
        runs_s = time.perf_counter() - t
        assert len(table["data"]) == args.runs
        t1 = time.perf_counter()
        fig = client.predict(newest, 0.8, "step", [], api_name="/curves")
        curves_s = time.perf_counter() - t1
        page_s = time.perf_counter() - t
        assert json.loads(fig["plot"])["data"], "no curves drawn"
        rss_page = vm_rss_mb(proc.pid)
        t = time.perf_counter()
        while "Loading" in client.predict(newest, 0.8, "step", [], api_name="/curves")["note"]:
            time.sleep(0.5)
        full_curves_s = time.perf_counter() - t1
        t = time.perf_counter()
        while True:
            alerts, summary, _ = client.predict([], api_name="/alerts")
            if "in the background" not in summary:
                break
            time.sleep(1.0)
        alerts_s = time.perf_counter() - t
        with open(files[0], "ab") as f:
            f.write(orjson.dumps({"step": args.steps + 1, "data": dict.fromkeys(names, 0.5)}) + b"\n")
        time.sleep(1.1)
        t = time.perf_counter()
        client.predict(api_name="/runs")
        runs_again_ms = (time.perf_counter() - t) * 1000
        peak_mb = vm_hwm_mb(proc.pid)
        rss_end = vm_rss_mb(proc.pid)

        results += [
            ("server start (python monitor/app.py until it answers)", f"{startup_s:6.2f} s", "", None),
            ("  until ready (warm-up: every run's tail, the first preview)", f"{ready_s:6.2f} s", "", None),
            ("runs table (/runs, first request of the page)", f"{runs_s:6.2f} s",
             f"pyarrow read of all {args.runs} runs: {arrow_all:.2f} s ({runs_s / arrow_all:.3f}x)", None),
            (f"first curves of the {len(newest)} newest runs (/curves)", f"{curves_s:6.2f} s",
             f"pyarrow read of those runs: {arrow_selected:.2f} s ({curves_s / arrow_selected:.3f}x)", None),
            ("page: runs table + first curves", f"{page_s:6.2f} s", f"goal < {GOAL_PAGE_S:g} s", page_s < GOAL_PAGE_S),
            ("  curves from the full tables (background parse done)", f"{full_curves_s:6.2f} s",
             f"pyarrow read of those runs: {arrow_selected:.2f} s", None),
            ("  alerts of every run (every run parsed)", f"{alerts_s:6.2f} s", f"pyarrow read of all: {arrow_all:.2f} s",
             None),
            ("cold parse of one run (in process)", f"{cold_s:6.2f} s",
             f"pyarrow: {arrow_one:.2f} s, ratio {cold_s / arrow_one:.2f}x (goal <= {GOAL_COLD_RATIO:g}x)",
             cold_s <= GOAL_COLD_RATIO * arrow_one),
            ("refresh after 10 new steps (in process, + curve data)", f"{refresh_ms:6.1f} ms",
             f"pyarrow re-read: {arrow_one * 1000:.0f} ms; goal < {GOAL_REFRESH_MS:g} ms", refresh_ms < GOAL_REFRESH_MS),
            ("  /runs after a new step (HTTP round trip)", f"{runs_again_ms:6.1f} ms", "", None),
            ("server RSS after the first page", f"{rss_page:6.0f} MB", "", None),
            ("server peak RSS (VmHWM, every run parsed)", f"{peak_mb:6.0f} MB",
             f"now {rss_end:.0f} MB; goal < {GOAL_RSS_MB} MB", peak_mb < GOAL_RSS_MB),
        ]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    width = max(len(r[0]) for r in results)
    print()
    for name, value, baseline, ok in results:
        flag = "" if ok is None else ("  ok" if ok else "  NOT MET")
        print(f"{name:<{width}}  {value:>10}  {baseline}{flag}")
    met = all(ok for *_, ok in results if ok is not None)
    print("goals met" if met else "GOALS NOT MET")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
