"""What a dry run prints: the resolved config, the exact command, and the two put together.

    DRY_RUN=1 ./grpo/train.sh        # prints dry_run_text(...) for a local launch or a Ray job

Offers:
- resolved_yaml(cfg): verl's composed config as YAML, interpolations resolved where they can be.
- shell_command(plan): the command a launch runs, with the environment it adds, one argument a line.
- dry_run_text(plan, cfg, notes, report, command, extra): preflight table, resolved config, command
  and notes, in that order (the caller redacts it).
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


def dry_run_text(plan, cfg, notes: list[str], report: str, command: str, extra: tuple[str, ...] = ()) -> str:
    """What DRY_RUN=1 prints, here or for a Ray cluster: preflight table, resolved config, command, notes."""
    lines = ["# ---- preflight ----", report] if report else []
    lines += ["# ---- resolved config (verl's own composition) ----", resolved_yaml(cfg), "# ---- command ----", command]
    lines += [*extra, f"# {plan.gpu_note}", *(f"# note: {note}" for note in notes)]
    return "\n".join(lines)
