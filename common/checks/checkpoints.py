"""KEEP_BEST_METRIC and EXPORT_CHECKPOINT against the schedule and the metric names verl will log.

    KEEP_BEST_METRIC=val_acc SAVE_FREQ=20 TEST_FREQ=10 DRY_RUN=1 ./grpo/train.sh

Offers:
- expected_val_keys(cfg, sources): the validation keys verl logs for these data sources (RL:
  val-core/<source>/<acc|reward>/mean@<val_kwargs.n>, trainer/ppo/v1/trainer_base.py
  _val_metrics_update; SFT: val/loss, trainer/sft_trainer.py).
- keep_best_checks(plan, cfg, ctx): a best checkpoint needs checkpoints (SAVE_FREQ > 0), scores
  (TEST_FREQ > 0 and VAL_DATA) and steps that have both (multiples of both frequencies, and the last
  step); a metric name verl will not log is a warning listing the names it will; a Ray submission
  runs no watcher on this machine, so nothing would be kept.
"""

from __future__ import annotations

import math

from common.best_checkpoint import ALIASES
from common.callbacks import keep_best_settings
from common.checks.result import Result


def expected_val_keys(cfg, sources: list[str], trainer: str) -> list[str]:
    if trainer == "sft":
        return ["val/loss"]
    n = int(cfg.actor_rollout_ref.rollout.val_kwargs.get("n", 1) or 1)
    return [f"val-core/{source}/{var}/mean@{n}" for source in sources for var in ("acc", "reward")]


def _val_sources(ctx) -> list[str]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    sources: list[str] = []
    for f in ctx.get("val_files_ok", []):
        for value in pc.unique(pq.read_table(f, columns=["data_source"]).column("data_source")).to_pylist():
            if value not in sources:
                sources.append(value)
    return sources


def keep_best_checks(plan, cfg, ctx) -> list[Result]:
    env = {**ctx.get("env", {})}
    metric, mode, export = keep_best_settings(env)
    if not metric:
        return []
    check = "best checkpoint"
    save, test = int(cfg.trainer.get("save_freq", -1) or -1), int(cfg.trainer.get("test_freq", -1) or -1)
    results: list[Result] = []
    if save <= 0:
        results.append(Result.fail(check, f"KEEP_BEST_METRIC={metric} needs checkpoints, but SAVE_FREQ={save} saves none",
                                   "SAVE_FREQ"))
    if test <= 0 or not cfg.data.get("val_files"):
        results.append(Result.fail(check, f"KEEP_BEST_METRIC={metric} needs validation scores: TEST_FREQ={test}, "
                                   f"VAL_DATA={cfg.data.get('val_files')}", "TEST_FREQ", "VAL_DATA"))
    from common.ray_cluster import wants_cluster

    if wants_cluster(env):
        results.append(Result.warn(check, "a Ray submission runs no watcher on this machine: the best checkpoint is kept "
                                   "(and the export made) only by a local launch", "KEEP_BEST_METRIC"))
    if any(r.failed for r in results):
        return results
    both = save * test // math.gcd(save, test)
    if both != save:
        results.append(Result.warn(check, f"only checkpoints at multiples of {both} steps (SAVE_FREQ={save}, TEST_FREQ={test}) "
                                   "and the last step have a score, so only they can become the best: make SAVE_FREQ a "
                                   "multiple of TEST_FREQ", "SAVE_FREQ", "TEST_FREQ"))
    if metric not in ALIASES or plan.trainer == "sft":
        expected = expected_val_keys(cfg, _val_sources(ctx), plan.trainer)
        if expected and metric not in expected and not metric.startswith("val-aux/"):
            results.append(Result.warn(check, f"KEEP_BEST_METRIC={metric} is not among the validation keys verl will log "
                                       f"({', '.join(expected[:6])}{' ...' if len(expected) > 6 else ''}), nor an alias "
                                       f"({', '.join(ALIASES)}): no checkpoint would be kept", "KEEP_BEST_METRIC"))
    if not results:
        results.append(Result.ok(check, f"{metric} ({mode}) at steps with a checkpoint and a score kept in "
                                 f"checkpoints/best/ (hard links); EXPORT_CHECKPOINT={export}"))
    return results
