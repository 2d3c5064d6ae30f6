#!/usr/bin/env bash
# Shared launcher: every method's train.sh ends by exec'ing this with its own folder.
#   exec "$HERE/../common/launch.sh" "$HERE" "$@"
# It picks the project's Python (common/python.sh: $PYTHON, else .venv, else python3) and
# hands over to common/launch.py, which maps the exported config block to verl's config.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common/python.sh
source "$ROOT/common/python.sh"

# Relative MODEL_PATH values are looked up from where the user ran train.sh.
export LAUNCH_CWD=$PWD
cd "$ROOT"
exec "$PY" -m common.launch "$@"
