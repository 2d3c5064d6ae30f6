#!/usr/bin/env bash
# GRPO on the bundled grade-school math set, one GPU by default.
#   ./train.sh                                   # train with the config block below
#   DRY_RUN=1 ./train.sh                         # print command + resolved config, run verl's checks
#   ROLLOUT_N=8 ./train.sh trainer.total_epochs=1   # any knob from the environment, any verl override after
# Every knob is NAME=${NAME:-default}: set it in the environment or edit the default here.
set -euo pipefail
set -a  # everything assigned below is exported to the shared launcher
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ================================ Quick config ================================
# ---- model
# Hugging Face id or local folder (a verl SFT checkpoint's huggingface/ folder works too).
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}

# ---- data (paths relative to this folder; see data/README.md for the schema)
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
VAL_DATA=${VAL_DATA:-data/val.parquet}

# ---- algorithm
# Responses per prompt; the group GRPO normalises advantages over (5-8 recommended).
ROLLOUT_N=${ROLLOUT_N:-5}
# KL to the reference model as a loss term; false drops the reference model and saves its memory.
USE_KL_LOSS=${USE_KL_LOSS:-true}
KL_LOSS_COEF=${KL_LOSS_COEF:-0.001}
ACTOR_LR=${ACTOR_LR:-1e-6}
ENTROPY_COEFF=${ENTROPY_COEFF:-0}

# ---- lengths (tokens)
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-512}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-1024}

# ---- batch sizes
# 32 prompts x 5 responses = 160 sequences per step; 2,000 bundled rows / 32 = 62 steps per epoch.
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-32}
# Two policy updates per step: 32 / 16 = 2 mini-batches.
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-$(( TRAIN_BATCH_SIZE / 2 ))}
# Sequences per forward pass on one GPU; lower it first if you run out of memory.
MICRO_BATCH_SIZE_PER_GPU=${MICRO_BATCH_SIZE_PER_GPU:-8}

# ---- rollout
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
# GPUs per inference engine; must divide the GPU count (verl's default of 2 gives zero engines on one GPU).
ROLLOUT_TP=${ROLLOUT_TP:-1}
# Share of GPU memory the engine may take; the rest holds FSDP weights, gradients and optimizer.
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.5}

# ---- hardware
# Empty or auto: count the GPUs with nvidia-smi.
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
NNODES=${NNODES:-1}

# ---- reward (verl's compute_score signature; path relative to this folder)
REWARD_FUNC_PATH=${REWARD_FUNC_PATH:-reward_func.py}
REWARD_FUNC_NAME=${REWARD_FUNC_NAME:-compute_score}

# ---- LoRA
USE_LORA=${USE_LORA:-false}
LORA_RANK=${LORA_RANK:-32}
LORA_ALPHA=${LORA_ALPHA:-32}
# all-linear, or a list such as [q_proj,k_proj,v_proj,o_proj]
LORA_TARGET_MODULES=${LORA_TARGET_MODULES:-all-linear}

# ---- schedule, logging, checkpoints
TOTAL_EPOCHS=${TOTAL_EPOCHS:-2}
# Validate every 10 steps and checkpoint every 20 (verl's default saves nothing).
TEST_FREQ=${TEST_FREQ:-10}
SAVE_FREQ=${SAVE_FREQ:-20}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-grpo-${MODEL_PATH##*/}}
USE_WANDB=${USE_WANDB:-false}
WANDB_PROJECT=${WANDB_PROJECT:-verl-posttrain}
WANDB_ENTITY=${WANDB_ENTITY:-}
WANDB_RUN_NAME=${WANDB_RUN_NAME:-$EXPERIMENT_NAME}
USE_TENSORBOARD=${USE_TENSORBOARD:-false}

# ---- safety and end of run (common/callbacks.py; health alerts are always printed)
# Stop at once when a loss goes NaN/inf; stop after the next checkpoint when KL stays above
# KL_STOP_THRESHOLD for KL_STOP_STEPS logged steps (0 turns the KL stop off).
STOP_ON_NAN=${STOP_ON_NAN:-false}
KL_STOP_THRESHOLD=${KL_STOP_THRESHOLD:-0}
KL_STOP_STEPS=${KL_STOP_STEPS:-5}
# Merge the last checkpoint to Hugging Face format when training ends; EVAL_AFTER_TRAIN=true then
# scores it with ./test.sh on VAL_DATA into an Excel workbook beside the checkpoints.
EXPORT_AFTER_TRAIN=${EXPORT_AFTER_TRAIN:-true}
EVAL_AFTER_TRAIN=${EVAL_AFTER_TRAIN:-false}
# Your own hooks: a .py with on_step / on_checkpoint / on_end (see docs/preflight.md).
CALLBACKS_FILE=${CALLBACKS_FILE:-}
# Memory the preflight estimate assumes per GPU when it cannot see one (a CPU-only dry run).
GPU_MEMORY_GB=${GPU_MEMORY_GB:-80}

set +a
# ================================ Launch ================================
exec "$HERE/../common/launch.sh" "$HERE" "$@"
