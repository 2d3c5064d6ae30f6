"""Run discovery (the launcher's folders and verl's own <project>/<experiment>.jsonl), resume
merging, lazy reading (tails for the runs table, previews and a background loader for big runs, a
memory budget), status, incremental refresh, samples and GPU stats, on run folders written by verl's
own Tracking logger (see conftest.py); and a table of broken run folders that must never break
another run.

    .venv/bin/python -m pytest tests/monitor/test_metrics_collector.py -q
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest

import monitor.metrics_collector as mc
from monitor.metrics_collector import MetricsCollector, UnsafePathError, read_gpu_stats, resolve_run, safe_run_dir
from monitor.panels.alerts import read_alerts_table
from monitor.panels.curves import make_curves_figure, read_curve_data, to_plot
from monitor.panels.gpu import read_gpu_table
from monitor.panels.runs import read_runs_table
from monitor.panels.samples import read_samples_view
from tests.monitor.conftest import grpo_metrics, write_reward_errors, write_verl_run


def test_resume_merged_by_step_later_launch_wins(log_dir, make_run):
    make_run(log_dir / "exp", [
        {"steps": range(1, 11), "metrics": lambda s: {"critic/score/mean": 0.1, "timing_s/step": 30.0}, "exit_code": 1},
        {"steps": range(8, 16), "metrics": lambda s: {"critic/score/mean": 0.9, "timing_s/step": 30.0}},
    ], total_steps=15)
    df = MetricsCollector(log_dir).metrics("exp")
    assert df["step"].tolist() == list(range(1, 16))
    # why: steps 8-10 were logged by both launches; the resumed one wins
    assert df.set_index("step").loc[[7, 8, 10], "critic/score/mean"].tolist() == [0.1, 0.9, 0.9]
    assert df.set_index("step").loc[[7, 8], "_launch"].tolist() == [0, 1]
    # why: wall time = launch start + cumulative timing_s/step (launch 2 started 1 h after launch 1)
    wall = df.set_index("step")["_wall_time"]
    assert wall[2] - wall[1] == pytest.approx(30.0)
    assert wall[8] - wall[7] == pytest.approx(3600 + 30 - 7 * 30)


STATUS_CASES = [
    # (launch overrides, total_steps, expected status, detail fragment)
    ({"exit_code": 0}, 10, "finished", "exited 0"),  # why: clean exit
    ({"exit_code": 137}, 10, "failed", "code 137"),  # why: killed (OOM) -> non-zero code
    ({"exit_code": None, "ended": None, "pid": 2**22 + 12345}, 10, "failed", "died"),  # why: no exit, dead pid
    ({"exit_code": None, "ended": None, "pid": os.getpid()}, 10, "running", "alive"),  # why: pid alive here
]


@pytest.mark.parametrize("override,total,status,detail", STATUS_CASES)
def test_status_from_run_json(log_dir, make_run, override, total, status, detail):
    make_run(log_dir / "exp", [{"steps": range(1, 6), "metrics": lambda s: grpo_metrics(s), **override}], total_steps=total)
    s = MetricsCollector(log_dir).statuses()[0]
    assert (s.status, s.step, s.total_steps, s.method) == (status, 5, total, "grpo")
    assert detail in s.detail
    if status == "running":
        # why: 5 steps left x 30 s (timing_s/step) = 150 s
        assert s.eta_s == pytest.approx(5 * 30.0)
    assert s.last_reward == pytest.approx(float(grpo_metrics(5)["critic/score/mean"]))


def test_status_inferred_without_run_json(log_dir, make_run):
    # why: a folder copied from another machine has no run.json; the console log tells a crash
    make_run(log_dir / "copied", [{"steps": range(1, 4), "metrics": lambda s: grpo_metrics(s), "traceback": True}],
             write_run_json=False)
    s = MetricsCollector(log_dir).statuses()[0]
    assert s.status == "failed" and "no run.json" in s.detail and "traceback" in s.detail
    assert s.method == "grpo"  # from the launcher's header line


def test_console_log_only_run(log_dir, make_run):
    run = make_run(log_dir / "consoleonly", [{"steps": range(1, 6), "metrics": lambda s: grpo_metrics(s)}])
    for p in (run / "metrics").glob("*.jsonl"):
        p.unlink()
    df = MetricsCollector(log_dir).metrics("consoleonly")
    assert df["step"].tolist() == [1, 2, 3, 4, 5]
    assert df["critic/score/mean"].iloc[-1] == pytest.approx(float(grpo_metrics(5)["critic/score/mean"]))


def test_sft_run_metric_names(log_dir, make_run):
    make_run(log_dir / "sft", [{"steps": range(1, 5), "metrics": lambda s: {"train/loss": 2.0 / s, "train/lr": 1e-5,
                                                                          "train/global_tokens": 4096},
                                "val": {4: {"val/loss": 0.7}}}], method="sft", total_steps=4)
    c = MetricsCollector(log_dir)
    df = c.metrics("sft")
    assert df["train/loss"].tolist() == pytest.approx([2.0, 1.0, 2 / 3, 0.5])
    # why: verl logs val/loss as a second record for the same step; both keys are kept
    assert df.set_index("step").loc[4, "val/loss"] == 0.7 and df.set_index("step").loc[4, "train/loss"] == 0.5
    assert c.statuses()[0].method == "sft"


def test_incremental_refresh_reads_only_new_bytes(log_dir, make_run):
    run = make_run(log_dir / "live", [{"steps": range(1, 4), "metrics": lambda s: {"critic/score/mean": s / 10}}])
    c = MetricsCollector(log_dir)
    assert c.metrics("live")["step"].tolist() == [1, 2, 3]
    metrics_file = next((run / "metrics").glob("*.jsonl"))
    state = c.get("live").sources[metrics_file]
    offset = state.reader.offset
    assert c.refresh() == []  # why: nothing new, nothing re-read
    with open(metrics_file, "ab") as f:
        f.write(b'{"step":4,"data":{"critic/score/mean":0.4}}\n{"step":5,"data":{"critic/sc')
    assert c.refresh() == ["live"]
    assert state.reader.offset == offset + len(b'{"step":4,"data":{"critic/score/mean":0.4}}\n')
    assert c.metrics("live")["step"].tolist() == [1, 2, 3, 4]  # why: step 5 is still being written
    with open(metrics_file, "ab") as f:
        f.write(b'ore/mean":0.5}}\n')
    c.refresh()
    assert c.metrics("live")["critic/score/mean"].tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_corrupt_lines_counted_and_shown(log_dir, make_run):
    run = make_run(log_dir / "bad", [{"steps": range(1, 4), "metrics": lambda s: {"critic/score/mean": 0.5}}])
    metrics_file = next((run / "metrics").glob("*.jsonl"))
    with open(metrics_file, "ab") as f:
        f.write(b"garbage\n{\"step\": 4, \"data\": \n" + b'{"step":5,"data":{"critic/score/mean":0.6}}\n')
    c = MetricsCollector(log_dir)
    table, problems = read_runs_table(c)
    row = table.set_index("run").loc["bad"]
    # why: the runs table reads only the tail: it names the bad lines it saw there, the count comes with a full read
    assert row["corrupt lines"] == "-" and row["step"].startswith("5") and "2 corrupt line(s) among the last" in problems
    c.metrics("bad")
    table, problems = read_runs_table(c)
    assert table.set_index("run").loc["bad", "corrupt lines"] == 2
    assert "2 corrupt line(s) skipped" in problems and "20261121-100000.jsonl:4" in problems


def test_runs_appear_while_open_and_truncation_rereads(log_dir, make_run):
    c = MetricsCollector(log_dir)
    assert c.discover() == []
    make_run(log_dir / "new", [{"steps": range(1, 3), "metrics": lambda s: {"critic/score/mean": 0.5}}])
    assert c.refresh() == ["new"]
    metrics_file = next((log_dir / "new" / "metrics").glob("*.jsonl"))
    metrics_file.write_bytes(b'{"step":1,"data":{"critic/score/mean":0.9}}\n')  # truncated + rewritten
    c.refresh()
    assert c.metrics("new")["critic/score/mean"].tolist() == [0.9]


TRAVERSAL_CASES = [
    ("..", "not a folder name"),  # why: parent of log_dir
    ("../etc", "not a folder name"),  # why: separator
    ("outside_link", "outside --log_dir"),  # why: symlink escaping log_dir
]


@pytest.mark.parametrize("name,msg", TRAVERSAL_CASES)
def test_safe_run_dir_refuses_escapes(tmp_path, log_dir, make_run, name, msg):
    elsewhere = make_run(tmp_path / "secret_run", [{"steps": range(1, 3), "metrics": lambda s: {"x": 1.0}}])
    (log_dir / "outside_link").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match=msg):
        safe_run_dir(log_dir, name)
    c = MetricsCollector(log_dir)
    assert c.discover() == []  # why: the symlinked run is refused, not listed
    assert any("outside_link" in r for r in c.refused)


def test_symlinked_file_outside_log_dir_is_refused(tmp_path, log_dir, make_run):
    run = make_run(log_dir / "exp", [{"steps": range(1, 3), "metrics": lambda s: {"x": 1.0}}])
    secret = tmp_path / "secret.log"
    secret.write_text("step:1 - password:123\n")
    (run / "leak.log").symlink_to(secret)
    c = MetricsCollector(log_dir)
    c.metrics("exp")
    assert all(p.name != "leak.log" for p in c.get("exp").sources)
    assert any("leak.log" in r for r in c.statuses()[0].problems)


def test_samples_view_filters(log_dir, make_run, make_dump):
    run = make_run(log_dir / "exp", [{"steps": range(1, 3), "metrics": lambda s: {"x": 1.0}}])
    make_dump(run, "rollout", 10, n=8)
    make_dump(run, "rollout", 20, n=8)
    with open(run / "rollout" / "20.jsonl", "a") as f:
        f.write("{broken\n")
    c = MetricsCollector(log_dir)
    v = read_samples_view(c, "exp", "rollout", 17)
    # why: the slider value snaps to the nearest dumped step; 8 responses in 2 groups of uid u0_*, u1_*
    assert set(v.rows["step"]) == {20} and len(v.rows) == 8 and v.groups == 2 and "1 corrupt" in v.summary
    hi = read_samples_view(c, "exp", "rollout", 20, score_min=1).rows
    assert len(hi) and (hi["score"] == 1).all() and {"acc", "uid"} <= set(hi.columns)
    found = read_samples_view(c, "exp", "rollout", 20, search="WHAT IS 1 + 20")
    # why: a prompt that matches keeps its whole group (4 responses), other groups go
    assert set(found.rows["input"]) == {"user\nWhat is 1 + 20?\nassistant\n"} and len(found.rows) == 4
    empty = read_samples_view(c, "exp", "validation", None)
    assert empty.rows.empty and "trainer.validation_data_dir" in empty.summary


def test_no_gpu_visible_state(monkeypatch, tmp_path):
    # This machine has no NVIDIA driver; hide any nvidia-smi too so the state is deterministic.
    monkeypatch.setenv("PATH", str(tmp_path))
    rows, reason = read_gpu_stats()
    assert rows == [] and reason.startswith("No GPU visible") and "nvidia-smi: not on PATH" in reason
    df, text = read_gpu_table()
    assert df.empty and "No GPU visible" in text


def test_nvidia_smi_fallback_parses_its_csv(monkeypatch, tmp_path):
    # why: without NVML the dashboard falls back to nvidia-smi's CSV query output (this exact format)
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 87, 60312, 81559, 64'\n"
                   "echo '1, NVIDIA H100 80GB HBM3, [N/A], 1, 81559, 40'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path))
    rows, source = read_gpu_stats()
    assert source == "nvidia-smi" and len(rows) == 2
    assert rows[0]["util_pct"] == 87 and rows[0]["mem_total_mib"] == 81559 and rows[0]["temp_c"] == 64
    assert rows[1]["util_pct"] != rows[1]["util_pct"]  # [N/A] -> NaN


def test_verl_file_logger_layout_is_one_run_per_experiment(log_dir, monkeypatch):
    # why: verl's own layout <project>/<experiment>.jsonl (runs started without the launcher) showed two
    # experiments merged into one run
    from verl.utils.tracking import Tracking

    monkeypatch.delenv("VERL_FILE_LOGGER_PATH", raising=False)
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(log_dir))
    for exp, value in (("exp1", 0.1), ("exp2", 0.9)):
        tracker = Tracking("proj", exp, default_backend=["file"])
        for step in range(1, 4):
            tracker.log(data={"critic/score/mean": value}, step=step)
        tracker.logger["file"].finish()
    c = MetricsCollector(log_dir)
    assert c.discover() == ["proj/exp1", "proj/exp2"]
    assert c.metrics("proj/exp1")["critic/score/mean"].tolist() == [0.1] * 3
    assert c.metrics("proj/exp2")["critic/score/mean"].tolist() == [0.9] * 3
    assert {s.name: s.step for s in c.statuses()} == {"proj/exp1": 3, "proj/exp2": 3}
    # why: --log_dir pointed at the project folder itself: each experiment file is a run
    assert MetricsCollector(log_dir / "proj").discover() == ["exp1", "exp2"]
    with pytest.raises(UnsafePathError):
        resolve_run(log_dir, "proj/../../etc")


def test_runs_table_reads_only_tails(log_dir, make_run):
    make_run(log_dir / "long", [{"steps": range(1, 301), "metrics": lambda s: grpo_metrics(s)}], total_steps=300)
    c = MetricsCollector(log_dir)
    s = c.statuses()[0]
    # why: the runs table must not parse whole runs (20 runs x 50,000 steps took 43-56 s)
    assert c.get("long").store is None
    assert s.step == 300 and s.last_reward == pytest.approx(float(grpo_metrics(300)["critic/score/mean"]))


def test_big_run_preview_then_background_load(log_dir, make_run, monkeypatch):
    make_run(log_dir / "big", [{"steps": range(1, 401), "metrics": lambda s: grpo_metrics(s)}], total_steps=400)
    monkeypatch.setattr(mc, "SYNC_LOAD_BYTES", 0)  # treat it as too big to parse at once
    monkeypatch.setattr(mc, "PREVIEW_POINTS", 40)
    c = MetricsCollector(log_dir)
    frames = c.frames(["big"], ["critic/score/mean"])
    df, preview = frames["big"]
    # why: a preview is evenly spaced real records, its last one the run's last step
    assert preview and 20 <= len(df) <= 42 and df["step"].iloc[-1] == 400
    assert df["step"].iloc[len(df) // 2] == pytest.approx(200, abs=30)
    assert c.wait_loaded(timeout=60)
    full, preview = c.frames(["big"], ["critic/score/mean"])["big"]
    assert not preview and full["step"].tolist() == list(range(1, 401))
    expected = full.set_index("step").loc[df["step"], "critic/score/mean"].to_numpy()
    np.testing.assert_allclose(df["critic/score/mean"].to_numpy(), expected)


def test_memory_budget_drops_the_least_recently_used_table(log_dir, make_run):
    for name in ("a", "b"):
        make_run(log_dir / name, [{"steps": range(1, 51), "metrics": lambda s: grpo_metrics(s)}])
    c = MetricsCollector(log_dir, memory_budget_mb=0.01)  # ~10 KB: one run's table at most
    c.metrics("a")
    c.metrics("b")
    assert c.get("b").store is not None and c.get("a").store is None
    # why: a dropped run is parsed again when asked for, with the same content
    assert c.metrics("a")["step"].tolist() == list(range(1, 51))


def test_failed_run_shows_its_last_error_lines_redacted(log_dir, make_run):
    run = make_run(log_dir / "crash", [{"steps": range(1, 4), "metrics": lambda s: grpo_metrics(s), "exit_code": 1}])
    with open(run / "train.log", "a") as f:
        f.write("export WANDB_API_KEY=abc123secret\nTraceback (most recent call last):\n  File \"x.py\", line 3\n"
                "RuntimeError: CUDA out of memory; fetch https://bob:hunter2@example.com/x failed\n")
    s = MetricsCollector(log_dir).statuses()[0]
    assert s.status == "failed" and "exited with code 1" in s.detail
    # why: "exited with code 1" alone does not say why; the last error line does
    assert "RuntimeError: CUDA out of memory" in s.detail
    assert s.error_lines[0].startswith("Traceback") and "hunter2" not in " ".join(s.error_lines)
    table, problems = read_runs_table(MetricsCollector(log_dir))
    assert "RuntimeError: CUDA out of memory" in problems and "hunter2" not in problems and "abc123secret" not in problems


def test_sft_runs_show_their_loss(log_dir, make_run):
    make_run(log_dir / "sft", [{"steps": range(1, 5), "metrics": lambda s: {"train/loss": 2.0 / s},
                                "val": {4: {"val/loss": 0.7}}}], method="sft", total_steps=4)
    table, _ = read_runs_table(MetricsCollector(log_dir))
    assert table.set_index("run").loc["sft", "reward / loss"] == "loss 0.5 (val 0.7)"


def test_reward_errors_are_counted_in_the_runs_table(log_dir, make_run):
    run = make_run(log_dir / "exp", [{"steps": range(1, 4), "metrics": lambda s: grpo_metrics(s)}])
    t0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
    write_reward_errors(run, [{"time": t0 + timedelta(seconds=i), "error": "ZeroDivisionError: division by zero"}
                              for i in range(3)] + [{"time": t0, "kind": "timeout", "error": "timed out after 10 s"}])
    table, problems = read_runs_table(MetricsCollector(log_dir))
    assert table.set_index("run").loc["exp", "reward errors"] == 4
    assert "3 x exception: ZeroDivisionError" in problems and "1 x timeout" in problems


def _fifo(path):
    os.mkfifo(path)


# Each case breaks one run folder ("bad") next to a healthy one ("good"). Nothing may raise, the good
# run must read as usual, and the bad one shows its own problem.
BROKEN_RUNS = [
    # (id, function(bad_run_dir) that breaks it); EXPECTED below: what the bad run's problems then say
    ("step 2^63", lambda d: _append(d, b'{"step": 9223372036854775808, "data": {"critic/score/mean": 0.5}}\n')),
    ("bad json lines", lambda d: _append(d, b"{not json\n{\"step\": 4, \"data\": \n")),
    ("huge numbers", lambda d: _append(d, b'{"step": 4, "data": {"critic/score/mean": 1e308, "timing_s/step": 1e308, '
                                          b'"actor/pg_loss": 1' + b"0" * 400 + b'}}\n')),
    ("NaN and Infinity literals", lambda d: _append(d, b'{"step": 4, "data": {"critic/score/mean": NaN, "actor/pg_loss": '
                                                       b'Infinity}}\n')),
    ("wrong types", lambda d: _append(d, b'{"step": "4", "data": [1]}\n{"step": 5, "data": {"critic/score/mean": "x"}}\n'
                                         b'[1, 2]\n"text"\n')),
    ("truncated last line", lambda d: _append(d, b'{"step": 4, "data": {"critic/sc')),
    ("100,000 keys in one line", lambda d: _append(d, orjson.dumps({"step": 4, "data": {f"id/{i}": i for i in range(100_000)}})
                                                 + b"\n")),
    ("binary garbage metrics", lambda d: _metrics(d).write_bytes(os.urandom(200_000))),
    ("binary run.json", lambda d: (d / "run.json").write_bytes(os.urandom(500))),
    ("run.json of wrong types", lambda d: (d / "run.json").write_text(json.dumps(
        {"method": ["grpo"], "total_steps": 2**70, "launches": [{"pid": "x", "exit_code": {"a": 1}, "started": "yesterday",
                                                                  "ended": 5, "host": 7, "metrics_file": 3}, "junk"]}))),
    ("run.json launches not a list", lambda d: (d / "run.json").write_text('{"launches": 5, "total_steps": -1}')),
    ("binary config.yaml", lambda d: (d / "config.yaml").write_bytes(b"\x00\xff: [" + os.urandom(300))),
    ("config.yaml of wrong types", lambda d: (d / "config.yaml").write_text(
        "data: {train_batch_size: -5}\nactor_rollout_ref: [1]\ntrainer: {total_training_steps: 1e400}\n")),
    ("big train.log without newlines", lambda d: (d / "train.log").write_bytes(b"\xff" * (40 * 2**20))),
    ("binary reward_errors.jsonl", lambda d: (d / "reward_errors.jsonl").write_bytes(os.urandom(5000) + b"\n{}\n[]\n")),
    ("empty files", lambda d: [p.write_bytes(b"") for p in [_metrics(d), d / "run.json", d / "train.log"]]),
    ("FIFOs instead of files", lambda d: [_fifo(p) for p in [_metrics(d), d / "config.yaml", d / "train.log",
                                                             d / "reward_errors.jsonl"] if not p.unlink(missing_ok=True)]),
    ("a folder named like a metrics file", lambda d: (d / "metrics" / "zz.jsonl").mkdir()),
    ("binary rollout dump", lambda d: ((d / "rollout").mkdir(), (d / "rollout" / "1.jsonl").write_bytes(os.urandom(3000)))),
]


EXPECTED = {
    "step 2^63": "out of range (0..2^53)",
    "bad json lines": "2 corrupt line(s) skipped",
    "wrong types": "3 corrupt line(s) skipped",  # the record with a string value is valid (value dropped)
    "binary garbage metrics": "corrupt line(s) skipped",
    "binary run.json": "run.json: not valid JSON",
    "run.json launches not a list": "'launches' must be a list",
    "empty files": "run.json: not valid JSON",
    "100,000 keys in one line": "metric key(s) past the first 4096 were not read",
}


def _metrics(d):
    return next((d / "metrics").glob("*.jsonl"))


def _append(d, data: bytes):
    with open(_metrics(d), "ab") as f:
        f.write(data)


@pytest.mark.parametrize("case,breaker", BROKEN_RUNS, ids=[c for c, _ in BROKEN_RUNS])
def test_a_broken_run_never_breaks_another(log_dir, case, breaker):
    for name in ("bad", "good"):
        write_verl_run(log_dir / name, [{"steps": range(1, 4), "metrics": lambda s: grpo_metrics(s)}], total_steps=3)
    (log_dir / "good" / "config.yaml").write_text("data: {train_batch_size: 8}\n")
    breaker(log_dir / "bad")
    c = MetricsCollector(log_dir)
    table, problems = read_runs_table(c)
    good = table.set_index("run").loc["good"]
    assert good["status"] == "finished" and good["step"] == "3 / 3"
    assert "bad" in set(table["run"])
    frames, _ = read_curve_data(c, ["bad", "good"])
    assert frames["good"]["step"].tolist() == [1, 2, 3]
    plot = to_plot(make_curves_figure(frames, 0.8, "wall time", {}))
    # why: the page's JSON must stay parseable (no NaN / Infinity tokens) whatever a run logged
    json.loads(plot.plot)
    alerts, summary, errors = read_alerts_table(c, None, {})
    assert "Could not check" not in summary or "good" not in summary.split("Could not check")[1]
    table, problems = read_runs_table(c)  # again, now that both runs were parsed in full
    assert table.set_index("run").loc["good", "status"] == "finished"
    bad_problems = [line for line in problems.splitlines() if line.startswith("- **bad**")]
    if case in EXPECTED:
        assert any(EXPECTED[case] in line for line in bad_problems), problems
    assert not any(line.startswith("- **good**") for line in problems.splitlines()), problems
    v = read_samples_view(c, "bad", "rollout", 1)
    assert isinstance(v.summary, str)
