#!/usr/bin/env bash
# GSPO on the bundled grade-school math set, one GPU by default.
#   ./train.sh                                  # sequence-level ratios and clipping (3e-4 / 4e-4)
#   ROLLOUT_N=12 ./train.sh                     # larger groups, steadier baselines
#   DRY_RUN=1 ./train.sh                        # print command + resolved config, run the checks
set -euo pipefail
set -a  # everything assigned below is exported to the shared launcher
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ================================ Quick config ================================
# ---- model
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}

# ---- data (paths relative to this folder; see data/README.md)
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
VAL_DATA=${VAL_DATA:-data/val.parquet}

# ---- lengths (tokens)
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-512}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-1024}

# ---- algorithm
# Responses per prompt: 8-12 recommended; the group is GSPO's baseline.
ROLLOUT_N=${ROLLOUT_N:-8}
# Sequence-level clip range around 1 (the paper's 3e-4 / 4e-4; token-level PPO uses 0.2).
CLIP_RATIO_LOW=${CLIP_RATIO_LOW:-0.0003}
CLIP_RATIO_HIGH=${CLIP_RATIO_HIGH:-0.0004}
ACTOR_LR=${ACTOR_LR:-1e-6}

# ---- batch sizes
# 32 prompts x 8 responses = 256 sequences per step; 2,000 bundled rows / 32 = 62 steps per epoch.
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-32}
# Two policy updates per step: 32 / 16 = 2 mini-batches.
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-$(( TRAIN_BATCH_SIZE / 2 ))}
MICRO_BATCH_SIZE_PER_GPU=${MICRO_BATCH_SIZE_PER_GPU:-8}

# ---- rollout
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
ROLLOUT_TP=${ROLLOUT_TP:-1}
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.5}

# ---- hardware
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
NNODES=${NNODES:-1}

# ---- reward
REWARD_FUNC_PATH=${REWARD_FUNC_PATH:-../common/reward_functions.py}
REWARD_FUNC_NAME=${REWARD_FUNC_NAME:-compute_score}

# ---- LoRA
USE_LORA=${USE_LORA:-false}
LORA_RANK=${LORA_RANK:-32}
LORA_ALPHA=${LORA_ALPHA:-32}
# all-linear, or a list such as [q_proj,k_proj,v_proj,o_proj]
LORA_TARGET_MODULES=${LORA_TARGET_MODULES:-all-linear}

# ---- schedule, logging, checkpoints
TOTAL_EPOCHS=${TOTAL_EPOCHS:-2}
TEST_FREQ=${TEST_FREQ:-10}
SAVE_FREQ=${SAVE_FREQ:-20}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-gspo-${MODEL_PATH##*/}}
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
