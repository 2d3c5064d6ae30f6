# shellcheck shell=bash
# flash-attn for the installed torch, CUDA and Python: a prebuilt wheel when one exists, else a build.
#   source common/flash_attn.sh; install_flash_attn "$PY"        # what ./setup_env.sh does on NVIDIA machines
#   source common/flash_attn.sh; flash_attn_wheel_name 2.8.0+cu128 12.8 cp311 TRUE linux_x86_64
#
# verl 0.9.1 builds every model with attn_implementation=flash_attention_2 unless ATTN_IMPL says
# otherwise, and loads PPO's critic with it whatever ATTN_IMPL says; its `fsdp` extra pins
# flash-attn 2.8.3. On PyPI that is a source build (the CUDA compiler, tens of minutes); the
# project's GitHub releases carry wheels named
#   flash_attn-2.8.3+cu{CUDA major}torch{torch major.minor}cxx11abi{TRUE|FALSE}-cp{py}-cp{py}-{platform}.whl
# for the torch versions current at its release (up to 2.8; none for torch 2.11, verl's GPU pin).
#   FLASH_ATTN_WHEEL=URL_OR_FILE   install this wheel instead (e.g. one built for your torch and CUDA)
#   INSTALL_FLASH_ATTN=auto|yes|no auto: try, warn on failure; yes: fail setup on failure; no: skip
#   MAX_JOBS=N                     parallel compile jobs for the source build (default 4: ~4 GB RAM each)

FLASH_ATTN_VERSION=${FLASH_ATTN_VERSION:-2.8.3}
FLASH_ATTN_RELEASES=https://github.com/Dao-AILab/flash-attention/releases/download

# Wheel file name for (torch version, CUDA version torch was built with, cpXY, TRUE|FALSE, platform).
flash_attn_wheel_name() {
  local torch=$1 cuda=$2 py=$3 abi=$4 platform=$5 version=${6:-$FLASH_ATTN_VERSION}
  local torch_mm cuda_major
  torch_mm=$(printf '%s' "${torch%%+*}" | cut -d. -f1,2)
  cuda_major=${cuda%%.*}
  if [[ -z "$cuda" || "$cuda" == "None" || ! "$cuda_major" =~ ^[0-9]+$ ]]; then
    echo "flash_attn_wheel_name: torch $torch has no CUDA build (torch.version.cuda=$cuda)" >&2
    return 1
  fi
  if [[ ! "$torch_mm" =~ ^[0-9]+\.[0-9]+$ || ! "$py" =~ ^cp[0-9]+$ ]]; then
    echo "flash_attn_wheel_name: cannot read torch '$torch' or python tag '$py'" >&2
    return 1
  fi
  case "$abi" in TRUE|FALSE) ;; *) echo "flash_attn_wheel_name: C++11 ABI must be TRUE or FALSE, got '$abi'" >&2; return 1 ;; esac
  printf 'flash_attn-%s+cu%storch%scxx11abi%s-%s-%s-%s.whl\n' "$version" "$cuda_major" "$torch_mm" "$abi" "$py" "$py" "$platform"
}

# Release URL of a wheel name ('+' written %2B, as GitHub serves it).
flash_attn_wheel_url() {
  printf '%s/v%s/%s\n' "$FLASH_ATTN_RELEASES" "$FLASH_ATTN_VERSION" "${1//+/%2B}"
}

# "torch cuda cpXY ABI platform" of the interpreter $1.
flash_attn_facts() {
  "$1" - <<'EOF'
import sys, sysconfig
import torch
print(torch.__version__, torch.version.cuda, f"cp{sys.version_info.major}{sys.version_info.minor}",
      str(torch._C._GLIBCXX_USE_CXX11_ABI).upper(), sysconfig.get_platform().replace("-", "_").replace(".", "_"))
EOF
}

# "yes VERSION" when flash_attn imports under $1 (and transformers can use it), else "no WHY".
flash_attn_status() {
  "$1" - <<'EOF'
from common.attention import flash_attn_status
ok, why = flash_attn_status()
print(("yes " if ok else "no ") + why)
EOF
}

# Install flash-attn into the environment of interpreter $1; returns 0 when it imports afterwards.
install_flash_attn() {
  local py=$1 facts name url
  local mode=${INSTALL_FLASH_ATTN:-auto}
  case "$mode" in
    no) echo "[setup] flash-attn: skipped (INSTALL_FLASH_ATTN=no); ATTN_IMPL=auto uses sdpa, PPO's critic cannot load"; return 0 ;;
    auto|yes) ;;
    *) echo "[setup] INSTALL_FLASH_ATTN='$mode' is not auto, yes or no" >&2; return 2 ;;
  esac
  if [[ "$(cd "$ROOT" && flash_attn_status "$py")" == yes* ]]; then
    echo "[setup] flash-attn: already installed and importable"
    return 0
  fi
  if [[ -n "${FLASH_ATTN_WHEEL:-}" ]]; then
    echo "[setup] flash-attn: installing FLASH_ATTN_WHEEL=$FLASH_ATTN_WHEEL"
    "$py" -m pip install --quiet --no-deps "$FLASH_ATTN_WHEEL" || echo "[setup] flash-attn: FLASH_ATTN_WHEEL did not install" >&2
  else
    read -r -a facts <<<"$(flash_attn_facts "$py")"
    if name=$(flash_attn_wheel_name "${facts[@]}"); then
      url=$(flash_attn_wheel_url "$name")
      echo "[setup] flash-attn: torch ${facts[0]}, CUDA ${facts[1]}, ${facts[2]}, C++11 ABI ${facts[3]}: trying the prebuilt $name"
      if ! "$py" -m pip install --quiet --no-deps "$url" 2>/dev/null; then
        echo "[setup] flash-attn: no prebuilt $FLASH_ATTN_VERSION wheel for this combination at $FLASH_ATTN_RELEASES"
        _build_flash_attn "$py"
      fi
    fi
  fi
  local status
  status=$(cd "$ROOT" && flash_attn_status "$py")
  if [[ "$status" == yes* ]]; then
    echo "[setup] flash-attn: ${status#yes }"
    return 0
  fi
  echo "[setup] WARNING flash-attn is not usable: ${status#no }." >&2
  echo "[setup]   ATTN_IMPL=auto will use sdpa (slower on padded batches), and PPO's critic cannot load (verl 0.9.1 hard-codes flash_attention_2 for it)." >&2
  echo "[setup]   Fix: FLASH_ATTN_WHEEL=<wheel for this torch/CUDA/Python> ./setup_env.sh, or install the CUDA toolkit (nvcc) and re-run to build it." >&2
  [[ "$mode" == yes ]] && return 1
  return 0
}

_build_flash_attn() {
  local py=$1
  if ! command -v nvcc >/dev/null 2>&1 && [[ ! -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]]; then
    echo "[setup] flash-attn: cannot build from source: no CUDA compiler (nvcc) on PATH or in CUDA_HOME" >&2
    return 1
  fi
  echo "[setup] flash-attn: building $FLASH_ATTN_VERSION from source with MAX_JOBS=${MAX_JOBS:-4}: this takes 20-60 minutes and ~4 GB of RAM per job"
  "$py" -m pip install --quiet ninja packaging wheel
  MAX_JOBS=${MAX_JOBS:-4} "$py" -m pip install --no-build-isolation "flash-attn==$FLASH_ATTN_VERSION" \
    || { echo "[setup] flash-attn: the source build failed (see the compiler output above)" >&2; return 1; }
}
