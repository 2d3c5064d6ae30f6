"""REHEARSAL=1: one real training step of a launch's exact config, on the CPU, through verl's engines.

    REHEARSAL=1 ./grpo/train.sh                          # the launch config, one step, on the CPU
    REHEARSAL=1 REHEARSAL_MODEL=tiny ./ppo/train.sh      # a random shrunk model of MODEL_PATH's layout

Offers:
- stage(name): a context that labels an exception with the stage it broke in (printed on failure).
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

import contextlib
import io
import os
import re
import sys
import time
import traceback


# Environment variables whose values never reach the console (API keys, tokens, passwords).
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL)S?$", re.IGNORECASE)


class _SecretMask(io.TextIOBase):
    """A text stream writing through to another with secret environment values replaced by ***:
    verl's pieces print configs and messages straight to stdout in this process."""

    def __init__(self, stream, secrets: list[str]):
        self.stream, self.secrets = stream, secrets

    def write(self, text: str) -> int:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()


@contextlib.contextmanager
def _masked_output(env: dict[str, str]):
    secrets = sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and v and len(v) >= 4}, key=len, reverse=True)
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _SecretMask(old_out, secrets), _SecretMask(old_err, secrets)
    try:
        yield secrets
    finally:
        sys.stdout, sys.stderr = old_out, old_err


@contextlib.contextmanager
def stage(name: str):
    """Label an exception raised inside with the rehearsal stage it broke (the failure line names it)."""
    try:
        yield
    except Exception as exc:
        if not any(note.startswith("rehearsal stage:") for note in getattr(exc, "__notes__", [])):
            exc.add_note(f"rehearsal stage: {name}")
        raise


def _stage_of(exc: BaseException) -> str:
    notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("rehearsal stage:")]
    return notes[0].split(":", 1)[1].strip() if notes else "setup"


def _say(out):
    def say(message: str) -> None:
        out(message)
        sys.stdout.flush()

    return say


def _numbers(metrics: dict) -> dict:
    """A metrics dict with plain floats (verl's values may be numpy scalars or 0-d tensors)."""
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _finite(metrics: list[dict]) -> list[str]:
    """Loss and gradient-norm metrics that are NaN or infinite."""
    import math

    names = ("loss", "pg_loss", "vf_loss", "kl_loss", "grad_norm")
    return sorted({k for m in metrics for k, v in _numbers(m).items() if k.rsplit("/", 1)[-1] in names and not math.isfinite(v)})


def _write_summary(folder, summary: dict, secrets: list[str]) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "summary.json"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(summary, indent=1, default=str)
    for secret in secrets:
        text = text.replace(secret, "***")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def rehearse(plan, cfg, env: dict[str, str] | None = None, out=print) -> int:
    """Run the rehearsal for a checked launch plan; returns the exit code (0 = trained and every knob arrived).

    Secret environment values (names ending in KEY, TOKEN, SECRET, PASSWORD, CREDENTIAL) are masked
    in everything printed meanwhile."""
    env = dict(os.environ if env is None else env)
    with _masked_output(env) as secrets:
        return _rehearse(plan, cfg, env, out, secrets)


def _rehearse(plan, cfg, env: dict[str, str], out, secrets: list[str]) -> int:
    """The rehearsal itself (see rehearse).

    Also writes <run folder>/rehearsal/summary.json: exit code, what changed for the CPU, the metrics of
    each step, the knob table, whether the weights moved, the DAPO groups kept, the merged model and
    the test.sh report."""
    from common.knobs import ConfigError
    from common.rehearsal import settings as settings_mod

    say = _say(out)
    try:
        settings = settings_mod.Settings.from_env(env, plan.run_dir)
    except ConfigError as exc:
        say(f"[{plan.method}] rehearsal: {exc}")
        return 2
    started = time.monotonic()
    where = "the CPU" if settings.device == "cpu" else "a GPU (REHEARSAL_DEVICE=cuda)"
    say(f"[rehearsal] {plan.method}: {settings.steps} real training step(s) of the launch config on {where}; "
        f"outputs in {settings.folder}")
    summary: dict = {"method": plan.method, "steps": settings.steps, "exit_code": 1}
    code = 1
    try:
        import shutil

        from omegaconf import OmegaConf

        from common.rehearsal import device, export, knob_table

        # The rehearsal's own folder starts empty: a merged model cached from an earlier rehearsal
        # would otherwise be reused for this one's checkpoint.
        shutil.rmtree(settings.folder, ignore_errors=True)
        settings.folder.mkdir(parents=True, exist_ok=True)
        prepared, changes = settings_mod.prepare(plan, cfg, settings)
        changes = (device.use_cpu() if settings.device == "cpu" else device.use_cuda()) + changes
        for change in changes:
            say(f"{settings.changed} {change}")
        # verl's workers edit the config they are given (ActorRolloutRefWorker.init_model pops the
        # reference's log_prob_* keys): the knob table reads a copy taken before.
        expected = OmegaConf.create(OmegaConf.to_container(prepared))
        with device.process_group(settings.device):
            if plan.trainer == "sft":
                from common.rehearsal.sft import run_sft

                result = run_sft(plan, prepared, settings, say)
            else:
                from common.rehearsal.rl import run_rl
                from common.rehearsal.rollout import STAND_IN_NOTE

                say(f"[rehearsal] {STAND_IN_NOTE}")
                changes.append(STAND_IN_NOTE)
                result = run_rl(plan, prepared, settings, say)
            with stage("the knob table"):
                rows = knob_table.observe(plan, expected, env, result)
        changes += getattr(getattr(result, "host", None), "notes", [])
        summary.update(changes=changes, metrics=[_numbers(m) for m in result.metrics],
                       knob_table=[{**vars(r), "ok": r.ok} for r in rows],
                       parameters=dict(zip(("changed", "compared", "largest_change"), result.changed or (0, 0, 0.0))),
                       dapo=getattr(result, "dapo", None), pad_share=getattr(result, "pad_share", None),
                       reward_model_scored=getattr(result, "reward_model_scored", None),
                       checkpoint=str(result.checkpoint) if result.checkpoint else None)
        code = knob_table.report(rows, say)
        broken = _finite(result.metrics)
        # The engines are done: free their weights, gradients and optimizer states before the
        # merge and test.sh load the model again (for a 0.5B model, ~10 GB of host memory).
        for heavy in ("host", "engine", "rollout", "recorder"):
            if hasattr(result, heavy):
                setattr(result, heavy, None)
        import gc

        gc.collect()
        if broken:
            say(f"[rehearsal] not finite after the step: {', '.join(broken)}")
            code = 1
        with stage("the merge and test.sh"):
            export_code, exported = export.merge_and_score(plan, prepared, settings, result, say)
        summary.update(exported)
        code = max(code, export_code)
    except ConfigError as exc:
        say(f"[{plan.method}] rehearsal: {exc}")
        summary["error"] = str(exc)
        code = 2
    except Exception as exc:
        say(traceback.format_exc())
        say(f"[{plan.method}] rehearsal FAILED in {_stage_of(exc)}: {type(exc).__name__}: {exc}")
        summary["error"] = f"{type(exc).__name__}: {exc}"
        code = 1
    summary.update(exit_code=code, seconds=round(time.monotonic() - started, 1))
    _write_summary(settings.folder, summary, secrets)
    verdict = "PASSED" if code == 0 else "FAILED"
    say(f"[rehearsal] {plan.method} {verdict} in {time.monotonic() - started:.0f}s (summary: {settings.folder / 'summary.json'})")
    return code
