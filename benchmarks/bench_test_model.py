"""Generation throughput of the evaluation backends: transformers batch 1 vs batch 8 (and vLLM).

    .venv/bin/python benchmarks/bench_test_model.py                       # CPU, tiny random model
    .venv/bin/python benchmarks/bench_test_model.py --model_path PATH --use_vllm   # GPU machine

Prints tokens/s per configuration and the ratio against the first one (transformers, batch 1),
all measured in this process on the same prompts. Without --model_path it builds a small random
Qwen2 in a temp folder (tests/tiny_model.py; no download).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.evaluation.generation import HFGenerator, VLLMGenerator, vllm_unavailable_reason  # noqa: E402


def run(gen, prompts, batch_size: int, args) -> tuple[int, float]:
    t0 = time.perf_counter()
    samples = gen.generate(prompts, n_samples=1, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                           batch_size=batch_size, seed=0)
    elapsed = time.perf_counter() - t0
    return sum(s.tokens for per in samples for s in per), elapsed


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
    args = p.parse_args()

    model_path = args.model_path
    if model_path is None:
        from tests.tiny_model import build_tiny_model

        model_path = str(build_tiny_model(tempfile.mkdtemp(prefix="bench_model_"), hidden_size=args.hidden,
                                          num_layers=args.layers))
    # Varied lengths (5 to 36 words) so length sorting and padding matter as in a real eval set.
    prompts = [[{"role": "user", "content": "What is 3 + 4 * 2? " * (1 + i % 8)}] for i in range(args.prompts)]
    hf = HFGenerator(model_path)
    run(hf, prompts[:2], 2, args)  # warm-up: first-call allocations and kernel selection
    rows = []
    for bs in (int(b) for b in args.batch_sizes.split(",")):
        tokens, elapsed = run(hf, prompts, bs, args)
        rows.append((f"transformers {hf.device} batch {bs}", tokens, elapsed))
    if args.use_vllm:
        reason = vllm_unavailable_reason()
        if reason:
            print(f"--use_vllm: {reason}", file=sys.stderr)
            return 1
        del hf
        vllm = VLLMGenerator(model_path)
        run(vllm, prompts[:2], 2, args)
        tokens, elapsed = run(vllm, prompts, len(prompts), args)
        rows.append(("vllm", tokens, elapsed))
    base = rows[0][1] / rows[0][2]
    print(f"{'backend':<32} {'tokens':>8} {'seconds':>8} {'tok/s':>9} {'ratio':>6}")
    for name, tokens, elapsed in rows:
        rate = tokens / elapsed
        print(f"{name:<32} {tokens:>8} {elapsed:>8.2f} {rate:>9.1f} {rate / base:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
