"""The shared launcher behind every method's train.sh.

    DRY_RUN=1 ./grpo/train.sh                       # what train.sh runs; prints, checks, exits 0
    ./grpo/train.sh --help                          # the config block's knobs, their values and comments
    .venv/bin/python -m common.launch grpo/ [hydra.override=value ...]

A train.sh exports its config block (NAME=value variables) and execs common/launch.sh, which runs
this module with the method folder and the pass-through arguments. This module then
1. turns the config-block variables into Hydra overrides (common/knobs.py maps each one),
2. composes the method's YAML with verl's own Hydra configs and runs verl's own checks
   (validate_config and the config dataclasses), so a config verl would reject is rejected here,
   in seconds, naming the variable to change,
3. runs the preflight (common/preflight.py): what verl checks only inside its workers;
4. with DRY_RUN=1 prints the preflight, the knobs that differ from the block's defaults and the
   exact command, writes the full resolved config to <run>/dry_run.yaml (DRY_RUN=full prints it
   too) and exits 0; otherwise checks that an NVIDIA GPU is present, locks the run folder and runs
   verl, tee-ing its output (or submits it to a Ray cluster).
With REHEARSAL=1 it trains one real step of the same config on the CPU instead (common/rehearsal/).
Nothing is written before every knob has been checked; progress goes to stderr as it happens.

Run folder (OUTPUT_DIR/EXPERIMENT_NAME, default outputs/<experiment>/):
    run.json                 method, project, model, total steps, wandb run id, one entry per launch
    config.yaml              the resolved config of the latest launch (secrets redacted)
    dry_run.yaml             the resolved config of the latest DRY_RUN
    train.log                console output of every launch, appended
    metrics/<launch>.jsonl   verl's file logger, one file per launch (verl opens it with "wb")
    rollout/ validation/     generations verl dumps during training and validation
    reward_errors.jsonl      reward calls the guard scored 0 (common/reward_guard.py)
    plots/                   PNGs of the main curves, written at the end of every launch
    checkpoints/             verl checkpoints; a relaunch with the same name resumes from here
                             (best/: the best KEEP_BEST_METRIC checkpoint, hard-linked)
    .launch.lock             held by the live launch; a second one of the same run is refused
    rehearsal/               REHEARSAL=1's own checkpoint, merged model and report
    tensorboard/             when USE_TENSORBOARD=true
    wandb/                   wandb's local files when USE_WANDB=true (offline runs: wandb sync them)
    hydra/<launch>/          Hydra's record of each launch (the composed config and overrides)

Offers:
- main(argv): the command line used by common/launch.sh: the story of one launch, top to bottom.
- make_plan, compose_config, check_config: the first three steps, for tests and tools
  (from common/plan.py and common/verl_config.py).

Below it, each step in its own module:
    plan.py         config block -> Plan (overrides, paths, run folder, command)
    verl_config.py  verl's Hydra composition and verl's own checks
    preflight.py    what verl checks only inside its workers (common/checks/)
    printout.py     the dry run's printout; run_folder.py: run.json, config.yaml; redaction.py: secrets
    local_run.py    verl on this machine, teed into train.log, with the training callbacks
    ray_submit.py   NNODES > 1 or RAY_ADDRESS: the run as a Ray job (ray_cluster.py: the cluster)
    rehearsal/      REHEARSAL=1: one real training step on the CPU through verl's own engines
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from common import block, local_run, preflight, ray_cluster, ray_submit, run_folder
from common.knobs import ConfigError, known_names, parse_bool
from common.plan import make_plan
from common.printout import dry_run_text, shell_command
from common.redaction import redact
from common.verl_config import check_config, compose_config

__all__ = ["main", "make_plan", "compose_config", "check_config"]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv else 2
    method_dir, extra_args = Path(argv[0]).resolve(), argv[1:]
    method = method_dir.name
    env = dict(os.environ)
    if any(arg in {"-h", "--help"} for arg in extra_args):
        print(redact(block.help_text(method_dir, env)))
        return 0
    # --json: the preflight report as one JSON document on stdout, nothing launched; not a Hydra argument.
    as_json = "--json" in extra_args
    extra_args = [arg for arg in extra_args if arg != "--json"]

    def progress(text: str) -> None:
        print(f"[{method}] {text}", file=sys.stderr, flush=True)

    plan = None
    try:
        dry_mode = _dry_run_mode(env, as_json)
        force = parse_bool("FORCE", env.get("FORCE") or "0")
        rehearsal = parse_bool("REHEARSAL", env.get("REHEARSAL") or "0") and not dry_mode
        # In JSON mode anything verl or Hydra prints goes to stderr: stdout carries the document only.
        with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            _check_arguments(method, extra_args)
            # 1. the config block -> a plan; 2. verl composes it; 3. verl's own checks; 4. ours.
            plan = make_plan(method_dir, env, extra_args, detect=ray_cluster.gpu_detector(env))
            progress("composing the config with verl's own Hydra configs ...")
            cfg = compose_config(plan)
            progress("running verl's config checks ...")
            notes = check_config(plan, cfg)
            progress("preflight: batch sizes, data, reward, model, memory ...")
            plan.preflight = preflight.run_checks(plan, cfg, gpus_found=plan.gpus_found)
            # FORCE=1 launches anyway; the failures are printed as a warning below, never silently.
            if any(r.failed for r in plan.preflight) and not force:
                raise ConfigError(preflight.failure_message(plan.preflight, plan.method))
    except (ConfigError, OSError) as exc:  # OSError: a file that cannot be read, named in the message
        if as_json:
            results = plan.preflight if plan is not None else []
            print(preflight.to_json(results, plan, error=redact(str(exc))))
        print(f"[{method}] config error: {redact(str(exc))}", file=sys.stderr)
        return 2
    if as_json:
        print(preflight.to_json(plan.preflight, plan, force=force, notes=[redact(n) for n in notes]))
        return 0
    report = preflight.format_table(plan.preflight) + "\n" + preflight.verdict(plan.preflight, force)
    if force and any(r.failed for r in plan.preflight):
        print(f"[{method}] WARNING: FORCE=1 overrides failed checks:\n{preflight.failure_message(plan.preflight, method)}",
              file=sys.stderr)
    if rehearsal:
        # REHEARSAL=1: one real training step of this config on the CPU (common/rehearsal/); no GPU needed.
        from common.rehearsal import rehearse

        for note in notes:
            print(f"[{method}] note: {redact(note)}")
        print(redact(report))
        sys.stdout.flush()
        return rehearse(plan, cfg, env)
    printout = None
    if dry_mode:
        # 5. a dry run: the full config goes to a file, the screen gets what a person reads.
        printout = {"changed": block.changed_knobs(method_dir, env, known_names(plan.trainer)),
                    "config_file": run_folder.write_dry_run_config(plan, cfg), "full": dry_mode == "full"}
    if ray_cluster.wants_cluster(env):
        # NNODES > 1 or RAY_ADDRESS: submit to the Ray cluster instead of running here.
        return ray_submit.submit(plan, cfg, notes, env, bool(dry_mode), report=redact(report), printout=printout)
    if dry_mode:
        extra = (f"# run folder: {plan.run_dir}",)
        print(redact(dry_run_text(plan, cfg, notes, report, shell_command(plan), extra, **printout)))
        # The verdict again at the bottom, where the eye lands.
        print(f"# preflight {preflight.verdict(plan.preflight, force)}")
        print(f"# verl's config checks passed; DRY_RUN={env.get('DRY_RUN', '1')}, nothing launched")
        return 0
    if plan.gpus_found == 0:
        print(
            f"[{method}] no NVIDIA GPU found ({plan.gpus_how}); verl needs one to train.\n"
            f"  To check the config without a GPU: DRY_RUN=1 {_train_sh_from(method_dir, env.get('LAUNCH_CWD'))}\n"
            f"  To train one real step of it on the CPU: REHEARSAL=1 {_train_sh_from(method_dir, env.get('LAUNCH_CWD'))}",
            file=sys.stderr,
        )
        return 1
    for note in notes:
        print(f"[{method}] note: {redact(note)}")
    print(redact(report))
    try:
        return local_run.run(plan, cfg)
    except ConfigError as exc:
        print(f"[{method}] {exc}", file=sys.stderr)
        return 1


def _check_arguments(method: str, extra_args: list[str]) -> None:
    """What train.sh takes after its name: --help, --json and Hydra overrides (key=value, +key=value,
    ~key). Anything else would reach Hydra's parser, whose words (LexerNoViableAltException) say little."""
    bad = [arg for arg in extra_args if arg.startswith("-") or ("=" not in arg and not arg.startswith("~"))]
    if bad:
        raise ConfigError(
            f"{' '.join(repr(a) for a in bad)}: not an option or a key=value override. {method}/train.sh takes --help, "
            f"--json and verl keys as Hydra overrides, e.g. ./{method}/train.sh trainer.total_epochs=1 "
            "(knobs go before the script: ROLLOUT_N=8 ./train.sh)"
        )


def _dry_run_mode(env: dict[str, str], as_json: bool) -> str:
    """'' (a launch), '1' (the dry run's summary) or 'full' (the summary and the whole resolved config)."""
    raw = (env.get("DRY_RUN") or "0").strip().lower()
    if raw == "full":
        return "full"
    return "1" if parse_bool("DRY_RUN", raw) or as_json else ""


def _train_sh_from(method_dir: Path, cwd: str | None) -> str:
    """The train.sh command as typed from where the user stands (./train.sh inside grpo/)."""
    path = os.path.relpath(method_dir / "train.sh", cwd or os.getcwd())
    return path if path.startswith(("/", "../")) else f"./{path}"


if __name__ == "__main__":
    sys.exit(main())
