"""Monitor parse speed: a 50,000-step run with 80 metrics, cold parse and 10-step refresh,
against a plain pandas read of the same JSONL in the same process.

    .venv/bin/python benchmarks/bench_monitor.py            # --steps 50000 --metrics 80 --repeat 5

Goals: cold parse within 2x of pandas (pd.read_json(lines=True) + json_normalize), refresh after
10 new steps under 50 ms. The JSONL is written by verl's own FileLogger (orjson, one line per step).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.metrics_collector import MetricsCollector  # noqa: E402


def metric_names(n: int) -> list[str]:
    base = ["critic/score/mean", "critic/score/max", "critic/score/min", "critic/rewards/mean", "actor/pg_loss",
            "actor/kl_loss", "actor/ppo_kl", "actor/entropy", "actor/grad_norm", "actor/pg_clipfrac", "actor/lr",
            "response_length/mean", "response_length/max", "response_length/clip_ratio", "perf/throughput",
            "timing_s/gen", "timing_s/update_actor", "timing_s/step"]
    return (base + [f"extra/metric_{i:02d}/mean" for i in range(n)])[:n]


def write_run(run_dir: Path, steps: int, n_metrics: int) -> Path:
    from verl.utils.tracking import FileLogger

    (run_dir / "metrics").mkdir(parents=True)
    path = run_dir / "metrics" / "20261121-100000.jsonl"
    os.environ["VERL_FILE_LOGGER_PATH"] = str(path)
    logger = FileLogger("bench", run_dir.name)
    names = metric_names(n_metrics)
    rng = np.random.default_rng(0)
    values = rng.random((steps, n_metrics))
    for step in tqdm(range(1, steps + 1), desc="writing JSONL with verl's FileLogger", unit="step"):
        logger.log(dict(zip(names, values[step - 1].tolist())), step)
    logger.finish()
    return path


def pandas_read(path: Path) -> pd.DataFrame:
    raw = pd.read_json(path, lines=True)
    return pd.concat([raw[["step"]], pd.json_normalize(raw["data"].tolist())], axis=1)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--metrics", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=5, help="runs of each measurement; the median is printed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        path = write_run(log_dir / "bench", args.steps, args.metrics)
        print(f"{path.stat().st_size / 2**20:.1f} MiB, {args.steps} steps x {args.metrics} metrics")

        pandas_s = statistics.median(timed(lambda: pandas_read(path))[0] for _ in range(args.repeat))
        cold = []
        for _ in range(args.repeat):
            t, df = timed(lambda: MetricsCollector(log_dir).metrics("bench"))
            cold.append(t)
        assert df.shape[0] == args.steps and df.shape[1] >= args.metrics + 1
        cold_s = statistics.median(cold)

        collector = MetricsCollector(log_dir)
        collector.metrics("bench")
        names = metric_names(args.metrics)
        import orjson

        refresh, step = [], args.steps
        for _ in range(args.repeat):
            with open(path, "ab") as f:
                for _ in range(10):
                    step += 1
                    f.write(orjson.dumps({"step": step, "data": dict.fromkeys(names, 0.5)}) + b"\n")
            t, df = timed(lambda: (collector.refresh(), collector.metrics("bench"))[1])
            assert int(df["step"].iloc[-1]) == step
            refresh.append(t)
        refresh_s = statistics.median(refresh)

    print(f"pandas read_json(lines=True)+json_normalize : {pandas_s * 1000:8.1f} ms (baseline)")
    print(f"monitor cold parse                          : {cold_s * 1000:8.1f} ms  ratio {cold_s / pandas_s:.2f}x (goal <= 2x)")
    print(f"monitor refresh after 10 new steps          : {refresh_s * 1000:8.1f} ms  ratio {refresh_s / pandas_s:.4f}x "
          f"(goal < 50 ms)")
    ok = cold_s <= 2 * pandas_s and refresh_s < 0.05
    print("goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
