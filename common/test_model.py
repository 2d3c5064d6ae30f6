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
  history), /system TEXT, /temp X, /exit. History is kept across turns until /reset. On a
  terminal, readline gives line editing and the arrow keys, with the prompts of past sessions
  kept in HISTORY_FILE.
- run_batch(args) -> output path: loads and checks every input row, the output path and the
  reward before anything slow; then per model: a warm-up generation (not timed), the timed
  generation (progress bar), scoring row by row (a row whose scoring fails or overruns
  --reward_timeout_s is that row's error), and at the end the report (common/evaluation/report.py).
- chat_template_kwargs_for(resolved, explicit): the template arguments a model is prompted with:
  --chat_template_kwargs for every model, else its run folder's data.apply_chat_template_kwargs
  (config.yaml), else none.

Exit codes: 0 ok; 1 runtime failure; 2 bad option, input, model path or reward; 130 Ctrl-C;
143 SIGTERM (no report is written in either case: reports are written atomically at the end).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

logger = logging.getLogger("test_model")

EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 130, 143
REPO_ROOT = Path(__file__).resolve().parents[1]
# Reports go here unless --output_file says otherwise (outputs/ is not tracked by git).
DEFAULT_OUTPUT_DIR = REPO_ROOT / "outputs" / "eval"
# The chat's readline history, shared by every session of this user.
HISTORY_FILE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "verl-posttrain" / "test_sh_history"
_HISTORY_LENGTH = 1000
# Warm-up: this many tokens on the first batch's prompts, enough to load kernels and allocate.
_WARMUP_TOKENS = 16


def build_parser() -> argparse.ArgumentParser:
    from common.evaluation.generation import TEMPLATES
    from common.evaluation.inputs import DEFAULT_DATA_SOURCE
    from common.evaluation.scoring import DEFAULT_REWARD, DEFAULT_TIMEOUT_S
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
        help="Hugging Face folder or hub id, or a verl checkpoint (run folder, experiment folder with "
        "latest_checkpointed_iteration.txt or global_step_N/, a global_step_N folder, or its actor/); "
        "checkpoints are merged once with verl.model_merger and cached in actor/huggingface_merged "
        "(checked before use, merged again when incomplete). "
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
        help="report path; .xlsx (Summary, Results, and Compare with several models) or .json; "
        "default: outputs/eval/INPUT-MODELS-YYYYmmdd-HHMMSS.xlsx in the repository",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --output_file")
    p.add_argument("--use_vllm", action="store_true", help="generate with vLLM (needs vLLM and a CUDA GPU)")
    p.add_argument("--fallback", action="store_true", help="with --use_vllm: use transformers if vLLM cannot run")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; 0 = greedy")
    p.add_argument("--top_p", type=float, default=1.0, help="nucleus sampling: keep the smallest set of tokens "
                   "whose probability reaches top_p (1.0 = all, as verl's rollout default)")
    p.add_argument("--max_new_tokens", type=int, default=512, help="response length limit (tokens)")
    p.add_argument(
        "--template",
        choices=list(TEMPLATES),
        default="auto",
        help="auto = the model's own chat template; default (User:/Assistant:), chatml, llama force one",
    )
    p.add_argument(
        "--chat_template_kwargs",
        default=None,
        metavar="JSON",
        help="arguments for the chat template, e.g. '{\"enable_thinking\": false}' for Qwen3, as verl's "
        "data.apply_chat_template_kwargs in training; default: each run folder's own (config.yaml), else none",
    )
    p.add_argument("--batch_size", type=int, default=8, help="prompts per generate() call (transformers backend)")
    p.add_argument("--n_samples", type=int, default=1, help="samples per prompt; K > 1 reports pass@k, maj@k, mean@k")
    p.add_argument(
        "--reward",
        default=None,
        help=f"reward function as MODULE_OR_FILE.py[:FUNC] (default {DEFAULT_REWARD}, "
        "called with each row's data_source)",
    )
    p.add_argument(
        "--reward_timeout_s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="time limit per reward call, in a worker process killed on overrun (that row is scored 0 "
        "and counted as a timeout); 0 = no limit, the reward runs in this process",
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
    if not args.batch and (args.input_file or args.output_file or args.force):
        p.error("--input_file/--output_file/--force need --batch")
    if not args.batch and len(args.model_path) > 1:
        p.error("--single takes one --model_path (several are for --batch comparisons)")
    if not 0 <= args.temperature < math.inf:  # also NaN
        p.error(f"--temperature {args.temperature}: must be a number >= 0")
    if not 0 < args.top_p <= 1:
        p.error(f"--top_p {args.top_p}: must be in (0, 1]")
    if not args.reward_timeout_s >= 0 or args.reward_timeout_s == float("inf"):
        p.error(f"--reward_timeout_s {args.reward_timeout_s}: must be a number of seconds >= 0 (0 = no limit)")
    for name in ("max_new_tokens", "batch_size", "n_samples"):
        if getattr(args, name) < 1:
            p.error(f"--{name} {getattr(args, name)}: must be >= 1")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit {args.limit}: must be >= 1")
    if args.n_samples > 1 and args.temperature == 0:
        p.error("--n_samples > 1 with --temperature 0 gives K identical greedy samples; set --temperature > 0")


def chat_template_kwargs_for(resolved, explicit: dict | None) -> tuple[dict, str]:
    """(template arguments, where they come from) for one resolved --model_path."""
    from common.evaluation.checkpoint import run_chat_template_kwargs

    if explicit is not None:
        return explicit, "--chat_template_kwargs"
    if resolved.run_dir:
        return run_chat_template_kwargs(Path(resolved.run_dir)), str(Path(resolved.run_dir) / "config.yaml")
    return {}, "none"


def make_generator(model_path: str, args: argparse.Namespace, chat_template_kwargs: dict | None = None):
    """The backend the options ask for; raises RuntimeError when vLLM is asked for and cannot run."""
    from common.evaluation.generation import HFGenerator, VLLMGenerator, vllm_unavailable_reason

    if args.use_vllm:
        reason = vllm_unavailable_reason()
        if reason is None:
            return VLLMGenerator(model_path, template=args.template, chat_template_kwargs=chat_template_kwargs)
        if not args.fallback:
            raise RuntimeError(f"--use_vllm: {reason}. Drop --use_vllm, or add --fallback to use transformers.")
        logger.warning("--use_vllm: %s; falling back to transformers (--fallback)", reason)
    return HFGenerator(model_path, template=args.template, device=args.device, chat_template_kwargs=chat_template_kwargs)


# --------------------------------------------------------------------------- single mode


def _enable_readline(history_file: Path):
    """Line editing, arrow keys and history for input(); returns a function that saves the history."""
    try:
        import readline
    except ImportError:  # not on every platform; input() still works, without editing
        return None
    try:
        readline.read_history_file(history_file)
    except OSError:  # first session, or an unreadable file: start empty
        pass
    readline.set_history_length(_HISTORY_LENGTH)

    def save() -> None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history_file)
        except OSError as exc:
            logger.warning("could not save the chat history to %s: %s", history_file, exc)

    return save


def run_single(generator, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    interactive = stdin.isatty()
    # input() is what readline edits; it reads the real terminal, so only for sys.stdin.
    use_readline = interactive and stdin is sys.stdin and stdout is sys.stdout
    save_history = _enable_readline(HISTORY_FILE) if use_readline else None
    system = args.system_prompt
    temperature = args.temperature
    top_p = getattr(args, "top_p", 1.0)
    history: list[dict[str, str]] = []
    if interactive:
        stdout.write("Type a prompt. Commands: /reset, /system TEXT, /temp X, /exit (arrows edit and recall)\n")
    try:
        while True:
            if use_readline:
                stdout.write("\n")
                try:
                    line = input(">>> ")
                except EOFError:  # Ctrl-D
                    stdout.write("\n")
                    break
                except KeyboardInterrupt:  # Ctrl-C at the prompt drops the line, as in Python's REPL
                    stdout.write("^C\n")
                    continue
            else:
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
            for piece in generator.stream_chat(messages, temperature, args.max_new_tokens, top_p=top_p):
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
    finally:
        if save_history is not None:
            save_history()
    return 0


# --------------------------------------------------------------------------- batch mode


def _check_default_output_dir(out_dir: Path) -> None:
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(
            f"default report folder {out_dir} cannot be written ({exc.strerror}); pass --output_file PATH"
        ) from exc


def _label_models(resolved) -> None:
    labels: dict[str, int] = {}
    for r in resolved:  # two models named alike ("actor", "global_step_5") get #2, #3
        labels[r.label] = labels.get(r.label, 0) + 1
        if labels[r.label] > 1:
            r.label = f"{r.label}#{labels[r.label]}"


def _warm_up(generator, rows, args: argparse.Namespace) -> float:
    """One short untimed generation: CUDA context, kernels and allocator are ready before timing."""
    t0 = time.perf_counter()
    generator.generate(
        [row.messages for row in rows[: args.batch_size]],
        n_samples=1,
        temperature=args.temperature,
        max_new_tokens=min(args.max_new_tokens, _WARMUP_TOKENS),
        batch_size=args.batch_size,
        seed=args.seed,
        top_p=args.top_p,
    )
    return time.perf_counter() - t0


def _score_all(reward, rows, samples, label: str):
    from tqdm import tqdm

    from common.evaluation.scoring import score_one

    scores = []
    with tqdm(total=sum(len(s) for s in samples), desc=f"{label}: scoring", unit="sample") as bar:
        for row, per_row in zip(rows, samples):
            scores.append([score_one(reward, row, s.text) for s in per_row])
            bar.update(len(per_row))
    failed = [(row.id, s.error) for row, per_row in zip(rows, scores) for s in per_row if s.error]
    if failed:
        logger.warning(
            "%s: scoring failed on %d sample(s) (scored 0, listed in the report's reward_error column); first: row id %s: %s",
            label, len(failed), failed[0][0], failed[0][1],
        )
    return scores


def run_batch(args: argparse.Namespace, explicit_kwargs: dict | None = None) -> Path:
    from tqdm import tqdm

    from common.evaluation.checkpoint import resolve_model
    from common.evaluation.inputs import load_rows
    from common.evaluation.report import ModelResult, check_output_path, default_output_path, write_report
    from common.evaluation.scoring import check_reward, make_reward

    # Everything that can be checked is checked before the first (slow) generation.
    if args.benchmark:
        from common.hub_data import load_benchmark

        rows, problems = load_benchmark(args.benchmark, limit=args.limit), []
    else:
        rows, problems = load_rows(args.input_file, skip_bad_rows=args.skip_bad_rows, limit=args.limit)
    # A benchmark's report is named for it: outputs/eval/<benchmark>-<models>-<time>.xlsx.
    source = args.input_file or args.benchmark
    for problem in problems:
        logger.warning("%s: skipped %s", source, problem)
    if args.system_prompt:
        for row in rows:
            if row.messages[0]["role"] != "system":
                row.messages.insert(0, {"role": "system", "content": args.system_prompt})
    replacing = False
    input_path = Path(args.input_file) if args.input_file else None
    if args.output_file:
        output = Path(args.output_file)
        replacing = check_output_path(output, input_path, force=args.force)
        if replacing:
            logger.warning("--output_file %s exists and will be replaced at the end (--force)", output)
    else:
        _check_default_output_dir(DEFAULT_OUTPUT_DIR)
    reward = make_reward(args.reward, args.reward_timeout_s)
    try:
        check_reward(reward, rows)
        resolved = [resolve_model(p) for p in args.model_path]
        _label_models(resolved)
        kwargs = []
        for r in resolved:
            value, source_of = chat_template_kwargs_for(r, explicit_kwargs)
            kwargs.append(value)
            if value:
                logger.info("%s: chat template arguments %s (from %s)", r.label, json.dumps(value), source_of)
        if not args.output_file:
            output = default_output_path(source, [r.label for r in resolved], DEFAULT_OUTPUT_DIR)

        results = []
        for r, template_kwargs in zip(resolved, kwargs):
            logger.info("loading %s (%s)", r.label, r.hf_path)
            generator = make_generator(r.hf_path, args, template_kwargs)
            warmup_s = _warm_up(generator, rows, args)
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
                    top_p=args.top_p,
                )
                gen_s = time.perf_counter() - t_gen
            backend = generator.backend
            del generator  # free the model before scoring and before loading the next one
            results.append(
                ModelResult(
                    label=r.label,
                    model_path=r.requested,
                    resolved_path=r.hf_path,
                    backend=backend,
                    samples=samples,
                    scores=_score_all(reward, rows, samples, r.label),
                    generation_s=gen_s,
                    warmup_s=warmup_s,
                    chat_template_kwargs=template_kwargs,
                )
            )
    finally:
        close = getattr(reward, "close", None)
        if close is not None:
            close()

    distinct = {json.dumps(k, sort_keys=True) for k in kwargs}
    settings = {
        "input_file": f"benchmark {args.benchmark}" if args.benchmark else str(Path(args.input_file).resolve()),
        "rows": len(rows),
        "skipped_bad_rows": len(problems),
        "n_samples": args.n_samples,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_new_tokens": args.max_new_tokens,
        "template": args.template,
        "chat_template_kwargs": distinct.pop() if len(distinct) == 1 else "per model (see Models)",
        "batch_size": args.batch_size,
        "seed": args.seed,
        "reward": args.reward or "default (common.reward_functions:compute_score)",
        "reward_timeout_s": args.reward_timeout_s or "none (in process)",
        "system_prompt": args.system_prompt or "",
        "created": datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["./test.sh", *getattr(args, "argv", [])]),
    }
    payload = write_report(output, settings, rows, results)
    for s in payload["summary"]:
        if s["data_source"] == "all":
            logger.info("%s: accuracy %.3f, mean score %.3f over %d samples", s["model"], s["accuracy"],
                        s["mean_score"], s["samples"])
    for m in payload["models"]:
        logger.info("%s: %.1f tokens/s after warm-up (%s)", m["model"], m["tokens_per_s"] or 0.0, m["backend"])
    if replacing:
        print(f"replaced the existing {output} (--force)", file=sys.stderr)
    return output


def _on_sigterm(signum, frame) -> None:
    # Unwinds like Ctrl-C: temp report files and half merges are removed by their handlers.
    raise SystemExit(EXIT_TERMINATED)


def main(argv: list[str] | None = None) -> int:
    # test.sh runs us from the repository root; relative paths belong to the caller's folder.
    caller_dir = os.environ.pop("TEST_MODEL_CALLER_DIR", None)
    if caller_dir:
        os.chdir(caller_dir)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    _check_args(parser, args)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from common.evaluation.checkpoint import CheckpointError
    from common.evaluation.generation import ModelLoadError, parse_chat_template_kwargs
    from common.evaluation.inputs import InputError
    from common.evaluation.scoring import RewardError

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    what = "no report written" if args.batch else "chat ended"
    try:
        explicit = None
        if args.chat_template_kwargs is not None:
            explicit = parse_chat_template_kwargs(args.chat_template_kwargs)
        if args.batch:
            output = run_batch(args, explicit)
            print(output)
            return 0
        resolved = resolve_single(args.model_path[0])
        template_kwargs, source = chat_template_kwargs_for(resolved, explicit)
        if template_kwargs:
            logger.info("chat template arguments %s (from %s)", json.dumps(template_kwargs), source)
        generator = make_generator(resolved.hf_path, args, template_kwargs)
        return run_single(generator, args, sys.stdin, sys.stdout)
    except (InputError, CheckpointError, RewardError, ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ninterrupted: {what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        if exc.code != EXIT_TERMINATED:
            raise
        print(f"terminated (SIGTERM): {what}", file=sys.stderr)
        return EXIT_TERMINATED
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def resolve_single(model_path: str):
    from common.evaluation.checkpoint import resolve_model

    return resolve_model(model_path)


if __name__ == "__main__":
    # Keep tokenizers from forking warnings; the streamer uses a thread, not processes.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
