"""One launch's plan: the config block (environment variables) turned into verl overrides and paths.

    .venv/bin/python -c "from common.plan import make_plan; print(make_plan('grpo', {}, []).overrides)"

Offers:
- Plan: everything one launch needs (method, config name, trainer kind, Hydra overrides, run
  folder, launch id, the environment verl gets, GPU counts, the command, notes, the wandb run id),
  computed, no side effects except merging a verl checkpoint given as MODEL_PATH to Hugging Face
  format once (a run folder's files are read, never written).
- make_plan(method_dir, env, extra_args, detect): the Plan of a train.sh's exported config block;
  a ConfigError names the variable to change. Order of the overrides, weakest first: the presets
  (common/presets.py: ALGORITHM, ENTROPY_MODE, ROLLOUT_CORRECTION), then the knobs, then the
  pass-through arguments.
- hydra_value(value): a Python value written as a Hydra override value.
- VERL_SEARCHPATH, REPO_ROOT.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common import presets, run_folder
from common.gpus import detect_gpus
from common.knobs import RL_KNOBS, SFT_KNOBS, ConfigError, Knob, parse_bool, parse_value

REPO_ROOT = Path(__file__).resolve().parents[1]
# Method YAMLs inherit verl's configs by name (defaults: [ppo_trainer]); Hydra accepts a search path
# only from the primary config or the command line, so it goes on the command line for every YAML.
VERL_SEARCHPATH = "hydra.searchpath=[pkg://verl.trainer.config]"
# Characters a Hydra override value may carry unquoted.
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:~+@-]*$")
# A run folder name: the checkpoints below it need room under the file system's 255-byte names and
# 4,096-byte paths, and ${...}, spaces or slashes in it would change where things land.
_EXPERIMENT_NAME_MAX = 120
_EXPERIMENT_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._+=-]{{0,{_EXPERIMENT_NAME_MAX - 1}}}")


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
    # Notes printed with the dry run and at launch (a merged MODEL_PATH, the presets and the keys they set).
    model_notes: list[str] = field(default_factory=list)
    # wandb's run id: the run folder's (run.json) on a relaunch, a new one on the first launch or with
    # RESUME_MODE=disable; recorded in run.json when the launch starts (common/run_folder.py).
    wandb_id: str | None = None
    # Filled by the launcher: common/preflight.py's results (printed as the report table).
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



def _looks_numeric(text: str) -> bool:
    """Hydra would read this unquoted string as a number (e.g. 2024, 1e-3, 0.5_5.0 is not: kept a string)."""
    try:
        float(text)
    except ValueError:
        return "_" in text and text.replace("_", "").replace(".", "").isdigit()
    return True


def hydra_value(value) -> str:
    """A Python value written as a Hydra override value; strings stay strings.

    >>> hydra_value({"enable_thinking": False, "effort": "low"})
    '{enable_thinking:false,effort:low}'
    >>> hydra_value("0.5_5.0"), hydra_value(None)
    ("'0.5_5.0'", 'null')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN_VALUE.match(text) and text.lower() not in {"null", "true", "false"} and not _looks_numeric(text):
        return text
    # Quoted; a ${...} in a knob's value is text, never an OmegaConf interpolation (\${ escapes it).
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("${", "\\${") + "'"


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
    try:
        local = next((c.resolve() for c in candidates if c.exists()), None)
        if local is not None and not os.access(local, os.R_OK | (os.X_OK if local.is_dir() else 0)):
            raise PermissionError(13, "permission denied")
        has_config = local is not None and (local / "config.json").is_file()
    except OSError as exc:  # a folder that may not be read, a name too long
        raise ConfigError(f"MODEL_PATH={raw}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if local is None:
        if raw.startswith(("/", "./", "../", "~")):
            raise ConfigError(f"MODEL_PATH={raw}: no such folder")
        return raw  # a Hugging Face id, downloaded by verl on the GPU machine
    if has_config:
        return str(local)
    from common.evaluation.checkpoint import CheckpointError, resolve_model

    try:
        resolved = resolve_model(str(local))
    except CheckpointError as exc:
        raise ConfigError(str(exc).replace("--model_path", "MODEL_PATH")) from None
    how = "merged now" if resolved.merged_now else "merged earlier, reused"
    notes.append(f"MODEL_PATH is a verl checkpoint: using its Hugging Face export {resolved.hf_path} ({how})")
    return resolved.hf_path


class _Problems:
    """The ConfigErrors of independent knobs, gathered so that one dry run names every wrong value
    rather than the first one (fixing it then only to meet the next)."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextlib.contextmanager
    def step(self):
        try:
            yield
        except ConfigError as exc:
            self.messages.append(str(exc))

    def raise_any(self) -> None:
        if len(self.messages) == 1:
            raise ConfigError(self.messages[0])
        if self.messages:
            lines = "\n".join(f"  {i}. " + m.replace("\n", "\n     ") for i, m in enumerate(self.messages, 1))
            raise ConfigError(f"{len(self.messages)} config-block values need fixing:\n{lines}")


# Numbers the launcher's own helpers read (common/memory.py, common/callbacks.py), checked with the rest.
_LAUNCHER_NUMBERS = (
    Knob("GPU_MEMORY_GB", "float", (), lo=0, lo_open=True),
    Knob("KL_STOP_THRESHOLD", "float", (), lo=0),
    Knob("KL_STOP_STEPS", "int", (), lo=1),
)
# Characters a run folder name cannot hold, replaced when the name is the block's default (method-<model folder>).
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9._+=-]+")


def _experiment_name(env: dict[str, str], method: str, model_raw: str, notes: list[str]) -> str:
    """EXPERIMENT_NAME, checked. The block's default, <method>-<MODEL_PATH's folder name>, is made a
    plain folder name (a model folder may hold spaces); a name the user wrote is never changed."""
    experiment = env.get("EXPERIMENT_NAME") or f"{method}-run"
    derived = f"{method}-{os.path.basename(model_raw.rstrip('/'))}" if model_raw else None
    if experiment == derived and not _EXPERIMENT_NAME.fullmatch(experiment):
        plain = _NOT_IN_NAME.sub("-", experiment)[:_EXPERIMENT_NAME_MAX]
        notes.append(f"EXPERIMENT_NAME={plain}: the default name from MODEL_PATH's folder, {experiment!r}, made a "
                     "plain folder name (set EXPERIMENT_NAME to choose another)")
        experiment = plain
    if not _EXPERIMENT_NAME.fullmatch(experiment):
        raise ConfigError(
            f"EXPERIMENT_NAME={experiment[:80]!r}{'...' if len(experiment) > 80 else ''} must be a plain folder name: "
            f"letters, digits and . _ + = - only, starting with a letter or digit, at most {_EXPERIMENT_NAME_MAX} "
            "characters (it names the run folder; a relaunch with the same name resumes it)"
        )
    return experiment


def _launch_id(now: _dt.datetime | None = None) -> str:
    # Microseconds: two launches in the same second still get their own metrics file (and the
    # names still sort by time).
    return (now or _dt.datetime.now(_dt.timezone.utc)).strftime("%Y%m%d-%H%M%S-%f")


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


def _resume_mode(env: dict[str, str], extra_args: list[str]) -> str:
    """trainer.resume_mode as verl will see it: a pass-through argument, else RESUME_MODE, else auto."""
    for arg in reversed(extra_args):
        key, _, value = arg.partition("=")
        if key.lstrip("+~") == "trainer.resume_mode":
            return value.strip().strip("'\"")
    return (env.get("RESUME_MODE") or "auto").strip()


def _wandb_run_id(run_dir: Path, env: dict[str, str], extra_args: list[str]) -> str:
    """The run folder's wandb id when this launch resumes it; a new one on a first launch or RESUME_MODE=disable."""
    existing = run_folder.wandb_id(run_dir)
    if existing and _resume_mode(env, extra_args) != "disable":
        return existing
    return run_folder.new_wandb_id()


# The guard's per-call limit when REWARD_TIMEOUT_S is unset: common/reward_guard.py's default, and
# for the API judge (USE_API_REWARD) 1,800 s, since waiting in its concurrency queue counts too.
_REWARD_TIMEOUT_S = {"function": "30", "api_judge": "1800"}
_GUARD_KWARGS = "+reward.custom_reward_function.reward_kwargs"


def _reward_overrides(env: dict[str, str], guard: bool, target: dict[str, str], add) -> list[str]:
    """REWARD_GUARD=true: verl loads common/reward_guard.py, which calls REWARD_FUNC_PATH under
    REWARD_TIMEOUT_S (an error or a time-out scores 0, is logged once and counted in
    <run>/reward_errors.jsonl). STRICT_BOXED=true passes strict_boxed to the reward. Returns notes."""
    notes = []
    timeout_knob = Knob("REWARD_TIMEOUT_S", "special", (), lo=0, lo_open=True)
    if target.get("REWARD_FUNC_PATH"):
        kind = "api_judge" if parse_bool("USE_API_REWARD", env.get("USE_API_REWARD") or "false") else "function"
        timeout = parse_value(timeout_knob, env.get("REWARD_TIMEOUT_S") or _REWARD_TIMEOUT_S[kind])
        name = target.get("REWARD_FUNC_NAME") or "compute_score"
        add("reward.custom_reward_function.path", str(REPO_ROOT / "common" / "reward_guard.py"))
        add("reward.custom_reward_function.name", "compute_score")
        add(f"{_GUARD_KWARGS}.guard_target_path", target["REWARD_FUNC_PATH"])
        add(f"{_GUARD_KWARGS}.guard_target_name", name)
        add(f"{_GUARD_KWARGS}.guard_timeout_s", timeout)
        notes.append(f"reward guard: {Path(target['REWARD_FUNC_PATH']).name}:{name} runs under a {timeout:g} s limit per "
                     "call; an error scores 0 and is counted in reward_errors.jsonl (REWARD_GUARD=false turns it off)")
    elif (env.get("REWARD_TIMEOUT_S") or "").strip():
        parse_value(timeout_knob, env["REWARD_TIMEOUT_S"])
        if not guard:
            notes.append("REWARD_TIMEOUT_S is set but REWARD_GUARD=false: no time limit applies")
    if parse_bool("STRICT_BOXED", env.get("STRICT_BOXED") or "false"):
        add(f"{_GUARD_KWARGS}.strict_boxed", True)
    return notes


def make_plan(method_dir: str | Path, env: dict[str, str], extra_args: list[str], detect=detect_gpus) -> Plan:
    """Turn the config block (in env) into the overrides and paths of one launch."""
    method_dir = Path(method_dir).resolve()
    method = method_dir.name
    problems = _Problems()
    model_raw = env.get("MODEL_PATH") or ""
    env = dict(env)
    with problems.step():
        env = _reward_source(dict(env), method_dir)
    config_name = env.get("CONFIG_NAME") or "config"
    trainer = _trainer_kind(method_dir, config_name)
    knobs: tuple[Knob, ...] = SFT_KNOBS if trainer == "sft" else RL_KNOBS
    overrides: list[str] = [VERL_SEARCHPATH]

    def add(path: str, value, raw: bool = False) -> None:
        overrides.append(f"{path}={value if raw else hydra_value(value)}")

    notes: list[str] = []
    # The watcher's knobs (KEEP_BEST_METRIC, EXPORT_CHECKPOINT, STOP_ON_NAN ...) are checked now, before
    # anything is written; common/callbacks.py reads them again when the run starts.
    from common.callbacks import Settings

    with problems.step():
        Settings.from_env(env)
    for number in _LAUNCHER_NUMBERS:
        if (env.get(number.name) or "").strip():
            with problems.step():
                parse_value(number, env[number.name])
    if env.get("MODEL_PATH"):
        with problems.step():
            env["MODEL_PATH"] = _resolve_model_path(env["MODEL_PATH"], env.get("LAUNCH_CWD"), method_dir, notes)

    # Presets first (ALGORITHM, ENTROPY_MODE, ROLLOUT_CORRECTION), so a knob set in the block wins over them.
    preset_keys: dict[str, tuple[str, str, object]] = {}
    selected = []
    with problems.step():
        selected = presets.chosen(env, trainer)
    for knob_name, preset, setting in presets.settings_of(selected):
        add(setting.path, setting.value if setting.raw else hydra_value(setting.value), raw=True)
        preset_keys[setting.path] = (knob_name, preset.name, setting.value)
    notes += [presets.describe(knob_name, preset) for knob_name, preset in selected]

    guard = trainer == "rl"
    with problems.step():
        guard = trainer == "rl" and parse_bool("REWARD_GUARD", env.get("REWARD_GUARD") or "true")
    reward_target: dict[str, str] = {}
    for knob in knobs:
        raw = env.get(knob.name)
        if raw is None or raw.strip() == "" or knob.kind == "special":
            continue
        try:
            value = parse_value(knob, raw)
        except ConfigError as exc:
            problems.messages.append(str(exc))
            continue
        if knob.kind == "path":
            value = _resolve_path(value, method_dir)
        if guard and knob.name in ("REWARD_FUNC_PATH", "REWARD_FUNC_NAME"):
            reward_target[knob.name] = value  # handed to the guard below
            continue
        for path in knob.paths:
            # A JSON object replaces verl's empty dict ({}), which Hydra refuses to override without "++".
            add(f"++{path}" if knob.kind == "json" else path, value, raw=knob.kind == "raw")
            if path in preset_keys and preset_keys[path][2] != value:
                by, name, was = preset_keys[path]
                notes.append(f"{knob.name}={raw.strip()} overrides {by}={name}'s {path}={was}")

    if trainer == "rl":
        with problems.step():
            notes += _reward_overrides(env, guard, reward_target, add)

    # TOP_ENTROPY_QUANTILE below 1: verl's workers import common/top_entropy.py (external_lib), which
    # registers the masked policy loss; 1.0 leaves verl's own loss untouched.
    entropy_knob = next((k for k in knobs if k.name == "TOP_ENTROPY_QUANTILE"), None)
    quantile = 1.0
    if entropy_knob and (env.get(entropy_knob.name) or "").strip():
        with problems.step():
            quantile = parse_value(entropy_knob, env[entropy_knob.name])
        if quantile < 1.0:
            from common import top_entropy

            overrides.extend(top_entropy.overrides(quantile))
            notes.append(top_entropy.summary(quantile))

    # The attention backend (common/attention.py): ATTN_IMPL -> each model's attn_implementation.
    from common import attention

    try:
        chosen_attention = attention.resolve(env.get("ATTN_IMPL"))
    except ValueError as exc:
        problems.messages.append(str(exc))
    else:
        overrides += attention.overrides(chosen_attention, trainer)
        notes.append(f"attention: {chosen_attention.impl} ({chosen_attention.why})")

    # GPUs: an empty or "auto" N_GPUS_PER_NODE counts the local GPUs.
    raw_gpus = (env.get("N_GPUS_PER_NODE") or "auto").strip()
    found, how = detect()
    n_gpus, gpu_note, nnodes = 1, "", 1
    if raw_gpus == "auto":
        n_gpus = found if found > 0 else 1
        gpu_note = f"N_GPUS_PER_NODE=auto -> {n_gpus} ({how}{'; using 1 for the checks' if found == 0 else ''})"
    else:
        with problems.step():
            n_gpus = parse_value(Knob("N_GPUS_PER_NODE", "int", (), lo=1), raw_gpus)
            gpu_note = f"N_GPUS_PER_NODE={n_gpus} ({how})"
    add("trainer.n_gpus_per_node", n_gpus)
    with problems.step():
        nnodes = parse_value(Knob("NNODES", "int", (), lo=1), env.get("NNODES") or "1")

    # LoRA: the rank is only set when USE_LORA is on, so turning it off needs one variable.
    if env.get("USE_LORA"):
        with problems.step():
            use_lora = parse_bool("USE_LORA", env["USE_LORA"])
            rank = parse_value(Knob("LORA_RANK", "int", (), lo=1), env.get("LORA_RANK") or "32") if use_lora else 0
            lora_path = "model.lora_rank" if trainer == "sft" else "actor_rollout_ref.model.lora_rank"
            add(lora_path, rank)
            # verl's LoRA guide (docs/advance/ppo_lora.rst): vLLM loads the base weights from
            # safetensors, and the adapter sync gathers one layer at a time.
            if use_lora and trainer == "rl":
                add("actor_rollout_ref.rollout.load_format", "safetensors")
                add("actor_rollout_ref.rollout.layered_summon", True)

    # Overlong shaping on any RL method: verl's dapo reward manager applies the penalty (the naive
    # manager ignores reward_kwargs); by default over the last quarter of the generation limit.
    with problems.step():
        if trainer == "rl" and parse_bool("OVERLONG_SHAPING", env.get("OVERLONG_SHAPING") or "false"):
            if not (env.get("REWARD_MANAGER") or "").strip():
                add("reward.reward_manager.name", "dapo")
            if not (env.get("OVERLONG_BUFFER_LEN") or "").strip():
                response = parse_value(Knob("MAX_RESPONSE_LENGTH", "int", (), lo=1), env.get("MAX_RESPONSE_LENGTH") or "1024")
                add("reward.reward_kwargs.overlong_buffer_cfg.len", max(1, response // 4))

    # Names and folders.
    experiment = f"{method}-run"
    with problems.step():
        experiment = _experiment_name(env, method, model_raw, notes)
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
    wandb_id = None
    use_wandb = use_tensorboard = False
    with problems.step():
        use_wandb = parse_bool("USE_WANDB", env.get("USE_WANDB") or "false")
    with problems.step():
        use_tensorboard = parse_bool("USE_TENSORBOARD", env.get("USE_TENSORBOARD") or "false")
    # Every knob is read: the wrong ones, all of them, before anything else happens.
    problems.raise_any()
    if use_wandb:
        loggers.append("wandb")
        run_env["WANDB_DIR"] = str(run_dir)
        # A relaunch that resumes the checkpoints resumes the wandb run too: wandb.init (verl's
        # utils/tracking.py) reads WANDB_RUN_ID and WANDB_RESUME from the environment.
        wandb_id = _wandb_run_id(run_dir, env, extra_args)
        run_env["WANDB_RUN_ID"] = wandb_id
        run_env["WANDB_RESUME"] = "allow"
        if env.get("WANDB_ENTITY"):
            run_env["WANDB_ENTITY"] = env["WANDB_ENTITY"]
        if not env.get("WANDB_API_KEY") and not env.get("WANDB_MODE"):
            # No key: keep the run offline rather than fail after the models have loaded.
            run_env["WANDB_MODE"] = "offline"
    if use_tensorboard:
        loggers.append("tensorboard")
        run_env["TENSORBOARD_DIR"] = str(run_dir / "tensorboard")
    add("trainer.logger", loggers)

    # The reward guard appends one JSON line per failed reward call here (the dashboard counts them).
    if trainer == "rl":
        run_env["POSTTRAIN_REWARD_ERRORS"] = str(run_dir / "reward_errors.jsonl")
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
        wandb_id=wandb_id,
        entry_module=env.get("TRAINER_MODULE") or ("verl.trainer.sft_trainer" if trainer == "sft" else "verl.trainer.main_ppo"),
    )
    # A file per launch: verl's file logger opens it with "wb", so a resume must not reuse one.
    plan.env["VERL_FILE_LOGGER_PATH"] = str(plan.metrics_file)
    return plan
