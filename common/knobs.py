"""The config-block variables of every train.sh and the verl config paths they set.

    .venv/bin/python -m common.knobs          # prints the table (knob, type, verl paths)

Offers:
- Knob: one variable of a train.sh config block (its name, type and the verl config paths it sets).
- RL_KNOBS / SFT_KNOBS: the knobs understood by the RL trainer (verl.trainer.main_ppo) and by the
  SFT trainer (verl.trainer.sft_trainer). A train.sh sets only those its method needs; the
  launcher turns each one that is set into Hydra overrides.
- parse_value(knob, raw): the typed value of a knob from its environment string, or a ConfigError
  naming the variable.
- knobs_for_message(text, knobs): the knobs whose verl paths a verl error message mentions, so an
  error can say which variable to change.

Knobs that need more than a path (GPU auto-detection, the logger list, LoRA on/off, output folders)
are handled in common/launch.py and listed in SPECIAL_KNOBS so they show up in the table too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ConfigError(Exception):
    """A bad config-block value, with the variable to change in the message."""


@dataclass(frozen=True)
class Knob:
    name: str
    kind: str  # str | int | float | bool | path | raw (a Hydra value such as [a,b], passed as written)
    paths: tuple[str, ...]
    help: str = ""
    choices: tuple[str, ...] = ()


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
    Knob("MAX_PROMPT_LENGTH", "int", ("data.max_prompt_length",)),
    Knob("MAX_RESPONSE_LENGTH", "int", ("data.max_response_length",)),
    Knob("FILTER_OVERLONG_PROMPTS", "bool", ("data.filter_overlong_prompts",)),
    Knob("TRAIN_BATCH_SIZE", "int", ("data.train_batch_size",), "prompts per step"),
    # --- algorithm
    Knob("ROLLOUT_N", "int", (f"{_ROLLOUT}.n",), "responses sampled per prompt"),
    Knob("ACTOR_LR", "float", (f"{_ACTOR}.optim.lr",)),
    Knob("LR_WARMUP_RATIO", "float", (f"{_ACTOR}.optim.lr_warmup_steps_ratio",)),
    Knob("USE_KL_LOSS", "bool", (f"{_ACTOR}.use_kl_loss",)),
    Knob("KL_LOSS_COEF", "float", (f"{_ACTOR}.kl_loss_coef",)),
    Knob("KL_LOSS_TYPE", "str", (f"{_ACTOR}.kl_loss_type",)),
    Knob("USE_KL_IN_REWARD", "bool", ("algorithm.use_kl_in_reward",)),
    Knob("KL_COEF", "float", ("algorithm.kl_ctrl.kl_coef",), "KL-in-reward coefficient"),
    Knob("ENTROPY_COEFF", "float", (f"{_ACTOR}.entropy_coeff",)),
    Knob("CLIP_RATIO_LOW", "float", (f"{_ACTOR}.clip_ratio_low",)),
    Knob("CLIP_RATIO_HIGH", "float", (f"{_ACTOR}.clip_ratio_high",)),
    Knob("LOSS_AGG_MODE", "str", (f"{_ACTOR}.loss_agg_mode",)),
    Knob("POLICY_LOSS", "str", (f"{_ACTOR}.policy_loss.loss_mode",)),
    Knob("ENTROPY_MODE", "str", (f"{_ACTOR}.policy_loss.loss_mode",), "DAPO entropy control", ("vanilla", "clip_cov", "kl_cov")),
    Knob("CLIP_COV_RATIO", "float", (f"{_ACTOR}.policy_loss.clip_cov_ratio",)),
    Knob("KL_COV_RATIO", "float", (f"{_ACTOR}.policy_loss.kl_cov_ratio",)),
    Knob("DYNAMIC_SAMPLING", "bool", ("algorithm.filter_groups.enable",), "DAPO: drop groups with equal rewards"),
    Knob("FILTER_GROUPS_METRIC", "str", ("algorithm.filter_groups.metric",)),
    # Overlong shaping works for every RL method: each RL YAML has the block (off except in DAPO), and
    # the launcher switches to verl's dapo reward manager, the one that applies it.
    Knob("OVERLONG_SHAPING", "bool", ("reward.reward_kwargs.overlong_buffer_cfg.enable",)),
    Knob("OVERLONG_BUFFER_LEN", "int", ("reward.reward_kwargs.overlong_buffer_cfg.len",)),
    Knob("OVERLONG_PENALTY_FACTOR", "float", ("reward.reward_kwargs.overlong_buffer_cfg.penalty_factor",)),
    Knob("GAMMA", "float", ("algorithm.gamma",)),
    Knob("LAM", "float", ("algorithm.lam",)),
    # --- critic (PPO)
    Knob("CRITIC_LR", "float", ("critic.optim.lr",)),
    Knob("CRITIC_LR_WARMUP_RATIO", "float", ("critic.optim.lr_warmup_steps_ratio",)),
    Knob("CRITIC_WARMUP", "int", ("trainer.critic_warmup",), "steps that train only the critic"),
    # --- batch sizes
    Knob("PPO_MINI_BATCH_SIZE", "int", (f"{_ACTOR}.ppo_mini_batch_size",), "prompts per actor update"),
    Knob(
        "MICRO_BATCH_SIZE_PER_GPU",
        "int",
        (
            f"{_ACTOR}.ppo_micro_batch_size_per_gpu",
            f"{_ROLLOUT}.log_prob_micro_batch_size_per_gpu",
            f"{_REF}.log_prob_micro_batch_size_per_gpu",
            "critic.ppo_micro_batch_size_per_gpu",
        ),
    ),
    Knob("PPO_EPOCHS", "int", (f"{_ACTOR}.ppo_epochs",)),
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
    ),
    # --- rollout
    Knob("ROLLOUT_ENGINE", "str", (f"{_ROLLOUT}.name",), "vllm or sglang", ("vllm", "sglang")),
    Knob("ROLLOUT_TP", "int", (f"{_ROLLOUT}.tensor_model_parallel_size",)),
    Knob("GPU_MEM_UTIL", "float", (f"{_ROLLOUT}.gpu_memory_utilization",)),
    Knob("TEMPERATURE", "float", (f"{_ROLLOUT}.temperature",)),
    Knob("SP_SIZE", "int", (f"{_ACTOR}.ulysses_sequence_parallel_size", f"{_REF}.ulysses_sequence_parallel_size")),
    # --- hardware / memory
    Knob("NNODES", "int", ("trainer.nnodes",)),
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
    Knob("REWARD_WORKERS", "int", ("reward.num_workers",)),
    Knob("REWARD_MANAGER", "str", ("reward.reward_manager.name",)),
    Knob("REWARD_MODEL_PATH", "str", ("reward.reward_model.model_path",)),
    # --- LoRA (USE_LORA is special: LORA_RANK only applies when it is true)
    Knob("LORA_ALPHA", "int", (f"{_MODEL}.lora_alpha",)),
    Knob("LORA_TARGET_MODULES", "raw", (f"{_MODEL}.target_modules",), "all-linear or [q_proj,v_proj,...]"),
    # --- schedule, checkpoints, logging
    Knob("TOTAL_EPOCHS", "int", ("trainer.total_epochs",)),
    Knob("TOTAL_STEPS", "int", ("trainer.total_training_steps",), "overrides epochs when set"),
    Knob("SAVE_FREQ", "int", ("trainer.save_freq",), "steps between checkpoints"),
    Knob("TEST_FREQ", "int", ("trainer.test_freq",), "steps between validations"),
    Knob("VAL_BEFORE_TRAIN", "bool", ("trainer.val_before_train",)),
    Knob("MAX_CKPT_TO_KEEP", "int", ("trainer.max_actor_ckpt_to_keep", "trainer.max_critic_ckpt_to_keep")),
    Knob("RESUME_MODE", "str", ("trainer.resume_mode",), "auto, disable or resume_path", ("auto", "disable", "resume_path")),
    Knob("LOG_VAL_GENERATIONS", "int", ("trainer.log_val_generations",)),
    Knob("WANDB_PROJECT", "str", ("trainer.project_name",)),
    # The train data order (RLHFDataset sampler) and the mini-batch shuffles of actor and critic.
    Knob("SEED", "int", ("data.seed", f"{_ACTOR}.data_loader_seed", "critic.data_loader_seed")),
)

SFT_KNOBS: tuple[Knob, ...] = (
    Knob("MODEL_PATH", "str", ("model.path",)),
    Knob("TRUST_REMOTE_CODE", "bool", ("model.trust_remote_code",)),
    Knob("GRADIENT_CHECKPOINTING", "bool", ("model.enable_gradient_checkpointing",)),
    Knob("TRAIN_DATA", "path", ("data.train_files",)),
    Knob("VAL_DATA", "path", ("data.val_files",)),
    Knob("MAX_LENGTH", "int", ("data.max_length",), "tokens per conversation"),
    Knob("TRAIN_BATCH_SIZE", "int", ("data.train_batch_size",), "conversations per step"),
    Knob("MICRO_BATCH_SIZE_PER_GPU", "int", ("data.micro_batch_size_per_gpu",)),
    Knob("MAX_TOKENS_PER_GPU", "int", ("data.max_token_len_per_gpu",)),
    Knob("USE_DYNAMIC_BSZ", "bool", ("data.use_dynamic_bsz",)),
    Knob("LR", "float", ("optim.lr",)),
    Knob("LR_WARMUP_RATIO", "float", ("optim.lr_warmup_steps_ratio",)),
    Knob("WEIGHT_DECAY", "float", ("optim.weight_decay",)),
    Knob("SP_SIZE", "int", ("engine.ulysses_sequence_parallel_size",)),
    Knob("PARAM_OFFLOAD", "bool", ("engine.param_offload",)),
    Knob("OPTIMIZER_OFFLOAD", "bool", ("engine.optimizer_offload",)),
    Knob("LORA_ALPHA", "int", ("model.lora_alpha",)),
    Knob("LORA_TARGET_MODULES", "raw", ("model.target_modules",), "all-linear or [q_proj,v_proj,...]"),
    Knob("NNODES", "int", ("trainer.nnodes",)),
    Knob("TOTAL_EPOCHS", "int", ("trainer.total_epochs",)),
    Knob("TOTAL_STEPS", "int", ("trainer.total_training_steps",)),
    Knob("SAVE_FREQ", "int", ("trainer.save_freq",)),
    Knob("TEST_FREQ", "int", ("trainer.test_freq",)),
    Knob("MAX_CKPT_TO_KEEP", "int", ("trainer.max_ckpt_to_keep",)),
    Knob("RESUME_MODE", "str", ("trainer.resume_mode",)),
    Knob("WANDB_PROJECT", "str", ("trainer.project_name",)),
    # No SEED: verl 0.9.1's SFT trainer reads no seed (trainer.seed is unused; its DistributedSampler
    # shuffles with torch's default seed 0, sft_trainer.py _build_dataloader).
)

# Handled by common/launch.py itself: name -> what it does.
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
    "EXPORT_AFTER_TRAIN": "merge the last checkpoint to Hugging Face format when training ends (default true)",
    "EVAL_AFTER_TRAIN": "1: then run ./test.sh --batch on the validation file into an .xlsx beside the checkpoints",
    "CALLBACKS_FILE": "a .py defining on_step(step, metrics, ctx), on_checkpoint(step, path, ctx), on_end(exit_code, ctx)",
    "ALERTS_CONFIG": "YAML whose alerts: section overrides monitor.alerts thresholds (default monitor/config.yaml)",
    "ATTN_IMPL": "auto (flash_attention_2 when flash_attn imports, else sdpa), flash_attention_2 or sdpa (common/attention.py)",
    "REHEARSAL": "1: one real training step of this config on the CPU through verl's engines (common/rehearsal)",
    "REHEARSAL_STEPS": "training steps the rehearsal runs (default 1)",
    "REHEARSAL_MODEL": "full (default): MODEL_PATH itself; tiny: a random shrunk model of MODEL_PATH's architecture",
    "REHEARSAL_EVAL_ROWS": "VAL_DATA rows test.sh scores the rehearsal's merged model on (default 4; 0 skips)",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use true or false")


def parse_value(knob: Knob, raw: str):
    """Typed value of a knob from its environment string.

    >>> parse_value(Knob("ROLLOUT_N", "int", ("x",)), "8")
    8
    >>> parse_value(Knob("USE_KL_LOSS", "bool", ("x",)), "False")
    False
    """
    raw = raw.strip()
    try:
        if knob.kind == "int":
            return int(raw)
        if knob.kind == "float":
            return float(raw)
    except ValueError:
        kind = "an integer" if knob.kind == "int" else "a number"
        raise ConfigError(f"{knob.name}={raw!r} is not {kind}") from None
    if knob.kind == "bool":
        return parse_bool(knob.name, raw)
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
