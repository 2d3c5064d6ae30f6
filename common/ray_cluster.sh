#!/usr/bin/env bash
# Start, check and stop the Ray cluster that NNODES > 1 runs are submitted to.
#   common/ray_cluster.sh head                   # on the head node: ray start --head (token auth on)
#   common/ray_cluster.sh worker HEAD_IP:6379    # on every other node, after copying the head's token
#   common/ray_cluster.sh check                  # on the head: same Python env, project path, shared storage?
#   common/ray_cluster.sh status                 # ray status (nodes, GPUs, usage)
#   common/ray_cluster.sh stop                   # on each node: ray stop (every Ray process of this node)
# Then, on the head:  NNODES=2 ./grpo/train.sh   (or RAY_ADDRESS=http://HEAD_IP:8265 from elsewhere)
# Every node needs the project and its .venv at the same path and OUTPUT_DIR on shared storage:
# see docs/multinode.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# ================================ Quick config ================================
# GCS port workers join on, and the dashboard port (job API) the launcher submits to.
RAY_PORT=${RAY_PORT:-6379}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
# Interface the dashboard listens on: 0.0.0.0 lets train.sh submit from other machines; the
# token (below) is what keeps strangers out.
DASHBOARD_HOST=${DASHBOARD_HOST:-0.0.0.0}
# Empty: Ray counts the GPUs and CPUs itself.
NUM_GPUS=${NUM_GPUS:-}
NUM_CPUS=${NUM_CPUS:-}
# Empty: Ray picks the address of the default route; set it on multi-homed machines.
NODE_IP=${NODE_IP:-}
# Ray 2.60 token authentication: token reads the token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH
# or ~/.ray/auth_token (created on the head if none exists); disabled turns it off (trusted networks only).
RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
export RAY_AUTH_MODE

# ================================ Helpers ================================
# shellcheck source=common/python.sh
source "$ROOT/common/python.sh"
RAY=$(dirname "$PY")/ray
[[ -x "$RAY" ]] || RAY=ray

die() { echo "ray_cluster.sh: $*" >&2; exit 1; }

usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

token_known() {
  [[ -n "${RAY_AUTH_TOKEN:-}" ]] && return 0
  [[ -n "${RAY_AUTH_TOKEN_PATH:-}" && -s "${RAY_AUTH_TOKEN_PATH}" ]] && return 0
  [[ -s "$HOME/.ray/auth_token" ]]
}

resource_flags() {
  FLAGS=()
  [[ -n "$NUM_GPUS" ]] && FLAGS+=("--num-gpus=$NUM_GPUS")
  [[ -n "$NUM_CPUS" ]] && FLAGS+=("--num-cpus=$NUM_CPUS")
  [[ -n "$NODE_IP" ]] && FLAGS+=("--node-ip-address=$NODE_IP")
  return 0
}

# ================================ Commands ================================
cmd=${1:-}
case "$cmd" in
  head)
    if [[ "$RAY_AUTH_MODE" == token ]] && ! token_known; then
      # Writes ~/.ray/auth_token (mode 600 by umask); it is never printed here.
      "$RAY" get-auth-token --generate >/dev/null
      echo "created a Ray token in ~/.ray/auth_token: copy that file to ~/.ray/auth_token on every worker"
      echo "and on any machine that runs train.sh (e.g. scp ~/.ray/auth_token WORKER:~/.ray/)"
    fi
    resource_flags
    "$RAY" start --head --port="$RAY_PORT" --dashboard-host="$DASHBOARD_HOST" \
      --dashboard-port="$DASHBOARD_PORT" --include-dashboard=true --disable-usage-stats "${FLAGS[@]}"
    echo
    echo "next: on each worker   common/ray_cluster.sh worker $(hostname -I 2>/dev/null | awk '{print $1}'):$RAY_PORT"
    echo "then: on this node      common/ray_cluster.sh check"
    echo "train: NNODES=<nodes> ./grpo/train.sh   (from elsewhere: RAY_ADDRESS=http://<this node>:$DASHBOARD_PORT)"
    ;;
  worker)
    head=${2:-}
    [[ -n "$head" ]] || die "worker needs the head's address: common/ray_cluster.sh worker HEAD_IP:$RAY_PORT"
    [[ "$head" == *:* ]] || head="$head:$RAY_PORT"
    if [[ "$RAY_AUTH_MODE" == token ]] && ! token_known; then
      die "no Ray token on this node: copy the head's ~/.ray/auth_token here (same path), or set RAY_AUTH_TOKEN_PATH"
    fi
    [[ -d "$ROOT" && -x "$PY" ]] || die "no Python at $PY: run ./setup_env.sh in $ROOT first (same path as on the head)"
    resource_flags
    "$RAY" start --address="$head" --disable-usage-stats "${FLAGS[@]}"
    ;;
  check)
    shift
    cd "$ROOT"
    exec "$PY" -m common.ray_cluster check "$@"
    ;;
  status)
    exec "$RAY" status
    ;;
  stop)
    # ray stop ends every Ray process this user runs on this node (head or worker).
    exec "$RAY" stop
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    usage >&2
    die "unknown command '${cmd}': use head, worker HEAD_IP:$RAY_PORT, check, status or stop"
    ;;
esac
