"""The config-block variables of every train.sh and the verl config paths they set.

    .venv/bin/python -m common.knobs          # prints the table (knob, type, verl paths)

Offers:
- Knob: one variable of a train.sh config block (its name, type and the verl config paths it sets).
- RL_KNOBS / SFT_KNOBS: the knobs understood by the RL trainer (verl.trainer.main_ppo) and by the
  SFT trainer (verl.trainer.sft_trainer). A train.sh sets only those its method needs; the
  launcher turns each one that is set into Hydra overrides.
- parse_value(knob, raw): the typed value of a knob from its environment string, or a ConfigError
  naming the variable; parse_bool and parse_json_object for knobs outside the tables.
- knobs_for_message(text, knobs): the knobs whose verl paths a verl error message mentions, so an
  error can say which variable to change.
- known_names(trainer), other_trainer_knobs(trainer): the names the launcher reads, for the
  warnings about variables that look like knobs but are none.

Knobs that need more than a path (GPU auto-detection, the logger list, LoRA on/off, output folders,
the presets of common/presets.py, the watcher's settings of common/callbacks.py) are handled by the
launcher and listed in SPECIAL_KNOBS so they show up in the table too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ConfigError(Exception):
    """A bad config-block value, with the variable to change in the message."""


@dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # str | int | float | bool | path | json (an object) | raw (a Hydra value such as [a,b], passed as written) | special (plan.py)
    paths: tuple[str, ...]
    help: str = ""
    choices: tuple[str, ...] = ()
    # Allowed range of a number (inclusive; lo_open excludes lo itself), and a value outside it that
    # means "off" (verl's -1 for save/test frequencies).
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    off: float | None = None

    def range_text(self) -> str:
        def num(x) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        lo = "" if self.lo is None else f"{'>' if self.lo_open else '>='} {num(self.lo)}"
        hi = "" if self.hi is None else f"<= {num(self.hi)}"
        text = " and ".join(t for t in (lo, hi) if t)
        return text + (f" (or {num(self.off)} for off)" if self.off is not None else "")


_ACTOR = "actor_rollout_ref.actor"
_ROLLOUT = "actor_rollout_ref.rollout"
_REF = "actor_rollout_ref.ref"
_MODEL = "actor_rollout_ref.model"

RL_KNOBS: tuple[Knob, ...] = (
    # --- model
    # The critic (PPO) starts from the policy's weights; verl's own default path is a placeholder.
    Knob("MODEL_PATH", "str", (f"{_MODEL}.path", "critic.model.path"), "Hugging Face id or local folder of the policy"),
    Knob("TRUST_REMOTE_CODE", "bool", (f"{_MODEL}.trust_remote_code",), "allow model code from the hub"),
    Knob("GRADIENT_CHECKPOINTING", "bool", (f"{_MODEL}.enable_gradient_checkpointing",)),
    # --- data
    Knob("TRAIN_DATA", "path", ("data.train_files",), "RL parquet with prompts"),
    Knob("VAL_DATA", "path", ("data.val_files",), "RL parquet for validation"),
    Knob("MAX_PROMPT_LENGTH", "int", ("data.max_prompt_length",), lo=1),
    Knob("MAX_RESPONSE_LENGTH", "int", ("data.max_response_length",), lo=1),
    Knob("FILTER_OVERLONG_PROMPTS", "bool", ("data.filter_overlong_prompts",)),
    Knob("CHAT_TEMPLATE_KWARGS", "json", ("data.apply_chat_template_kwargs",),
         'chat template arguments, a JSON object: {"enable_thinking": false}'),
    Knob("TRAIN_BATCH_SIZE", "int", ("data.train_batch_size",), "prompts per step", lo=1),
    # --- algorithm
    Knob("ROLLOUT_N", "int", (f"{_ROLLOUT}.n",), "responses sampled per prompt", lo=1),
    Knob("ACTOR_LR", "float", (f"{_ACTOR}.optim.lr",), lo=0, lo_open=True),
    Knob("LR_WARMUP_RATIO", "float", (f"{_ACTOR}.optim.lr_warmup_steps_ratio",), lo=0, hi=1),
    Knob("USE_KL_LOSS", "bool", (f"{_ACTOR}.use_kl_loss",)),
    Knob("KL_LOSS_COEF", "float", (f"{_ACTOR}.kl_loss_coef",), lo=0),
    Knob("KL_LOSS_TYPE", "str", (f"{_ACTOR}.kl_loss_type",)),
    Knob("USE_KL_IN_REWARD", "bool", ("algorithm.use_kl_in_reward",)),
    Knob("KL_COEF", "float", ("algorithm.kl_ctrl.kl_coef",), "KL-in-reward coefficient", lo=0),
    Knob("ENTROPY_COEFF", "float", (f"{_ACTOR}.entropy_coeff",), lo=0),
    Knob("CLIP_RATIO_LOW", "float", (f"{_ACTOR}.clip_ratio_low",), lo=0, lo_open=True),
    Knob("CLIP_RATIO_HIGH", "float", (f"{_ACTOR}.clip_ratio_high",), lo=0, lo_open=True),
    Knob("LOSS_AGG_MODE", "str", (f"{_ACTOR}.loss_agg_mode",)),
    Knob("POLICY_LOSS", "str", (f"{_ACTOR}.policy_loss.loss_mode",)),
    # ENTROPY_MODE and ALGORITHM are presets (common/presets.py); these tune a preset's keys one by one.
    Knob("CLIP_COV_RATIO", "float", (f"{_ACTOR}.policy_loss.clip_cov_ratio",), "clip_cov: share of tokens cut", lo=0, hi=1, lo_open=True),
    Knob("CLIP_COV_LB", "float", (f"{_ACTOR}.policy_loss.clip_cov_lb",), "clip_cov: lower covariance bound"),
    Knob("CLIP_COV_UB", "float", (f"{_ACTOR}.policy_loss.clip_cov_ub",), "clip_cov: upper covariance bound"),
    Knob("KL_COV_RATIO", "float", (f"{_ACTOR}.policy_loss.kl_cov_ratio",), "kl_cov: share of tokens penalised", lo=0, hi=1, lo_open=True),
    Knob("PPO_KL_COEF", "float", (f"{_ACTOR}.policy_loss.ppo_kl_coef",), "kl_cov: weight of the |log ratio| penalty", lo=0),
    Knob("NORM_ADV_BY_STD", "bool", ("algorithm.norm_adv_by_std_in_grpo",), "GRPO: divide by the group's std"),
    # Not a plain path: below 1 it also loads common/top_entropy.py into verl's workers (plan.py).
    Knob("TOP_ENTROPY_QUANTILE", "special", (f"{_ACTOR}.policy_loss.top_entropy_quantile",),
         "share of response tokens (the highest-entropy ones) that get the policy gradient; 1.0 = all", lo=0, hi=1, lo_open=True),
    Knob("DYNAMIC_SAMPLING", "bool", ("algorithm.filter_groups.enable",), "DAPO: drop groups with equal rewards"),
    Knob("FILTER_GROUPS_METRIC", "str", ("algorithm.filter_groups.metric",)),
    # Overlong shaping works for every RL method: each RL YAML has the block (off except in DAPO), and
    # the launcher switches to verl's dapo reward manager, the one that applies it.
    Knob("OVERLONG_SHAPING", "bool", ("reward.reward_kwargs.overlong_buffer_cfg.enable",)),
    Knob("OVERLONG_BUFFER_LEN", "int", ("reward.reward_kwargs.overlong_buffer_cfg.len",), lo=0),
    Knob("OVERLONG_PENALTY_FACTOR", "float", ("reward.reward_kwargs.overlong_buffer_cfg.penalty_factor",), lo=0),
    Knob("GAMMA", "float", ("algorithm.gamma",), lo=0, hi=1),
    Knob("LAM", "float", ("algorithm.lam",), lo=0, hi=1),
    # --- critic (PPO)
    Knob("CRITIC_LR", "float", ("critic.optim.lr",), lo=0, lo_open=True),
    Knob("CRITIC_LR_WARMUP_RATIO", "float", ("critic.optim.lr_warmup_steps_ratio",), lo=0, hi=1),
    Knob("CRITIC_WARMUP", "int", ("trainer.critic_warmup",), "steps that train only the critic", lo=0),
    # --- batch sizes
    Knob("PPO_MINI_BATCH_SIZE", "int", (f"{_ACTOR}.ppo_mini_batch_size",), "prompts per actor update", lo=1),
    Knob(
        "MICRO_BATCH_SIZE_PER_GPU",
        "int",
        (
            f"{_ACTOR}.ppo_micro_batch_size_per_gpu",
            f"{_ROLLOUT}.log_prob_micro_batch_size_per_gpu",
            f"{_REF}.log_prob_micro_batch_size_per_gpu",
            "critic.ppo_micro_batch_size_per_gpu",
        ),
        lo=1,
    ),
    Knob("PPO_EPOCHS", "int", (f"{_ACTOR}.ppo_epochs",), lo=1),
    Knob("USE_DYNAMIC_BSZ", "bool", (f"{_ACTOR}.use_dynamic_bsz", f"{_REF}.log_prob_use_dynamic_bsz")),
    Knob(
        "MAX_TOKENS_PER_GPU",
        "int",
        (
            f"{_ACTOR}.ppo_max_token_len_per_gpu",
            f"{_ROLLOUT}.log_prob_max_token_len_per_gpu",
            f"{_REF}.log_prob_max_token_len_per_gpu",
            "critic.ppo_max_token_len_per_gpu",
        ),
        lo=1,
    ),
    # --- rollout
    Knob("ROLLOUT_ENGINE", "str", (f"{_ROLLOUT}.name",), "vllm or sglang", ("vllm", "sglang")),
    Knob("ROLLOUT_TP", "int", (f"{_ROLLOUT}.tensor_model_parallel_size",), lo=1),
    Knob("GPU_MEM_UTIL", "float", (f"{_ROLLOUT}.gpu_memory_utilization",), lo=0, hi=1, lo_open=True),
    Knob("TEMPERATURE", "float", (f"{_ROLLOUT}.temperature",), lo=0),
    Knob("SP_SIZE", "int", (f"{_ACTOR}.ulysses_sequence_parallel_size", f"{_REF}.ulysses_sequence_parallel_size"), lo=1),
    # --- hardware / memory
    Knob("NNODES", "int", ("trainer.nnodes",), lo=1),
    Knob("PARAM_OFFLOAD", "bool", (f"{_ACTOR}.fsdp_config.param_offload", "critic.fsdp.param_offload")),
    Knob(
        "OPTIMIZER_OFFLOAD",
        "bool",
        (f"{_ACTOR}.fsdp_config.optimizer_offload", "critic.fsdp.optimizer_offload"),
    ),
    Knob("REF_PARAM_OFFLOAD", "bool", (f"{_REF}.fsdp_config.param_offload",)),
    # --- reward
    Knob("REWARD_FUNC_PATH", "path", ("reward.custom_reward_function.path",), "file with compute_score"),
    Knob("REWARD_FUNC_NAME", "str", ("reward.custom_reward_function.name",)),
    Knob("REWARD_WORKERS", "int", ("reward.num_workers",), lo=1),
    # The reward guard (common/reward_guard.py, set up by plan.py): verl calls it, it calls REWARD_FUNC_PATH.
    Knob("REWARD_GUARD", "special", (), "true: every reward call under REWARD_TIMEOUT_S, errors scored 0 and counted"),
    Knob("REWARD_TIMEOUT_S", "special", ("reward.custom_reward_function.reward_kwargs.guard_timeout_s",),
         "seconds one reward call may take under the guard (default 30; the API judge 1800)", lo=0, lo_open=True),
    Knob("STRICT_BOXED", "special", ("reward.custom_reward_function.reward_kwargs.strict_boxed",),
         "true: the default math reward scores only \\boxed{} answers (format pressure)"),
    Knob("REWARD_MANAGER", "str", ("reward.reward_manager.name",)),
    Knob("REWARD_MODEL_PATH", "str", ("reward.reward_model.model_path",)),
    # --- LoRA (USE_LORA is special: LORA_RANK only applies when it is true)
    Knob("LORA_ALPHA", "int", (f"{_MODEL}.lora_alpha",), lo=1),
    Knob("LORA_TARGET_MODULES", "raw", (f"{_MODEL}.target_modules",), "all-linear or [q_proj,v_proj,...]"),
    # --- schedule, checkpoints, logging
    Knob("TOTAL_EPOCHS", "int", ("trainer.total_epochs",), lo=1),
    Knob("TOTAL_STEPS", "int", ("trainer.total_training_steps",), "overrides epochs when set", lo=1),
    Knob("SAVE_FREQ", "int", ("trainer.save_freq",), "steps between checkpoints", lo=1, off=-1),
    Knob("TEST_FREQ", "int", ("trainer.test_freq",), "steps between validations", lo=1, off=-1),
    Knob("VAL_BEFORE_TRAIN", "bool", ("trainer.val_before_train",)),
    Knob("MAX_CKPT_TO_KEEP", "int", ("trainer.max_actor_ckpt_to_keep", "trainer.max_critic_ckpt_to_keep"), lo=1),
    Knob("RESUME_MODE", "str", ("trainer.resume_mode",), "auto, disable or resume_path", ("auto", "disable", "resume_path")),
    Knob("LOG_VAL_GENERATIONS", "int", ("trainer.log_val_generations",), lo=0),
    Knob("WANDB_PROJECT", "str", ("trainer.project_name",)),
    # The train data order (RLHFDataset sampler) and the mini-batch shuffles of actor and critic.
    Knob("SEED", "int", ("data.seed", f"{_ACTOR}.data_loader_seed", "critic.data_loader_seed"), lo=0, hi=2**32 - 1),
)

SFT_KNOBS: tuple[Knob, ...] = (
    Knob("MODEL_PATH", "str", ("model.path",)),
    Knob("TRUST_REMOTE_CODE", "bool", ("model.trust_remote_code",)),
    Knob("GRADIENT_CHECKPOINTING", "bool", ("model.enable_gradient_checkpointing",)),
    Knob("TRAIN_DATA", "path", ("data.train_files",)),
    Knob("VAL_DATA", "path", ("data.val_files",)),
    Knob("MAX_LENGTH", "int", ("data.max_length",), "tokens per conversation", lo=1),
    Knob("CHAT_TEMPLATE_KWARGS", "json", ("data.apply_chat_template_kwargs",),
         'chat template arguments, a JSON object: {"enable_thinking": false}'),
    Knob("TRAIN_BATCH_SIZE", "int", ("data.train_batch_size",), "conversations per step", lo=1),
    Knob("MICRO_BATCH_SIZE_PER_GPU", "int", ("data.micro_batch_size_per_gpu",), lo=1),
    Knob("MAX_TOKENS_PER_GPU", "int", ("data.max_token_len_per_gpu",), lo=1),
    Knob("USE_DYNAMIC_BSZ", "bool", ("data.use_dynamic_bsz",)),
    Knob("LR", "float", ("optim.lr",), lo=0, lo_open=True),
    Knob("LR_WARMUP_RATIO", "float", ("optim.lr_warmup_steps_ratio",), lo=0, hi=1),
    Knob("WEIGHT_DECAY", "float", ("optim.weight_decay",), lo=0),
    Knob("SP_SIZE", "int", ("engine.ulysses_sequence_parallel_size",), lo=1),
    Knob("PARAM_OFFLOAD", "bool", ("engine.param_offload",)),
    Knob("OPTIMIZER_OFFLOAD", "bool", ("engine.optimizer_offload",)),
    Knob("LORA_ALPHA", "int", ("model.lora_alpha",), lo=1),
    Knob("LORA_TARGET_MODULES", "raw", ("model.target_modules",), "all-linear or [q_proj,v_proj,...]"),
    Knob("NNODES", "int", ("trainer.nnodes",), lo=1),
    Knob("TOTAL_EPOCHS", "int", ("trainer.total_epochs",), lo=1),
    Knob("TOTAL_STEPS", "int", ("trainer.total_training_steps",), lo=1),
    Knob("SAVE_FREQ", "int", ("trainer.save_freq",), lo=1, off=-1),
    Knob("TEST_FREQ", "int", ("trainer.test_freq",), lo=1, off=-1),
    Knob("MAX_CKPT_TO_KEEP", "int", ("trainer.max_ckpt_to_keep",), lo=1),
    Knob("RESUME_MODE", "str", ("trainer.resume_mode",)),
    Knob("WANDB_PROJECT", "str", ("trainer.project_name",)),
    # No SEED: verl 0.9.1's SFT trainer reads no seed (trainer.seed is unused; its DistributedSampler
    # shuffles with torch's default seed 0, sft_trainer.py _build_dataloader).
)

# Handled by the launcher (plan.py, presets.py, callbacks.py) rather than by one path: name -> what it does.
SPECIAL_KNOBS: dict[str, str] = {
    "N_GPUS_PER_NODE": "GPUs per node; empty or 'auto' counts them with nvidia-smi (trainer.n_gpus_per_node)",
    "USE_LORA": "true sets the LoRA rank to LORA_RANK, false to 0 (model.lora_rank)",
    "LORA_RANK": "LoRA rank used when USE_LORA=true",
    "EXPERIMENT_NAME": "run folder name under OUTPUT_DIR (and trainer.experiment_name)",
    "OUTPUT_DIR": "where run folders go (default: <repo>/outputs)",
    "USE_WANDB": "add wandb to trainer.logger (offline without WANDB_API_KEY)",
    "WANDB_ENTITY": "wandb team or user (passed to wandb as WANDB_ENTITY)",
    "WANDB_RUN_NAME": "wandb run name (trainer.experiment_name; default EXPERIMENT_NAME)",
    "USE_TENSORBOARD": "add tensorboard to trainer.logger, written to <run>/tensorboard",
    "TRAINER_MODULE": "Python module run instead of verl's trainer (a recipe's main that takes the same Hydra config)",
    "USE_REWARD_MODEL": "true: score with REWARD_MODEL_PATH through reward_model_config.yaml (PPO)",
    "USE_API_REWARD": "true: score with an OpenAI-compatible judge through api_reward_config.yaml (PPO)",
    "CONFIG_NAME": "which YAML of the method folder to use (default: config)",
    "DRY_RUN": "1: print the command and the resolved config, run the checks, launch nothing",
    "RAY_ADDRESS": "Ray job API (http://HEAD_IP:8265): submit to that cluster instead of running here (docs/multinode.md)",
    "RAY_AUTH_TOKEN": "Ray cluster token (else the file RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token); never printed",
    "RAY_AUTH_TOKEN_PATH": "file holding the Ray cluster token",
    "RAY_ENV_VARS": "comma-separated extra variables sent to the Ray job (secrets refused: set them on the nodes)",
    "FORCE": "1: launch even though a preflight check failed (printed as a warning)",
    "GPU_MEMORY_GB": "GPU memory assumed by the memory estimate when no GPU is visible (default 80)",
    "STOP_ON_NAN": "true: stop the run at once when a loss or grad norm is NaN/inf (default false; always alerted)",
    "KL_STOP_THRESHOLD": "stop (after the next checkpoint) when KL stays above this; 0 = off (default)",
    "KL_STOP_STEPS": "consecutive logged steps above KL_STOP_THRESHOLD before stopping (default 5)",
    "DYNAMIC_SAMPLING_STOP_SHARE": "DAPO: stop (after the next checkpoint) when this share of generated prompt groups is filtered out (default 0.95; 0 = off)",
    "DYNAMIC_SAMPLING_STOP_STEPS": "... for this many consecutive steps (default 5)",
    "DYNAMIC_SAMPLING_STALL_FACTOR": "DAPO: stop when no step arrives for this many median step times after heavy filtering (default 10; 0 = off)",
    "EXPORT_AFTER_TRAIN": "merge the last checkpoint to Hugging Face format when training ends (default true)",
    "EVAL_AFTER_TRAIN": "1: then run ./test.sh --batch on the validation file into an .xlsx beside the checkpoints",
    "CALLBACKS_FILE": "a .py defining on_step(step, metrics, ctx), on_checkpoint(step, path, ctx), on_end(exit_code, ctx)",
    "ALERTS_CONFIG": "YAML whose alerts: section overrides monitor.alerts thresholds (default monitor/config.yaml)",
    "ALGORITHM": "RL preset (common/presets.py): grpo, dr_grpo, rloo, reinforce_pp_baseline, cispo, sapo, gmpo",
    "ENTROPY_MODE": "RL preset (common/presets.py): vanilla, clip_cov, kl_cov (the Entropy-Mechanism recipe's values)",
    "ROLLOUT_CORRECTION": "off, token or sequence: verl's algorithm.rollout_correction (importance weights for the rollout/training mismatch)",
    "ROLLOUT_CORRECTION_THRESHOLD": "token/sequence: the importance weights' upper bound (default 2.0), or LOWER_UPPER (IcePop)",
    "KEEP_BEST_METRIC": "a validation metric (val_acc or a verl key): its best checkpoint is kept in checkpoints/best/",
    "KEEP_BEST_MODE": "max or min (default: inferred from the name: acc/score/reward -> max, loss -> min)",
    "EXPORT_CHECKPOINT": "best or last: the checkpoint exported at the end (default best with KEEP_BEST_METRIC, else last)",
    "ATTN_IMPL": "auto (flash_attention_2 when flash_attn imports, else sdpa), flash_attention_2 or sdpa (common/attention.py)",
    "REHEARSAL": "1: one real training step of this config on the CPU through verl's engines (common/rehearsal)",
    "REHEARSAL_STEPS": "training steps the rehearsal runs (default 1)",
    "REHEARSAL_MODEL": "full (default): MODEL_PATH itself; tiny: a random shrunk model of MODEL_PATH's architecture",
    "REHEARSAL_EVAL_ROWS": "VAL_DATA rows test.sh scores the rehearsal's merged model on (default 4; 0 skips)",
}

# Switches of the launch itself rather than of the run: never listed as "knobs that differ".
RUN_SWITCHES = frozenset({"DRY_RUN", "FORCE"})


def known_names(trainer: str) -> set[str]:
    """Every knob name the launcher reads for this trainer ("rl" or "sft"), switches excluded."""
    table = SFT_KNOBS if trainer == "sft" else RL_KNOBS
    return ({k.name for k in table} | set(SPECIAL_KNOBS)) - RUN_SWITCHES


def other_trainer_knobs(trainer: str) -> set[str]:
    """Knobs only the other trainer reads (LR is SFT's; ACTOR_LR is the RL methods')."""
    mine = {k.name for k in (SFT_KNOBS if trainer == "sft" else RL_KNOBS)}
    return {k.name for k in (RL_KNOBS if trainer == "sft" else SFT_KNOBS)} - mine


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


# Keys a Hydra override can carry unquoted in a dict value ({key:value}).
_HYDRA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_json_object(name: str, raw: str) -> dict:
    """A knob holding a JSON object, e.g. CHAT_TEMPLATE_KWARGS='{"enable_thinking": false}'.

    >>> parse_json_object("CHAT_TEMPLATE_KWARGS", '{"enable_thinking": false}')
    {'enable_thinking': False}
    """
    import json

    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid JSON ({exc}); write an object such as "
                          f"{name}='{{\"enable_thinking\": false}}'") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name}={raw!r} is a JSON {type(value).__name__}, not an object: write "
                          f"{name}='{{\"enable_thinking\": false}}'")

    def check_keys(obj, where: str) -> None:
        if isinstance(obj, dict):
            for key, item in obj.items():
                if not _HYDRA_KEY.match(key):
                    raise ConfigError(f"{name}: key {where}{key!r} must be a plain identifier (letters, digits, _)")
                check_keys(item, f"{where}{key}.")
        elif isinstance(obj, list):
            for item in obj:
                check_keys(item, where)

    check_keys(value, "")
    return value


# verl and torch keep counts and sizes in 64-bit integers; a larger value overflows deep inside a run.
_INT64 = 2**63


def parse_value(knob: Knob, raw: str):
    """Typed value of a knob from its environment string, checked against its range.

    >>> parse_value(Knob("ROLLOUT_N", "int", ("x",), lo=1), "8")
    8
    >>> parse_value(Knob("USE_KL_LOSS", "bool", ("x",)), "False")
    False
    >>> try:
    ...     parse_value(Knob("ROLLOUT_N", "int", ("x",), lo=1), "0")
    ... except ConfigError as exc:
    ...     print(exc)
    ROLLOUT_N=0 is out of range: it must be >= 1
    """
    raw = raw.strip()
    try:
        numeric = knob.kind in ("int", "float") or (knob.kind == "special" and (knob.lo is not None or knob.hi is not None))
        if numeric and not raw.isascii():
            raise ValueError  # Python reads "８" as 8; bash and a person reading the block do not
        if knob.kind == "int":
            value = int(raw)
            if not -_INT64 <= value < _INT64:
                raise ConfigError(f"{knob.name}={raw} is too large: verl keeps it in a 64-bit integer")
        elif knob.kind == "float" or (knob.kind == "special" and (knob.lo is not None or knob.hi is not None)):
            value = float(raw)
        else:
            value = None
    except ValueError:
        kind = "a whole number" if knob.kind == "int" else "a number"
        raise ConfigError(f"{knob.name}={raw!r} is not {kind}") from None
    if value is not None:
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{knob.name}={raw!r} is not a finite number")
        below = knob.lo is not None and (value <= knob.lo if knob.lo_open else value < knob.lo)
        above = knob.hi is not None and value > knob.hi
        if (below or above) and value != knob.off:
            raise ConfigError(f"{knob.name}={raw} is out of range: it must be {knob.range_text()}")
        return value
    if knob.kind == "bool":
        return parse_bool(knob.name, raw)
    if knob.kind == "json":
        return parse_json_object(knob.name, raw)
    if knob.choices and raw not in knob.choices:
        raise ConfigError(f"{knob.name}={raw!r} is not one of: {', '.join(knob.choices)}")
    return raw


# verl messages that name a derived quantity rather than a config key.
_MESSAGE_HINTS: dict[str, tuple[str, ...]] = {
    "real_train_batch_size": ("TRAIN_BATCH_SIZE", "ROLLOUT_N", "N_GPUS_PER_NODE"),
    "minimal possible batch size": ("N_GPUS_PER_NODE", "NNODES"),
    "n_gpus": ("N_GPUS_PER_NODE", "NNODES"),
    "train_batch_size": ("TRAIN_BATCH_SIZE",),
    "lora_rank": ("LORA_RANK",),
    "temperature": ("TEMPERATURE",),
}


def knobs_for_message(text: str, knobs: tuple[Knob, ...]) -> list[str]:
    """Names of the knobs a verl error message points at (by config-key leaf or known phrase).

    >>> knobs_for_message("ppo_mini_batch_size (7) must be divisible by ppo_micro_batch_size (2)", RL_KNOBS)
    ['PPO_MINI_BATCH_SIZE', 'MICRO_BATCH_SIZE_PER_GPU']
    """
    found: list[str] = []

    def add(name: str) -> None:
        if name not in found:
            found.append(name)

    for knob in knobs:
        for path in knob.paths:
            leaf = path.rsplit(".", 1)[-1]
            stem = leaf.removesuffix("_per_gpu")
            if re.search(rf"(?<![A-Za-z_]){re.escape(stem)}(?![A-Za-z])", text):
                add(knob.name)
    for phrase, names in _MESSAGE_HINTS.items():
        if phrase in text:
            for name in names:
                add(name)
    return found


def main() -> None:
    for title, table in (("RL (verl.trainer.main_ppo)", RL_KNOBS), ("SFT (verl.trainer.sft_trainer)", SFT_KNOBS)):
        print(f"# {title}")
        for knob in table:
            print(f"{knob.name:26} {knob.kind:6} {', '.join(knob.paths)}")
        print()
    print("# handled by the launcher")
    for name, what in SPECIAL_KNOBS.items():
        print(f"{name:26} {what}")


if __name__ == "__main__":
    main()
