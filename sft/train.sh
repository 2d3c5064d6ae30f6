#!/usr/bin/env bash
# SFT on the bundled multi-turn math conversations (loss on assistant turns only), one GPU by default.
#   ./train.sh                                  # train with the config block below
#   DRY_RUN=1 ./train.sh                        # print command + resolved config, run the checks
#   USE_LORA=true LR=1e-4 ./train.sh trainer.total_epochs=1
# The result feeds RL: MODEL_PATH=../outputs/<this experiment> ../grpo/train.sh (see README.md).
set -euo pipefail
set -a  # everything assigned below is exported to the shared launcher
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ================================ Quick config ================================
# ---- model
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}

# ---- data: parquet with a `messages` column (python -m common.data_utils sft --help converts yours)
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
VAL_DATA=${VAL_DATA:-data/val.parquet}
# Tokens per conversation; longer ones stop the run (DRY_RUN=1 reports how many there are).
MAX_LENGTH=${MAX_LENGTH:-1024}

# ---- optimisation
# Full fine-tuning of a 0.5B-7B model: 1e-5; with LoRA: 1e-4.
LR=${LR:-1e-5}
# 32 conversations per step; 2,000 bundled rows / 32 = 62 steps per epoch.
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-32}
# Conversations per forward pass on one GPU when USE_DYNAMIC_BSZ=false.
MICRO_BATCH_SIZE_PER_GPU=${MICRO_BATCH_SIZE_PER_GPU:-4}
# Pack conversations up to MAX_TOKENS_PER_GPU tokens per forward pass instead (faster on mixed lengths).
USE_DYNAMIC_BSZ=${USE_DYNAMIC_BSZ:-true}
# 8 x MAX_LENGTH: room for several conversations per pass.
MAX_TOKENS_PER_GPU=${MAX_TOKENS_PER_GPU:-$(( 8 * MAX_LENGTH ))}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-2}

# ---- hardware
# Empty or auto: count the GPUs with nvidia-smi.
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
NNODES=${NNODES:-1}

# ---- LoRA
USE_LORA=${USE_LORA:-false}
LORA_RANK=${LORA_RANK:-32}
LORA_ALPHA=${LORA_ALPHA:-32}
LORA_TARGET_MODULES=${LORA_TARGET_MODULES:-all-linear}

# ---- logging, checkpoints
# Validate every 20 steps and checkpoint every 30 (verl's default saves nothing).
TEST_FREQ=${TEST_FREQ:-20}
SAVE_FREQ=${SAVE_FREQ:-30}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-sft-${MODEL_PATH##*/}}
USE_WANDB=${USE_WANDB:-false}
WANDB_PROJECT=${WANDB_PROJECT:-verl-posttrain}
WANDB_ENTITY=${WANDB_ENTITY:-}
WANDB_RUN_NAME=${WANDB_RUN_NAME:-$EXPERIMENT_NAME}
USE_TENSORBOARD=${USE_TENSORBOARD:-false}

# ---- end of run (common/callbacks.py; health alerts are always printed)
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
