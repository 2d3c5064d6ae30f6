#!/usr/bin/env bash
# GPU smoke test: every method trains 2 steps on a tiny model, then its run is checked end to end.
#   tests/gpu/smoke.sh                          # sft grpo ppo dapo gspo on the GPUs of this machine
#   tests/gpu/smoke.sh grpo sft                 # only these methods
#   tests/gpu/smoke.sh --dry-run                # CPU: each method's DRY_RUN=1 train.sh with these settings
#   MODEL_PATH=Qwen/Qwen2.5-0.5B-Instruct tests/gpu/smoke.sh    # a real model instead of the tiny one
# Per method: train.sh exits 0, steps 1..2 logged with a finite loss, global_step_2 saved,
# test.sh merges it to Hugging Face format and scores it into a workbook, the monitor parses the
# run, and REHEARSAL=1 of the same config asserts that every knob reaches verl's engines (on the GPU;
# --dry-run: on the CPU when SMOKE_REHEARSAL=1). One line per method with tokens/s per GPU and peak
# memory, then a pass/fail summary.
# Needs no network: the model is built here (random weights, in-process tokenizer). See docs/gpu_smoke.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

# ================================ Quick config ================================
DRY=${SMOKE_DRY_RUN:-0}
METHODS=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    sft|grpo|ppo|dapo|gspo) METHODS+=("$arg") ;;
    *) echo "smoke.sh: unknown argument '$arg' (methods: sft grpo ppo dapo gspo; --dry-run)" >&2; exit 2 ;;
  esac
done
[[ ${#METHODS[@]} -gt 0 ]] || METHODS=(sft grpo ppo dapo gspo)

# Everything the run writes goes here (outputs/smoke/<method> by default); kept for inspection.
SMOKE_DIR=${SMOKE_DIR:-$ROOT/outputs/smoke}
STEPS=${SMOKE_STEPS:-2}
# 1: also run REHEARSAL=1 of each config and check its knob table (default: on a GPU yes, dry run no).
REHEARSE=${SMOKE_REHEARSAL:-$([[ "$DRY" == 1 ]] && echo 0 || echo 1)}
# shellcheck source=common/python.sh
source "$ROOT/common/python.sh"

if [[ "$DRY" == 1 ]]; then
  GPUS=${N_GPUS_PER_NODE:-1}
else
  GPUS=${N_GPUS_PER_NODE:-$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)}
  if [[ "${GPUS:-0}" -lt 1 ]]; then
    echo "smoke.sh: no NVIDIA GPU found (nvidia-smi -L); on a CPU machine run: tests/gpu/smoke.sh --dry-run" >&2
    exit 1
  fi
fi

# Batches scale with the GPU count so every rank gets whole micro-batches:
# 4 prompts x 2 responses per GPU = 8 sequences per GPU per step, mini-batch = half of that.
export TOTAL_STEPS=$STEPS SAVE_FREQ=$STEPS TEST_FREQ=$STEPS N_GPUS_PER_NODE=$GPUS NNODES=1
export TRAIN_BATCH_SIZE=$(( 4 * GPUS )) PPO_MINI_BATCH_SIZE=$(( 2 * GPUS )) MICRO_BATCH_SIZE_PER_GPU=1
export ROLLOUT_N=2 MAX_PROMPT_LENGTH=256 MAX_RESPONSE_LENGTH=64 MAX_LENGTH=512
# The tiny model is ~1 MB: a small KV-cache share leaves the GPU to FSDP (and to other jobs).
export GPU_MEM_UTIL=${GPU_MEM_UTIL:-0.3} ROLLOUT_TP=1 USE_WANDB=false OUTPUT_DIR=$SMOKE_DIR
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TRANSFORMERS_OFFLINE=${TRANSFORMERS_OFFLINE:-1}
unset RAY_ADDRESS  # a smoke test runs on this machine, never on a cluster

# ================================ Model ================================
mkdir -p "$SMOKE_DIR"
if [[ -z "${MODEL_PATH:-}" ]]; then
  MODEL_PATH=$SMOKE_DIR/tiny_model
  if [[ ! -f "$MODEL_PATH/config.json" ]]; then
    # hidden 256 / 4 heads = head_dim 64, a size every vLLM/SGLang attention backend supports.
    "$PY" -m tests.tiny_model "$MODEL_PATH" --hidden 256 >"$SMOKE_DIR/tiny_model.log" 2>&1 \
      || { cat "$SMOKE_DIR/tiny_model.log" >&2; exit 1; }
  fi
fi
export MODEL_PATH

# ================================ Run ================================
# REHEARSAL=1 of the method's config on DEVICE (cpu|cuda), then its knob table checked; one line out.
rehearse() {
  local method=$1 device=$2 run_dir=$3 log=$4
  if ! REHEARSAL=1 REHEARSAL_DEVICE=$device REHEARSAL_EVAL_ROWS=2 "$method/train.sh" >>"$log" 2>&1; then
    "$PY" -m tests.gpu.smoke_check rehearsal "$run_dir" || echo "FAIL: REHEARSAL=1 $method/train.sh exited non-zero"
    return 1
  fi
  "$PY" -m tests.gpu.smoke_check rehearsal "$run_dir"
}

declare -A RESULT
fail=0
for method in "${METHODS[@]}"; do
  if [[ ! -x "$method/train.sh" ]]; then
    RESULT[$method]="FAIL  $method/train.sh is missing"
    fail=1
    continue
  fi
  export EXPERIMENT_NAME=smoke-$method
  run_dir=$SMOKE_DIR/$EXPERIMENT_NAME
  log=$SMOKE_DIR/$method.console.log
  if [[ "$DRY" == 1 ]]; then
    # DRY_RUN=full: the log holds the whole resolved config, which the CPU test reads back.
    if ! DRY_RUN=full "$method/train.sh" >"$log" 2>&1; then
      RESULT[$method]="FAIL  dry run: $(grep -m1 -i 'error' "$log" || tail -n1 "$log") (log: $log)"
      fail=1
      continue
    fi
    RESULT[$method]="PASS  dry run: config accepted by verl's checks (log: $log)"
    if [[ "$REHEARSE" == 1 ]]; then
      if rehearsal_line=$(rehearse "$method" cpu "$run_dir" "$log"); then
        RESULT[$method]+="; $rehearsal_line"
      else
        RESULT[$method]="FAIL  $rehearsal_line (log: $log)"
        fail=1
      fi
    fi
    continue
  fi
  rm -rf "$run_dir"  # a smoke run starts clean: no resume from an older smoke checkpoint
  started=$SECONDS
  echo "==== $method: training $STEPS steps on $GPUS GPU(s), log $log"
  if ! "$method/train.sh" >"$log" 2>&1; then
    RESULT[$method]="FAIL  train.sh exited non-zero after $(( SECONDS - started )) s: see $log"
    fail=1
    continue
  fi
  if ! train_line=$("$PY" -m tests.gpu.smoke_check train "$run_dir" --steps "$STEPS" --gpus "$GPUS"); then
    RESULT[$method]="$train_line"
    fail=1
    continue
  fi
  workbook=$run_dir/smoke_eval.xlsx
  if ! ./test.sh --model_path "$run_dir/checkpoints/global_step_$STEPS" --batch --input_file grpo/data/test.json \
      --output_file "$workbook" --limit 4 --max_new_tokens 32 -q >>"$log" 2>&1; then
    RESULT[$method]="FAIL  test.sh could not merge/score the checkpoint: see $log"
    fail=1
    continue
  fi
  if ! eval_line=$("$PY" -m tests.gpu.smoke_check eval "$run_dir" "$workbook") \
      || ! dash_line=$("$PY" -m tests.gpu.smoke_check dashboard "$run_dir"); then
    RESULT[$method]="FAIL  ${eval_line:-} ${dash_line:-}"
    fail=1
    continue
  fi
  rehearsal_line="rehearsal off (SMOKE_REHEARSAL=0)"
  if [[ "$REHEARSE" == 1 ]] && ! rehearsal_line=$(rehearse "$method" cuda "$run_dir" "$log"); then
    RESULT[$method]="FAIL  $rehearsal_line (log: $log)"
    fail=1
    continue
  fi
  RESULT[$method]="PASS  $train_line; $eval_line; $dash_line; $rehearsal_line; $(( SECONDS - started )) s"
done

# ================================ Summary ================================
echo
echo "==== smoke summary ($([[ "$DRY" == 1 ]] && echo "dry run, CPU" || echo "$GPUS GPU(s)"), model $MODEL_PATH)"
for method in "${METHODS[@]}"; do
  printf '%-5s %s\n' "$method" "${RESULT[$method]}"
done
if [[ $fail -ne 0 ]]; then
  echo "smoke: FAILED" >&2
  exit 1
fi
echo "smoke: all ${#METHODS[@]} method(s) passed"
