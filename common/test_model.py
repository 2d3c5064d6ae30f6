"""Test a trained model: chat with it, or evaluate it on a file into an Excel/JSON report.

    ./test.sh --model_path PATH                                   # interactive chat (--single)
    echo "What is 2+3?" | ./test.sh --model_path PATH             # scripted: one prompt per line
    ./test.sh --model_path PATH --batch --input_file test_data.json [--output_file results.xlsx]
    ./test.sh --model_path BASE --model_path SFT --model_path RL --batch --input_file val.parquet
    ./test.sh --model_path PATH --benchmark gsm8k [--limit 100]   # also math500, aime24 (common/hub_data.py)

(./test.sh runs `python -m common.test_model "$@"` from the repository root.)

Offers:
- main(argv) -> exit code: parses the options below, resolves every --model_path (Hugging Face
  folder/id or a verl checkpoint, merged once and cached; see common/evaluation/checkpoint.py),
  then runs the single (interactive) or batch mode.
- run_single(generator, args, stdin, stdout): the chat loop. Commands: /reset (forget the
  history), /system TEXT, /temp X, /exit. History is kept across turns until /reset.
- run_batch(args) -> output path: loads and checks every input row, checks the reward and the
  output path, then generates with each model (progress bar), scores and writes the report.

Exit codes: 0 ok; 1 runtime failure; 2 bad option, input, model path or reward; 130 Ctrl-C
(no report is written: reports are written atomically at the very end).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

logger = logging.getLogger("test_model")

EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from common.evaluation.generation import TEMPLATES
    from common.evaluation.inputs import DEFAULT_DATA_SOURCE
    from common.evaluation.scoring import DEFAULT_REWARD
    from common.hub_data import BENCHMARKS

    p = argparse.ArgumentParser(
        prog="test.sh",
        description="Test a model interactively (--single, default) or evaluate it on a file (--batch).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--model_path",
        action="append",
        required=True,
        help="Hugging Face folder or hub id, or a verl checkpoint (experiment folder with "
        "latest_checkpointed_iteration.txt or global_step_N/, a global_step_N folder, or its actor/); "
        "checkpoints are merged once with verl.model_merger and cached in actor/huggingface_merged. "
        "Repeat it in --batch mode to compare models side by side in one report.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--single", action="store_true", help="interactive chat; reads stdin line by line when piped")
    mode.add_argument("--batch", action="store_true", help="evaluate --input_file and write a report")
    p.add_argument(
        "--input_file",
        help="--batch input: .json (list of {prompt, ground_truth, [data_source], [id]}), .jsonl, "
        f"or a verl RL .parquet; data_source defaults to {DEFAULT_DATA_SOURCE!r}",
    )
    p.add_argument(
        "--benchmark",
        choices=list(BENCHMARKS),
        help="--batch on a standard test set instead of --input_file, loaded by name with `datasets` (cached "
        "after the first download; or a local copy under $LOCAL_DATASETS_DIR): gsm8k = openai/gsm8k test, "
        "math500 = HuggingFaceH4/MATH-500 test, aime24 = HuggingFaceH4/aime_2024; implies --batch",
    )
    p.add_argument(
        "--output_file",
        help="report path; .xlsx (Summary + Results sheets) or .json; "
        "default: INPUT_STEM_results_YYYYmmdd_HHMMSS.xlsx next to the input",
    )
    p.add_argument("--use_vllm", action="store_true", help="generate with vLLM (needs vLLM and a CUDA GPU)")
    p.add_argument("--fallback", action="store_true", help="with --use_vllm: use transformers if vLLM cannot run")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; 0 = greedy")
    p.add_argument("--max_new_tokens", type=int, default=512, help="response length limit (tokens)")
    p.add_argument(
        "--template",
        choices=list(TEMPLATES),
        default="auto",
        help="auto = the model's own chat template; default (User:/Assistant:), chatml, llama force one",
    )
    p.add_argument("--batch_size", type=int, default=8, help="prompts per generate() call (transformers backend)")
    p.add_argument("--n_samples", type=int, default=1, help="samples per prompt; K > 1 reports pass@k and mean@k")
    p.add_argument(
        "--reward",
        default=None,
        help=f"reward function as MODULE_OR_FILE.py[:FUNC] (default {DEFAULT_REWARD}, "
        "called with each row's data_source)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same samples per backend)")
    p.add_argument("--system_prompt", default=None, help="system message prepended to every prompt without one")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    p.add_argument("--skip_bad_rows", action="store_true", help="drop malformed input rows instead of stopping")
    p.add_argument("--device", default="auto", help="transformers device: auto (cuda if present), cpu, cuda, cuda:1")
    p.add_argument("-q", "--quiet", action="store_true", help="less logging")
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.benchmark:
        if args.single or args.input_file:
            p.error("--benchmark is a --batch input: drop --single/--input_file")
        args.batch = True
    if args.batch and not args.input_file and not args.benchmark:
        p.error("--batch needs --input_file (or --benchmark)")
    if not args.batch and (args.input_file or args.output_file):
        p.error("--input_file/--output_file need --batch")
    if not args.batch and len(args.model_path) > 1:
        p.error("--single takes one --model_path (several are for --batch comparisons)")
    if args.temperature < 0:
        p.error(f"--temperature {args.temperature}: must be >= 0")
    for name in ("max_new_tokens", "batch_size", "n_samples"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: must be >= 1")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit {args.limit}: must be >= 1")
    if args.n_samples > 1 and args.temperature == 0:
        p.error("--n_samples > 1 with --temperature 0 gives K identical greedy samples; set --temperature > 0")


def make_generator(model_path: str, args: argparse.Namespace):
    """The backend the options ask for; raises RuntimeError when vLLM is asked for and cannot run."""
    from common.evaluation.generation import HFGenerator, VLLMGenerator, vllm_unavailable_reason

    if args.use_vllm:
        reason = vllm_unavailable_reason()
        if reason is None:
            return VLLMGenerator(model_path, template=args.template)
        if not args.fallback:
            raise RuntimeError(f"--use_vllm: {reason}. Drop --use_vllm, or add --fallback to use transformers.")
        logger.warning("--use_vllm: %s; falling back to transformers (--fallback)", reason)
    return HFGenerator(model_path, template=args.template, device=args.device)


# --------------------------------------------------------------------------- single mode


def run_single(generator, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    interactive = stdin.isatty()
    system = args.system_prompt
    temperature = args.temperature
    history: list[dict[str, str]] = []
    if interactive:
        stdout.write("Type a prompt. Commands: /reset, /system TEXT, /temp X, /exit\n")
    while True:
        if interactive:
            stdout.write("\n>>> ")
            stdout.flush()
        line = stdin.readline()
        if not line:  # EOF (Ctrl-D or end of the piped input)
            break
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            command, _, rest = line.partition(" ")
            if command == "/exit":
                break
            if command == "/reset":
                history = []
                stdout.write("[history cleared]\n")
            elif command == "/system":
                system = rest.strip() or None
                history = []  # a new system prompt starts a new conversation
                stdout.write(f"[system prompt {'set' if system else 'removed'}; history cleared]\n")
            elif command == "/temp":
                try:
                    value = float(rest)
                    if value < 0:
                        raise ValueError
                    temperature = value
                    stdout.write(f"[temperature {temperature}]\n")
                except ValueError:
                    stdout.write(f"[/temp needs a number >= 0, got {rest!r}]\n")
            else:
                stdout.write(f"[unknown command {command}; use /reset, /system TEXT, /temp X, /exit]\n")
            stdout.flush()
            continue
        messages = ([{"role": "system", "content": system}] if system else []) + history
        messages.append({"role": "user", "content": line})
        if not interactive:
            stdout.write(f">>> {line}\n")
        sample = None
        for piece in generator.stream_chat(messages, temperature, args.max_new_tokens):
            if isinstance(piece, str):
                stdout.write(piece)
                stdout.flush()
            else:
                sample = piece
        rate = sample.tokens / sample.latency_s if sample.latency_s > 0 else 0.0
        flag = ", truncated" if sample.truncated else ""
        stdout.write(f"\n[{sample.tokens} tokens, {sample.latency_s:.2f} s, {rate:.1f} tok/s{flag}]\n")
        stdout.flush()
        history += [{"role": "user", "content": line}, {"role": "assistant", "content": sample.text}]
    return 0


# --------------------------------------------------------------------------- batch mode


def default_output_path(input_file: str) -> Path:
    src = Path(input_file)
    stamp = datetime.now().strftime("%Y%m%d_%H%M%S")
    return src.with_name(f"{src.stem}_results_{stamp}.xlsx")


def run_batch(args: argparse.Namespace) -> Path:
    from tqdm import tqdm

    from common.evaluation.checkpoint import resolve_model
    from common.evaluation.inputs import load_rows
    from common.evaluation.report import ModelResult, check_output_path, write_report
    from common.evaluation.scoring import check_reward, load_reward, score_sample

    # Everything that can be checked is checked before the first (slow) generation.
    if args.benchmark:
        from common.hub_data import load_benchmark

        rows, problems = load_benchmark(args.benchmark, limit=args.limit), []
    else:
        rows, problems = load_rows(args.input_file, skip_bad_rows=args.skip_bad_rows, limit=args.limit)
    # A benchmark's report lands in the current folder as <benchmark>_results_<time>.xlsx.
    source = args.input_file or args.benchmark
    for problem in problems:
        logger.warning("%s: skipped %s", source, problem)
    if args.system_prompt:
        for row in rows:
            if row.messages[0]["role"] != "system":
                row.messages.insert(0, {"role": "system", "content": args.system_prompt})
    output = Path(args.output_file) if args.output_file else default_output_path(source)
    check_output_path(output, Path(args.input_file) if args.input_file else None)
    reward_fn = load_reward(args.reward)
    check_reward(reward_fn, rows)
    resolved = [resolve_model(p) for p in args.model_path]
    labels: dict[str, int] = {}
    for r in resolved:  # two models named alike ("actor", "global_step_5") get #2, #3
        labels[r.label] = labels.get(r.label, 0) + 1
        if labels[r.label] > 1:
            r.label = f"{r.label}#{labels[r.label]}"

    results = []
    for r in resolved:
        t_wall = time.perf_counter()
        logger.info("loading %s (%s)", r.label, r.hf_path)
        generator = make_generator(r.hf_path, args)
        with tqdm(total=len(rows) * args.n_samples, desc=f"{r.label}: generating", unit="sample") as bar:
            t_gen = time.perf_counter()
            samples = generator.generate(
                [row.messages for row in rows],
                n_samples=args.n_samples,
                temperature=args.temperature,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size,
                seed=args.seed,
                progress=bar.update,
            )
            gen_s = time.perf_counter() - t_gen
        scores = [[score_sample(reward_fn, row, s.text) for s in per_row] for row, per_row in zip(rows, samples)]
        results.append(
            ModelResult(
                label=r.label,
                model_path=r.requested,
                resolved_path=r.hf_path,
                backend=generator.backend,
                rows=rows,
                samples=samples,
                scores=scores,
                generation_s=gen_s,
                wall_s=time.perf_counter() - t_wall,
            )
        )
        del generator  # free the model before loading the next one

    settings = {
        "input_file": f"benchmark {args.benchmark}" if args.benchmark else str(Path(args.input_file).resolve()),
        "rows": len(rows),
        "skipped_bad_rows": len(problems),
        "n_samples": args.n_samples,
        "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens,
        "template": args.template,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "reward": args.reward or "default (common.reward_functions:compute_score)",
        "system_prompt": args.system_prompt or "",
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    payload = write_report(output, settings, results)
    for s in payload["summary"]:
        logger.info(
            "%s: accuracy %.3f, mean score %.3f over %d samples -> %s",
            s["model"], s["accuracy"], s["mean_score"], s["samples"], output,
        )
    return output


def main(argv: list[str] | None = None) -> int:
    # test.sh runs us from the repository root; relative paths belong to the caller's folder.
    caller_dir = os.environ.pop("TEST_MODEL_CALLER_DIR", None)
    if caller_dir:
        os.chdir(caller_dir)
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from common.evaluation.checkpoint import CheckpointError
    from common.evaluation.inputs import InputError
    from common.evaluation.scoring import RewardError

    try:
        if args.batch:
            output = run_batch(args)
            print(output)
            return 0
        resolved = resolve_single(args.model_path[0])
        generator = make_generator(resolved, args)
        return run_single(generator, args, sys.stdin, sys.stdout)
    except (InputError, CheckpointError, RewardError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: no report written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME


def resolve_single(model_path: str) -> str:
    from common.evaluation.checkpoint import resolve_model

    return resolve_model(model_path).hf_path


if __name__ == "__main__":
    # Keep tokenizers from forking warnings; the streamer uses a thread, not processes.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
