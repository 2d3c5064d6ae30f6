"""What ./test.sh --batch spends its time on: generation, warm-up, reward isolation, the report.

    .venv/bin/python benchmarks/bench_test_model.py                       # CPU, tiny random model
    .venv/bin/python benchmarks/bench_test_model.py --model_path PATH --use_vllm   # GPU machine

Every number is measured in this process, on the same inputs, and printed with its ratio to the
baseline of its section:
1. generation tokens/s: transformers batch 1 (baseline) vs batch 8 (and vLLM), each after a warm-up;
2. warm-up: the first generate() call of a freshly loaded model vs the same call repeated (why
   test.sh times generation only after a warm-up: the first call pays CUDA/kernel set-up);
3. reward calls/s: the reward called in this process (baseline) vs through make_reward's guard
   (common/reward_guard.py's worker processes, --reward_timeout_s > 0), and the worker's start time;
4. report writing: JSON (baseline) vs the formatted workbook, for a synthetic report.
Without --model_path it builds a small random Qwen2 in a temp folder (tests/tiny_model.py; no download).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.evaluation.generation import HFGenerator, Sample, VLLMGenerator, vllm_unavailable_reason  # noqa: E402
from common.evaluation.inputs import EvalRow  # noqa: E402
from common.evaluation.report import ModelResult, write_report  # noqa: E402
from common.evaluation.scoring import Score, load_reward, make_reward  # noqa: E402


def run(gen, prompts, batch_size: int, args) -> tuple[int, float]:
    t0 = time.perf_counter()
    samples = gen.generate(prompts, n_samples=1, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                           batch_size=batch_size, seed=0)
    elapsed = time.perf_counter() - t0
    return sum(s.tokens for per in samples for s in per), elapsed


def table(title: str, rows: list[tuple[str, float, str]]) -> None:
    """rows: (name, rate, unit); the first row is the baseline."""
    print(f"\n{title}")
    base = rows[0][1]
    for name, rate, unit in rows:
        print(f"  {name:<44} {rate:>12,.1f} {unit:<10} {rate / base:>6.2f}x")


def bench_generation(model_path: str, prompts, args) -> None:
    t0 = time.perf_counter()
    hf = HFGenerator(model_path)
    load_s = time.perf_counter() - t0
    cold_tokens, cold_s = run(hf, prompts[:8], 8, args)  # the very first call on this model
    warm_tokens, warm_s = run(hf, prompts[:8], 8, args)  # the same call again
    table(f"warm-up (model loaded in {load_s:.2f} s; 8 prompts, batch 8)", [
        ("first call (cold)", cold_tokens / cold_s, "tok/s"),
        ("same call repeated (warm)", warm_tokens / warm_s, "tok/s"),
    ])
    rows = []
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        tokens, elapsed = run(hf, prompts, bs, args)
        rows.append((f"transformers {hf.device} batch {bs}", tokens / elapsed, "tok/s"))
    if args.use_vllm:
        reason = vllm_unavailable_reason()
        if reason:
            print(f"--use_vllm: {reason}", file=sys.stderr)
        else:
            del hf
            vllm = VLLMGenerator(model_path)
            run(vllm, prompts[:2], 2, args)
            tokens, elapsed = run(vllm, prompts, len(prompts), args)
            rows.append(("vllm", tokens / elapsed, "tok/s"))
    table(f"generation ({len(prompts)} prompts, {args.max_new_tokens} new tokens, after a warm-up)", rows)


def bench_reward(calls: int) -> None:
    fn = load_reward(None)
    args = [("openai/gsm8k", f"so the answer is #### {i}", str(i)) for i in range(calls)]
    t0 = time.perf_counter()
    for a in args:
        fn(*a)
    inproc_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with make_reward(None, timeout_s=10) as reward:
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for a in args:
            reward(*a)
        isolated_s = time.perf_counter() - t0
    table(f"reward calls (common.reward_functions, gsm8k, {calls:,} calls; worker start {start_s:.2f} s)", [
        ("in this process (--reward_timeout_s 0)", calls / inproc_s, "calls/s"),
        ("isolated worker, killable (default)", calls / isolated_s, "calls/s"),
    ])
    print(f"  isolation costs {(isolated_s - inproc_s) / calls * 1e6:,.0f} us per call")


def bench_report(prompts: int, n: int, models: int) -> None:
    rng = random.Random(0)
    rows = [EvalRow(f"q{i}", [{"role": "user", "content": f"What is {i} + {i}? " * 5}], str(2 * i),
                    "openai/gsm8k" if i % 2 else "math") for i in range(prompts)]
    results = []
    for m in range(models):
        samples = [[Sample("Let me think step by step. " * 20 + str(rng.randint(0, 9)), 200, False, 1.0)
                    for _ in range(n)] for _ in range(prompts)]
        scores = []
        for _ in range(prompts):
            per = []
            for _ in range(n):
                ok = rng.random() < 0.5
                per.append(Score(float(ok), ok, 1.0, str(rng.randint(0, 3))))
            scores.append(per)
        results.append(ModelResult(f"model{m}", "p", "p", "transformers", samples, scores, generation_s=10.0))
    out = Path(tempfile.mkdtemp(prefix="bench_report_"))
    timings = []
    for suffix in ("json", "xlsx"):
        t0 = time.perf_counter()
        write_report(out / f"r.{suffix}", {"rows": prompts}, rows, results)
        timings.append((f".{suffix}", prompts * n * models / (time.perf_counter() - t0), "rows/s"))
    table(f"report ({models} models x {prompts:,} prompts x {n} samples = {prompts * n * models:,} result rows)",
          timings)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_path", help="Hugging Face folder (default: a random Qwen2 built here)")
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--max_new_tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--batch_sizes", default="1,8")
    # 256 hidden x 4 layers (~2.5M parameters): big enough that batching, not Python, dominates.
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--use_vllm", action="store_true", help="also time vLLM (needs a GPU and vLLM)")
    p.add_argument("--reward_calls", type=int, default=5000)
    p.add_argument("--report_prompts", type=int, default=500)
    args = p.parse_args()

    model_path = args.model_path
    if model_path is None:
        from tests.tiny_model import build_tiny_model

        model_path = str(build_tiny_model(tempfile.mkdtemp(prefix="bench_model_"), hidden_size=args.hidden,
                                          num_layers=args.layers))
    # Varied lengths (5 to 36 words) so length sorting and padding matter as in a real eval set.
    prompts = [[{"role": "user", "content": "What is 3 + 4 * 2? " * (1 + i % 8)}] for i in range(args.prompts)]
    bench_generation(model_path, prompts, args)
    bench_reward(args.reward_calls)
    bench_report(args.report_prompts, 4, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
