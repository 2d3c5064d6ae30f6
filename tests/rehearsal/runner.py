"""Run several rehearsals through the real train.sh config blocks in one process (one verl import).

    .venv/bin/python -m tests.rehearsal.runner CASES_JSON OUT_DIR

CASES_JSON: a list of {"name", "method", "env": {...}, "break_knob": optional knob name}. For each
case: `<method>/train.sh` runs with PYTHON pointing at a recorder, which saves the environment
train.sh hands to common/launch.sh (its config block, exported) and exits; this process then runs
common.launch.main on that environment, as launch.sh would, with stdout and stderr in
OUT_DIR/<name>.log and the exit code in OUT_DIR/<name>.rc. break_knob maps that knob to
critic.optim.lr instead of its own path (a deliberately broken mapping the knob table must catch).

Also offers compose(method, env, work) -> (plan, cfg): a method's config as its train.sh would
compose it with env, in the test's own process (for fast tests of knob mappings).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDER = """#!/usr/bin/env bash
env -0 > "$REHEARSAL_ENV_OUT"
"""


def train_sh_env(method: str, env: dict[str, str], work: Path) -> dict[str, str]:
    """The environment train.sh exports to the launcher (its config block plus env)."""
    recorder = work / "record_env.sh"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    dump = work / f"{method}.env"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_"))}
    full.update(env, PYTHON=str(recorder), REHEARSAL_ENV_OUT=str(dump))
    subprocess.run([str(REPO_ROOT / method / "train.sh")], env=full, check=True, timeout=60, cwd=REPO_ROOT)
    pairs = (item.split("=", 1) for item in dump.read_bytes().decode().split("\0") if "=" in item)
    recorded = dict(pairs)
    for key in ("PYTHON", "REHEARSAL_ENV_OUT"):
        recorded.pop(key, None)
    return recorded


def _break(knob_name: str):
    """Map knob_name to critic.optim.lr in the launcher's RL knob table."""
    from common import knobs
    from common import plan as plan_module

    broken = tuple(replace(k, paths=("critic.optim.lr",)) if k.name == knob_name else k for k in knobs.RL_KNOBS)
    knobs.RL_KNOBS = broken
    plan_module.RL_KNOBS = broken


def run_case(case: dict, out: Path) -> int:
    from common import knobs, launch
    from common import plan as plan_module

    env = train_sh_env(case["method"], case.get("env", {}), out)
    saved_env = dict(os.environ)
    saved_knobs = knobs.RL_KNOBS
    log = out / f"{case['name']}.log"
    with open(log, "w") as handle:
        sys.stdout.flush()
        sys.stderr.flush()
        old_out, old_err = os.dup(1), os.dup(2)
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            os.environ.clear()
            os.environ.update(env)
            os.chdir(REPO_ROOT)
            if case.get("break_knob"):
                _break(case["break_knob"])
            try:
                code = launch.main([str(REPO_ROOT / case["method"])])
            except SystemExit as exc:
                code = int(exc.code or 0)
            except BaseException as exc:  # keep the next case running; the log has the traceback
                import traceback

                traceback.print_exc()
                print(f"runner: {type(exc).__name__}: {exc}")
                code = 99
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(old_out, 1)
            os.dup2(old_err, 2)
            os.close(old_out)
            os.close(old_err)
            os.environ.clear()
            os.environ.update(saved_env)
            knobs.RL_KNOBS = saved_knobs
            plan_module.RL_KNOBS = saved_knobs
    (out / f"{case['name']}.rc").write_text(str(code))
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cases = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        run_case(case, out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    raise SystemExit(main())


def compose(method: str, env: dict[str, str], work: Path, extra_args: tuple[str, ...] = ()):
    """(plan, cfg) of `<method>/train.sh` with env, composed in this process (no preflight, no GPU)."""
    from common.launch import compose_config, make_plan

    work.mkdir(parents=True, exist_ok=True)
    full = train_sh_env(method, {"OUTPUT_DIR": str(work / "outputs"), **env}, work)
    plan = make_plan(REPO_ROOT / method, full, list(extra_args), detect=lambda: (0, "no GPU (test)"))
    return plan, compose_config(plan)
