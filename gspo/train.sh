#!/usr/bin/env bash
# GSPO on the bundled grade-school math set, one GPU by default.
#   ./train.sh                                  # sequence-level ratios and clipping (3e-4 / 4e-4)
#   ROLLOUT_N=12 ./train.sh                     # larger groups, steadier baselines
#   DRY_RUN=1 ./train.sh                        # print command + resolved config, run the checks
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

# ---- data (paths relative to this folder; see data/README.md)
# Training parquet (bundled: 2,000 rows).
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
# Validation parquet, scored every TEST_FREQ steps (bundled: 200 rows).
VAL_DATA=${VAL_DATA:-data/val.parquet}
# Chat template arguments as a JSON object, e.g. '{"enable_thinking": false}' for Qwen3; empty = none.
CHAT_TEMPLATE_KWARGS=${CHAT_TEMPLATE_KWARGS:-}

# ---- lengths (tokens)
# Longest prompt; longer ones are cut from the left by verl (the preflight counts them).
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-512}
# Longest generated response.
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-1024}

# ---- algorithm
# Responses per prompt: 8-12 recommended; the group is GSPO's baseline.
ROLLOUT_N=${ROLLOUT_N:-8}
# Sequence-level clip range around 1 (the paper's 3e-4 / 4e-4; token-level PPO uses 0.2).
CLIP_RATIO_LOW=${CLIP_RATIO_LOW:-0.0003}
# Upper bound: the sequence ratio may rise to 1 + 4e-4.
CLIP_RATIO_HIGH=${CLIP_RATIO_HIGH:-0.0004}
# Policy learning rate; 1e-6 is safe for 0.5B-7B models, 5e-7 for larger ones.
ACTOR_LR=${ACTOR_LR:-1e-6}
# Share of response tokens, the highest-entropy ones, that get the policy gradient (arXiv 2506.01939);
# 0.2 is the paper's DAPO recipe, 1.0 = every token (off). See README.md.
TOP_ENTROPY_QUANTILE=${TOP_ENTROPY_QUANTILE:-1.0}

# ---- batch sizes
# 32 prompts x 8 responses = 256 sequences per step; 2,000 bundled rows / 32 = 62 steps per epoch.
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-32}
# Two policy updates per step: 32 / 16 = 2 mini-batches.
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-$(( TRAIN_BATCH_SIZE / 2 ))}
# Sequences per forward pass on one GPU; lower it first if you run out of memory.
MICRO_BATCH_SIZE_PER_GPU=${MICRO_BATCH_SIZE_PER_GPU:-8}

# ---- rollout
# Inference engine for generation: vllm or sglang (installed by setup_env.sh on GPU machines).
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
# GPUs per inference engine; must divide the GPU count (verl's default of 2 gives zero engines on one GPU).
ROLLOUT_TP=${ROLLOUT_TP:-1}
# Share of GPU memory the engine may take; the rest holds FSDP weights, gradients and optimizer.
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.5}
# Correct the rollout/training numerics mismatch (vLLM vs FSDP): off, token or sequence importance weights.
ROLLOUT_CORRECTION=${ROLLOUT_CORRECTION:-off}

# ---- hardware
# GPUs per machine; empty or auto counts them with nvidia-smi.
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
# Machines; above 1 the run is submitted to a Ray cluster (docs/multinode.md).
NNODES=${NNODES:-1}
# Attention kernels: auto = flash_attention_2 when flash-attn is installed (setup_env.sh does), else sdpa.
ATTN_IMPL=${ATTN_IMPL:-auto}

# ---- reward
# File holding the reward function (verl's compute_score signature).
REWARD_FUNC_PATH=${REWARD_FUNC_PATH:-../common/reward_functions.py}
# Function in that file that verl calls for every response.
REWARD_FUNC_NAME=${REWARD_FUNC_NAME:-compute_score}
# Run every reward call under a time limit; an error, time-out or NaN scores 0 and is counted (common/reward_guard.py).
REWARD_GUARD=${REWARD_GUARD:-true}
# Seconds one reward call may take under the guard; empty = 30.
REWARD_TIMEOUT_S=${REWARD_TIMEOUT_S:-}
# true: the default math reward scores only a \boxed{} answer (format pressure); false also reads "Answer: 5", "#### 5".
STRICT_BOXED=${STRICT_BOXED:-false}

# ---- LoRA
# Train LoRA adapters instead of all weights (less memory, higher learning rate).
USE_LORA=${USE_LORA:-false}
# Adapter rank when USE_LORA=true (8-64 typical).
LORA_RANK=${LORA_RANK:-32}
# Adapter scaling; alpha = rank keeps the update scale at 1.
LORA_ALPHA=${LORA_ALPHA:-32}
# Layers that get adapters: all-linear, or a list such as [q_proj,k_proj,v_proj,o_proj].
LORA_TARGET_MODULES=${LORA_TARGET_MODULES:-all-linear}

# ---- schedule, logging, checkpoints
# Passes over TRAIN_DATA (TOTAL_STEPS, if set, wins).
TOTAL_EPOCHS=${TOTAL_EPOCHS:-2}
# Steps between validations.
TEST_FREQ=${TEST_FREQ:-10}
# Steps between checkpoints (verl's own default saves none); a relaunch with the same EXPERIMENT_NAME resumes.
SAVE_FREQ=${SAVE_FREQ:-20}
# Run folder under outputs/ (and the wandb run name unless WANDB_RUN_NAME is set); basename drops a trailing /.
EXPERIMENT_NAME=${EXPERIMENT_NAME:-gspo-$(basename -- "$MODEL_PATH")}
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

# ---- safety and end of run (common/callbacks.py; health alerts are always printed)
# Stop at once when a loss or grad norm turns NaN/inf (the alert is printed either way).
STOP_ON_NAN=${STOP_ON_NAN:-false}
# KL level that stops the run after the next checkpoint; 0 = never stop for KL.
KL_STOP_THRESHOLD=${KL_STOP_THRESHOLD:-0}
# Consecutive logged steps above KL_STOP_THRESHOLD before that stop.
KL_STOP_STEPS=${KL_STOP_STEPS:-5}
# Merge the last checkpoint to Hugging Face format when training ends (cached beside it).
EXPORT_AFTER_TRAIN=${EXPORT_AFTER_TRAIN:-true}
# true: then score it with ./test.sh on VAL_DATA into an Excel workbook beside the checkpoints.
EVAL_AFTER_TRAIN=${EVAL_AFTER_TRAIN:-false}
# Keep the checkpoint with the best value of this validation metric (val_acc or a verl key); empty = off.
KEEP_BEST_METRIC=${KEEP_BEST_METRIC:-}
# Checkpoint the end-of-run export takes: best or last; empty = best when KEEP_BEST_METRIC is set, else last.
EXPORT_CHECKPOINT=${EXPORT_CHECKPOINT:-}
# Your own hooks: a .py with on_step / on_checkpoint / on_end (see docs/preflight.md).
CALLBACKS_FILE=${CALLBACKS_FILE:-}
# Memory the preflight estimate assumes per GPU when it cannot see one (a CPU-only dry run).
GPU_MEMORY_GB=${GPU_MEMORY_GB:-80}

set +a
# ================================ Launch ================================
exec "$HERE/../common/launch.sh" "$HERE" "$@"
