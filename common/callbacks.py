"""Training callbacks: the launcher watches verl's metrics stream and checkpoints while it trains.

    ./grpo/train.sh                      # every launch runs the watcher; knobs below in the config block
    STOP_ON_NAN=true KL_STOP_THRESHOLD=0.5 KL_STOP_STEPS=5 EVAL_AFTER_TRAIN=1 ./grpo/train.sh

Offers:
- Settings.from_env(env): the knobs (defaults in brackets)
    STOP_ON_NAN [false]          stop the run when a loss or grad norm is NaN/inf (always alerted)
    KL_STOP_THRESHOLD [0 = off]  stop when the KL to the reference stays above this ...
    KL_STOP_STEPS [5]            ... for this many consecutive logged steps
    EXPORT_AFTER_TRAIN [true]    merge the last checkpoint to Hugging Face format at the end
    EVAL_AFTER_TRAIN [false]     then run ./test.sh --batch on the validation file into an .xlsx
    CALLBACKS_FILE [unset]       a .py defining any of on_step(step, metrics, ctx),
                                 on_checkpoint(step, path, ctx), on_end(exit_code, ctx)
    ALERTS_CONFIG [monitor/config.yaml]  thresholds for monitor.alerts (its `alerts:` section)
    KEEP_BEST_METRIC [unset]     a validation metric (val_acc, val_reward or a verl key such as
                                 val-core/openai/gsm8k/acc/mean@1): the checkpoint of its best value is
                                 kept in checkpoints/best/ (common/best_checkpoint.py), whatever
                                 MAX_CKPT_TO_KEEP removes
    KEEP_BEST_MODE [inferred]    max or min (acc/score/reward -> max, loss -> min)
    EXPORT_CHECKPOINT [best with KEEP_BEST_METRIC, else last]  which checkpoint the end-of-run export takes
    DYNAMIC_SAMPLING_STOP_SHARE [0.95, 0 = off]  DAPO: stop (after the next checkpoint) when dynamic
                                 sampling filters out at least this share of the prompt groups it
                                 generates (evicted / (evicted + train_batch_size)) ...
    DYNAMIC_SAMPLING_STOP_STEPS [5]  ... for this many consecutive steps
    DYNAMIC_SAMPLING_STALL_FACTOR [10, 0 = off]  DAPO: stop at once when no step arrives for this many
                                 times the median step time while the last step filtered heavily
                                 (share >= monitor/config.yaml alerts.dapo_filtered_share_max, 0.5):
                                 verl 0.9.1 regenerates filtered groups without a bound
- Context: what hooks get (run_dir, checkpoints_dir, metrics_file, val_file, settings, log(), request_stop()).
- Watcher(ctx, terminate): a thread that tails ctx.metrics_file (verl's file logger, one JSON line per
  step), notices new checkpoints (latest_checkpointed_iteration.txt), and calls the hooks; `poll()`
  does one pass (tests call it directly), `start()`/`stop()` run it in the background.
- builtin hooks: alerts (monitor.alerts.check_alerts, printed into the console log), NaN and KL stops.
- on_end(exit_code, ctx): export (the best or the last checkpoint) + evaluation, PNG plots of the main
  curves into <run_dir>/plots/ (monitor.plots.write_run_plots; a plotting failure is logged and
  changes nothing), the user's on_end.

Why the dynamic-sampling stop: verl 0.9.1's V1 replay buffer (trainer/ppo/v1/replay_buffer.py) drops
every prompt group whose responses all got the same reward and regenerates it until train_batch_size
groups with a signal are found; algorithm.filter_groups.max_num_gen_batches is ignored (only a warning,
trainer/ppo/v1/trainer_base.py). On data the policy always (or never) solves, one step regenerates
without end, and nothing is logged while it does: the stall bound catches that, the share bound
catches the steps that do finish at 20x their cost.

How a stop works (verl 0.9.1 has no stop signal): verl's V1 trainer (trainer/ppo/v1/trainer_base.py)
saves at `global_steps % save_freq == 0` and has no signal handler or ESI check (the ESI expiration
check, MLP_CURRENT_CAPACITY_BLOCK_EXPIRATION_TIMESTAMP, lives only in the legacy ray_trainer and is
read from the trainer's own environment, which a running process cannot be given). So a KL stop waits
for the next checkpoint verl writes (the tracker file moves to a step >= the step that triggered)
and then interrupts verl (SIGINT, then SIGTERM after 60 s): nothing trained is lost, and a relaunch
resumes from that checkpoint. A NaN stop interrupts at once: a checkpoint written after a NaN
update holds NaN weights, so the one to resume from is the last one before it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common import best_checkpoint
from common.knobs import ConfigError, parse_bool

REPO_ROOT = Path(__file__).resolve().parents[1]
TRACKER = "latest_checkpointed_iteration.txt"
# KL keys verl logs, in the order they are preferred (kl loss term, in-reward penalty).
KL_KEYS = ("actor/kl_loss", "actor/reward_kl_penalty")
# Seconds between two polls: a step takes 30 s to minutes, so 5 s notices it promptly at no cost.
POLL_SECONDS = 5.0
# verl 0.9.1 V1 replay buffer: prompt groups dropped by dynamic sampling in one step (despite the name,
# it counts groups, summed over the buffer's polls; see monitor.alerts.DAPO_EVICTED_KEY).
DAPO_EVICTED_KEY = "training/filter_groups/evicted_samples"
# A step "filtered heavily" (for the stall bound) above this share unless monitor/config.yaml says otherwise.
HEAVY_FILTER_SHARE = 0.5


@dataclass
class Settings:
    stop_on_nan: bool = False
    kl_stop_threshold: float = 0.0
    kl_stop_steps: int = 5
    export_after_train: bool = True
    eval_after_train: bool = False
    callbacks_file: str | None = None
    alerts_config: str | None = None
    keep_best_metric: str | None = None
    keep_best_mode: str = "max"
    export_checkpoint: str = "last"  # best | last
    dynamic_sampling_stop_share: float = 0.95
    dynamic_sampling_stop_steps: int = 5
    dynamic_sampling_stall_factor: float = 10.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        def num(name, default, kind):
            raw = (env.get(name) or "").strip()
            try:
                return kind(raw) if raw else default
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not {'an integer' if kind is int else 'a number'}") from None

        metric, mode, export = keep_best_settings(env)
        from common.knobs import ConfigError

        share = num("DYNAMIC_SAMPLING_STOP_SHARE", 0.95, float)
        if not 0 <= share <= 1:
            raise ConfigError(f"DYNAMIC_SAMPLING_STOP_SHARE={share:g} must be a share in [0, 1] (0 turns the stop off; "
                              "0.95 stops when 19 of 20 generated prompt groups are filtered out)")
        ds_steps = num("DYNAMIC_SAMPLING_STOP_STEPS", 5, int)
        if ds_steps < 1:
            raise ConfigError(f"DYNAMIC_SAMPLING_STOP_STEPS={ds_steps} must be at least 1 (consecutive steps)")
        stall = num("DYNAMIC_SAMPLING_STALL_FACTOR", 10.0, float)
        if stall < 0 or stall != stall:
            raise ConfigError(f"DYNAMIC_SAMPLING_STALL_FACTOR={stall:g} must be >= 0 (0 turns the stall stop off; "
                              "10 stops after 10x the median step time without a step)")
        return cls(
            stop_on_nan=parse_bool("STOP_ON_NAN", env.get("STOP_ON_NAN") or "false"),
            kl_stop_threshold=num("KL_STOP_THRESHOLD", 0.0, float),
            kl_stop_steps=num("KL_STOP_STEPS", 5, int),
            export_after_train=parse_bool("EXPORT_AFTER_TRAIN", env.get("EXPORT_AFTER_TRAIN") or "true"),
            eval_after_train=parse_bool("EVAL_AFTER_TRAIN", env.get("EVAL_AFTER_TRAIN") or "false"),
            callbacks_file=env.get("CALLBACKS_FILE") or None,
            alerts_config=env.get("ALERTS_CONFIG") or None,
            keep_best_metric=metric,
            keep_best_mode=mode,
            export_checkpoint=export,
            dynamic_sampling_stop_share=share,
            dynamic_sampling_stop_steps=ds_steps,
            dynamic_sampling_stall_factor=stall,
        )


def keep_best_settings(env: dict[str, str]) -> tuple[str | None, str, str]:
    """(KEEP_BEST_METRIC or None, its mode max|min, EXPORT_CHECKPOINT best|last), each checked."""
    metric = (env.get("KEEP_BEST_METRIC") or "").strip() or None
    if metric and any(c.isspace() for c in metric):
        raise ConfigError(f"KEEP_BEST_METRIC={metric!r}: a metric key has no spaces (e.g. val_acc or "
                          "val-core/openai/gsm8k/acc/mean@1)")
    raw_mode = (env.get("KEEP_BEST_MODE") or "").strip().lower()
    if raw_mode not in ("", "auto", "max", "min"):
        raise ConfigError(f"KEEP_BEST_MODE={raw_mode!r} is not one of: max, min, auto")
    mode = raw_mode if raw_mode in ("max", "min") else (best_checkpoint.infer_mode(metric) if metric else "max")
    if mode is None:
        raise ConfigError(f"KEEP_BEST_MODE: cannot tell from its name whether a higher or a lower KEEP_BEST_METRIC={metric} "
                          "is better; set KEEP_BEST_MODE=max or KEEP_BEST_MODE=min")
    export = (env.get("EXPORT_CHECKPOINT") or "").strip().lower() or ("best" if metric else "last")
    if export not in ("best", "last"):
        raise ConfigError(f"EXPORT_CHECKPOINT={export!r} is not one of: best, last")
    if export == "best" and not metric:
        raise ConfigError("EXPORT_CHECKPOINT=best needs KEEP_BEST_METRIC (the validation metric that defines the best, "
                          "e.g. KEEP_BEST_METRIC=val_acc)")
    return metric, mode, export


@dataclass
class Context:
    run_dir: Path
    checkpoints_dir: Path
    metrics_file: Path
    settings: Settings
    val_file: str | None = None
    save_freq: int = -1
    test_freq: int = -1
    resume_mode: str = "auto"
    train_batch_size: int | None = None  # prompts per step (data.train_batch_size)
    rollout_n: int | None = None  # responses per prompt (actor_rollout_ref.rollout.n)
    out: Callable[[str], None] = print
    rows: list[dict] = field(default_factory=list)  # every metrics record so far ({"step", "data"})
    stop_reason: str | None = None
    stop_at_step: int | None = None  # stop once a checkpoint at or after this step exists
    stopped: bool = False
    last_checkpoint: int | None = None
    best: best_checkpoint.BestRecord | None = None  # the kept best checkpoint (KEEP_BEST_METRIC)
    user: dict = field(default_factory=dict)  # free space for the user's hooks

    def log(self, message: str) -> None:
        self.out(f"[callbacks] {message}")

    def request_stop(self, reason: str, step: int, wait_for_checkpoint: bool = True) -> None:
        """Ask the watcher to stop the run (after the next checkpoint unless wait_for_checkpoint=False)."""
        if self.stop_reason is not None:
            return
        self.stop_reason = reason
        self.stop_at_step = step if wait_for_checkpoint and self.save_freq > 0 else None
        when = (f"after the next checkpoint (SAVE_FREQ={self.save_freq})" if self.stop_at_step is not None
                else "now")
        self.log(f"stop requested at step {step}: {reason}; stopping {when}")


def load_user_hooks(path: str | None) -> dict[str, Callable]:
    """on_step / on_checkpoint / on_end from a user's .py file; errors name the file."""
    if not path:
        return {}
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a folder, not a .py file" if file.is_dir() else "no such file"
        raise ConfigError(f"CALLBACKS_FILE={path}: {what}; point CALLBACKS_FILE at a .py file (see common/callbacks.py)")
    spec = importlib.util.spec_from_file_location(f"user_callbacks_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"CALLBACKS_FILE={path}: importing it failed: {type(exc).__name__}: {exc}") from None
    hooks = {name: getattr(module, name) for name in ("on_step", "on_checkpoint", "on_end") if callable(getattr(module, name, None))}
    if not hooks:
        raise ConfigError(f"CALLBACKS_FILE={path} defines none of on_step, on_checkpoint, on_end")
    return hooks


def _alert_thresholds(settings: Settings) -> dict:
    path = Path(settings.alerts_config) if settings.alerts_config else REPO_ROOT / "monitor" / "config.yaml"
    try:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, ValueError):
        return {}
    section = data.get("alerts") or data.get("thresholds") or {}
    return section if isinstance(section, dict) else {}


def _finite(value) -> bool:
    """verl's file logger writes with orjson, which turns NaN and inf into null: null is not finite."""
    if value is None:
        return False
    return not isinstance(value, (int, float)) or math.isfinite(value)


def _tracker_step(checkpoints_dir: Path) -> int | None:
    """The step in verl's latest_checkpointed_iteration.txt (written after a save completes), or None."""
    try:
        text = (checkpoints_dir / TRACKER).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class Watcher:
    """Tails the metrics JSONL and the checkpoint tracker; calls the built-in and user hooks."""

    def __init__(self, ctx: Context, terminate: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.ctx = ctx
        self.terminate = terminate or (lambda: None)
        self.user = load_user_hooks(ctx.settings.callbacks_file)
        self.thresholds = _alert_thresholds(ctx.settings)
        self.clock = clock
        self._offset = 0
        self._partial = b""
        self._seen_alerts: set = set()
        self._kl_run = 0
        self._ds_run = 0  # consecutive steps with a filtered share >= DYNAMIC_SAMPLING_STOP_SHARE
        self._last_share: float | None = None
        self._last_step_at: float | None = None  # clock() when the last step record arrived
        self._step_seconds: list[float] = []  # timing_s/step of recent steps
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        # A new best score whose checkpoint is not complete yet: (step, value), linked once it is.
        self._pending_best: tuple[int, float] | None = None
        if ctx.settings.keep_best_metric:
            self._start_best()

    # -- the best checkpoint
    def _start_best(self) -> None:
        ctx = self.ctx
        ctx.best = best_checkpoint.read_best(ctx.checkpoints_dir)
        if ctx.best is None:
            return
        if ctx.best.metric != ctx.settings.keep_best_metric or ctx.best.mode != ctx.settings.keep_best_mode:
            ctx.log(f"best checkpoint: {ctx.best.metric} ({ctx.best.mode}) was kept until now; "
                    f"KEEP_BEST_METRIC={ctx.settings.keep_best_metric} ({ctx.settings.keep_best_mode}) starts afresh")
            ctx.best = None
            return
        if ctx.resume_mode != "auto":
            # This launch may write the same global_step_N again; torch.save truncates the existing file,
            # which the hard link in best/ would follow: give best/ its own copies first.
            copied = best_checkpoint.detach(ctx.checkpoints_dir)
            if copied:
                ctx.log(f"best checkpoint: RESUME_MODE={ctx.resume_mode}: {copied} shared file(s) of "
                        f"{ctx.best.path(ctx.checkpoints_dir)} copied so verl cannot overwrite them")
        ctx.log(f"best checkpoint so far: step {ctx.best.step}, {ctx.best.metric}={ctx.best.value:g}")

    def _on_score(self, step: int, metrics: dict) -> None:
        settings = self.ctx.settings
        value = best_checkpoint.metric_value(settings.keep_best_metric, metrics)
        if value is None:
            return
        # An earlier score still waiting for its checkpoint is settled first: kept, or dropped when verl
        # has saved past it, so that it never blocks a lower score whose checkpoint exists.
        self._link_pending_best()
        current = self.ctx.best.value if self.ctx.best else None
        if self._pending_best and best_checkpoint.is_better(self._pending_best[1], current, settings.keep_best_mode):
            current = self._pending_best[1]
        if best_checkpoint.is_better(value, current, settings.keep_best_mode):
            self._pending_best = (step, value)
            self._link_pending_best()

    def _link_pending_best(self) -> None:
        if self._pending_best is None:
            return
        ctx = self.ctx
        step, value = self._pending_best
        latest = _tracker_step(ctx.checkpoints_dir)
        saved = ctx.checkpoints_dir / f"global_step_{step}"
        if latest is None or latest < step or not saved.is_dir():
            if latest is not None and latest > step:  # verl has moved past that step without saving it
                self._pending_best = None
                ctx.log(f"step {step}: {ctx.settings.keep_best_metric}={value:g} is the best so far, but no checkpoint "
                        f"was saved at that step (SAVE_FREQ={ctx.save_freq}, TEST_FREQ={ctx.test_freq}); it cannot be kept")
            return
        self._pending_best = None
        try:
            ctx.best = best_checkpoint.keep(ctx.checkpoints_dir, step, ctx.settings.keep_best_metric, value,
                                            ctx.settings.keep_best_mode)
        except OSError as exc:
            ctx.log(f"best checkpoint: could not keep {saved}: {type(exc).__name__}: {exc}")
            return
        how = (f"{ctx.best.linked_files} file(s) hard-linked" if not ctx.best.copied_files
               else f"{ctx.best.copied_files} file(s) copied (no hard links on this filesystem)")
        ctx.log(f"new best checkpoint: step {step}, {ctx.settings.keep_best_metric}={value:g} -> "
                f"{ctx.best.path(ctx.checkpoints_dir)} ({how})")

    # -- the stream
    def _new_records(self) -> list[dict]:
        try:
            with open(self.ctx.metrics_file, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._offset:  # verl opened the file with "wb" again: start over
                    self._offset, self._partial = 0, b""
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # an incomplete last line waits for the next poll
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "step" in rec:
                records.append(rec)
        return records

    def poll(self) -> None:
        """One pass: new metric records, then a new checkpoint, then a pending best and a pending stop."""
        records = self._new_records()
        for rec in records:
            self.ctx.rows.append(rec)
            self._on_step(int(rec["step"]), rec.get("data") or {})
        if records:
            self._last_step_at = self.clock()
        self._check_stall()
        self._check_checkpoint()
        self._link_pending_best()
        self._maybe_stop()

    def _call_user(self, name: str, *args) -> None:
        fn = self.user.get(name)
        if fn is None:
            return
        try:
            fn(*args, self.ctx)
        except Exception as exc:  # a broken user hook is reported, never kills the run
            self.ctx.log(f"{self.ctx.settings.callbacks_file}: {name} raised {type(exc).__name__}: {exc}")

    def _on_step(self, step: int, metrics: dict) -> None:
        self._alerts()
        bad = sorted(k for k, v in metrics.items() if ("loss" in k or "grad_norm" in k) and not _finite(v))
        if bad:
            self.ctx.log(f"step {step}: non-finite {', '.join(bad)}")
            if self.ctx.settings.stop_on_nan:
                self.ctx.request_stop(f"NaN/inf in {', '.join(bad)} (STOP_ON_NAN=true)", step, wait_for_checkpoint=False)
        threshold = self.ctx.settings.kl_stop_threshold
        kl = next((metrics[k] for k in KL_KEYS if k in metrics), None)
        if threshold > 0 and isinstance(kl, (int, float)):
            self._kl_run = self._kl_run + 1 if kl > threshold else 0
            if self._kl_run >= self.ctx.settings.kl_stop_steps:
                self.ctx.request_stop(
                    f"KL {kl:.4g} above KL_STOP_THRESHOLD={threshold:g} for {self._kl_run} steps (KL_STOP_STEPS)", step
                )
        if self.ctx.settings.keep_best_metric:
            self._on_score(step, metrics)
        seconds = metrics.get("timing_s/step")
        if isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0:
            self._step_seconds = (self._step_seconds + [float(seconds)])[-20:]
        self._dynamic_sampling(step, metrics)
        self._call_user("on_step", step, metrics)

    def filtered_share(self, metrics: dict) -> float | None:
        """Share of the prompt groups generated for this step that DAPO filtered out; None when
        unknown (no batch size, or not a dynamic-sampling run: verl logs the count only then)."""
        batch = self.ctx.train_batch_size
        evicted = metrics.get(DAPO_EVICTED_KEY)
        if not batch:
            return None
        if not isinstance(evicted, (int, float)) or not math.isfinite(evicted):
            # A DAPO step that filtered nothing logs no count; other runs never log it.
            return 0.0 if self._last_share is not None else None
        evicted = max(0.0, float(evicted))
        return evicted / (evicted + batch)

    def _dynamic_sampling(self, step: int, metrics: dict) -> None:
        share = self.filtered_share(metrics)
        if share is None:
            return
        self._last_share = share
        limit = self.ctx.settings.dynamic_sampling_stop_share
        if limit <= 0:
            return
        self._ds_run = self._ds_run + 1 if share >= limit else 0
        if self._ds_run >= self.ctx.settings.dynamic_sampling_stop_steps:
            self.ctx.request_stop(
                f"dynamic sampling filtered out {share:.0%} of the prompt groups generated at step {step} and "
                f">= {limit:.0%} for {self._ds_run} consecutive steps (DYNAMIC_SAMPLING_STOP_SHARE={limit:g}, "
                f"DYNAMIC_SAMPLING_STOP_STEPS={self.ctx.settings.dynamic_sampling_stop_steps}): nearly every prompt "
                "is always solved or never solved, so each step regenerates many times. Use harder (or easier) data, "
                "raise ROLLOUT_N, or set DYNAMIC_SAMPLING=false; DYNAMIC_SAMPLING_STOP_SHARE=0 turns this stop off",
                step)

    def _check_stall(self) -> None:
        """No step for DYNAMIC_SAMPLING_STALL_FACTOR x the median step time after heavy filtering:
        verl is regenerating filtered groups without end. Stop now (nothing is being trained)."""
        factor = self.ctx.settings.dynamic_sampling_stall_factor
        if factor <= 0 or self._last_step_at is None or self._last_share is None or self.ctx.stop_reason:
            return
        heavy = float(self.thresholds.get("dapo_filtered_share_max", HEAVY_FILTER_SHARE))
        if self._last_share < heavy or not self._step_seconds:
            return
        median = statistics.median(self._step_seconds)
        waited = self.clock() - self._last_step_at
        if waited > factor * median:
            step = int(self.ctx.rows[-1]["step"]) if self.ctx.rows else 0
            self.ctx.request_stop(
                f"no step for {waited:.0f} s, more than DYNAMIC_SAMPLING_STALL_FACTOR={factor:g} x the median step time "
                f"({median:.0f} s), after step {step} filtered out {self._last_share:.0%} of its prompt groups: verl "
                "0.9.1 regenerates filtered groups without a bound (algorithm.filter_groups.max_num_gen_batches is "
                "ignored). Use harder (or easier) data, raise ROLLOUT_N, or set DYNAMIC_SAMPLING=false; "
                "DYNAMIC_SAMPLING_STALL_FACTOR=0 turns this stop off",
                step, wait_for_checkpoint=False)

    def _alerts(self) -> None:
        try:
            from monitor.alerts import check_alerts
        except ImportError:
            return
        try:
            run_config = {k: v for k, v in (("train_batch_size", self.ctx.train_batch_size),
                                            ("rollout_n", self.ctx.rollout_n)) if v}
            alerts = check_alerts(self.ctx.rows, self.thresholds, run_config)
        except Exception as exc:  # the dashboard's rules must not stop training
            self.ctx.log(f"alert rules failed: {type(exc).__name__}: {exc}")
            return
        for alert in alerts:
            key = (alert.name, getattr(alert, "metric", ""), alert.step)
            if key in self._seen_alerts:
                continue
            self._seen_alerts.add(key)
            self.ctx.log(f"ALERT {alert.severity} step {alert.step}: {alert.message} -> {alert.advice}")

    def _check_checkpoint(self) -> None:
        step = _tracker_step(self.ctx.checkpoints_dir)
        if step is None or step == self.ctx.last_checkpoint:
            return
        path = self.ctx.checkpoints_dir / f"global_step_{step}"
        if not path.is_dir():
            return
        self.ctx.last_checkpoint = step
        self.ctx.log(f"checkpoint saved: {path}")
        self._call_user("on_checkpoint", step, path)

    def _maybe_stop(self) -> None:
        ctx = self.ctx
        if ctx.stop_reason is None or ctx.stopped:
            return
        if ctx.stop_at_step is not None and (ctx.last_checkpoint is None or ctx.last_checkpoint < ctx.stop_at_step):
            return
        ctx.stopped = True
        where = f"; resume from {ctx.checkpoints_dir / f'global_step_{ctx.last_checkpoint}'}" if ctx.last_checkpoint else ""
        ctx.log(f"stopping the run: {ctx.stop_reason}{where}")
        self.terminate()

    # -- background thread
    def start(self) -> None:
        def loop():
            while not self._halt.wait(POLL_SECONDS):
                try:
                    self.poll()
                except Exception as exc:
                    self.ctx.log(f"watcher error: {type(exc).__name__}: {exc}")

        self._thread = threading.Thread(target=loop, name="callbacks-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.poll()  # the last lines verl wrote before it exited


def export_target(ctx: Context) -> tuple[Path, int | None, str] | None:
    """(folder to export, its step, what it is) for EXPORT_CHECKPOINT, or None when there is no checkpoint."""
    if ctx.settings.export_checkpoint == "best":
        record = best_checkpoint.read_best(ctx.checkpoints_dir)
        if record is not None:
            return (record.path(ctx.checkpoints_dir), record.step,
                    f"the best checkpoint (step {record.step}, {record.metric}={record.value:g})")
        ctx.log(f"EXPORT_CHECKPOINT=best: no best checkpoint was kept (no {ctx.settings.keep_best_metric} score at a "
                "checkpointed step); exporting the last one")
    step = _tracker_step(ctx.checkpoints_dir)
    if step is None:
        return None
    return ctx.checkpoints_dir, step, f"the last checkpoint (step {step})"


def export_and_evaluate(ctx: Context, python: str = sys.executable) -> dict:
    """Merge the best or last checkpoint (EXPORT_CHECKPOINT) to Hugging Face format; with EVAL_AFTER_TRAIN,
    evaluate it on the val file."""
    from common.evaluation.checkpoint import CheckpointError, resolve_model

    out: dict = {}
    if not ctx.settings.export_after_train and not ctx.settings.eval_after_train:
        return out
    target = export_target(ctx)
    if target is None:
        ctx.log(f"no checkpoint in {ctx.checkpoints_dir} to export (SAVE_FREQ > 0 saves one)")
        return out
    folder, step, what = target
    try:
        resolved = resolve_model(str(folder))
    except CheckpointError as exc:
        ctx.log(f"export failed: {exc}")
        return out
    out["hf_path"] = resolved.hf_path
    out["step"] = step
    ctx.log(f"exported {what} to Hugging Face format: {resolved.hf_path}")
    if ctx.settings.eval_after_train:
        if not ctx.val_file or not Path(ctx.val_file).is_file():
            ctx.log(f"EVAL_AFTER_TRAIN: validation file {ctx.val_file} not found; skipped")
            return out
        report = ctx.checkpoints_dir / f"eval_global_step_{step}.xlsx"
        cmd = [str(REPO_ROOT / "test.sh"), "--batch", "--model_path", resolved.hf_path, "--input_file", ctx.val_file,
               "--output_file", str(report), "--temperature", "0", "-q", "--force"]  # a relaunch re-scores the step
        ctx.log("evaluating: " + " ".join(cmd))
        env = {**os.environ, "PYTHON": python}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            ctx.log(f"evaluation failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        else:
            out["report"] = str(report)
            ctx.log(f"evaluation report: {report}")
    return out


def write_plots(ctx: Context) -> list[str]:
    """PNG plots of the run's main curves into <run_dir>/plots/ (monitor.plots). Never raises: a
    plotting problem is logged and the run's outcome stays what it was."""
    try:
        from monitor.plots import write_run_plots

        paths = write_run_plots(ctx.run_dir)
    except Exception as exc:  # noqa: BLE001 - plots are a convenience, never a reason to fail a run
        ctx.log(f"writing plots into {ctx.run_dir / 'plots'} failed (the run's exit code is unchanged): "
                f"{type(exc).__name__}: {exc}")
        return []
    if paths:
        ctx.log(f"plots of the main curves: {ctx.run_dir / 'plots'} ({', '.join(p.name for p in paths)})")
    return [str(p) for p in paths]


def on_end(exit_code: int, ctx: Context, watcher: Watcher | None = None) -> dict:
    """After verl exits: export/evaluate when the run finished or was stopped by a callback, PNG plots
    of the curves (whatever the exit code), then the user's on_end."""
    result: dict = {}
    if exit_code == 0 or ctx.stopped:
        result = export_and_evaluate(ctx)
    else:
        ctx.log(f"verl exited with {exit_code}: no export")
    plots = write_plots(ctx)
    if plots:
        result["plots"] = plots
    if watcher is not None:
        watcher._call_user("on_end", exit_code)
    return result


def context_for(plan, cfg, env: dict[str, str], out: Callable[[str], None] = print) -> Context:
    """The Context of one launch, from the launcher's plan and resolved config."""
    val = cfg.data.get("val_files")
    val = val if isinstance(val, str) or val is None else (list(val)[0] if len(val) else None)
    from monitor.alerts import run_config_from

    sizes = run_config_from(cfg)
    return Context(
        run_dir=plan.run_dir,
        checkpoints_dir=Path(str(cfg.trainer.default_local_dir)),
        metrics_file=plan.metrics_file,
        settings=Settings.from_env(env),
        val_file=str(val) if val else None,
        save_freq=int(cfg.trainer.get("save_freq", -1) or -1),
        test_freq=int(cfg.trainer.get("test_freq", -1) or -1),
        resume_mode=str(cfg.trainer.get("resume_mode", "auto") or "auto"),
        train_batch_size=sizes.get("train_batch_size"),
        rollout_n=sizes.get("rollout_n"),
        out=out,
    )
