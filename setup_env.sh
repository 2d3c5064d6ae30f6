#!/usr/bin/env bash
# One-command setup: a Python environment in .venv/ with verl 0.9.1 and everything the framework needs.
#   ./setup_env.sh                         # main job's dependencies (+ the rollout engine when a GPU is present)
#   ./setup_env.sh --dev                   # also what the tests need (pytest, shellcheck, chromium)
#   ROLLOUT_ENGINE=sglang ./setup_env.sh   # engine for GPU machines: vllm (default) or sglang
#   FLASH_ATTN_WHEEL=URL ./setup_env.sh    # flash-attn wheel to use on GPU machines (common/flash_attn.sh)
# Safe to re-run: an unchanged environment is checked in seconds and left alone.
# Everything lands in .venv/ next to this script; train.sh, test.sh and the tests use that
# interpreter, so there is nothing to activate.
set -euo pipefail

# ================================ Quick config ================================
# vllm or sglang; only installed on machines with an NVIDIA GPU.
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
# Interpreter that creates the environment (verl needs Python >= 3.10).
PYTHON=${PYTHON:-python3}
# Where the environment goes.
VENV=${VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/.venv}
# The versions verl 0.9.1's GPU extras pin; CPU machines get the CPU build of a newer torch.
TORCH_GPU_VERSION=2.11.0
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}

# ================================ Arguments ================================
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown argument '$arg' (known: --dev, --help)" >&2; exit 2 ;;
  esac
done
case "$ROLLOUT_ENGINE" in
  vllm|sglang) ;;
  *) echo "setup_env.sh: ROLLOUT_ENGINE='$ROLLOUT_ENGINE' is not vllm or sglang" >&2; exit 2 ;;
esac

say() { printf '[setup] %s\n' "$*"; }

# ================================ Environment ================================
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PY=$VENV/bin/python
pip_install() { "$PY" -m pip install --quiet --disable-pip-version-check "$@"; }

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  HAS_GPU=1
else
  HAS_GPU=0
fi

# A stamp of what was asked for; when it matches, a re-run only verifies.
stamp_file=$VENV/.setup-stamp
stamp=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" "$0" | sha256sum | cut -c1-16)
stamp="$stamp gpu=$HAS_GPU engine=$ROLLOUT_ENGINE dev=$DEV"
if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]] && "$PY" -m pip check >/dev/null 2>&1; then
  say "environment up to date ($VENV)"
else
  if [[ $HAS_GPU == 1 ]]; then
    say "NVIDIA GPU found: installing torch $TORCH_GPU_VERSION and $ROLLOUT_ENGINE at verl 0.9.1's pins"
    # The engine extra pins torch, transformers and the engine together; one resolver run keeps them consistent.
    pip_install "torch==$TORCH_GPU_VERSION"
    pip_install -r "$ROOT/requirements.txt" "verl[$ROLLOUT_ENGINE]==0.9.1"
  else
    say "no NVIDIA GPU: installing the CPU build of torch $TORCH_CPU_VERSION and skipping the rollout engine"
    say "(enough for DRY_RUN=1 ./train.sh, data tools, test.sh and the dashboard; training needs a GPU)"
    pip_install "torch==$TORCH_CPU_VERSION"
    pip_install -r "$ROOT/requirements.txt"
  fi
  if [[ $DEV == 1 ]]; then
    say "installing test dependencies"
    pip_install -r "$ROOT/requirements-dev.txt"
  fi
  "$PY" -m pip check
  echo "$stamp" > "$stamp_file"
fi

# flash-attn on NVIDIA machines: verl builds its models with flash_attention_2 unless ATTN_IMPL says
# otherwise (common/flash_attn.sh: a prebuilt wheel for this torch/CUDA/Python, else a source build).
# shellcheck source=common/flash_attn.sh
source "$ROOT/common/flash_attn.sh"
if [[ $HAS_GPU == 1 ]]; then
  install_flash_attn "$PY" || { say "flash-attn is required (INSTALL_FLASH_ATTN=yes) and could not be installed"; exit 1; }
fi

# Headless Chromium for the dashboard screenshot test (Debian/Ubuntu; needs root or sudo).
if [[ $DEV == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [[ $(id -u) == 0 ]] || SUDO="sudo"
    say "installing Debian's chromium for the dashboard screenshot test"
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; } \
      || say "could not install chromium; the screenshot test will be skipped and say why"
  else
    say "no apt-get: install chromium yourself to run the dashboard screenshot test"
  fi
fi

# ================================ Report ================================
flash_status=$(cd "$ROOT" && flash_attn_status "$PY")
"$PY" - "$ROLLOUT_ENGINE" "$flash_status" <<'EOF'
import importlib.metadata as md
import platform
import sys

engine, flash = sys.argv[1], sys.argv[2]


def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"


print(f"[setup] python        {platform.python_version()} ({sys.executable})")
for name in ("torch", "verl", "transformers", "ray", engine):
    print(f"[setup] {name:13} {version(name)}")
usable, _, why = flash.partition(" ")
attention = "flash_attention_2" if usable == "yes" else "sdpa (PPO's critic needs flash-attn)"
print(f"[setup] flash-attn    {'imports: ' if usable == 'yes' else 'NOT usable: '}{why}; ATTN_IMPL=auto -> {attention}")
import torch

if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        print(f"[setup] GPU {i}         {props.name}, {props.total_memory / 2**30:.0f} GiB")
else:
    print("[setup] GPUs          none visible (DRY_RUN=1 ./grpo/train.sh checks a config without one)")
EOF
