#!/usr/bin/env bash
# Shared launcher: every method's train.sh ends by exec'ing this with its own folder.
#   exec "$HERE/../common/launch.sh" "$HERE" "$@"
# It picks the project's Python (common/python.sh: $PYTHON, else .venv, else python3) and
# hands over to common/launch.py, which maps the exported config block to verl's config.
set -euo pipefail

# common/block.py reads a block's values (defaults, --help) this way: the block ran; print what it
# exported and stop.
if [[ -n "${POSTTRAIN_PRINT_BLOCK:-}" ]]; then
  env -0
  exit 0
fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=common/python.sh
source "$ROOT/common/python.sh"

# Relative MODEL_PATH values are looked up from where the user ran train.sh.
export LAUNCH_CWD=$PWD
cd "$ROOT"
exec "$PY" -m common.launch "$@"
