"""REHEARSAL=1: one real training step of a launch's exact config, on the CPU, through verl's engines.

    REHEARSAL=1 ./grpo/train.sh                          # the launch config, one step, on the CPU
    REHEARSAL=1 REHEARSAL_MODEL=tiny ./ppo/train.sh      # a random shrunk model of MODEL_PATH's layout

Offers:
- rehearse(plan, cfg, env, out=print) -> exit code: takes the launcher's Plan and the composed,
  checked config (common.launch make_plan / compose_config / check_config) and runs, in this
  process, without Ray and without a GPU: verl's dataset, a rollout stand-in (transformers'
  generate on the actor's weights; vLLM/SGLang need a GPU), verl's reward manager, advantage
  estimator and FSDP training engines (actor, reference, critic; SFT: verl's SFT trainer), one
  optimizer step, a checkpoint by verl's checkpoint manager, the merge to Hugging Face format and
  ./test.sh scoring the merged model on a few VAL_DATA rows. Then the knob table: the values inside
  the engines verl built next to the config block's; a mismatch fails naming the knob.
  Exit 0 when everything ran and every knob arrived; 1 when a piece broke or a knob did not arrive
  (the message names which); 2 for a bad rehearsal knob.

Everything is written under <run folder>/rehearsal/ (common/rehearsal/settings.py); a real run's
checkpoints, metrics and run.json are not touched. Modules: settings (what changes and why),
device (verl on the CPU), tiny (REHEARSAL_MODEL=tiny), engines, rollout (the stand-in), reward,
rl (PPO/GRPO/DAPO/GSPO step), sft (SFT step), knob_table, export (merge + test.sh).
"""

from __future__ import annotations

import os
import sys
import time
import traceback


def _say(out):
    def say(message: str) -> None:
        out(message)
        sys.stdout.flush()

    return say


def rehearse(plan, cfg, env: dict[str, str] | None = None, out=print) -> int:
    """Run the rehearsal for a checked launch plan; returns the exit code (0 = trained and every knob arrived)."""
    from common.knobs import ConfigError
    from common.rehearsal import settings as settings_mod

    env = dict(os.environ if env is None else env)
    say = _say(out)
    try:
        settings = settings_mod.Settings.from_env(env, plan.run_dir)
    except ConfigError as exc:
        say(f"[{plan.method}] rehearsal: {exc}")
        return 2
    started = time.monotonic()
    say(f"[rehearsal] {plan.method}: {settings.steps} real training step(s) of the launch config on the CPU; "
        f"outputs in {settings.folder}")
    try:
        from common.rehearsal import device

        # The rehearsal's own folder starts empty: a merged model cached from an earlier rehearsal
        # would otherwise be reused for this one's checkpoint.
        import shutil

        shutil.rmtree(settings.folder, ignore_errors=True)
        settings.folder.mkdir(parents=True, exist_ok=True)
        prepared, changes = settings_mod.prepare(plan, cfg, settings)
        changes = device.use_cpu() + changes
        for change in changes:
            say(f"[rehearsal] changed for the CPU: {change}")
        from omegaconf import OmegaConf

        # verl's workers edit the config they are given (ActorRolloutRefWorker.init_model pops the
        # reference's log_prob_* keys): the knob table reads a copy taken before.
        expected = OmegaConf.create(OmegaConf.to_container(prepared))
        with device.process_group():
            if plan.trainer == "sft":
                from common.rehearsal.sft import run_sft

                result = run_sft(plan, prepared, settings, say)
            else:
                from common.rehearsal.rl import run_rl
                from common.rehearsal.rollout import STAND_IN_NOTE

                say(f"[rehearsal] {STAND_IN_NOTE}")
                result = run_rl(plan, prepared, settings, say)
            from common.rehearsal import knob_table

            rows = knob_table.observe(plan, expected, env, result)
        code = knob_table.report(rows, say)
        from common.rehearsal import export

        code = max(code, export.merge_and_score(plan, prepared, settings, result, say))
    except ConfigError as exc:
        say(f"[{plan.method}] rehearsal: {exc}")
        return 2
    except Exception as exc:
        say(traceback.format_exc())
        say(f"[{plan.method}] rehearsal FAILED: {type(exc).__name__}: {exc}")
        return 1
    verdict = "PASSED" if code == 0 else "FAILED"
    say(f"[rehearsal] {plan.method} {verdict} in {time.monotonic() - started:.0f}s")
    return code
