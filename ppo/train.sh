#!/usr/bin/env bash
# PPO with a critic (GAE) on the bundled grade-school math set, one GPU by default.
#   ./train.sh                                            # function reward (reward_func.py)
#   USE_REWARD_MODEL=true REWARD_MODEL_PATH=... ./train.sh   # a reward model served by the rollout engine
#   USE_API_REWARD=true JUDGE_BASE_URL=http://host:8000/v1 JUDGE_MODEL=... ./train.sh   # an LLM judge
#   DRY_RUN=1 ./train.sh                                  # print command + resolved config, run the checks
set -euo pipefail
set -a  # everything assigned below is exported to the shared launcher
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Numbers used in the arithmetic below are checked first (a value is never run as code).
# shellcheck source=common/block.sh
source "$HERE/../common/block.sh"

# ================================ Quick config ================================
# ---- model (the critic starts from the same weights unless critic.model.path=... is passed)
# Hugging Face id or local folder (a verl checkpoint folder is merged to Hugging Face format once).
MODEL_PATH=${MODEL_PATH:-Qwen/Qwen2.5-0.5B-Instruct}

# ---- data (paths relative to this folder; see data/README.md)
# Training parquet (bundled: 2,000 rows).
TRAIN_DATA=${TRAIN_DATA:-data/train.parquet}
# Validation parquet, scored every TEST_FREQ steps (bundled: 200 rows).
VAL_DATA=${VAL_DATA:-data/val.parquet}
# Chat template arguments as a JSON object, e.g. '{"enable_thinking": false}' for Qwen3; empty = none.
CHAT_TEMPLATE_KWARGS=${CHAT_TEMPLATE_KWARGS:-}

# ---- algorithm
# Policy learning rate; 1e-6 is safe for 0.5B-7B models, 5e-7 for larger ones.
ACTOR_LR=${ACTOR_LR:-1e-6}
# The critic learns faster than the policy.
CRITIC_LR=${CRITIC_LR:-1e-5}
# Share of the steps over which the critic's learning rate warms up.
CRITIC_LR_WARMUP_RATIO=${CRITIC_LR_WARMUP_RATIO:-0}
# Steps that train only the critic before the policy moves (0-10 typical).
CRITIC_WARMUP=${CRITIC_WARMUP:-0}
# PPO's classic KL penalty in the reward; KL_COEF is its weight.
USE_KL_IN_REWARD=${USE_KL_IN_REWARD:-false}
# Weight of the KL penalty in the reward when USE_KL_IN_REWARD=true.
KL_COEF=${KL_COEF:-0.001}
# One response per prompt: the critic is the baseline.
ROLLOUT_N=${ROLLOUT_N:-1}

# ---- lengths (tokens)
# Longest prompt; longer ones are cut from the left by verl (the preflight counts them).
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-512}
# Longest generated response.
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-1024}

# ---- batch sizes
# 64 prompts x 1 response = 64 sequences per step; 2,000 bundled rows / 64 = 31 steps per epoch.
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-64}
# Four actor and critic updates per step: 64 / 16 = 4 mini-batches.
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-$(( TRAIN_BATCH_SIZE / 4 ))}
# Sequences per forward pass on one GPU; lower it first if you run out of memory.
MICRO_BATCH_SIZE_PER_GPU=${MICRO_BATCH_SIZE_PER_GPU:-8}

# ---- rollout
# Inference engine for generation: vllm or sglang (installed by setup_env.sh on GPU machines).
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
# GPUs per inference engine; must divide the GPU count.
ROLLOUT_TP=${ROLLOUT_TP:-1}
# Policy engine's share of GPU memory; actor, critic and reference FSDP state share the rest.
GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.4}
# Correct the rollout/training numerics mismatch (vLLM vs FSDP): off, token or sequence importance weights.
ROLLOUT_CORRECTION=${ROLLOUT_CORRECTION:-off}

# ---- hardware
# Empty or auto: count the GPUs with nvidia-smi.
N_GPUS_PER_NODE=${N_GPUS_PER_NODE:-auto}
# Machines; above 1 the run is submitted to a Ray cluster (docs/multinode.md).
NNODES=${NNODES:-1}
# Attention kernels: auto = flash_attention_2 when flash-attn is installed (setup_env.sh does), else sdpa.
ATTN_IMPL=${ATTN_IMPL:-auto}

# ---- reward: a function (default), a reward model, or an API judge
# Shared scorer: accuracy on gsm8k/MATH-style answers (copy grpo/reward_func.py to write your own).
REWARD_FUNC_PATH=${REWARD_FUNC_PATH:-../common/reward_functions.py}
# Function in that file that verl calls for every response.
REWARD_FUNC_NAME=${REWARD_FUNC_NAME:-compute_score}
# Run every reward call under a time limit; an error, time-out or NaN scores 0 and is counted (common/reward_guard.py).
REWARD_GUARD=${REWARD_GUARD:-true}
# Seconds one reward call may take under the guard; empty = 30 (the API judge: 1800, its queue counts).
REWARD_TIMEOUT_S=${REWARD_TIMEOUT_S:-}
# true: the default math reward scores only a \boxed{} answer (format pressure); false also reads "Answer: 5", "#### 5".
STRICT_BOXED=${STRICT_BOXED:-false}
# true: reward_model_config.yaml, REWARD_MODEL_PATH must name a *ForSequenceClassification model.
USE_REWARD_MODEL=${USE_REWARD_MODEL:-false}
# Reward model id or folder (used when USE_REWARD_MODEL=true).
REWARD_MODEL_PATH=${REWARD_MODEL_PATH:-}
# true: api_reward_config.yaml; JUDGE_BASE_URL, JUDGE_MODEL and the key in JUDGE_API_KEY.
USE_API_REWARD=${USE_API_REWARD:-false}

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
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
# Steps between validations.
TEST_FREQ=${TEST_FREQ:-10}
# Steps between checkpoints (verl's own default saves none); a relaunch with the same EXPERIMENT_NAME resumes.
SAVE_FREQ=${SAVE_FREQ:-20}
# Run folder under outputs/ (and the wandb run name unless WANDB_RUN_NAME is set); basename drops a trailing /.
EXPERIMENT_NAME=${EXPERIMENT_NAME:-ppo-$(basename -- "$MODEL_PATH")}
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
