"""Run discovery, resume merging, status, incremental refresh, samples and GPU stats, on run
folders written by verl's own Tracking logger (see conftest.py).

    .venv/bin/python -m pytest tests/monitor/test_metrics_collector.py -q
"""

from __future__ import annotations

import os
import stat

import pytest

from monitor.metrics_collector import MetricsCollector, UnsafePathError, read_gpu_stats, safe_run_dir
from monitor.panels.gpu import read_gpu_table
from monitor.panels.runs import read_runs_table
from monitor.panels.samples import read_samples_view
from tests.monitor.conftest import grpo_metrics


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
    state = c.get("live").files[metrics_file]
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
    table, problems = read_runs_table(MetricsCollector(log_dir))
    row = table.set_index("run").loc["bad"]
    assert row["corrupt lines"] == 2 and row["step"].startswith("5")
    assert "2 corrupt line(s)" in problems and "20261121-100000.jsonl:4" in problems


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
    c.refresh()
    assert all(p.name != "leak.log" for p in c.get("exp").files)
    assert any("leak.log" in r for r in c.statuses()[0].problems)


def test_samples_view_filters(log_dir, make_run, make_dump):
    run = make_run(log_dir / "exp", [{"steps": range(1, 3), "metrics": lambda s: {"x": 1.0}}])
    make_dump(run, "rollout", 10, n=8)
    make_dump(run, "rollout", 20, n=8)
    with open(run / "rollout" / "20.jsonl", "a") as f:
        f.write("{broken\n")
    c = MetricsCollector(log_dir)
    df, summary = read_samples_view(c, "exp", "rollout", 17)
    # why: the slider value snaps to the nearest dumped step
    assert set(df["step"]) == {20} and len(df) == 8 and "1 corrupt" in summary
    hi, _ = read_samples_view(c, "exp", "rollout", 20, score_min=1)
    assert len(hi) and (hi["score"] == 1).all() and {"acc", "uid"} <= set(hi.columns)
    found, _ = read_samples_view(c, "exp", "rollout", 20, search="WHAT IS 3 + 20")
    assert found["input"].tolist() == ["user\nWhat is 3 + 20?\nassistant\n"]
    empty, text = read_samples_view(c, "exp", "validation", None)
    assert empty.empty and "trainer.validation_data_dir" in text


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
