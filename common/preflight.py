"""Checks verl only runs after Ray has started and the models have loaded, run here in seconds.

    DRY_RUN=1 ./grpo/train.sh            # runs them (every launch runs them first) and prints the report
    DRY_RUN=1 ./grpo/train.sh --json     # the same report as one JSON document on stdout
    FORCE=1 ./grpo/train.sh              # launch even though a check failed (printed as a warning)

Offers:
- Result: one check's outcome (check, status ok|warn|fail|skipped, detail, knobs to change).
- run_checks(plan, cfg) -> list[Result]: every check for the plan's trainer (RL or SFT), each
  guarded so a crash in one check is reported, never raised.
- The checks, each `name(plan, cfg, ctx) -> list[Result]`: batch sizes, parallel sizes, lengths,
  data files, data sources, prompt lengths, reward function, legacy config keys, loggers, output
  folder, installed versions, GPUs, Ray, memory (common/memory.py).
- rl_checks(cfg) / sft_checks(cfg): the config-only arithmetic (batch and parallel sizes).
- format_table(results), verdict(results), to_json(results, plan): the report.
- failure_message(results, method): the config error a failed check turns into.

Each rule mirrors a check in verl 0.9.1 (file named beside it), so a config that would crash
minutes into a launch fails here instead, naming the config-block variable. A check that cannot
run here (model not on disk, no GPU) says "skipped" and why: unchecked is never reported as passed.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Rows tokenized to measure prompt lengths: 2,000 rows give the 99th percentile within ~0.5%
# and take ~1 s with a fast tokenizer; larger files are sampled (seeded) rather than read whole.
PROMPT_SAMPLE_ROWS = 2000
# Rows of the train file the reward function is tried on (x 2 made-up responses each).
REWARD_SAMPLE_ROWS = 4
# Seconds allowed to import the reward file and for one call of the reward function.
REWARD_IMPORT_TIMEOUT_S = float(os.environ.get("PREFLIGHT_REWARD_IMPORT_TIMEOUT", "60"))
REWARD_CALL_TIMEOUT_S = float(os.environ.get("PREFLIGHT_REWARD_CALL_TIMEOUT", "10"))
# The pins of the GPU stack (verl 0.9.1's vllm/sglang extras) and of the CPU development build.
GPU_PINS = {"torch": "2.11.0", "vllm": "0.24.0", "sglang": "0.5.12", "transformers": "5.9.0"}
CPU_TORCH = "2.13.0"
VERL_VERSION = "0.9.1"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Where verl 0.9.1 reads what the legacy top-level keys used to set (trainer/config/legacy_reward_impl.yaml).
LEGACY_MOVES = {
    "custom_reward_function.path": "reward.custom_reward_function.path (REWARD_FUNC_PATH)",
    "custom_reward_function.name": "reward.custom_reward_function.name (REWARD_FUNC_NAME)",
    "reward_model.reward_manager": "reward.reward_manager.name (REWARD_MANAGER)",
    "reward_model.reward_kwargs": "reward.reward_kwargs (+reward.reward_kwargs.KEY=...)",
    "reward_model.num_workers": "reward.num_workers (REWARD_WORKERS)",
    "reward_model.enable": "reward.reward_model.enable",
    "reward_model.model": "reward.reward_model.model_path (REWARD_MODEL_PATH)",
    "reward_model.rollout": "reward.reward_model.rollout",
}


@dataclass
class Result:
    check: str
    status: str  # ok | warn | fail | skipped
    detail: str
    knobs: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def _fail(check: str, detail: str, *knobs: str) -> Result:
    return Result(check, "fail", detail, list(knobs))


def _warn(check: str, detail: str, *knobs: str) -> Result:
    return Result(check, "warn", detail, list(knobs))


def _ok(check: str, detail: str) -> Result:
    return Result(check, "ok", detail)


def _skip(check: str, detail: str) -> Result:
    return Result(check, "skipped", detail)


def _world(cfg) -> int:
    return int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)


# ---------------------------------------------------------------------------------------------
# batch and parallel arithmetic (config only)


def _micro_check(results, what: str, per_rank: int, micro, how: str, *knobs: str) -> None:
    """verl/workers/engine/utils.py prepare_micro_batches: assert data size % micro == 0."""
    if micro and per_rank % int(micro):
        results.append(
            _fail(
                "batch sizes",
                f"{what}: each GPU gets {per_rank} sequences ({how}), not a multiple of the micro batch "
                f"({micro}); verl asserts this inside its workers. Try {_divisor_near(per_rank, int(micro))}",
                *knobs,
            )
        )


def batch_checks(cfg) -> list[Result]:
    """Mini/micro batch arithmetic of the actor, the log-prob passes and the critic."""
    actor = cfg.actor_rollout_ref.actor
    rollout = cfg.actor_rollout_ref.rollout
    ref = cfg.actor_rollout_ref.ref
    n = int(rollout.n)
    world = _world(cfg)
    sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    results: list[Result] = []
    if dp == 0:
        return [_fail("batch sizes", f"{world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]

    train = int(cfg.data.train_batch_size)
    mini = int(actor.ppo_mini_batch_size)
    if train % mini:
        results.append(
            _fail(
                "batch sizes",
                f"TRAIN_BATCH_SIZE ({train}) is not a multiple of PPO_MINI_BATCH_SIZE ({mini}): "
                f"the last update of every step would get {train % mini} prompts",
                "TRAIN_BATCH_SIZE",
                "PPO_MINI_BATCH_SIZE",
            )
        )
    # verl: ppo_mini_batch_size *= rollout.n; assert mini % dp == 0 (engine_workers.train_mini_batch).
    seqs = mini * n
    if seqs % dp:
        results.append(
            _fail(
                "batch sizes",
                f"PPO_MINI_BATCH_SIZE x ROLLOUT_N = {mini} x {n} = {seqs} sequences cannot be split evenly "
                f"over {dp} data-parallel ranks",
                "PPO_MINI_BATCH_SIZE",
                "ROLLOUT_N",
                "N_GPUS_PER_NODE",
            )
        )
        return results
    per_rank = seqs // dp
    step_per_rank = train * n // dp if (train * n) % dp == 0 else 0
    if not actor.use_dynamic_bsz:
        _micro_check(results, "actor update", per_rank, actor.ppo_micro_batch_size_per_gpu,
                     f"{mini} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "PPO_MINI_BATCH_SIZE")
        if step_per_rank:
            _micro_check(results, "rollout log-prob pass", step_per_rank, rollout.log_prob_micro_batch_size_per_gpu,
                         f"{train} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
            if cfg.actor_rollout_ref.actor.use_kl_loss or cfg.algorithm.get("use_kl_in_reward", False):
                _micro_check(results, "reference log-prob pass", step_per_rank, ref.log_prob_micro_batch_size_per_gpu,
                             f"{train} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
    results += _critic_batch_checks(cfg, n, world, train)
    # engine_workers.py: assert actor.use_dynamic_bsz == rollout.log_prob_use_dynamic_bsz.
    if bool(actor.use_dynamic_bsz) != bool(rollout.log_prob_use_dynamic_bsz):
        results.append(
            _fail(
                "batch sizes",
                "actor.use_dynamic_bsz and rollout.log_prob_use_dynamic_bsz differ (verl asserts they agree); "
                "set both with USE_DYNAMIC_BSZ",
                "USE_DYNAMIC_BSZ",
            )
        )
    prompt, response = int(cfg.data.max_prompt_length), int(cfg.data.max_response_length)
    if actor.use_dynamic_bsz:
        for name, value in (
            ("actor.ppo_max_token_len_per_gpu", actor.ppo_max_token_len_per_gpu),
            ("rollout.log_prob_max_token_len_per_gpu", rollout.log_prob_max_token_len_per_gpu),
            ("ref.log_prob_max_token_len_per_gpu", ref.log_prob_max_token_len_per_gpu),
        ):
            budget = int(value) * sp
            if budget < prompt + response:
                results.append(
                    _fail(
                        "batch sizes",
                        f"{name} x SP_SIZE = {budget} tokens cannot hold one sequence of "
                        f"MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH = {prompt} + {response} = {prompt + response} tokens",
                        "MAX_TOKENS_PER_GPU",
                    )
                )
                break
    if not results:
        results.append(_ok("batch sizes", f"{train} prompts x {n} = {train * n} sequences; {per_rank} per GPU per update"))
    return results


def _critic_batch_checks(cfg, n: int, world: int, train: int) -> list[Result]:
    critic = cfg.critic
    enabled = critic.get("enable")
    use_critic = cfg.algorithm.adv_estimator == "gae" if enabled is None else bool(enabled)
    if not use_critic:
        return []
    results: list[Result] = []
    sp = int(critic.get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    if dp == 0:
        return [_fail("batch sizes", f"critic: {world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]
    seqs = int(critic.ppo_mini_batch_size) * n
    if seqs % dp:
        return [
            _fail(
                "batch sizes",
                f"critic mini-batch {critic.ppo_mini_batch_size} x ROLLOUT_N {n} = {seqs} sequences cannot be split "
                f"over {dp} data-parallel ranks",
                "PPO_MINI_BATCH_SIZE",
                "ROLLOUT_N",
            )
        ]
    if not critic.use_dynamic_bsz:
        _micro_check(results, "critic update", seqs // dp, critic.ppo_micro_batch_size_per_gpu,
                     f"{critic.ppo_mini_batch_size} x {n} / {dp}", "MICRO_BATCH_SIZE_PER_GPU", "PPO_MINI_BATCH_SIZE")
        forward = critic.get("forward_micro_batch_size_per_gpu") or critic.ppo_micro_batch_size_per_gpu
        if (train * n) % dp == 0:
            _micro_check(results, "critic value pass", train * n // dp, forward, f"{train} x {n} / {dp}",
                         "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
    else:
        budget = int(critic.ppo_max_token_len_per_gpu) * sp
        seq = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
        if budget < seq:
            results.append(_fail("batch sizes", f"critic.ppo_max_token_len_per_gpu x SP = {budget} < {seq} tokens "
                                 "(MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH)", "MAX_TOKENS_PER_GPU"))
    return results


def _divisor_near(total: int, wanted: int) -> int:
    """The largest divisor of total that is at most wanted (a micro batch that fits)."""
    return max(d for d in range(1, min(total, wanted) + 1) if total % d == 0)


def parallel_checks(cfg, shape=None) -> list[Result]:
    """Rollout tensor parallel vs GPUs and heads; Ulysses SP vs heads and remove-padding."""
    rollout = cfg.actor_rollout_ref.rollout
    world = _world(cfg)
    tp = int(rollout.tensor_model_parallel_size)
    dp = int(rollout.get("data_parallel_size", 1) or 1)
    pp = int(rollout.get("pipeline_model_parallel_size", 1) or 1)
    per_replica = tp * dp * pp
    if per_replica > world:
        return [
            _fail(
                "parallel sizes",
                f"one rollout engine needs ROLLOUT_TP x DP x PP = {per_replica} GPUs but there are {world}: "
                f"verl would start zero engines (set ROLLOUT_TP <= {world})",
                "ROLLOUT_TP",
                "N_GPUS_PER_NODE",
            )
        ]
    if world % per_replica:
        return [
            _fail(
                "parallel sizes",
                f"{world} GPUs cannot be split into rollout engines of {per_replica} GPUs "
                "(verl asserts world_size % infer_world_size == 0)",
                "ROLLOUT_TP",
                "N_GPUS_PER_NODE",
            )
        ]
    results: list[Result] = []
    sp = int(cfg.actor_rollout_ref.actor.get("ulysses_sequence_parallel_size", 1) or 1)
    if shape is not None:
        if shape.heads % tp:
            results.append(
                _fail("parallel sizes", f"ROLLOUT_TP={tp} does not divide the model's {shape.heads} attention heads "
                      f"(vLLM/SGLang refuse to start); use one of {[d for d in range(1, world + 1) if shape.heads % d == 0 and world % d == 0]}",
                      "ROLLOUT_TP")
            )
        if sp > 1 and (shape.heads % sp or (shape.kv_heads % sp and sp % shape.kv_heads)):
            results.append(
                _fail("parallel sizes", f"SP_SIZE={sp} must divide the {shape.heads} attention heads and divide or be a "
                      f"multiple of the {shape.kv_heads} KV heads (verl's Ulysses all-to-all splits heads)", "SP_SIZE")
            )
    if sp > 1 and not cfg.actor_rollout_ref.model.get("use_remove_padding", False):
        results.append(_fail("parallel sizes", f"SP_SIZE={sp} needs actor_rollout_ref.model.use_remove_padding=true "
                             "(verl's Ulysses path works on unpadded sequences)", "SP_SIZE"))
    if not results:
        note = "" if shape is not None else " (heads unchecked: model shape unknown here)"
        results.append(_ok("parallel sizes", f"{world // per_replica} rollout engine(s) of {per_replica} GPU(s), SP {sp}{note}"))
    return results


def rl_checks(cfg) -> list[Result]:
    return batch_checks(cfg) + parallel_checks(cfg)


def sft_checks(cfg) -> list[Result]:
    world = _world(cfg)
    batch = int(cfg.data.train_batch_size)
    if batch % world:
        return [
            _fail(
                "batch sizes",
                f"TRAIN_BATCH_SIZE ({batch}) must be divisible by the GPU count ({world})",
                "TRAIN_BATCH_SIZE",
                "N_GPUS_PER_NODE",
            )
        ]
    sp = int((cfg.get("engine", {}) or {}).get("ulysses_sequence_parallel_size", 1) or 1)
    dp = world // sp if world % sp == 0 else 0
    if dp == 0:
        return [_fail("batch sizes", f"{world} GPUs cannot be split into sequence-parallel groups of {sp}", "SP_SIZE")]
    per_rank = batch // dp
    results: list[Result] = []
    if not cfg.data.get("use_dynamic_bsz", False):
        _micro_check(results, "SFT step", per_rank, cfg.data.get("micro_batch_size_per_gpu"), f"{batch} / {dp}",
                     "MICRO_BATCH_SIZE_PER_GPU", "TRAIN_BATCH_SIZE")
    elif int(cfg.data.max_token_len_per_gpu) * sp < int(cfg.data.max_length):
        results.append(_fail("batch sizes", f"MAX_TOKENS_PER_GPU x SP_SIZE ({int(cfg.data.max_token_len_per_gpu) * sp}) "
                             f"< MAX_LENGTH ({cfg.data.max_length}): one conversation would not fit", "MAX_TOKENS_PER_GPU"))
    return results or [_ok("batch sizes", f"{batch} conversations per step, {per_rank} per GPU")]


# ---------------------------------------------------------------------------------------------
# model: shape, lengths, memory


def _model_path(plan, cfg) -> str:
    return str(cfg.model.path if plan.trainer == "sft" else cfg.actor_rollout_ref.model.path)


def length_checks(plan, cfg, ctx) -> list[Result]:
    from common.memory import load_model_config

    model = _model_path(plan, cfg)
    config, where = load_model_config(model)
    if plan.trainer == "sft":
        total, what, knobs = int(cfg.data.max_length), "MAX_LENGTH", ("MAX_LENGTH",)
    else:
        total = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
        what, knobs = "MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH", ("MAX_PROMPT_LENGTH", "MAX_RESPONSE_LENGTH")
    if config is None:
        return [_skip("lengths", f"{what} = {total} tokens not checked against the model: {where}")]
    limit = config.get("max_position_embeddings") or config.get("text_config", {}).get("max_position_embeddings")
    if not limit:
        return [_skip("lengths", f"{where} has no max_position_embeddings")]
    results = []
    if total > int(limit):
        results.append(_fail("lengths", f"{what} = {total} tokens exceeds the model's max_position_embeddings "
                             f"({limit}, {where})", *knobs))
    if plan.trainer == "rl":
        max_model_len = cfg.actor_rollout_ref.rollout.get("max_model_len")
        if max_model_len and int(max_model_len) < total:
            results.append(_fail("lengths", f"rollout.max_model_len ({max_model_len}) < {what} ({total})", *knobs))
    return results or [_ok("lengths", f"{what} = {total} <= {limit} positions")]


def memory_checks(plan, cfg, ctx) -> list[Result]:
    from common import memory

    shape = ctx.get("shape")
    if shape is None:
        return [_skip("memory", f"model {_model_path(plan, cfg)}: shape unknown here (no local config.json, "
                      "not in the built-in table); nothing estimated")]
    gpu_gb, how = memory.gpu_memory_gb(ctx.get("env"))
    est = memory.estimate_sft(cfg, shape, gpu_gb) if plan.trainer == "sft" else memory.estimate_rl(cfg, shape, gpu_gb)
    detail = f"{est.summary()}; GPU size: {how}; model shape from {shape.source}"
    if est.notes:
        detail += "; " + "; ".join(est.notes)
    if not est.fits:
        return [_fail("memory", detail + ". Will not fit; try: " + "; ".join(est.suggestions),
                      "MICRO_BATCH_SIZE_PER_GPU", "GPU_MEM_UTIL", "PARAM_OFFLOAD", "OPTIMIZER_OFFLOAD", "USE_LORA")]
    if est.suggestions:
        return [_fail("memory", detail + ". " + "; ".join(est.suggestions), "GPU_MEM_UTIL", "ROLLOUT_TP")]
    if est.peak_gib > 0.9 * est.gpu_gib:
        return [_warn("memory", detail + " (over 90%: fragmentation may still run out)")]
    return [_ok("memory", detail)]


# ---------------------------------------------------------------------------------------------
# data


def _files(value) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


_RL_TYPES = {
    "data_source": "string",
    "prompt": "list of {role, content}",
    "reward_model": "struct with ground_truth",
}


def _rl_schema_problems(schema) -> list[str]:
    import pyarrow as pa

    problems = []
    names = set(schema.names)
    for col, want in _RL_TYPES.items():
        if col not in names:
            problems.append(f"column '{col}' is missing (want {want})")
    if "data_source" in names and not pa.types.is_string(schema.field("data_source").type) and not pa.types.is_large_string(schema.field("data_source").type):
        problems.append(f"column 'data_source' is {schema.field('data_source').type}, not a string")
    if "prompt" in names:
        t = schema.field("prompt").type
        ok = pa.types.is_list(t) or pa.types.is_large_list(t)
        if ok:
            inner = t.value_type
            ok = pa.types.is_struct(inner) and {"role", "content"} <= {f.name for f in inner}
        if not ok:
            problems.append(f"column 'prompt' is {t}, not a list of {{role, content}} messages")
    if "reward_model" in names:
        t = schema.field("reward_model").type
        if not (pa.types.is_struct(t) and "ground_truth" in {f.name for f in t}):
            problems.append(f"column 'reward_model' is {t}, not a struct with ground_truth")
    return problems


def _sft_schema_problems(schema, messages_key: str) -> list[str]:
    import pyarrow as pa

    if messages_key not in schema.names:
        return [f"column '{messages_key}' is missing (verl's SFT trainer reads a list of {{role, content}} messages)"]
    t = schema.field(messages_key).type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)) or not pa.types.is_struct(t.value_type):
        return [f"column '{messages_key}' is {t}, not a list of {{role, content}} messages"]
    return []


def data_checks(plan, cfg, ctx) -> list[Result]:
    """Files exist, are parquet with verl's columns and types, and hold at least one batch."""
    import pyarrow.parquet as pq

    results: list[Result] = []
    batch = int(cfg.data.train_batch_size)
    messages_key = str(cfg.data.get("messages_key", "messages")) if plan.trainer == "sft" else ""
    for knob, key in (("TRAIN_DATA", "train_files"), ("VAL_DATA", "val_files")):
        files = _files(cfg.data.get(key))
        if not files:
            results.append(_fail("data", f"{knob} is not set (data.{key})", knob))
            continue
        rows = 0
        for f in files:
            if "://" in f:
                results.append(_skip("data", f"{knob}: {f} is remote; not checked"))
                continue
            if not Path(f).is_file():
                results.append(_fail("data", f"{knob}: {f} does not exist (relative paths are taken from the method folder)", knob))
                continue
            try:
                meta = pq.ParquetFile(f)
            except Exception as exc:
                results.append(_fail("data", f"{knob}: {f} is not a readable parquet file ({type(exc).__name__}: {exc}); "
                                     "convert it with `python -m common.data_utils rl|sft IN OUT`", knob))
                continue
            schema = meta.schema_arrow
            problems = _sft_schema_problems(schema, messages_key) if plan.trainer == "sft" else _rl_schema_problems(schema)
            if problems:
                results.append(_fail("data", f"{knob}: {f}: " + "; ".join(problems)
                                     + "; convert it with `python -m common.data_utils`", knob))
                continue
            rows += meta.metadata.num_rows
            ctx.setdefault(f"{key}_ok", []).append(f)
        if key == "train_files" and files and ctx.get(f"{key}_ok") and rows < batch:
            results.append(_fail("data", f"{knob} has {rows} rows, fewer than TRAIN_BATCH_SIZE ({batch}): verl would "
                                 "run zero steps per epoch and divide by zero after validation", knob, "TRAIN_BATCH_SIZE"))
        elif ctx.get(f"{key}_ok") and rows == 0:
            results.append(_fail("data", f"{knob} has no rows", knob))
        elif ctx.get(f"{key}_ok"):
            ctx[f"{key}_rows"] = rows
    if not results:
        results.append(_ok("data", f"train {ctx.get('train_files_rows')} rows, val {ctx.get('val_files_rows')} rows, "
                           f"{ctx['train_files_rows'] // batch} steps per epoch"))
    return results


def _sample_table(files: list[str], columns: list[str], limit: int):
    """Up to `limit` rows of the given columns, spread over the file (seeded), read by row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        groups = list(range(pf.num_row_groups))
        # Every k-th row group: a spread sample without reading a 100k-row file whole.
        step = max(1, len(groups) * pf.metadata.num_rows // max(1, limit) // max(1, pf.metadata.num_rows))
        tables.append(pf.read_row_groups(groups[::step] or [0], columns=cols))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if table.num_rows > limit:
        import random

        idx = sorted(random.Random(0).sample(range(table.num_rows), limit))
        table = table.take(idx)
    return table


def data_source_checks(plan, cfg, ctx) -> list[Result]:
    """Every data_source of the train and val files has a scorer."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = ctx.get("train_files_ok", []) + ctx.get("val_files_ok", [])
    if plan.trainer == "sft" or not files:
        return []
    sources: dict[str, dict] = {}
    for f in files:
        col = pq.read_table(f, columns=["data_source"]).column("data_source")
        for value in pc.unique(col).to_pylist():
            sources.setdefault(value, {"file": f})
    custom = (cfg.reward.get("custom_reward_function") or {}).get("path")
    if not custom and (cfg.reward.get("reward_model") or {}).get("enable"):
        model = cfg.reward.reward_model.get("model_path")
        return [_ok("reward", f"the reward model {model} scores every data_source ({sorted(sources)}); "
                    "its weights are not loaded here")]
    if not custom:
        from verl.utils.reward_score import default_compute_score

        missing = []
        for ds in sources:
            try:
                _call_with_timeout(lambda ds=ds: default_compute_score(ds, "", "0"), REWARD_CALL_TIMEOUT_S)
            except NotImplementedError:
                missing.append(ds)
            except Exception:  # the dispatch found a scorer; it just disliked the made-up answer
                pass
        if missing:
            return [_fail("reward", f"data_source {missing} has no scorer in verl's default_compute_score "
                          "(gsm8k, MATH, math_dapo, aime*, code contests, geometry3k, search-R1 ...): set "
                          "REWARD_FUNC_PATH to a function that handles it, or fix the data_source column", "REWARD_FUNC_PATH")]
        return [_ok("reward", f"verl's default scorer handles every data_source: {sorted(sources)}")]
    ctx["data_sources"] = sources
    return []


def prompt_length_checks(plan, cfg, ctx) -> list[Result]:
    """Tokenize a sample with the model's chat template: how many exceed the length limit."""
    files = ctx.get("train_files_ok", [])
    if not files:
        return []
    tok = ctx.get("tokenizer")
    if tok is None:
        return [_skip("prompt lengths", f"tokenizer of {_model_path(plan, cfg)} not on disk here: prompt lengths not measured")]
    if plan.trainer == "sft":
        key, limit, knob = str(cfg.data.get("messages_key", "messages")), int(cfg.data.max_length), "MAX_LENGTH"
    else:
        key, limit, knob = str(cfg.data.get("prompt_key", "prompt")), int(cfg.data.max_prompt_length), "MAX_PROMPT_LENGTH"
    table = _sample_table(files, [key], PROMPT_SAMPLE_ROWS)
    lengths = []
    for messages in table.column(key).to_pylist():
        try:
            ids = tok.apply_chat_template(messages, add_generation_prompt=plan.trainer == "rl", tokenize=True)
        except Exception as exc:
            return [_fail("prompt lengths", f"the model's chat template fails on a {key} row of {files[0]}: {exc}", "MODEL_PATH")]
        if hasattr(ids, "keys") and "input_ids" in ids:  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        lengths.append(len(ids))
    if not lengths:
        return []
    lengths.sort()
    over = sum(1 for n in lengths if n > limit)
    p99 = lengths[min(len(lengths) - 1, int(0.99 * len(lengths)))]
    suggest = 1 << (p99 - 1).bit_length() if p99 > 0 else p99  # next power of two keeps batches aligned
    sampled = f"{len(lengths)} sampled rows" if len(lengths) < ctx.get("train_files_rows", 0) else f"all {len(lengths)} rows"
    what = "conversations" if plan.trainer == "sft" else "prompts"
    verb = "are cut by verl's SFT dataset" if plan.trainer == "sft" else "are cut from the left without a word by verl"
    if over:
        pct = 100.0 * over / len(lengths)
        status = _fail if pct > 1.0 else _warn
        return [status("prompt lengths", f"{over} of {sampled} ({pct:.1f}%) {what} exceed {knob}={limit} tokens and {verb}; "
                       f"longest {lengths[-1]}, 99th percentile {p99}: set {knob}={suggest} to keep 99%", knob)]
    return [_ok("prompt lengths", f"{sampled}: longest {lengths[-1]} tokens <= {knob}={limit} (99th percentile {p99})")]


# ---------------------------------------------------------------------------------------------
# reward function


def _call_with_timeout(fn, timeout: float):
    """Run fn in a daemon thread; raise TimeoutError if it does not return in time."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"did not return within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def made_up_responses(prompt_text: str, ground_truth: str) -> tuple[str, str]:
    """(a response with the ground truth in the format the prompt asks for, a wrong one).

    >>> made_up_responses('... output the final answer after "####".', "42")[0]
    'The answer is 42.\\n#### 42'
    """
    wrong = "I am not sure."
    if "####" in prompt_text:
        return f"The answer is {ground_truth}.\n#### {ground_truth}", f"{wrong}\n#### 1234567"
    if "<answer>" in prompt_text:
        return f"<think>work</think>\n<answer>{ground_truth}</answer>", "<think>work</think>\n<answer>1234567</answer>"
    if "boxed" in prompt_text:
        return f"The answer is \\boxed{{{ground_truth}}}.", "The answer is \\boxed{1234567}."
    return f"The answer is {ground_truth}.", wrong


def reward_checks(plan, cfg, ctx) -> list[Result]:
    """Import the custom reward function (guarded), check its signature and run it on sample rows."""
    if plan.trainer == "sft":
        return []
    rcfg = cfg.reward.get("custom_reward_function") or {}
    path = rcfg.get("path")
    if not path:
        return []
    name = rcfg.get("name") or "compute_score"
    if not Path(path).is_file():
        return [_fail("reward", f"REWARD_FUNC_PATH: {path} does not exist", "REWARD_FUNC_PATH")]
    from verl.utils.import_utils import load_extern_object

    started = time.perf_counter()
    try:
        raw = _call_with_timeout(lambda: load_extern_object(module_path=path, object_name=name), REWARD_IMPORT_TIMEOUT_S)
    except TimeoutError:
        return [_fail("reward", f"importing {path} took over {REWARD_IMPORT_TIMEOUT_S:g} s (slow import or side effects at "
                      "import time; verl imports it in every reward worker)", "REWARD_FUNC_PATH")]
    except AttributeError:
        return [_fail("reward", f"{path} defines no function {name!r}", "REWARD_FUNC_NAME")]
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit at import ...
        cause = exc.__cause__ or exc.__context__ or exc  # verl wraps the real error in a RuntimeError
        return [_fail("reward", f"importing {path} failed: {type(cause).__name__}: {cause}", "REWARD_FUNC_PATH")]
    import_s = time.perf_counter() - started
    try:
        params = inspect.signature(raw).parameters
    except (TypeError, ValueError):
        params = {}
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    required = ("data_source", "solution_str", "ground_truth")
    missing = [p for p in required if p not in params]
    if params and (missing or ("extra_info" not in params and not has_var_kw)):
        return [_fail("reward", f"{path}:{name}{inspect.signature(raw)} does not take verl's arguments "
                      "(data_source, solution_str, ground_truth, extra_info=None, **kwargs)", "REWARD_FUNC_NAME")]
    kwargs = dict(rcfg.get("reward_kwargs") or {})
    is_async = inspect.iscoroutinefunction(raw)
    judge = kwargs.get("base_url")
    if judge and not _reachable_url(str(judge)):
        # An API judge (ppo/api_reward.py) may well run only on the training cluster: say so, don't fail.
        return [_warn("reward", f"{name} imports and takes verl's arguments, but its judge at base_url={judge} does not "
                      "answer from here, so it was not called; start the judge or set JUDGE_BASE_URL", "REWARD_FUNC_PATH")]

    def call(ds, sol, gt, extra):
        if is_async:
            import asyncio

            return asyncio.run(raw(data_source=ds, solution_str=sol, ground_truth=gt, extra_info=extra, **kwargs))
        return raw(data_source=ds, solution_str=sol, ground_truth=gt, extra_info=extra, **kwargs)

    files = ctx.get("train_files_ok", [])
    if not files:
        return [_skip("reward", f"{name} imports ({import_s:.2f} s) but no train file to try it on")]
    table = _sample_table(files, ["data_source", "prompt", "reward_model", "extra_info"], 512)
    rows = table.to_pylist()
    # One row per data_source first (every source must be scored), then more rows up to the sample size.
    chosen, seen = [], set()
    for row in rows:
        if row["data_source"] not in seen:
            seen.add(row["data_source"])
            chosen.append(row)
    for source in ctx.get("data_sources", {}):
        if source not in seen:  # a val-only source: try it with the first train row's answer
            chosen.append({**rows[0], "data_source": source})
            seen.add(source)
    chosen += [r for r in rows if r not in chosen][: max(0, REWARD_SAMPLE_ROWS - len(chosen))]
    keys, times, right_scores, wrong_scores = None, [], [], []
    for row in chosen:
        gt = (row.get("reward_model") or {}).get("ground_truth")
        prompt_text = " ".join(str(m.get("content", "")) for m in row.get("prompt") or [])
        good, bad = made_up_responses(prompt_text, str(gt))
        for response, bucket in ((good, right_scores), (bad, wrong_scores)):
            t0 = time.perf_counter()
            try:
                out = _call_with_timeout(lambda: call(row["data_source"], response, gt, row.get("extra_info")), REWARD_CALL_TIMEOUT_S)
            except TimeoutError:
                return [_fail("reward", f"{name} took over {REWARD_CALL_TIMEOUT_S:g} s on one {row['data_source']!r} row", "REWARD_FUNC_PATH")]
            except (NotImplementedError, ValueError) as exc:
                return [_fail("reward", f"{name} cannot score data_source {row['data_source']!r}: {type(exc).__name__}: {exc}",
                              "REWARD_FUNC_PATH")]
            except Exception as exc:
                return [_fail("reward", f"{name} raised {type(exc).__name__}: {exc} on a {row['data_source']!r} row", "REWARD_FUNC_PATH")]
            times.append(time.perf_counter() - t0)
            if isinstance(out, dict):
                if "score" not in out:
                    return [_fail("reward", f"{name} returned a dict without 'score' (keys {sorted(out)})", "REWARD_FUNC_PATH")]
                if keys is None:
                    keys = sorted(out)
                elif sorted(out) != keys:
                    return [_fail("reward", f"{name} returned different keys on different rows ({keys} vs {sorted(out)}); "
                                  "verl takes the keys from the first sample, so every dict needs the same keys", "REWARD_FUNC_PATH")]
                out = out["score"]
            if isinstance(out, bool) or not isinstance(out, (int, float)):
                return [_fail("reward", f"{name} returned {type(out).__name__} ({out!r:.60}); verl needs a float or a dict with 'score'",
                              "REWARD_FUNC_PATH")]
            bucket.append(float(out))
    per_call_ms = 1000 * sum(times) / len(times)
    detail = (f"{name} imports in {import_s:.2f} s, {per_call_ms:.2f} ms per call over {len(times)} calls "
              f"({len(seen)} data_source(s)); returns {'dict ' + str(keys) if keys else 'float'}")
    if sum(right_scores) <= sum(wrong_scores):
        return [_warn("reward", detail + f"; the ground truth scored no higher than a wrong answer "
                      f"(mean {sum(right_scores) / len(right_scores):.2f} vs {sum(wrong_scores) / len(wrong_scores):.2f}): "
                      "check the answer format the function expects", "REWARD_FUNC_PATH")]
    return [_ok("reward", detail)]


def reward_manager_checks(plan, cfg, ctx) -> list[Result]:
    """The dapo reward manager's overlong buffer: verl asserts these only when its reward workers start
    (experimental/reward_loop/reward_manager/dapo.py)."""
    if plan.trainer == "sft" or cfg.reward.reward_manager.get("name") != "dapo":
        return []
    kwargs = cfg.reward.get("reward_kwargs") or {}
    buffer = kwargs.get("overlong_buffer_cfg") or {}
    if not buffer.get("enable"):
        return [_ok("overlong shaping", "off (OVERLONG_SHAPING=false)")]
    length, max_resp = int(buffer.get("len") or 0), kwargs.get("max_resp_len")
    response = int(cfg.data.max_response_length)
    if length <= 0:
        return [_fail("overlong shaping", f"OVERLONG_BUFFER_LEN={length}: the buffer must be positive while shaping is "
                      "on (OVERLONG_SHAPING=false turns it off)", "OVERLONG_BUFFER_LEN", "OVERLONG_SHAPING")]
    if max_resp is None:
        return [_fail("overlong shaping", "reward.reward_kwargs.max_resp_len is not set: the dapo reward manager needs "
                      "the response length", "MAX_RESPONSE_LENGTH")]
    if length > int(max_resp):
        return [_fail("overlong shaping", f"OVERLONG_BUFFER_LEN={length} is longer than the response limit "
                      f"({max_resp} tokens)", "OVERLONG_BUFFER_LEN", "MAX_RESPONSE_LENGTH")]
    if int(max_resp) != response:
        return [_warn("overlong shaping", f"reward.reward_kwargs.max_resp_len={max_resp} differs from "
                      f"MAX_RESPONSE_LENGTH={response}: the penalty ramps against the wrong limit", "MAX_RESPONSE_LENGTH")]
    return [_ok("overlong shaping", f"penalty ramps over tokens {response - length + 1}-{response} "
                f"to -{buffer.get('penalty_factor')}")]


# ---------------------------------------------------------------------------------------------
# legacy keys, loggers, output folder


def _set_leaves(node, prefix: str):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig):
        for key in node.keys():
            if OmegaConf.is_missing(node, key):
                continue
            yield from _set_leaves(node[key], f"{prefix}.{key}")
    elif isinstance(node, ListConfig):
        if len(node):
            yield prefix, node
    elif node is not None:
        yield prefix, node


def legacy_key_checks(plan, cfg, ctx) -> list[Result]:
    if plan.trainer == "sft":
        return []
    from omegaconf import OmegaConf

    results = []
    for root in ("custom_reward_function", "reward_model"):
        node = OmegaConf.select(cfg, root)
        if node is None:
            continue
        for key, value in _set_leaves(node, root):
            if key.endswith(("._target_",)):
                continue
            moved = next((new for old, new in LEGACY_MOVES.items() if key == old or key.startswith(old + ".")),
                         "the reward.* section (see verl/trainer/config/reward/reward.yaml)")
            arg = [a for a in plan.extra_args if a.lstrip("+~").split("=", 1)[0].startswith(root)]
            where = f" (set by the argument {' '.join(arg)})" if arg else ""
            results.append(_fail("legacy keys", f"{key}={value} is ignored by verl 0.9.1's main_ppo{where}: it moved to {moved}"))
    return results or [_ok("legacy keys", "no legacy reward keys set")]


def logger_checks(plan, cfg, ctx) -> list[Result]:
    from verl.utils.tracking import Tracking

    env = {**ctx.get("env", {}), **plan.env}
    loggers = [str(x) for x in (cfg.trainer.logger if not isinstance(cfg.trainer.logger, str) else [cfg.trainer.logger])]
    results = []
    unknown = [x for x in loggers if x not in Tracking.supported_backend]
    if unknown:
        results.append(_fail("loggers", f"trainer.logger {unknown} not in verl's backends {Tracking.supported_backend}",
                             "USE_WANDB", "USE_TENSORBOARD"))
    if "wandb" in loggers and (env.get("WANDB_MODE") or "online").lower() == "online" and not _wandb_key(env):
        results.append(_fail("loggers", "wandb runs online (WANDB_MODE=online or unset) but there is no WANDB_API_KEY and no "
                             "api.wandb.ai entry in ~/.netrc: wandb would fail after the models load. Export "
                             "WANDB_API_KEY, run `wandb login`, or set WANDB_MODE=offline", "USE_WANDB", "WANDB_API_KEY"))
    return results or [_ok("loggers", ", ".join(loggers))]


def _wandb_key(env) -> bool:
    if env.get("WANDB_API_KEY"):
        return True
    netrc = Path(env.get("NETRC") or Path(env.get("HOME") or Path.home()) / ".netrc")
    try:
        import netrc as _netrc

        return _netrc.netrc(str(netrc)).authenticators("api.wandb.ai") is not None
    except (OSError, _netrc.NetrcParseError):
        return False


def output_checks(plan, cfg, ctx) -> list[Result]:
    """The run folder can be created (nothing is created here: a dry run writes nothing)."""
    target = Path(plan.run_dir)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return [_fail("output folder", f"{probe} is a file, so {target} cannot be created", "OUTPUT_DIR")]
    if not os.access(probe, os.W_OK | os.X_OK):
        return [_fail("output folder", f"{probe} is not writable, so {target} cannot be created", "OUTPUT_DIR")]
    free_gb = shutil.disk_usage(probe).free / 1e9
    detail = f"{target} (writable, {free_gb:.0f} GB free)"
    return [_warn("output folder", detail + ": under 10 GB free; checkpoints may not fit", "OUTPUT_DIR")] if free_gb < 10 else [_ok("output folder", detail)]


# ---------------------------------------------------------------------------------------------
# environment: versions, GPUs, Ray


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def version_checks(plan, cfg, ctx) -> list[Result]:
    dry = ctx.get("dry_run", True)
    gpus = ctx.get("gpus_found", 0)
    results = []
    verl = _version("verl")
    if verl != VERL_VERSION:
        results.append(_fail("versions", f"verl {verl} installed; this project is written against verl {VERL_VERSION}: "
                             "run ./setup_env.sh"))
    torch = (_version("torch") or "").split("+")[0]
    found = [f"verl {verl}", f"torch {torch}"]
    if torch != GPU_PINS["torch"] and not (gpus == 0 and torch == CPU_TORCH):
        results.append(_warn("versions", f"torch {torch} installed; the GPU stack pins {GPU_PINS['torch']} "
                             f"(CPU machines: {CPU_TORCH}); run ./setup_env.sh"))
    tf = _version("transformers")
    found.append(f"transformers {tf}")
    if tf != GPU_PINS["transformers"]:
        results.append(_warn("versions", f"transformers {tf} installed; requirements.txt pins {GPU_PINS['transformers']}"))
    if plan.trainer == "rl":
        engine = str(cfg.actor_rollout_ref.rollout.name)
        have = _version(engine)
        found.append(f"{engine} {have}")
        if have is None:
            msg = f"ROLLOUT_ENGINE={engine} but {engine} is not installed"
            if dry or gpus == 0 or _cluster(ctx):
                results.append(_warn("versions", msg + " (expected on a CPU-only machine; needed to train)", "ROLLOUT_ENGINE"))
            else:
                results.append(_fail("versions", msg + ": run ./setup_env.sh on the GPU machine", "ROLLOUT_ENGINE"))
        elif engine in GPU_PINS and have != GPU_PINS[engine]:
            results.append(_warn("versions", f"{engine} {have} installed; verl {VERL_VERSION} pins {GPU_PINS[engine]}", "ROLLOUT_ENGINE"))
    return results or [_ok("versions", ", ".join(found))]


def _cluster(ctx) -> bool:
    from common.ray_submit import wants_cluster

    return wants_cluster(ctx.get("env", os.environ))


def gpu_checks(plan, cfg, ctx) -> list[Result]:
    if _cluster(ctx):
        return [_skip("GPUs", "submitted to a Ray cluster: its GPUs are checked against the block at submit time")]
    found = ctx.get("gpus_found", 0)
    wanted = int(plan.n_gpus_per_node)
    if found == 0:
        # A real launch without a GPU is refused by the launcher itself (exit 1, with how to dry-run).
        return [_warn("GPUs", f"no NVIDIA GPU visible here; checked as N_GPUS_PER_NODE={wanted} x NNODES={plan.nnodes}",
                       "N_GPUS_PER_NODE")]
    if found < wanted:
        return [_fail("GPUs", f"N_GPUS_PER_NODE={wanted} but this node shows {found} (CUDA_VISIBLE_DEVICES narrows the count); "
                      "Ray would wait forever for the missing GPUs", "N_GPUS_PER_NODE")]
    return [_ok("GPUs", f"{wanted} of {found} visible GPU(s) x {plan.nnodes} node(s)")]


def _reachable_url(url: str, timeout: float = 2.0) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _reachable(address: str, timeout: float = 2.0) -> bool:
    host, _, port = address.replace("ray://", "").replace("http://", "").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def ray_checks(plan, cfg, ctx) -> list[Result]:
    env = ctx.get("env", os.environ)
    if _cluster(ctx):
        from common.ray_submit import job_api_address

        try:
            address = job_api_address(env)
        except Exception as exc:  # a GCS or ray:// address where the job API is wanted
            return [_fail("ray", str(exc), "RAY_ADDRESS")]
        if not _reachable_url(address):
            return [_fail("ray", f"the Ray job API at {address} does not answer: start the cluster "
                          "(common/ray_cluster.sh head) or fix RAY_ADDRESS", "RAY_ADDRESS")]
        return [_ok("ray", f"submits to the Ray cluster at {address}")]
    # ray.init() with no address joins the cluster recorded here by `ray start` if its GCS is alive.
    current = Path(env.get("RAY_TMPDIR") or "/tmp/ray") / "ray_current_cluster"
    if current.is_file():
        recorded = current.read_text().strip()
        if recorded and _reachable(recorded, 0.5):
            return [_warn("ray", f"a Ray cluster is running on this machine ({recorded}, from {current}): verl will join it "
                          "with whatever GPUs it was started with. Run `ray stop` if it is left over from another run")]
    return [_ok("ray", "no running Ray cluster found; verl starts its own")]


# ---------------------------------------------------------------------------------------------
# running everything


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: str):
    from common.memory import local_config_json

    cfg_json = local_config_json(path)
    if cfg_json is None:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(cfg_json.parent) if Path(path).is_dir() else path, local_files_only=True)
    except Exception:
        return None


def attention_checks(plan, cfg, ctx) -> list[Result]:
    # The "attention" row lives with the ATTN_IMPL knob in common/attention.py.
    from common.attention import attention_checks as check

    return check(plan, cfg, ctx)


def lora_checks(plan, cfg, ctx) -> list[Result]:
    # The "lora" row (learning rate left at the full-weight value) lives in common/lora_checks.py.
    from common.lora_checks import lora_checks as check

    return check(plan, cfg, ctx)


def run_checks(plan, cfg, env: dict | None = None, dry_run: bool | None = None, gpus_found: int | None = None) -> list[Result]:
    """Every check for the plan; a check that crashes is reported as a warning naming the crash."""
    from common.memory import shape_for

    env = dict(os.environ if env is None else env)
    if dry_run is None:
        dry_run = (env.get("DRY_RUN") or "0").strip().lower() in {"1", "true", "yes", "on"}
    if gpus_found is None:
        from common.launch import detect_gpus

        gpus_found = detect_gpus()[0]
    model = _model_path(plan, cfg)
    ctx: dict = {"env": env, "dry_run": dry_run, "gpus_found": gpus_found}
    ctx["shape"] = shape_for(model)
    ctx["tokenizer"] = _load_tokenizer(model)
    if plan.trainer == "sft":
        steps = [lambda p, c, x: sft_checks(c)]
    else:
        steps = [lambda p, c, x: batch_checks(c), lambda p, c, x: parallel_checks(c, x.get("shape"))]
    steps += [length_checks, data_checks, data_source_checks, prompt_length_checks, reward_checks, reward_manager_checks,
              legacy_key_checks, attention_checks, lora_checks,
              logger_checks, output_checks, version_checks, gpu_checks, ray_checks, memory_checks]
    results: list[Result] = []
    for step in steps:
        try:
            results += step(plan, cfg, ctx)
        except Exception as exc:  # a bug or an unexpected file: say so, never hide it as a pass
            name = getattr(step, "__name__", "check").removesuffix("_checks")
            results.append(_warn(name, f"the check itself failed: {type(exc).__name__}: {exc}"))
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
