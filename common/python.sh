# shellcheck shell=bash disable=SC2034  # PY is used by the scripts that source this file
# Sourced by the project's scripts to pick the project's Python, the same way everywhere:
#   ROOT=<repo root>; source "$ROOT/common/python.sh"    # sets PY
# $PYTHON when set, else the .venv made by ./setup_env.sh, else python3 on PATH.
if [[ -n "${PYTHON:-}" ]]; then
  PY=$PYTHON
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY=$ROOT/.venv/bin/python
else
  PY=python3
fi
