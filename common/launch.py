"""The shared launcher behind every method's train.sh.

    DRY_RUN=1 ./grpo/train.sh                       # what train.sh runs; prints, checks, exits 0
    .venv/bin/python -m common.launch grpo/ [hydra.override=value ...]

A train.sh exports its config block (NAME=value variables) and execs common/launch.sh, which runs
this module with the method folder and the pass-through arguments. This module then
1. turns the config-block variables into Hydra overrides (common/knobs.py maps each one),
2. composes the method's YAML with verl's own Hydra configs and runs verl's own checks
   (validate_config and the config dataclasses), so a config verl would reject is rejected here,
   in seconds, naming the variable to change,
3. with DRY_RUN=1 prints the exact command and the resolved config and exits 0; otherwise checks
   that an NVIDIA GPU is present, prepares the run folder and runs verl, tee-ing its output.

Run folder (OUTPUT_DIR/EXPERIMENT_NAME, default outputs/<experiment>/):
    run.json                 method, project, total steps, one entry per launch (pid, exit code)
    config.yaml              the resolved config of the latest launch (secrets redacted)
    train.log                console output of every launch, appended
    metrics/<launch>.jsonl   verl's file logger, one file per launch (verl opens it with "wb")
    rollout/ validation/     generations verl dumps during training and validation
    checkpoints/             verl checkpoints; a relaunch with the same name resumes from here
    tensorboard/             when USE_TENSORBOARD=true
    wandb/                   wandb's local files when USE_WANDB=true (offline runs: wandb sync them)
    hydra/<launch>/          Hydra's record of each launch (the composed config and overrides)

Offers:
- Plan / make_plan(method_dir, env, extra_args): everything a launch needs, computed, no side effects.
- compose_config(plan): the verl config (DictConfig) the command would run with.
- check_config(plan, cfg): verl's own checks, errors rewritten to name config-block variables.
- main(argv): the command line used by common/launch.sh.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from common.knobs import RL_KNOBS, SFT_KNOBS, ConfigError, Knob, knobs_for_message, parse_bool, parse_value

REPO_ROOT = Path(__file__).resolve().parents[1]
# Method YAMLs inherit verl's configs by name (defaults: [ppo_trainer]); Hydra accepts a search path
# only from the primary config or the command line, so it goes on the command line for every YAML.
VERL_SEARCHPATH = "hydra.searchpath=[pkg://verl.trainer.config]"
# Names of environment variables and config keys whose values are never printed or written.
SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password)$", re.IGNORECASE)
# Characters a Hydra override value may carry unquoted.
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:~+@-]*$")


@dataclass
class Plan:
    """Everything one launch needs, built from the environment; only a verl checkpoint given as
    MODEL_PATH touches the disk (it is merged to Hugging Face format once)."""

    method: str
    method_dir: Path
    config_name: str
    trainer: str  # "rl" or "sft"
    overrides: list[str]
    extra_args: list[str]
    run_dir: Path
    launch_id: str
    env: dict[str, str]
    n_gpus_per_node: int
    nnodes: int
    gpu_note: str
    # GPUs the detector saw (this machine's, or the Ray cluster's when submitting), counted once.
    gpus_found: int
    gpus_how: str
    entry_module: str
    model_notes: list[str] = field(default_factory=list)
    # Filled by check_config: common/preflight.py's results (printed as the report table).
    preflight: list = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        config_args = ["--config-path", str(self.method_dir), "--config-name", self.config_name]
        args = config_args + self.overrides + self.extra_args
        if self.trainer == "sft":
            return [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nnodes={self.nnodes}",
                f"--nproc_per_node={self.n_gpus_per_node}",
                "--standalone" if self.nnodes == 1 else "--rdzv-backend=c10d",
                "-m",
                self.entry_module,
                *args,
            ]
        return [sys.executable, "-m", self.entry_module, *args]

    @property
    def all_overrides(self) -> list[str]:
        return self.overrides + self.extra_args

    @property
    def metrics_file(self) -> Path:
        return self.run_dir / "metrics" / f"{self.launch_id}.jsonl"


# ---------------------------------------------------------------------------------------------
# building the plan


def detect_gpus() -> tuple[int, str]:
    """(number of NVIDIA GPUs visible, how it was found). CUDA_VISIBLE_DEVICES narrows the count."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0, "nvidia-smi not found"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 0, f"nvidia-smi failed: {exc}"
    count = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    if visible is not None and visible.strip() != "":
        count = min(count, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    return count, f"nvidia-smi lists {count} GPU(s)"


def hydra_value(value) -> str:
    """A Python value written as a Hydra override value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    if _PLAIN_VALUE.match(text) and text.lower() not in {"null", "true", "false"}:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _trainer_kind(method_dir: Path, config_name: str) -> str:
    """'sft' when the method YAML inherits verl's SFT trainer config, else 'rl'."""
    path = method_dir / f"{config_name}.yaml"
    if not path.is_file():
        raise ConfigError(f"CONFIG_NAME={config_name!r}: {path} does not exist")
    text = path.read_text()
    return "sft" if re.search(r"^\s*-\s*sft_trainer", text, re.MULTILINE) else "rl"


def _resolve_path(raw: str, method_dir: Path) -> str:
    """Data and reward paths: relative ones are taken from the method folder; hdfs:// etc. kept."""
    if "://" in raw:
        return raw
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = (method_dir / path).resolve()
    return str(path)


def _resolve_model_path(raw: str, cwd: str | None, method_dir: Path, notes: list[str]) -> str:
    """A hub id stays as is; a local folder becomes absolute; a verl checkpoint (an SFT or RL run
    folder, global_step_N or actor/) is merged to Hugging Face format once, cached beside it."""
    candidates = [Path(os.path.expanduser(raw))]
    if not candidates[0].is_absolute():
        candidates = [Path(cwd or os.getcwd()) / raw, method_dir / raw]
    local = next((c.resolve() for c in candidates if c.exists()), None)
    if local is None:
        if raw.startswith(("/", "./", "../", "~")):
            raise ConfigError(f"MODEL_PATH={raw}: no such folder")
        return raw  # a Hugging Face id, downloaded by verl on the GPU machine
    if (local / "config.json").is_file():
        return str(local)
    from common.evaluation.checkpoint import CheckpointError, resolve_model

    try:
        resolved = resolve_model(str(local))
    except CheckpointError as exc:
        raise ConfigError(str(exc).replace("--model_path", "MODEL_PATH")) from None
    how = "merged now" if resolved.merged_now else "merged earlier, reused"
    notes.append(f"MODEL_PATH is a verl checkpoint: using its Hugging Face export {resolved.hf_path} ({how})")
    return resolved.hf_path


def _launch_id(now: _dt.datetime | None = None) -> str:
    return (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%d-%H%M%S")


def _reward_source(env: dict[str, str], method_dir: Path) -> dict[str, str]:
    """USE_REWARD_MODEL / USE_API_REWARD pick the method's variant YAML and its reward function."""
    use_rm = parse_bool("USE_REWARD_MODEL", env.get("USE_REWARD_MODEL") or "false")
    use_api = parse_bool("USE_API_REWARD", env.get("USE_API_REWARD") or "false")
    if use_rm and use_api:
        raise ConfigError("USE_REWARD_MODEL and USE_API_REWARD are both true: pick one reward source")
    if use_rm:
        if not (method_dir / "reward_model_config.yaml").is_file():
            raise ConfigError(f"USE_REWARD_MODEL=true: {method_dir.name}/ has no reward_model_config.yaml (ppo/ has one)")
        if not env.get("REWARD_MODEL_PATH"):
            raise ConfigError("USE_REWARD_MODEL=true needs REWARD_MODEL_PATH (a reward model id or folder)")
        env.setdefault("CONFIG_NAME", "reward_model_config")
        # The model is the reward: verl calls a custom function instead whenever one is set.
        env["REWARD_FUNC_PATH"] = ""
    elif use_api:
        if not (method_dir / "api_reward_config.yaml").is_file():
            raise ConfigError(f"USE_API_REWARD=true: {method_dir.name}/ has no api_reward_config.yaml (ppo/ has one)")
        env.setdefault("CONFIG_NAME", "api_reward_config")
        env["REWARD_FUNC_PATH"] = str(method_dir / "api_reward.py")
    else:
        env.pop("REWARD_MODEL_PATH", None)
    return env


def make_plan(method_dir: str | Path, env: dict[str, str], extra_args: list[str], detect=detect_gpus) -> Plan:
    """Turn the config block (in env) into the overrides and paths of one launch."""
    method_dir = Path(method_dir).resolve()
    method = method_dir.name
    env = _reward_source(dict(env), method_dir)
    config_name = env.get("CONFIG_NAME") or "config"
    trainer = _trainer_kind(method_dir, config_name)
    knobs: tuple[Knob, ...] = SFT_KNOBS if trainer == "sft" else RL_KNOBS
    overrides: list[str] = [VERL_SEARCHPATH]

    def add(path: str, value, raw: bool = False) -> None:
        overrides.append(f"{path}={value if raw else hydra_value(value)}")

    notes: list[str] = []
    if env.get("MODEL_PATH"):
        env["MODEL_PATH"] = _resolve_model_path(env["MODEL_PATH"], env.get("LAUNCH_CWD"), method_dir, notes)

    for knob in knobs:
        raw = env.get(knob.name)
        if raw is None or raw.strip() == "":
            continue
        value = parse_value(knob, raw)
        if knob.kind == "path":
            value = _resolve_path(value, method_dir)
        for path in knob.paths:
            add(path, value, raw=knob.kind == "raw")

    # ---- attention backend (common/attention.py): ATTN_IMPL -> each model's attn_implementation
    from common import attention

    try:
        chosen_attention = attention.resolve(env.get("ATTN_IMPL"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    overrides += attention.overrides(chosen_attention, trainer)
    notes.append(f"attention: {chosen_attention.impl} ({chosen_attention.why})")
    # ---- end attention backend

    # GPUs: an empty or "auto" N_GPUS_PER_NODE counts the local GPUs.
    raw_gpus = (env.get("N_GPUS_PER_NODE") or "auto").strip()
    found, how = detect()
    if raw_gpus == "auto":
        n_gpus = found if found > 0 else 1
        gpu_note = f"N_GPUS_PER_NODE=auto -> {n_gpus} ({how}{'; using 1 for the checks' if found == 0 else ''})"
    else:
        n_gpus = parse_value(Knob("N_GPUS_PER_NODE", "int", ()), raw_gpus)
        if n_gpus < 1:
            raise ConfigError(f"N_GPUS_PER_NODE={raw_gpus!r} must be at least 1 (or auto)")
        gpu_note = f"N_GPUS_PER_NODE={n_gpus} ({how})"
    add("trainer.n_gpus_per_node", n_gpus)
    nnodes = parse_value(Knob("NNODES", "int", ()), env.get("NNODES") or "1")

    # LoRA: the rank is only set when USE_LORA is on, so turning it off needs one variable.
    if env.get("USE_LORA"):
        use_lora = parse_bool("USE_LORA", env["USE_LORA"])
        rank = parse_value(Knob("LORA_RANK", "int", ()), env.get("LORA_RANK") or "32") if use_lora else 0
        if use_lora and rank <= 0:
            raise ConfigError(f"LORA_RANK={rank} must be positive when USE_LORA=true")
        lora_path = "model.lora_rank" if trainer == "sft" else "actor_rollout_ref.model.lora_rank"
        add(lora_path, rank)
        # ---- LoRA rollout settings (verl's LoRA guide, docs/advance/ppo_lora.rst): vLLM loads the base
        # weights from safetensors, and the adapter sync gathers one layer at a time.
        if use_lora and trainer == "rl":
            add("actor_rollout_ref.rollout.load_format", "safetensors")
            add("actor_rollout_ref.rollout.layered_summon", True)
        # ---- end LoRA rollout settings

    # ---- overlong shaping on any RL method: verl's dapo reward manager applies the penalty (the
    # naive manager ignores reward_kwargs); by default over the last quarter of the generation limit.
    if trainer == "rl" and parse_bool("OVERLONG_SHAPING", env.get("OVERLONG_SHAPING") or "false"):
        if not (env.get("REWARD_MANAGER") or "").strip():
            add("reward.reward_manager.name", "dapo")
        if not (env.get("OVERLONG_BUFFER_LEN") or "").strip():
            response = parse_value(Knob("MAX_RESPONSE_LENGTH", "int", ()), env.get("MAX_RESPONSE_LENGTH") or "1024")
            add("reward.reward_kwargs.overlong_buffer_cfg.len", max(1, response // 4))
    # ---- end overlong shaping

    # Names and folders.
    experiment = env.get("EXPERIMENT_NAME") or f"{method}-run"
    if "/" in experiment or experiment in {".", ".."}:
        raise ConfigError(f"EXPERIMENT_NAME={experiment!r} must be a plain folder name (no '/')")
    output_dir = Path(os.path.expanduser(env.get("OUTPUT_DIR") or REPO_ROOT / "outputs"))
    run_dir = (output_dir if output_dir.is_absolute() else REPO_ROOT / output_dir).resolve() / experiment
    add("trainer.experiment_name", env.get("WANDB_RUN_NAME") or experiment)
    add("trainer.default_local_dir", str(run_dir / "checkpoints"))
    launch_id = _launch_id()
    # verl's entry points are Hydra apps: keep Hydra's own record of each launch in the run folder
    # rather than in a dated folder under the working directory.
    add("hydra.run.dir", str(run_dir / "hydra" / launch_id))
    if trainer == "rl":
        add("trainer.rollout_data_dir", str(run_dir / "rollout"))
        add("trainer.validation_data_dir", str(run_dir / "validation"))

    # Loggers: console and file always; wandb and tensorboard on request.
    loggers = ["console", "file"]
    run_env: dict[str, str] = {}
    if parse_bool("USE_WANDB", env.get("USE_WANDB") or "false"):
        loggers.append("wandb")
        run_env["WANDB_DIR"] = str(run_dir)
        if env.get("WANDB_ENTITY"):
            run_env["WANDB_ENTITY"] = env["WANDB_ENTITY"]
        if not env.get("WANDB_API_KEY") and not env.get("WANDB_MODE"):
            # No key: keep the run offline rather than fail after the models have loaded.
            run_env["WANDB_MODE"] = "offline"
    if parse_bool("USE_TENSORBOARD", env.get("USE_TENSORBOARD") or "false"):
        loggers.append("tensorboard")
        run_env["TENSORBOARD_DIR"] = str(run_dir / "tensorboard")
    add("trainer.logger", loggers)

    # Both trainers import the project's reward code and verl from this tree.
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)

    plan = Plan(
        method=method,
        method_dir=method_dir,
        config_name=config_name,
        trainer=trainer,
        overrides=overrides,
        extra_args=list(extra_args),
        run_dir=run_dir,
        launch_id=launch_id,
        env=run_env,
        n_gpus_per_node=n_gpus,
        nnodes=nnodes,
        gpu_note=gpu_note,
        gpus_found=found,
        gpus_how=how,
        model_notes=notes,
        entry_module=env.get("TRAINER_MODULE") or ("verl.trainer.sft_trainer" if trainer == "sft" else "verl.trainer.main_ppo"),
    )
    # A file per launch: verl's file logger opens it with "wb", so a resume must not reuse one.
    plan.env["VERL_FILE_LOGGER_PATH"] = str(plan.metrics_file)
    return plan


# ---------------------------------------------------------------------------------------------
# composing and checking with verl's own code


def compose_config(plan: Plan):
    """The config verl would run with: the method YAML composed with verl's Hydra configs."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(plan.method_dir), version_base=None):
            return compose(config_name=plan.config_name, overrides=plan.all_overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_explain(plan, f"verl could not compose the config: {exc}")) from None


def _explain(plan: Plan, message: str) -> str:
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
        if plan.trainer == "rl":
            notes += _check_rl(cfg)
        else:
            notes += _check_sft(cfg)
    except ConfigError as exc:
        raise ConfigError(_explain(plan, str(exc))) from None
    except Exception as exc:  # verl raises AssertionError, ValueError, InstantiationException ...
        text = str(exc) or type(exc).__name__
        raise ConfigError(_explain(plan, f"verl rejected the config: {text}")) from None
    # What verl checks only inside its workers, minutes later.
    from common import preflight

    results = preflight.run_checks(plan, cfg, gpus_found=plan.gpus_found)
    plan.preflight = results
    # FORCE=1 launches anyway; main() prints the failures as a warning, never silently.
    if any(r.failed for r in results) and not parse_bool("FORCE", os.environ.get("FORCE") or "0"):
        raise ConfigError(preflight.failure_message(results, plan.method))
    return notes


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


# ---------------------------------------------------------------------------------------------
# printing and running


def redact(text: str, env: dict[str, str] | None = None) -> str:
    """Hide secret-looking YAML values and any secret environment value that appears in text."""
    text = re.sub(
        r"^(\s*[\w.-]*(?:api[_-]?key|token|secret|password)\s*:\s*)(?!null\s*$)(\S.*)$",
        r"\1'***'",
        text,
        flags=re.IGNORECASE | re.MULTILINE,
    )
    for name, value in (env or os.environ).items():
        if SECRET_KEY.search(name) and value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


class SecretFilter:
    """Replaces secret environment values (names ending in API_KEY, TOKEN, SECRET, PASSWORD) with ***
    in a byte stream such as verl's console output, including values split across two chunks."""

    def __init__(self, env: dict[str, str] | None = None):
        values = {v.encode() for k, v in (env or os.environ).items() if SECRET_KEY.search(k) and v and len(v) >= 4}
        self.secrets = sorted(values, key=len, reverse=True)
        # Bytes held back so a secret cut by a chunk boundary is still seen whole next time.
        self.keep = max((len(v) for v in self.secrets), default=1) - 1
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk
        for secret in self.secrets:
            data = data.replace(secret, b"***")
        if self.keep <= 0:
            return data
        self.pending = data[-self.keep :]
        return data[: -self.keep]

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return data


def resolved_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # an interpolation that only resolves at run time (e.g. ${oc.env:...} unset)
        return OmegaConf.to_yaml(cfg, resolve=False)


def total_steps(cfg) -> int | None:
    """Training steps verl will run, from the config and the train file's row count."""
    configured = cfg.trainer.get("total_training_steps")
    if configured:
        return int(configured)
    try:
        import pyarrow.parquet as pq

        files = cfg.data.train_files
        files = [files] if isinstance(files, str) else list(files)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception:
        return None
    per_epoch = rows // int(cfg.data.train_batch_size)
    return per_epoch * int(cfg.trainer.total_epochs)


def dry_run_text(plan: Plan, cfg, notes: list[str], report: str, command: str, extra: tuple[str, ...] = ()) -> str:
    """What DRY_RUN=1 prints, here or for a Ray cluster: preflight table, resolved config, command, notes."""
    lines = ["# ---- preflight ----", report] if report else []
    lines += ["# ---- resolved config (verl's own composition) ----", resolved_yaml(cfg), "# ---- command ----", command]
    lines += [*extra, f"# {plan.gpu_note}", *(f"# note: {note}" for note in notes)]
    return "\n".join(lines)


def shell_command(plan: Plan) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in plan.env.items() if k != "PYTHONPATH")
    return f"{env} \\\n  " + " \\\n    ".join(shlex.quote(arg) for arg in plan.command)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _update_run_json(plan: Plan, cfg, **launch_fields) -> None:
    path = plan.run_dir / "run.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        meta = {"launches": []}
    meta.update(
        method=plan.method,
        experiment=plan.run_dir.name,
        project=str(cfg.trainer.project_name),
        total_steps=total_steps(cfg),
    )
    launches = meta.setdefault("launches", [])
    current = next((entry for entry in launches if entry.get("id") == plan.launch_id), None)
    if current is None:
        current = {
            "id": plan.launch_id,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "metrics_file": str(plan.metrics_file.relative_to(plan.run_dir)),
            "ended": None,
            "exit_code": None,
        }
        launches.append(current)
    current.update(launch_fields)
    _atomic_write(path, json.dumps(meta, indent=2) + "\n")


def _interrupt(child) -> None:
    """Stop verl as Ctrl-C would (SIGINT: Ray shuts its workers down), then SIGTERM after 60 s."""
    import signal

    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGINT)

    def escalate():
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.terminate()

    threading.Thread(target=escalate, daemon=True).start()


def run(plan: Plan, cfg) -> int:
    """Run verl with the plan, tee its output into train.log; return its exit code."""
    for sub in ("metrics", "checkpoints"):
        (plan.run_dir / sub).mkdir(parents=True, exist_ok=True)
    _atomic_write(plan.run_dir / "config.yaml", redact(resolved_yaml(cfg)))
    _update_run_json(plan, cfg)
    env = {**os.environ, **plan.env}
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    header = f"==== launch {started} pid={os.getpid()} method={plan.method} ====\n"
    code = 1
    with open(plan.run_dir / "train.log", "ab", buffering=0) as log:
        log.write(header.encode())
        sys.stdout.write(header)
        sys.stdout.flush()
        # Training callbacks (common/callbacks.py): alerts, NaN/KL stops, export and evaluation at the end.
        from common import callbacks

        lock = threading.Lock()  # verl's output and the watcher's alerts share the console and train.log

        def emit(data: bytes) -> None:
            with lock:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
                log.write(data)

        def say(message: str) -> None:
            emit((message + "\n").encode())

        holder: dict = {}
        cb_ctx = callbacks.context_for(plan, cfg, dict(os.environ), out=say)
        watcher = callbacks.Watcher(cb_ctx, terminate=lambda: _interrupt(holder.get("child")))
        try:
            child = subprocess.Popen(plan.command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError as exc:
            raise ConfigError(f"cannot start {plan.command[0]}: {exc}; run ./setup_env.sh first") from None
        assert child.stdout is not None
        holder["child"] = child
        watcher.start()
        try:
            secrets = SecretFilter(env)
            for chunk in iter(lambda: child.stdout.read1(65536), b""):
                emit(secrets.feed(chunk))
            emit(secrets.flush())
            code = child.wait()
            watcher.stop()
            callbacks.on_end(code, cb_ctx, watcher)
        except KeyboardInterrupt:
            watcher.stop()
            # Ctrl-C reached verl too (same process group); give it time to stop its Ray workers.
            try:
                code = child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
        finally:
            _update_run_json(
                plan,
                cfg,
                ended=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                exit_code=code,
            )
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    method_dir, extra_args = argv[0], argv[1:]
    # --json: the preflight report as one JSON document on stdout, nothing launched; not a Hydra argument.
    as_json = "--json" in extra_args
    extra_args = [arg for arg in extra_args if arg != "--json"]
    env = dict(os.environ)
    dry_run = parse_bool("DRY_RUN", env.get("DRY_RUN") or "0") or as_json
    force = parse_bool("FORCE", env.get("FORCE") or "0")
    from common import preflight, ray_submit

    plan = None
    try:
        # In JSON mode anything verl or Hydra prints goes to stderr: stdout carries the document only.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            plan = make_plan(method_dir, env, extra_args, detect=ray_submit.gpu_detector(env))
            cfg = compose_config(plan)
            notes = check_config(plan, cfg)
    except ConfigError as exc:
        if as_json:
            results = plan.preflight if plan is not None else []
            print(preflight.to_json(results, plan, error=redact(str(exc))))
        print(f"[{Path(method_dir).resolve().name}] config error: {redact(str(exc))}", file=sys.stderr)
        return 2
    if as_json:
        print(preflight.to_json(plan.preflight, plan, force=force, notes=[redact(n) for n in notes]))
        return 0
    report = preflight.format_table(plan.preflight) + "\n" + preflight.verdict(plan.preflight, force)
    if force and any(r.failed for r in plan.preflight):
        print(f"[{plan.method}] WARNING: FORCE=1 overrides failed checks:\n{preflight.failure_message(plan.preflight, plan.method)}",
              file=sys.stderr)
    # ---- REHEARSAL=1 (common/rehearsal): one real training step of this config on the CPU; needs no GPU
    if parse_bool("REHEARSAL", env.get("REHEARSAL") or "0") and not dry_run:
        from common.rehearsal import rehearse

        for note in notes:
            print(f"[{plan.method}] note: {redact(note)}")
        print(redact(report))
        sys.stdout.flush()
        return rehearse(plan, cfg, env)
    # ---- end rehearsal
    if ray_submit.wants_cluster(env):
        # NNODES > 1 or RAY_ADDRESS: submit to the Ray cluster instead of running here.
        return ray_submit.submit(plan, cfg, notes, env, dry_run, report=redact(report))
    if dry_run:
        print(redact(dry_run_text(plan, cfg, notes, report, shell_command(plan), (f"# run folder: {plan.run_dir}",))))
        # The verdict again at the bottom, where the eye lands after the long config.
        print(f"# preflight {preflight.verdict(plan.preflight, force)} (table above)")
        print("# verl's config checks passed; DRY_RUN=1, nothing launched")
        return 0
    if plan.gpus_found == 0:
        print(
            f"[{plan.method}] no NVIDIA GPU found ({plan.gpus_how}); verl needs one to train.\n"
            f"  To check the config without a GPU: DRY_RUN=1 ./{plan.method}/train.sh",
            file=sys.stderr,
        )
        return 1
    for note in notes:
        print(f"[{plan.method}] note: {note}")
    print(redact(report))
    try:
        return run(plan, cfg)
    except ConfigError as exc:
        print(f"[{plan.method}] {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
