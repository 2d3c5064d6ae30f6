"""The model: do the lengths fit its positions, does the run fit in GPU memory, its tokenizer.

Offers:
- model_path(plan, cfg): the policy (or SFT) model of the config.
- load_tokenizer(path): the model's tokenizer when it is on disk (cached), else None.
- model_checks(plan, cfg, ctx): the model is on disk, in the Hugging Face cache, or (when the hub
  answers) a model that exists there; a typo in a hub id fails here, not after Ray starts.
- length_checks(plan, cfg, ctx): prompt + response (or MAX_LENGTH) against max_position_embeddings
  and the rollout's max_model_len.
- memory_checks(plan, cfg, ctx): common/memory.py's estimate against the GPU's memory.
"""

from __future__ import annotations

import functools
from pathlib import Path

from common.checks.result import Result


def model_path(plan, cfg) -> str:
    return str(cfg.model.path if plan.trainer == "sft" else cfg.actor_rollout_ref.model.path)


# Seconds to wait for the Hugging Face hub to say whether a model id exists.
HUB_TIMEOUT_S = 5.0
_OFFLINE = {"1", "true", "yes", "on"}


def model_checks(plan, cfg, ctx) -> list[Result]:
    """Where the model comes from: a local folder, the Hugging Face cache, or the hub (asked when it
    answers; HF_HUB_OFFLINE=1 means it is not asked)."""
    from common.memory import local_config_json

    model = model_path(plan, cfg)
    env = ctx.get("env", {})
    if Path(model).expanduser().is_dir():
        if not (Path(model).expanduser() / "config.json").is_file():
            return [Result.fail("model", f"MODEL_PATH={model} is a folder without config.json: not a Hugging Face model "
                                "folder (a verl checkpoint is merged first: point at its run folder or global_step_N)",
                                "MODEL_PATH")]
        return [Result.ok("model", f"{model} (local folder)")]
    if local_config_json(model) is not None:
        return [Result.ok("model", f"{model} (in the Hugging Face cache)")]
    where = f"{model} is neither a folder on this machine nor in the Hugging Face cache"
    if (env.get("HF_HUB_OFFLINE") or "").strip().lower() in _OFFLINE:
        return [Result.skip("model", f"{where}; HF_HUB_OFFLINE is set, so the hub was not asked whether it exists "
                            "(the GPU machine must download it or have it cached)")]
    found, why = _hub_model_exists(model, env)
    if found is None:
        return [Result.skip("model", f"{where}, and the hub could not be asked ({why}): the id is unchecked")]
    if not found:
        return [Result.fail("model", f"{where}, and the Hugging Face hub has no model {model!r} ({why}): check the "
                            "spelling (Organisation/Name, case matters), or log in (HF_TOKEN) for a private or gated "
                            "model", "MODEL_PATH")]
    return [Result.ok("model", f"{model} exists on the Hugging Face hub; verl downloads it at launch ({why})")]


def _hub_model_exists(model: str, env: dict) -> tuple[bool | None, str]:
    """(True, note) if the hub has the model, (False, why) if it says it does not, (None, why) if it
    could not be asked. HF_ENDPOINT and HF_TOKEN from env are honoured."""
    try:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
    except ImportError as exc:
        return None, f"huggingface_hub missing: {exc}"
    api = HfApi(endpoint=env.get("HF_ENDPOINT") or None, token=env.get("HF_TOKEN") or False)
    try:
        info = api.model_info(model, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return True, "a gated model: the GPU machine needs HF_TOKEN with access"
    except RepositoryNotFoundError:
        return False, "the hub answered 'not found'"
    except HFValidationError as exc:
        return False, f"not a valid hub id: {str(exc).splitlines()[0]}"
    except Exception as exc:  # no network, DNS, TLS, a proxy: the hub could not be asked
        return None, f"{type(exc).__name__}"
    size = getattr(info, "used_storage", None) or 0
    return True, f"about {size / 1e9:.1f} GB" if size else "size unknown"


def length_checks(plan, cfg, ctx) -> list[Result]:
    from common.memory import load_model_config

    model = model_path(plan, cfg)
    config, where = load_model_config(model)
    if plan.trainer == "sft":
        total, what, knobs = int(cfg.data.max_length), "MAX_LENGTH", ("MAX_LENGTH",)
    else:
        total = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
        what, knobs = "MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH", ("MAX_PROMPT_LENGTH", "MAX_RESPONSE_LENGTH")
    if config is None:
        return [Result.skip("lengths", f"{what} = {total} tokens not checked against the model: {where}")]
    limit = config.get("max_position_embeddings") or config.get("text_config", {}).get("max_position_embeddings")
    if not limit:
        return [Result.skip("lengths", f"{where} has no max_position_embeddings")]
    results = []
    if total > int(limit):
        results.append(Result.fail("lengths", f"{what} = {total} tokens exceeds the model's max_position_embeddings "
                             f"({limit}, {where})", *knobs))
    if plan.trainer == "rl":
        max_model_len = cfg.actor_rollout_ref.rollout.get("max_model_len")
        if max_model_len and int(max_model_len) < total:
            results.append(Result.fail("lengths", f"rollout.max_model_len ({max_model_len}) < {what} ({total})", *knobs))
    return results or [Result.ok("lengths", f"{what} = {total} <= {limit} positions")]


def memory_checks(plan, cfg, ctx) -> list[Result]:
    from common import memory

    shape = ctx.get("shape")
    if shape is None:
        return [Result.skip("memory", f"model {model_path(plan, cfg)}: shape unknown here (no local config.json, "
                      "not in the built-in table); nothing estimated")]
    gpu_gb, how = memory.gpu_memory_gb(ctx.get("env"))
    est = memory.estimate_sft(cfg, shape, gpu_gb) if plan.trainer == "sft" else memory.estimate_rl(cfg, shape, gpu_gb)
    detail = f"{est.summary()}; GPU size: {how}; model shape from {shape.source}"
    if est.notes:
        detail += "; " + "; ".join(est.notes)
    if not est.fits:
        return [Result.fail("memory", detail + ". Will not fit; try: " + "; ".join(est.suggestions),
                      "MICRO_BATCH_SIZE_PER_GPU", "GPU_MEM_UTIL", "PARAM_OFFLOAD", "OPTIMIZER_OFFLOAD", "USE_LORA")]
    if est.suggestions:
        return [Result.fail("memory", detail + ". " + "; ".join(est.suggestions), "GPU_MEM_UTIL", "ROLLOUT_TP")]
    if est.peak_gib > 0.9 * est.gpu_gib:
        return [Result.warn("memory", detail + " (over 90%: fragmentation may still run out)")]
    return [Result.ok("memory", detail)]


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str):
    from common.memory import local_config_json

    cfg_json = local_config_json(path)
    if cfg_json is None:
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(cfg_json.parent) if Path(path).is_dir() else path, local_files_only=True)
    except Exception:
        return None
