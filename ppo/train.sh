#!/usr/bin/env bash
# PPO with a critic (GAE) on the bundled grade-school math set, one GPU by default.
#   ./train.sh                                            # function reward (reward_func.py)
#   USE_REWARD_MODEL=true REWARD_MODEL_PATH=... ./train.sh   # a reward model served by the rollout engine
#   USE_API_REWARD=true JUDGE_BASE_URL=http://host:8000/v1 JUDGE_MODEL=... ./train.sh   # an LLM judge
#   DRY_RUN=1 ./train.sh                                  # print command + resolved config, run the checks
set -euo pipefail
set -a  # everything assigned below is exported to the shared launcher
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ================================ Quick config ================================
# ---- model (the critic starts from the same weights unless critic.model.path=... is passed)
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}

# ---- data (paths relative to this folder; see data/README.md)
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
VAL_DATA=${VAL_DATA:-data/val.parquet}

# ---- algorithm
ACTOR_LR=${ACTOR_LR:-1e-6}
# The critic learns faster than the policy.
CRITIC_LR=${CRITIC_LR:-1e-5}
CRITIC_LR_WARMUP_RATIO=${CRITIC_LR_WARMUP_RATIO:-0}
# Steps that train only the critic before the policy moves (0-10 typical).
CRITIC_WARMUP=${CRITIC_WARMUP:-0}
# PPO's classic KL penalty in the reward; KL_COEF is its weight.
USE_KL_IN_REWARD=${USE_KL_IN_REWARD:-false}
KL_COEF=${KL_COEF:-0.001}
# One response per prompt: the critic is the baseline.
ROLLOUT_N=${ROLLOUT_N:-1}

# ---- lengths (tokens)
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-512}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-1024}

# ---- batch sizes
# 64 prompts x 1 response = 64 sequences per step; 2,000 bundled rows / 64 = 31 steps per epoch.
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-64}
# Four actor and critic updates per step: 64 / 16 = 4 mini-batches.
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-$(( TRAIN_BATCH_SIZE / 4 ))}
MICRO_BATCH_SIZE_PER_GPU=${MICRO_BATCH_SIZE_PER_GPU:-8}

# ---- rollout
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
# GPUs per inference engine; must divide the GPU count.
ROLLOUT_TP=${ROLLOUT_TP:-1}
# Policy engine's share of GPU memory; actor, critic and reference FSDP state share the rest.
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.4}

# ---- hardware
# Empty or auto: count the GPUs with nvidia-smi.
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
NNODES=${NNODES:-1}

# ---- reward: a function (default), a reward model, or an API judge
# Shared scorer: accuracy on gsm8k/MATH-style answers (copy grpo/reward_func.py to write your own).
REWARD_FUNC_PATH=${REWARD_FUNC_PATH:-../common/reward_functions.py}
REWARD_FUNC_NAME=${REWARD_FUNC_NAME:-compute_score}
# true: reward_model_config.yaml, REWARD_MODEL_PATH must name a *ForSequenceClassification model.
USE_REWARD_MODEL=${USE_REWARD_MODEL:-false}
REWARD_MODEL_PATH=${REWARD_MODEL_PATH:-}
# true: api_reward_config.yaml; JUDGE_BASE_URL, JUDGE_MODEL and the key in JUDGE_API_KEY.
USE_API_REWARD=${USE_API_REWARD:-false}

# ---- LoRA
USE_LORA=${USE_LORA:-false}
LORA_RANK=${LORA_RANK:-32}
LORA_ALPHA=${LORA_ALPHA:-32}
# all-linear, or a list such as [q_proj,k_proj,v_proj,o_proj]
LORA_TARGET_MODULES=${LORA_TARGET_MODULES:-all-linear}

# ---- schedule, logging, checkpoints
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
TEST_FREQ=${TEST_FREQ:-10}
SAVE_FREQ=${SAVE_FREQ:-20}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-ppo-${MODEL_PATH##*/}}
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
