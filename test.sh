#!/usr/bin/env bash
# Test a trained model: interactive chat, or a batch evaluation written to Excel/JSON.
#
#   ./test.sh --model_path PATH                                        # chat (--single)
#   ./test.sh --model_path PATH --batch --input_file test_data.json    # report in outputs/eval/
#   ./test.sh --help                                                   # every option
#
# PATH: a Hugging Face folder/id, a run folder or a verl checkpoint (merged once, cached next to it).
set -euo pipefail

# ---------------------------------------------------------------- Paths
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$REPO_ROOT
# shellcheck source=common/python.sh
source "$ROOT/common/python.sh"

# ---------------------------------------------------------------- Launch
# Relative paths in the arguments stay relative to the caller's folder: python -m runs from the
# repository root (so `common` imports), so resolve them against the caller's cwd first.
CALLER_DIR=$(pwd)
export TEST_MODEL_CALLER_DIR="${CALLER_DIR}"
export PYTHONPATH="${REPO_ROOT}${PYTHONPATH:+:${PYTHONPATH}}"
cd "${REPO_ROOT}"
exec "$PY" -m common.test_model "$@"
