"""Checks verl only runs after Ray has started and the models have loaded, run here in seconds.

    DRY_RUN=1 ./grpo/train.sh            # runs them (every launch runs them first) and prints the report
    DRY_RUN=1 ./grpo/train.sh --json     # the same report as one JSON document on stdout
    FORCE=1 ./grpo/train.sh              # launch even though a check failed (printed as a warning)

Offers:
- Result: one check's outcome (check, status ok|warn|fail|skipped, detail, knobs to change).
- run_checks(plan, cfg) -> list[Result]: every check for the plan's trainer (RL or SFT), each
  guarded so a crash in one check is a failure naming the crash, never an exception.
- format_table(results), verdict(results), to_json(results, plan): the report.
- failure_message(results, method): the config error a failed check turns into.

The checks live in common/checks/, one module per subject (batch sizes, parallel sizes, the
algorithm and rollout correction, the model's lengths and memory, data, reward, the best checkpoint,
environment). Each rule mirrors a check in verl 0.9.1 (file
named beside it), so a config that would crash minutes into a launch fails here instead, naming
the config-block variable. A check that cannot run here (model not on disk, no GPU) says
"skipped" and why: unchecked is never reported as passed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from common.checks.algorithm import algorithm_checks, rollout_correction_checks, top_entropy_checks
from common.checks.attention import attention_checks
from common.checks.batch import batch_checks, sft_checks
from common.checks.checkpoints import keep_best_checks
from common.checks.data import data_checks, prompt_length_checks
from common.checks.environment import (
    callbacks_checks,
    gpu_checks,
    knob_name_checks,
    legacy_key_checks,
    logger_checks,
    output_checks,
    ray_checks,
    version_checks,
)
from common.checks.lora import lora_checks
from common.checks.model import length_checks, load_tokenizer, memory_checks, model_checks, model_path
from common.checks.parallel import parallel_checks
from common.checks.result import Result
from common.checks.reward import data_source_checks, reward_checks, reward_manager_checks
from common.gpus import detect_gpus

__all__ = ["Result", "run_checks", "verdict", "format_table", "failure_message", "to_json"]


def run_checks(plan, cfg, env: dict | None = None, dry_run: bool | None = None, gpus_found: int | None = None) -> list[Result]:
    """Every check for the plan; a check that crashes is reported as a failure naming the crash."""
    from common.memory import shape_for

    env = dict(os.environ if env is None else env)
    if dry_run is None:
        dry_run = (env.get("DRY_RUN") or "0").strip().lower() in {"1", "true", "yes", "on", "full"}
    if gpus_found is None:
        gpus_found = detect_gpus()[0]
    model = model_path(plan, cfg)
    ctx: dict = {"env": env, "dry_run": dry_run, "gpus_found": gpus_found}
    ctx["shape"] = shape_for(model)
    ctx["tokenizer"] = load_tokenizer(model)
    if plan.trainer == "sft":
        steps = [lambda p, c, x: sft_checks(c)]
    else:
        steps = [lambda p, c, x: batch_checks(c), lambda p, c, x: parallel_checks(c, x.get("shape"))]
    steps += [algorithm_checks, rollout_correction_checks, top_entropy_checks, model_checks, length_checks, data_checks,
              data_source_checks, prompt_length_checks, reward_checks, reward_manager_checks, keep_best_checks,
              legacy_key_checks, attention_checks, lora_checks, knob_name_checks, callbacks_checks, logger_checks,
              output_checks, version_checks, gpu_checks, ray_checks, memory_checks]
    results: list[Result] = []
    for step in steps:
        try:
            results += step(plan, cfg, ctx)
        except Exception as exc:  # a bug or an unexpected file: a check that cannot finish is a failure, never a pass
            name = getattr(step, "__name__", "check").removesuffix("_checks")
            results.append(Result.fail(name, f"the check itself crashed: {type(exc).__name__}: {str(exc)[:300]} "
                                       "(FORCE=1 launches anyway if you are sure)"))
    return results


def verdict(results: list[Result], force: bool = False) -> str:
    fails = [r for r in results if r.failed]
    warns = [r for r in results if r.status == "warn"]
    skipped = [r for r in results if r.status == "skipped"]
    tail = f"{len(warns)} warning(s), {len(skipped)} skipped"
    if fails and force:
        return f"FORCED: {len(fails)} failed check(s) overridden by FORCE=1, {tail}"
    if fails:
        return f"FAIL: {len(fails)} failed check(s), {tail}; fix them or set FORCE=1 to launch anyway"
    return f"PASS: {len(results) - len(warns) - len(skipped)} ok, {tail}"


def format_table(results: list[Result]) -> str:
    width = max((len(r.check) for r in results), default=5)
    lines = [f"{'check':{width}}  result   detail"]
    for r in results:
        lines.append(f"{r.check:{width}}  {r.status:7}  {r.detail}")
    return "\n".join(lines)


def failure_message(results: list[Result], method: str) -> str:
    lines = []
    for r in results:
        if r.failed:
            change = f"\n  change: {', '.join(r.knobs)} in {method}/train.sh" if r.knobs else ""
            lines.append(f"[{r.check}] {r.detail}{change}")
    return "\n".join(lines)


def to_json(results: list[Result], plan=None, force: bool = False, **extra) -> str:
    doc = {
        "method": getattr(plan, "method", None),
        "verdict": "fail" if extra.get("error") or (any(r.failed for r in results) and not force)
        else ("forced" if any(r.failed for r in results) else "pass"),
        "summary": verdict(results, force),
        "checks": [asdict(r) for r in results],
        **extra,
    }
    return json.dumps(doc, indent=2, default=str)
