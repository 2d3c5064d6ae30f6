#!/usr/bin/env bash
# Shared launcher: every method's train.sh ends by exec'ing this with its own folder.
#   exec "$HERE/../common/launch.sh" "$HERE" "$@"
# It picks the project's Python (.venv made by ./setup_env.sh, else $PYTHON, else python3) and
# hands over to common/launch.py, which maps the exported config block to verl's config.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${PYTHON:-}" ]]; then
  PY=$PYTHON
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PY=$ROOT/.venv/bin/python
else
  PY=python3
fi

# Relative MODEL_PATH values are looked up from where the user ran train.sh.
export LAUNCH_CWD=$PWD
cd "$ROOT"
exec "$PY" -m common.launch "$@"
