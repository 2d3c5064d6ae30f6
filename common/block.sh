# shellcheck shell=bash
# Sourced by every train.sh before its config block:
#   source "$HERE/../common/block.sh"
# The block derives sizes with bash arithmetic ($(( TRAIN_BATCH_SIZE / 2 ))), and bash evaluates a
# variable's value inside $(( )) as an expression: TRAIN_BATCH_SIZE='x[$(cmd)]' would run cmd, and
# TRAIN_BATCH_SIZE=abc ends in "abc: unbound variable". So every variable the calling script uses
# in $(( )) must hold a whole number before the block runs; otherwise this names it and exits 2.
_block_script=${BASH_SOURCE[1]}
# shellcheck disable=SC2016  # the pattern matches a literal $(( in the script
_block_names=$(grep -o '\$(([^)]*))' "$_block_script" | grep -o '[A-Za-z_][A-Za-z0-9_]*' | sort -u || true)
for _block_name in $_block_names; do
  if [[ -n "${!_block_name+set}" ]] && ! [[ ${!_block_name} =~ ^[[:space:]]*[0-9]+[[:space:]]*$ ]]; then
    _block_method=$(basename "$(dirname "$_block_script")")
    printf "[%s] config error: %s='%s' is not a whole number; %s/train.sh computes sizes from it (set e.g. %s=32)\n" \
      "$_block_method" "$_block_name" "${!_block_name}" "$_block_method" "$_block_name" >&2
    exit 2
  fi
done
unset _block_script _block_names _block_name _block_method
