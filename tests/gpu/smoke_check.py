"""Checks of one smoke-test run folder, used by tests/gpu/smoke.sh after each method trains.

    .venv/bin/python -m tests.gpu.smoke_check train RUN_DIR --steps 2 --gpus 1   # metrics, loss, checkpoint
    .venv/bin/python -m tests.gpu.smoke_check eval RUN_DIR REPORT.xlsx           # merged model + workbook
    .venv/bin/python -m tests.gpu.smoke_check dashboard RUN_DIR                  # the monitor parses the run
    .venv/bin/python -m tests.gpu.smoke_check rehearsal RUN_DIR                  # REHEARSAL=1's knob table

Offers:
- read_steps(run_dir) -> {step: metrics}: every metrics/*.jsonl line verl's file logger wrote.
- check_train(run_dir, steps, gpus) -> summary line: steps logged, a finite loss, global_step_N saved;
  tokens/s per GPU (verl's perf/throughput; for SFT train/global_tokens over the step's wall time)
  and peak memory (perf/max_memory_allocated_gb, as verl's engine workers log it).
- check_eval(run_dir, workbook): test.sh merged the checkpoint to Hugging Face format and scored it.
- check_dashboard(run_dir): monitor.metrics_collector reads the same steps back.
- check_rehearsal(run_dir): `REHEARSAL=1 train.sh` (common/rehearsal) of the same config passed: every
  knob's value inside the engines verl built equals the config block's, the metrics are finite and
  the checkpoint merged (read from <run>/rehearsal/summary.json).
Each command prints one line and exits 1 with the reason when a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

LOSS_KEYS = ("actor/pg_loss", "train/loss", "critic/vf_loss")
MEMORY_SUFFIX = "perf/max_memory_allocated_gb"


class SmokeFailure(Exception):
    pass


def read_steps(run_dir: Path) -> dict[int, dict]:
    steps: dict[int, dict] = {}
    files = sorted((run_dir / "metrics").glob("*.jsonl"))
    if not files:
        raise SmokeFailure(f"no metrics/*.jsonl in {run_dir}: verl's file logger wrote nothing")
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                steps.setdefault(int(row["step"]), {}).update(row["data"])
            except (ValueError, KeyError, TypeError) as exc:
                raise SmokeFailure(f"{path}:{number}: not a verl file-logger line ({exc})") from None
    return steps


def _wall_times(run_dir: Path) -> dict[int, float]:
    """Step -> time the step's line was written, from the monitor's merged table (_wall_time)."""
    try:
        from monitor.metrics_collector import MetricsCollector

        collector = MetricsCollector(run_dir.parent)
        collector.discover()
        table = collector.runs[run_dir.name].metrics()
        return dict(zip(table["step"].astype(int), table["_wall_time"].astype(float)))
    except Exception:
        return {}


def check_train(run_dir: Path, steps: int, gpus: int) -> str:
    logged = read_steps(run_dir)
    missing = [s for s in range(1, steps + 1) if s not in logged]
    if missing:
        raise SmokeFailure(f"steps {missing} were not logged (have {sorted(logged)})")
    last = logged[steps]
    loss_key = next((k for k in LOSS_KEYS if k in last), None)
    if loss_key is None:
        raise SmokeFailure(f"no loss at step {steps}: none of {LOSS_KEYS} in {sorted(last)[:20]}")
    losses = [logged[s].get(loss_key) for s in range(1, steps + 1)]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses):
        raise SmokeFailure(f"{loss_key} is not finite: {losses}")
    checkpoint = run_dir / "checkpoints" / f"global_step_{steps}"
    if not checkpoint.is_dir() or not any(checkpoint.rglob("*.pt")) and not any(checkpoint.rglob("*.safetensors")):
        raise SmokeFailure(f"no checkpoint at {checkpoint}")
    if "perf/throughput" in last:
        throughput = float(last["perf/throughput"])
    elif "train/global_tokens" in last:
        # SFT logs tokens per step but no rate: divide by the time between the last two lines.
        times = _wall_times(run_dir)
        span = times.get(steps, 0) - times.get(steps - 1, 0) if steps > 1 else 0
        throughput = float(last["train/global_tokens"]) / span / gpus if span > 0 else float("nan")
    else:
        throughput = float("nan")
    memory = max((float(v) for k, v in last.items() if k.endswith(MEMORY_SUFFIX)), default=float("nan"))
    return f"{steps} steps, {loss_key}={losses[-1]:.4g}, {throughput:,.0f} tokens/s/GPU, peak {memory:.2f} GB, {checkpoint.name} saved"


def check_eval(run_dir: Path, workbook: Path) -> str:
    merged = [p for p in (run_dir / "checkpoints").rglob("huggingface_merged") if p.is_dir()]
    if not merged or not (merged[0] / "config.json").is_file() or not any(merged[0].glob("*.safetensors")):
        raise SmokeFailure(f"no merged Hugging Face model (config.json + *.safetensors) under {run_dir}/checkpoints")
    if not workbook.is_file():
        raise SmokeFailure(f"test.sh wrote no workbook at {workbook}")
    from openpyxl import load_workbook

    book = load_workbook(workbook, read_only=True)
    rows = sum(max(sheet.max_row - 1, 0) for sheet in book.worksheets)
    if rows == 0:
        raise SmokeFailure(f"{workbook} has no scored rows")
    return f"merged to {merged[0].relative_to(run_dir)}, {rows} row(s) in {workbook.name}"


def check_dashboard(run_dir: Path) -> str:
    from monitor.metrics_collector import MetricsCollector

    collector = MetricsCollector(run_dir.parent)
    names = collector.discover()
    if run_dir.name not in names:
        raise SmokeFailure(f"the monitor does not list {run_dir.name} under {run_dir.parent} (it lists {names})")
    table = collector.runs[run_dir.name].metrics()
    want = sorted(read_steps(run_dir))
    got = sorted(int(s) for s in table["step"]) if "step" in table else []
    if got != want:
        raise SmokeFailure(f"the monitor read steps {got}, the metrics files have {want}")
    return f"monitor reads {len(got)} step(s), status {collector.runs[run_dir.name].status().status}"


def check_rehearsal(run_dir: Path) -> str:
    path = run_dir / "rehearsal" / "summary.json"
    if not path.is_file():
        raise SmokeFailure(f"REHEARSAL=1 wrote no {path}")
    summary = json.loads(path.read_text())
    rows = summary.get("knob_table") or []
    bad = [f"{r['knob']} ({r['where']}: block {r['expected']}, engine {r['observed']})" for r in rows if not r.get("ok")]
    if bad:
        raise SmokeFailure("knobs that did not reach verl's engines: " + "; ".join(bad))
    if summary.get("exit_code") != 0:
        raise SmokeFailure(f"the rehearsal failed: {summary.get('error') or 'exit code ' + str(summary.get('exit_code'))}")
    if not rows:
        raise SmokeFailure("the rehearsal's knob table is empty")
    for step in summary.get("metrics", []):
        for key, value in step.items():
            if key.rsplit("/", 1)[-1] in {"loss", "pg_loss", "vf_loss", "grad_norm"} and not math.isfinite(value):
                raise SmokeFailure(f"rehearsal metric {key}={value} is not finite")
    if not summary.get("merged_model"):
        raise SmokeFailure("the rehearsal's checkpoint was not merged to Hugging Face format")
    moved = summary.get("parameters", {}).get("changed", 0)
    return f"rehearsal: {len(rows)} knob values arrived, weights {'moved' if moved else 'unchanged'}, {summary.get('seconds')} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.gpu.smoke_check", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    train = sub.add_parser("train")
    train.add_argument("run_dir", type=Path)
    train.add_argument("--steps", type=int, default=2)
    train.add_argument("--gpus", type=int, default=1)
    evaluate = sub.add_parser("eval")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("workbook", type=Path)
    dashboard = sub.add_parser("dashboard")
    dashboard.add_argument("run_dir", type=Path)
    rehearsal = sub.add_parser("rehearsal")
    rehearsal.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "train":
            print(check_train(args.run_dir, args.steps, args.gpus))
        elif args.cmd == "eval":
            print(check_eval(args.run_dir, args.workbook))
        elif args.cmd == "rehearsal":
            print(check_rehearsal(args.run_dir))
        else:
            print(check_dashboard(args.run_dir))
    except SmokeFailure as exc:
        print(f"FAIL: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
