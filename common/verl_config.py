"""verl's own composition and checks of a launch's config, run in seconds before anything starts.

    .venv/bin/python -c "from common import plan, verl_config; p = plan.make_plan('grpo', {}, []); print(verl_config.compose_config(p))"

Offers:
- compose_config(plan): the config (DictConfig) verl would run with: the method YAML composed with
  verl's own Hydra configs and the plan's overrides.
- check_config(plan, cfg) -> notes: verl's own checks (validate_config and the config dataclasses'
  __post_init__ checks), errors rewritten to name the config-block variables to change.
- explain(plan, message): a verl or Hydra message with the knobs (and pass-through arguments) it is about.
- unknown_override_hints(plan, message): "did you mean trainer.total_epochs?" for an override of a
  key verl's config does not have (and a note for a `+key` next to a similar existing key).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

from common.knobs import RL_KNOBS, SFT_KNOBS, ConfigError, known_names, knobs_for_message
from common.plan import Plan, hydra_value


def compose_config(plan: Plan):
    """The config verl would run with: the method YAML composed with verl's Hydra configs."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(plan.method_dir), version_base=None):
            cfg = compose(config_name=plan.config_name, overrides=plan.all_overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        unknown = unknown_override_hints(plan, str(exc))
        if unknown:
            raise ConfigError(unknown) from None
        raise ConfigError(explain(plan, f"verl could not compose the config: {exc}")) from None
    problems = _override_value_problems(plan, cfg)
    if problems:
        raise ConfigError("\n".join(problems))
    new_keys = [arg for arg in plan.extra_args if arg.startswith("+") and not arg.startswith("++")]
    if new_keys:
        plan.model_notes.extend(_new_key_notes(plan, new_keys))
    return cfg


def _base_config(plan: Plan):
    """The config composed without the pass-through arguments."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(plan.method_dir), version_base=None):
        return compose(config_name=plan.config_name, overrides=plan.overrides)


def _override_value_problems(plan: Plan, cfg) -> list[str]:
    """A pass-through `key=value` bypasses the knobs' checks, and verl's config is not typed: Hydra
    takes trainer.total_epochs=abc or optim.lr=-1 as given and verl fails minutes later. Each such
    value gets the check of the knob that sets the same key (type and range), else the type of
    the value it replaces."""
    import dataclasses

    from omegaconf import OmegaConf

    from common.knobs import parse_value

    knobs = SFT_KNOBS if plan.trainer == "sft" else RL_KNOBS
    by_path = {path: knob for knob in knobs for path in knob.paths}
    problems: list[str] = []
    base = None
    for arg in plan.extra_args:
        key, sep, _ = arg.partition("=")
        if not sep or key.startswith(("~", "hydra.")) or (key.startswith("+") and not key.startswith("++")):
            continue
        key = key.lstrip("+")
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None or OmegaConf.is_config(value):
            continue
        knob = by_path.get(key)
        if knob and knob.kind in ("int", "float", "bool"):
            try:
                parse_value(dataclasses.replace(knob, name=key), str(value))
            except ConfigError as exc:
                problems.append(f"{exc} (the argument {arg}; {knob.name} in {plan.method}/train.sh sets the same key)")
            continue
        if base is None:
            try:
                base = _base_config(plan)
            except Exception:
                return problems
        was = OmegaConf.select(base, key, default=None, throw_on_missing=False)
        wanted = _kind_of(was)
        if wanted and not _fits(value, wanted):
            problems.append(f"{arg}: {key} is {wanted} in verl's config ({hydra_value(was)} before this argument), not {value!r}")
    return problems


def _kind_of(value) -> str | None:
    if isinstance(value, bool):
        return "a boolean (true or false)"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    return None


def _fits(value, kind: str) -> bool:
    if kind.startswith("a boolean"):
        return isinstance(value, bool)
    if kind == "a whole number":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _base_keys(plan: Plan) -> list[str]:
    """Every dotted key of the config composed without the pass-through arguments."""
    from omegaconf import DictConfig, OmegaConf

    cfg = _base_config(plan)
    keys: list[str] = []

    def walk(node, prefix: str) -> None:
        for key in node.keys():
            path = f"{prefix}{key}"
            keys.append(path)
            if not OmegaConf.is_missing(node, key) and isinstance(node[key], DictConfig):
                walk(node[key], path + ".")

    walk(cfg, "")
    return keys


def _closest(key: str, keys: list[str]) -> str | None:
    import difflib

    parent = key.rpartition(".")[0]
    siblings = [k for k in keys if k.rpartition(".")[0] == parent]
    found = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6) or difflib.get_close_matches(key, keys, n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_override_hints(plan: Plan, message: str) -> str | None:
    """For `trainer.total_epoch=1` (a key verl's config does not have): the key it was probably meant
    to be, instead of Hydra's advice to add `+`, which creates a key nothing reads."""
    import re

    match = re.search(r"Could not override '([^']+)'", message)
    if not match:
        return None
    key = match.group(1)
    try:
        close = _closest(key, _base_keys(plan))
    except Exception:  # the base config itself does not compose: fall back to Hydra's words
        return None
    arg = next((a for a in plan.extra_args if a.split("=", 1)[0] == key), key)
    hint = f"did you mean {close}?" if close else "check the spelling against verl's config (DRY_RUN=full prints it)"
    if key in known_names(plan.trainer):
        hint = f"{key} is a knob of the config block: set it before the script, {arg} ./{plan.method}/train.sh"
    return (f"{arg}: {key} is not a key of verl's config; {hint} (adding + as Hydra suggests would create a new key "
            "that nothing in verl reads)")


def _new_key_notes(plan: Plan, args: list[str]) -> list[str]:
    """A `+key=value` that creates a key next to a similar existing one is most likely a typo."""
    try:
        keys = _base_keys(plan)
    except Exception:
        return []
    notes = []
    for arg in args:
        key = arg[1:].split("=", 1)[0]
        if key in keys:
            continue
        close = _closest(key, keys)
        if close and close != key:
            notes.append(f"{arg} creates a new key {key}, which nothing in verl reads; did you mean {close}?")
    return notes


def explain(plan: Plan, message: str) -> str:
    knobs = SFT_KNOBS if plan.trainer == "sft" else RL_KNOBS
    names = knobs_for_message(message, knobs)
    # An error on a path set from the command line names that argument.
    passthrough = [arg for arg in plan.extra_args if arg.split("=", 1)[0].lstrip("+~") in message]
    hint = ""
    if names:
        hint += f"\n  change: {', '.join(names)} in {plan.method}/train.sh"
    if passthrough:
        hint += f"\n  or the argument(s): {' '.join(passthrough)}"
    return message.strip() + hint


def check_config(plan: Plan, cfg) -> list[str]:
    """Run verl's own checks on cfg; return notes. Raises ConfigError naming the variables."""
    notes: list[str] = list(plan.model_notes)
    try:
        # verl prints "All configuration checks passed successfully!" even when ours then fail:
        # its words stay out of the output, its errors come back as ours, naming the knob.
        with contextlib.redirect_stdout(io.StringIO()):
            notes += _check_rl(cfg) if plan.trainer == "rl" else _check_sft(cfg)
    except ConfigError as exc:
        raise ConfigError(explain(plan, str(exc)) + _also_wrong(plan, cfg)) from None
    except Exception as exc:  # verl raises AssertionError, ValueError, InstantiationException ...
        text = str(exc) or type(exc).__name__
        raise ConfigError(explain(plan, f"verl rejected the config: {text}") + _also_wrong(plan, cfg)) from None
    return notes


def _also_wrong(plan: Plan, cfg) -> str:
    """verl stops at its first complaint; the GPU split (N_GPUS_PER_NODE=3 with ROLLOUT_TP=2) is said
    with it, so fixing the batch sizes does not only reveal the next error."""
    if plan.trainer != "rl":
        return ""
    from common.checks.parallel import parallel_checks

    try:
        failed = [r for r in parallel_checks(cfg) if r.failed]
    except Exception:  # the config is broken in another way; verl's words above stand
        return ""
    return "".join(f"\nalso [{r.check}] {r.detail}\n  change: {', '.join(r.knobs)} in {plan.method}/train.sh" for r in failed)


def _model_is_local(path: str) -> bool:
    return Path(os.path.expanduser(path)).is_dir()


def _check_rl(cfg) -> list[str]:
    from omegaconf import OmegaConf

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    notes = []
    if OmegaConf.is_missing(cfg.actor_rollout_ref.rollout, "name"):
        raise ConfigError("actor_rollout_ref.rollout.name is not set: set ROLLOUT_ENGINE to vllm or sglang")
    # The dataclasses run their own __post_init__ checks (rollout modes, clip ratios, kl types...).
    omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    omega_conf_to_dataclass(cfg.algorithm)
    model_path = cfg.actor_rollout_ref.model.path
    if _model_is_local(model_path):
        # Needs the model's config.json and tokenizer: only possible when the model is on disk.
        omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
    else:
        notes.append(f"model {model_path} is not on disk here: its config.json and tokenizer were not checked")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # need_critic warns that GRPO-style estimators run without one
        use_critic = need_critic(cfg)
    if use_critic and not _model_is_local(cfg.critic.model.path):
        # verl's critic check instantiates the critic's model config, which needs the model files.
        notes.append("critic checks that need the model files were skipped (model not on disk)")
        use_critic = False
    validate_config(_without_vllm_lora_check(cfg, notes), need_reference_policy(cfg), use_critic)
    return notes


# vLLM's MaxLoRARanks (vllm/config/lora.py), the values verl rounds a LoRA rank up to.
_VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def _without_vllm_lora_check(cfg, notes: list[str]):
    """validate_config imports vLLM to check the LoRA rank; without vLLM installed, check it here."""
    import importlib.util

    from omegaconf import OmegaConf

    rank = cfg.actor_rollout_ref.model.get("lora_rank", 0) or 0
    if rank <= 0 or cfg.actor_rollout_ref.rollout.name != "vllm" or importlib.util.find_spec("vllm"):
        return cfg
    if rank > _VLLM_LORA_RANKS[-1]:
        raise ConfigError(f"lora_rank ({rank}) must be at most {_VLLM_LORA_RANKS[-1]} for vLLM")
    notes.append(f"vLLM is not installed here: LoRA rank {rank} checked against vLLM's limit ({_VLLM_LORA_RANKS[-1]})")
    copy = OmegaConf.create(OmegaConf.to_container(cfg))
    copy.actor_rollout_ref.model.lora_rank = 0
    return copy


def _check_sft(cfg) -> list[str]:
    from verl.utils.config import omega_conf_to_dataclass

    notes = []
    # sft_trainer builds these dataclasses first thing; their __post_init__ checks run here.
    for key in ("engine", "optim", "checkpoint"):
        if key in cfg:
            omega_conf_to_dataclass(cfg[key])
    if _model_is_local(cfg.model.path):
        omega_conf_to_dataclass(cfg.model)
    else:
        notes.append(f"model {cfg.model.path} is not on disk here: its config.json and tokenizer were not checked")
    batch = cfg.data.train_batch_size
    world = cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes
    if batch % world:
        raise ConfigError(f"data.train_batch_size ({batch}) must be divisible by the GPU count ({world})")
    return notes
