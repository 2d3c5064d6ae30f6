"""Training callbacks on a metrics stream written by verl's own file logger, and the export/eval chain.

    .venv/bin/python -m pytest tests/common/test_callbacks.py -q

The stream is written by verl.utils.tracking.Tracking(default_backend=["file"]) at
VERL_FILE_LOGGER_PATH, exactly as a training run writes it; the checkpoint for the end-of-run export
is a real verl FSDP checkpoint of the tiny model (tests/common/test_test_model_checkpoint.py builds it).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from common.callbacks import Context, Settings, Watcher, on_end

REPO_ROOT = Path(__file__).resolve().parents[2]


def verl_stream(path: Path, rows: list[dict], monkeypatch) -> None:
    """Log rows with verl's Tracking file backend (one JSON line per step)."""
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(path))
    from verl.utils.tracking import Tracking

    tracker = Tracking(project_name="p", experiment_name="e", default_backend=["file"])
    for step, data in enumerate(rows, start=1):
        tracker.log(data=data, step=step)
    tracker.logger["file"].finish()


def make_ctx(tmp_path: Path, lines: list[str], train_batch_size: int | None = None, **settings) -> Context:
    return Context(
        run_dir=tmp_path, checkpoints_dir=tmp_path / "checkpoints", metrics_file=tmp_path / "m.jsonl",
        settings=Settings(**settings), save_freq=settings.pop("save_freq", 2) if "save_freq" in settings else 2,
        out=lines.append, train_batch_size=train_batch_size, rollout_n=8 if train_batch_size else None,
    )


def save_checkpoint(ckpt: Path, step: int) -> None:
    (ckpt / f"global_step_{step}" / "actor").mkdir(parents=True, exist_ok=True)
    (ckpt / "latest_checkpointed_iteration.txt").write_text(str(step))


def test_nan_loss_stops_at_once_and_is_alerted(tmp_path, monkeypatch):
    lines, stopped = [], []
    ctx = make_ctx(tmp_path, lines, stop_on_nan=True)
    verl_stream(ctx.metrics_file, [{"actor/pg_loss": 0.1}, {"actor/pg_loss": math.nan, "actor/grad_norm": 1.0}], monkeypatch)
    Watcher(ctx, terminate=lambda: stopped.append(True)).poll()
    assert stopped == [True] and ctx.stopped
    assert any("non-finite actor/pg_loss" in line for line in lines)


def test_nan_without_stop_knob_only_alerts(tmp_path, monkeypatch):
    lines, stopped = [], []
    ctx = make_ctx(tmp_path, lines)  # STOP_ON_NAN defaults to false
    verl_stream(ctx.metrics_file, [{"actor/pg_loss": math.inf}], monkeypatch)
    Watcher(ctx, terminate=lambda: stopped.append(True)).poll()
    assert stopped == [] and any("non-finite" in line for line in lines)


def test_kl_blowup_waits_for_the_next_checkpoint(tmp_path, monkeypatch):
    lines, stopped = [], []
    ctx = make_ctx(tmp_path, lines, kl_stop_threshold=0.5, kl_stop_steps=3)
    # KL above 0.5 on steps 2, 3, 4: the stop is requested at step 4 (3 consecutive steps).
    verl_stream(ctx.metrics_file, [{"actor/kl_loss": v} for v in (0.1, 0.9, 1.2, 2.0)], monkeypatch)
    watcher = Watcher(ctx, terminate=lambda: stopped.append(True))
    save_checkpoint(ctx.checkpoints_dir, 2)  # an older checkpoint does not count
    watcher.poll()
    assert ctx.stop_reason and "KL_STOP_THRESHOLD=0.5" in ctx.stop_reason and stopped == []
    save_checkpoint(ctx.checkpoints_dir, 4)
    watcher.poll()
    assert stopped == [True]
    assert any("checkpoint saved" in line and "global_step_4" in line for line in lines)
    assert any("resume from" in line for line in lines)


def test_alerts_from_monitor_rules_are_printed_once(tmp_path, monkeypatch):
    lines = []
    ctx = make_ctx(tmp_path, lines)
    # KL 0.3 for 6 steps: monitor.alerts' kl_high rule (0.1 for 5 steps) fires once.
    verl_stream(ctx.metrics_file, [{"actor/kl_loss": 0.3} for _ in range(6)], monkeypatch)
    watcher = Watcher(ctx)
    watcher.poll()
    watcher.poll()
    alerts = [line for line in lines if "ALERT" in line]
    assert len(alerts) == 1 and "KL" in alerts[0].upper()


def test_user_hooks_and_partial_lines(tmp_path, monkeypatch):
    hooks = tmp_path / "my_callbacks.py"
    hooks.write_text(
        "def on_step(step, metrics, ctx):\n    ctx.user.setdefault('steps', []).append(step)\n"
        "def on_checkpoint(step, path, ctx):\n    ctx.user['ckpt'] = step\n"
        "def on_end(exit_code, ctx):\n    ctx.user['end'] = exit_code\n    raise RuntimeError('boom')\n"
    )
    lines = []
    ctx = make_ctx(tmp_path, lines, callbacks_file=str(hooks), export_after_train=False)
    verl_stream(ctx.metrics_file, [{"actor/pg_loss": 0.1}, {"actor/pg_loss": 0.2}], monkeypatch)
    with open(ctx.metrics_file, "ab") as f:
        f.write(b'{"step": 3, "data": {"actor/pg')  # verl is mid-write
    watcher = Watcher(ctx)
    watcher.poll()
    assert ctx.user["steps"] == [1, 2]
    with open(ctx.metrics_file, "ab") as f:
        f.write(b'_loss": 0.3}}\n')
    save_checkpoint(ctx.checkpoints_dir, 3)
    watcher.poll()
    assert ctx.user["steps"] == [1, 2, 3] and ctx.user["ckpt"] == 3
    on_end(0, ctx, watcher)
    assert ctx.user["end"] == 0 and any("on_end raised RuntimeError: boom" in line for line in lines)


@pytest.mark.parametrize(
    "content, words",
    [
        ("x = 1\n", "defines none of"),  # why: a file without hooks is a mistake, not a no-op
        ("import not_a_module\n", "importing it failed"),  # why: import errors name the file
    ],
)
def test_bad_callbacks_file(tmp_path, content, words):
    from common.knobs import ConfigError

    f = tmp_path / "cb.py"
    f.write_text(content)
    with pytest.raises(ConfigError, match=words):
        Watcher(make_ctx(tmp_path, [], callbacks_file=str(f)))


@pytest.mark.slow
def test_end_of_run_export_and_eval_on_a_real_verl_checkpoint(tmp_path):
    # A real FSDP checkpoint of the tiny model (global_step_1, global_step_2; tracker -> 2), built in a
    # subprocess because it opens a gloo process group.
    subprocess.run([sys.executable, "-m", "tests.common.test_test_model_checkpoint", str(tmp_path)], cwd=REPO_ROOT,
                   check=True, capture_output=True, timeout=300)
    import pandas as pd

    val = tmp_path / "val.parquet"
    pd.read_parquet(REPO_ROOT / "grpo" / "data" / "val.parquet").head(2).to_parquet(val)
    lines = []
    ctx = Context(run_dir=tmp_path, checkpoints_dir=tmp_path / "experiment", metrics_file=tmp_path / "m.jsonl",
                  settings=Settings(eval_after_train=True), val_file=str(val), out=lines.append)
    result = on_end(0, ctx)
    merged = Path(result["hf_path"])
    assert (merged / "config.json").is_file() and merged.parent.name == "actor" and "global_step_2" in str(merged)
    report = Path(result["report"])
    assert report.is_file() and report.suffix == ".xlsx" and report.parent == ctx.checkpoints_dir, lines
    from openpyxl import load_workbook

    assert "Results" in load_workbook(report).sheetnames


EVICTED = "training/filter_groups/evicted_samples"

# DAPO dynamic sampling with train_batch_size = 64: share = evicted / (evicted + 64); 1216 -> 95%.
DYNAMIC_SAMPLING_STOPS = [
    # (evicted groups per step, settings, stop requested?)
    ([1216] * 5, {}, True),  # why: 95% filtered for 5 consecutive steps (the defaults)
    ([1216] * 4, {}, False),  # why: 4 steps is below DYNAMIC_SAMPLING_STOP_STEPS=5
    ([1216, 1216, 0, 1216, 1216, 1216], {}, False),  # why: a step that kept its groups resets the count
    ([600] * 6, {}, False),  # why: 90% filtered is below 0.95
    ([600] * 3, {"dynamic_sampling_stop_share": 0.9, "dynamic_sampling_stop_steps": 3}, True),  # why: knobs honoured
    ([5000] * 8, {"dynamic_sampling_stop_share": 0.0}, False),  # why: 0 turns the stop off
]


@pytest.mark.parametrize("evicted,settings,stops", DYNAMIC_SAMPLING_STOPS)
def test_dynamic_sampling_share_stop(tmp_path, monkeypatch, evicted, settings, stops):
    lines = []
    ctx = make_ctx(tmp_path, lines, train_batch_size=64, **settings)
    verl_stream(ctx.metrics_file, [{EVICTED: e, "timing_s/step": 30.0} for e in evicted], monkeypatch)
    Watcher(ctx).poll()
    assert (ctx.stop_reason is not None) == stops, lines
    if stops:
        # why: the message names the knob and what to do about it
        assert "DYNAMIC_SAMPLING_STOP_SHARE" in ctx.stop_reason and "DYNAMIC_SAMPLING=false" in ctx.stop_reason
        assert "ROLLOUT_N" in ctx.stop_reason and ctx.stop_at_step == len(evicted)  # after the next checkpoint


def test_dynamic_sampling_stall_stops_at_once(tmp_path, monkeypatch):
    # why: verl 0.9.1 regenerates filtered groups without a bound and logs nothing meanwhile
    lines, stopped, now = [], [], [1000.0]
    ctx = make_ctx(tmp_path, lines, train_batch_size=64)
    verl_stream(ctx.metrics_file, [{EVICTED: e, "timing_s/step": 30.0} for e in (10, 20, 192)], monkeypatch)
    watcher = Watcher(ctx, terminate=lambda: stopped.append(True), clock=lambda: now[0])
    watcher.poll()
    now[0] += 10 * 30.0 - 1  # just under 10 x the median step time
    watcher.poll()
    assert stopped == []
    now[0] += 2
    watcher.poll()
    assert stopped == [True] and "DYNAMIC_SAMPLING_STALL_FACTOR=10" in ctx.stop_reason
    assert "75%" in ctx.stop_reason and ctx.stop_at_step is None


def test_no_stall_stop_after_light_filtering_or_without_dapo(tmp_path, monkeypatch):
    for rows in ([{EVICTED: 10, "timing_s/step": 30.0}] * 3, [{"actor/pg_loss": 0.1, "timing_s/step": 30.0}] * 3):
        lines, now = [], [0.0]
        ctx = make_ctx(tmp_path, lines, train_batch_size=64)
        ctx.metrics_file.unlink(missing_ok=True)
        verl_stream(ctx.metrics_file, rows, monkeypatch)
        watcher = Watcher(ctx, clock=lambda: now[0])
        watcher.poll()
        now[0] += 3600  # an hour without a step: slow, but not dynamic sampling's doing
        watcher.poll()
        assert ctx.stop_reason is None


@pytest.mark.parametrize("env,words", [
    ({"DYNAMIC_SAMPLING_STOP_SHARE": "1.5"}, "DYNAMIC_SAMPLING_STOP_SHARE=1.5 must be a share"),
    ({"DYNAMIC_SAMPLING_STOP_STEPS": "0"}, "DYNAMIC_SAMPLING_STOP_STEPS=0 must be at least 1"),
    ({"DYNAMIC_SAMPLING_STALL_FACTOR": "-1"}, "DYNAMIC_SAMPLING_STALL_FACTOR=-1 must be >= 0"),
    ({"DYNAMIC_SAMPLING_STOP_SHARE": "most"}, "DYNAMIC_SAMPLING_STOP_SHARE='most' is not a number"),
])
def test_dynamic_sampling_knobs_checked(env, words):
    from common.knobs import ConfigError

    with pytest.raises(ConfigError, match=words):
        Settings.from_env(env)
    defaults = Settings.from_env({})
    assert (defaults.dynamic_sampling_stop_share, defaults.dynamic_sampling_stop_steps,
            defaults.dynamic_sampling_stall_factor) == (0.95, 5, 10.0)


def test_on_end_writes_plots_and_a_plot_failure_changes_nothing(tmp_path, monkeypatch):
    lines = []
    ctx = make_ctx(tmp_path, lines, export_after_train=False)
    verl_stream(ctx.metrics_file, [{"critic/score/mean": s / 10, "actor/pg_loss": 0.1} for s in range(1, 8)], monkeypatch)
    result = on_end(1, ctx)
    assert (tmp_path / "plots" / "overview.png").is_file() and "plots" in result
    assert any("plots of the main curves" in line for line in lines)
    import monitor.plots

    def broken(run_dir):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(monitor.plots, "write_run_plots", broken)
    lines.clear()
    assert "plots" not in on_end(0, ctx)  # why: a plotting failure is logged, never raised
    assert any("writing plots" in line and "RuntimeError: no fonts" in line for line in lines)


@pytest.mark.slow
def test_context_reads_the_batch_sizes_from_verls_config(tmp_path):
    # why: the dynamic-sampling share needs train_batch_size from the config the run really uses
    from types import SimpleNamespace

    from common.callbacks import context_for
    from tests.launch_helpers import dry_run, resolved_config

    result = dry_run("dapo", env={"OUTPUT_DIR": str(tmp_path), "TRAIN_BATCH_SIZE": "32", "ROLLOUT_N": "8"})
    assert result.returncode == 0, result.stderr
    cfg = resolved_config(result.stdout)
    ctx = context_for(SimpleNamespace(run_dir=tmp_path, metrics_file=tmp_path / "m.jsonl"), cfg, {})
    assert (ctx.train_batch_size, ctx.rollout_n) == (32, 8)
