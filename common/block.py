"""A method's config block (the top of its train.sh) read as data: knobs, defaults, comments.

    ./grpo/train.sh --help                         # help_text(): every knob, its value now, its comment
    .venv/bin/python -m common.block grpo          # the same, from the project's root

Offers:
- BlockKnob(name, default, comment, section): one `NAME=${NAME:-default}` line of a config block,
  with the comment lines above it and the `# ---- section` it sits in.
- read_block(method_dir) -> list[BlockKnob]: the knobs of <method_dir>/train.sh, in order.
- block_defaults(method_dir) -> dict: each knob's value when nothing is set in the environment,
  computed by bash itself (derived sizes such as $(( TRAIN_BATCH_SIZE / 2 )) included).
- changed_knobs(method_dir, env, known) -> list[(name, value, default)]: the knobs whose value in
  env differs from the block's default, and known knobs the block does not list but env sets.
- misspelled_knobs(env, known) -> list[(name, closest)]: environment variables that look like a
  knob but are none (ROLOUT_N -> ROLLOUT_N); nothing reads them, so they are warned about.
- help_text(method_dir, env): what `train.sh --help` prints.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_KNOB_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=\$\{\1:-(.*)\}\s*$")
_SECTION = re.compile(r"^# ---- (.*)$")
# Names of the project's own variables that are not knobs of a block but are read on purpose.
_NOT_TYPOS = frozenset({"LAUNCH_CWD", "PYTHON", "HERE", "PY", "ROOT"})


@dataclass(frozen=True)
class BlockKnob:
    name: str
    default: str  # as written in train.sh (may hold ${...} or $(( ... )))
    comment: str
    section: str


def read_block(method_dir: str | Path) -> list[BlockKnob]:
    """The `NAME=${NAME:-default}` lines of method_dir/train.sh with their comments and sections."""
    knobs: list[BlockKnob] = []
    comment: list[str] = []
    section = ""
    for line in (Path(method_dir) / "train.sh").read_text().splitlines():
        stripped = line.strip()
        if match := _SECTION.match(stripped):
            section, comment = match.group(1), []
        elif stripped.startswith("# ") and not stripped.startswith("# ===="):
            comment.append(stripped[2:])
        elif match := _KNOB_LINE.match(stripped):
            knobs.append(BlockKnob(match.group(1), match.group(2), " ".join(comment), section))
            comment = []
        else:
            comment = []
    return knobs


def _run_block(method_dir: Path, env: dict[str, str]) -> dict[str, str]:
    """The exported variables after the block ran with env (launch.sh prints them and stops)."""
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHON"}}
    result = subprocess.run(
        ["bash", str(method_dir / "train.sh")],
        env={**base, **env, "POSTTRAIN_PRINT_BLOCK": "1"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        return {}
    values = {}
    for item in result.stdout.split(b"\0"):
        name, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            values[name] = value
    return values


def block_defaults(method_dir: str | Path) -> dict[str, str]:
    """Each knob's value with nothing set in the environment, as bash computes it."""
    method_dir = Path(method_dir)
    names = {k.name for k in read_block(method_dir)}
    return {k: v for k, v in _run_block(method_dir, {}).items() if k in names}


def changed_knobs(method_dir: str | Path, env: dict[str, str], known: set[str]) -> list[tuple[str, str, str | None]]:
    """(name, value, default) of the block's knobs whose value differs from the block's default, then
    of known knobs the block does not list that env sets (default None)."""
    method_dir = Path(method_dir)
    block = read_block(method_dir)
    defaults = block_defaults(method_dir)
    out = [(k.name, env[k.name], defaults.get(k.name)) for k in block if k.name in env and env[k.name] != defaults.get(k.name)]
    listed = {k.name for k in block}
    out += [(name, env[name], None) for name in sorted(known - listed) if (env.get(name) or "").strip()]
    return out


def misspelled_knobs(env: dict[str, str], known: set[str]) -> list[tuple[str, str]]:
    """Environment variables in knob style (UPPER_CASE) that nothing reads but are close to a knob.

    >>> misspelled_knobs({"ROLOUT_N": "8", "HF_HOME": "/x", "ROLLOUT_N": "5"}, {"ROLLOUT_N", "MODEL_PATH"})
    [('ROLOUT_N', 'ROLLOUT_N')]
    """
    out = []
    for name in sorted(env):
        if name in known or name in _NOT_TYPOS or not re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{2,}", name):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        if close:
            out.append((name, close[0]))
    return out


def help_text(method_dir: str | Path, env: dict[str, str]) -> str:
    """Every knob of the block with its value now and its comment, then how to set them."""
    method_dir = Path(method_dir)
    method = method_dir.name
    defaults = block_defaults(method_dir)
    lines = [f"{method}/train.sh: the config block (value now; [default] when you changed it)"]
    section = None
    for knob in read_block(method_dir):
        if knob.section != section:
            section = knob.section
            lines += ["", f"# ---- {section}"]
        value = env.get(knob.name, defaults.get(knob.name, ""))
        default = defaults.get(knob.name)
        changed = f"   [default {default!r}]" if default is not None and value != default else ""
        lines.append(f"{knob.name}={value}{changed}")
        if knob.comment:
            lines.append(f"    {knob.comment}")
    lines += [
        "",
        "Set a knob for one run from the environment, or edit its default in the block:",
        f"  ROLLOUT_N=8 ACTOR_LR=2e-6 ./{method}/train.sh",
        "Any verl key after the script name (Hydra override syntax):",
        f"  ./{method}/train.sh trainer.total_epochs=1",
        "Check everything without training (no GPU needed):",
        f"  DRY_RUN=1 ./{method}/train.sh          (DRY_RUN=full also prints the whole resolved config)",
        "Every knob the launcher understands, with the verl keys it sets: .venv/bin/python -m common.knobs",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1:
        print("usage: python -m common.block METHOD_DIR", file=sys.stderr)
        return 2
    print(help_text(Path(argv[0]).resolve(), dict(os.environ)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
