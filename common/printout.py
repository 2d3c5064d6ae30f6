"""What a dry run prints: the resolved config, the exact command, and the two put together.

    DRY_RUN=1 ./grpo/train.sh        # prints dry_run_text(...) for a local launch or a Ray job

Offers:
- resolved_yaml(cfg): verl's composed config as YAML, interpolations resolved where they can be.
- shell_command(plan): the command a launch runs, with the environment it adds, one argument a line.
- dry_run_text(plan, cfg, notes, report, command, ...): preflight table, the knobs that differ from
  the block's defaults, the command, the path of the full resolved config, notes (the caller
  redacts it); with full=True the resolved config itself too.
- changed_lines(changed): those knobs, one line each, with their defaults.
"""

from __future__ import annotations

import shlex


def resolved_yaml(cfg) -> str:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_yaml(cfg, resolve=True)
    except Exception:  # an interpolation that only resolves at run time (e.g. ${oc.env:...} unset)
        return OmegaConf.to_yaml(cfg, resolve=False)


def shell_command(plan) -> str:
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in plan.env.items() if k != "PYTHONPATH")
    return f"{env} \\\n  " + " \\\n    ".join(shlex.quote(arg) for arg in plan.command)


def changed_lines(changed) -> list[str]:
    """`NAME=value   (default: x)` for each (name, value, default) from common.block.changed_knobs."""
    if not changed:
        return ["(none: every knob has its default from the config block)"]
    width = max(len(f"{name}={value}") for name, value, _ in changed)
    return [f"{name}={value}".ljust(width) + ("   (not in the config block)" if default is None else f"   (default: {default})")
            for name, value, default in changed]


def dry_run_text(
    plan, cfg, notes: list[str], report: str, command: str, extra: tuple[str, ...] = (), changed=None,
    config_file=None, full: bool = False,
) -> str:
    """What DRY_RUN=1 prints, here or for a Ray cluster: the preflight table, the knobs that differ
    from the block's defaults, the command, where the full resolved config was written, notes.
    full=True (DRY_RUN=full) prints the whole resolved config too."""
    lines = ["# ---- preflight ----", report] if report else []
    if changed is not None:
        lines += [f"# ---- knobs that differ from {plan.method}/train.sh's defaults ----", *changed_lines(changed)]
    if full:
        lines += ["# ---- resolved config (verl's own composition) ----", resolved_yaml(cfg)]
    lines += ["# ---- command ----", command, *extra]
    if config_file is not None:
        lines.append(f"# full resolved config: {config_file}" + ("" if full else "  (DRY_RUN=full prints it here)"))
    lines += [f"# {plan.gpu_note}", *(f"# note: {note}" for note in notes)]
    return "\n".join(lines)
