#!/usr/bin/env bash
# SFT on the bundled multi-turn math conversations (loss on assistant turns only), one GPU by default.
#   ./train.sh                                  # train with the config block below
#   DRY_RUN=1 ./train.sh                        # print command + resolved config, run the checks
#   USE_LORA=true LR=1e-4 ./train.sh trainer.total_epochs=1
# The result feeds RL: MODEL_PATH=../outputs/<this experiment> ../grpo/train.sh (see README.md).
set -euo pipefail
set -a  # everything assigned below is exported to the shared launcher
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Numbers used in the arithmetic below are checked first (a value is never run as code).
# shellcheck source=common/block.sh
source "$HERE/../common/block.sh"

# ================================ Quick config ================================
# ---- model
# Hugging Face id or local folder (a verl checkpoint folder is merged to Hugging Face format once).
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}

# ---- data: parquet with a `messages` column (python -m common.data_utils sft --help converts yours)
# Training parquet (bundled: 2,000 rows).
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
# Validation parquet, scored every TEST_FREQ steps (bundled: 200 rows).
VAL_DATA=${VAL_DATA:-data/val.parquet}
# Tokens per conversation; longer ones stop the run (DRY_RUN=1 reports how many there are).
MAX_LENGTH=${MAX_LENGTH:-1024}
# Chat template arguments as a JSON object, e.g. '{"enable_thinking": false}' for Qwen3; empty = none.
CHAT_TEMPLATE_KWARGS=${CHAT_TEMPLATE_KWARGS:-}

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
# Passes over TRAIN_DATA (TOTAL_STEPS, if set, wins).
TOTAL_EPOCHS=${TOTAL_EPOCHS:-2}

# ---- hardware
# Empty or auto: count the GPUs with nvidia-smi.
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
# Machines; above 1 the run is submitted to a Ray cluster (docs/multinode.md).
NNODES=${NNODES:-1}
# Attention kernels: auto = flash_attention_2 when flash-attn is installed (setup_env.sh does), else sdpa.
ATTN_IMPL=${ATTN_IMPL:-auto}

# ---- LoRA
# Train LoRA adapters instead of all weights (less memory, higher learning rate).
USE_LORA=${USE_LORA:-false}
# Adapter rank when USE_LORA=true (8-64 typical).
LORA_RANK=${LORA_RANK:-32}
# Adapter scaling; alpha = rank keeps the update scale at 1.
LORA_ALPHA=${LORA_ALPHA:-32}
# Layers that get adapters: all-linear, or a list such as [q_proj,k_proj,v_proj,o_proj].
LORA_TARGET_MODULES=${LORA_TARGET_MODULES:-all-linear}

# ---- logging, checkpoints
# Steps between validations.
TEST_FREQ=${TEST_FREQ:-20}
# Steps between checkpoints (verl's own default saves none); a relaunch with the same EXPERIMENT_NAME resumes.
SAVE_FREQ=${SAVE_FREQ:-30}
# Run folder under outputs/ (and the wandb run name unless WANDB_RUN_NAME is set); basename drops a trailing /.
EXPERIMENT_NAME=${EXPERIMENT_NAME:-sft-$(basename -- "$MODEL_PATH")}
# Also log to wandb; without WANDB_API_KEY in the environment it logs offline.
USE_WANDB=${USE_WANDB:-false}
# wandb project (also verl's trainer.project_name).
WANDB_PROJECT=${WANDB_PROJECT:-verl-posttrain}
# wandb team or user; empty = your default.
WANDB_ENTITY=${WANDB_ENTITY:-}
# wandb run name.
WANDB_RUN_NAME=${WANDB_RUN_NAME:-$EXPERIMENT_NAME}
# Also write tensorboard logs to the run folder's tensorboard/.
USE_TENSORBOARD=${USE_TENSORBOARD:-false}

# ---- end of run (common/callbacks.py; health alerts are always printed)
# Merge the last checkpoint to Hugging Face format when training ends (cached beside it).
EXPORT_AFTER_TRAIN=${EXPORT_AFTER_TRAIN:-true}
# true: then score it with ./test.sh on VAL_DATA into an Excel workbook beside the checkpoints.
EVAL_AFTER_TRAIN=${EVAL_AFTER_TRAIN:-false}
# Your own hooks: a .py with on_step / on_checkpoint / on_end (see docs/preflight.md).
CALLBACKS_FILE=${CALLBACKS_FILE:-}
# Memory the preflight estimate assumes per GPU when it cannot see one (a CPU-only dry run).
GPU_MEMORY_GB=${GPU_MEMORY_GB:-80}

set +a
# ================================ Launch ================================
exec "$HERE/../common/launch.sh" "$HERE" "$@"
