# shellcheck shell=bash
# Sourced by every train.sh before its config block:
#   source "$HERE/../common/block.sh"
# The block derives sizes with bash arithmetic ($(( TRAIN_BATCH_SIZE / 2 ))), and bash evaluates a
# variable's value inside $(( )) as an expression: TRAIN_BATCH_SIZE='x[$(cmd)]' would run cmd, and
# TRAIN_BATCH_SIZE=abc ends in "abc: unbound variable"; 010 is octal (8) there, 08 an error, and
# 20 digits overflow. So every variable the calling script uses in $(( )) must hold a plain whole
# number (no leading zero, at most 18 digits) before the block runs; otherwise this names each one
# and exits 2.
_block_script=${BASH_SOURCE[1]}
# shellcheck disable=SC2016  # the pattern matches a literal $(( in the script
_block_names=$(grep -o '\$(([^)]*))' "$_block_script" | grep -o '[A-Za-z_][A-Za-z0-9_]*' | sort -u || true)
_block_method=$(basename "$(dirname "$_block_script")")
_block_bad=0
for _block_name in $_block_names; do
  if [[ -n "${!_block_name+set}" ]] && ! [[ ${!_block_name} =~ ^[[:space:]]*(0|[1-9][0-9]{0,17})[[:space:]]*$ ]]; then
    _block_example=32
    if [[ ${!_block_name} =~ ^[[:space:]]*0[0-9]+[[:space:]]*$ ]]; then
      _block_why="has a leading zero, which bash arithmetic reads as octal"
      _block_example=${!_block_name//[[:space:]]/}
      _block_example=$(( 10#$_block_example ))
    elif [[ ${!_block_name} =~ ^[[:space:]]*[0-9]+[[:space:]]*$ ]]; then
      _block_why="is too large for bash arithmetic (at most 18 digits)"
    else
      _block_why="is not a whole number"
    fi
    printf "[%s] config error: %s='%s' %s; %s/train.sh computes sizes from it (set e.g. %s=%s)\n" \
      "$_block_method" "$_block_name" "${!_block_name}" "$_block_why" "$_block_method" "$_block_name" "$_block_example" >&2
    _block_bad=1
  fi
done
if (( _block_bad )); then
  exit 2
fi
unset _block_script _block_names _block_name _block_method _block_bad _block_why _block_example
