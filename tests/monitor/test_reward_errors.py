"""The reward guard's reward_errors.jsonl: counted, grouped into distinct errors, read from the end,
placed into steps for the share alert, and shown redacted.

    .venv/bin/python -m pytest tests/monitor/test_reward_errors.py -q
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import monitor.reward_errors as re_mod
from monitor.metrics_collector import MetricsCollector
from monitor.panels.alerts import read_alerts_table, step_intervals
from monitor.reward_errors import RewardErrorLog
from tests.monitor.conftest import grpo_metrics, write_reward_errors, write_run_config

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)


def test_counts_distinct_errors_and_timeouts(tmp_path):
    write_reward_errors(tmp_path, [
        *({"time": T0 + timedelta(seconds=i), "error": "ZeroDivisionError: division by zero"} for i in range(5)),
        {"time": T0, "kind": "timeout", "error": "reward call exceeded 10 s"},
        {"time": T0, "kind": "nan", "error": "score is NaN", "data_source": "math_dapo"},
        # why: a key the reward function printed into its error must not reach the page
        {"time": T0, "error": "HTTPError 401 for https://user:s3cret@api.example.com with OPENAI_API_KEY=sk-abcdefghijklmnopqrst"},
    ])
    log = RewardErrorLog(tmp_path / "reward_errors.jsonl")
    assert log.refresh() and log.count == 8
    assert dict(log.by_kind) == {"exception": 6, "timeout": 1, "nan": 1}
    distinct = log.distinct()
    assert distinct[0].count == 5 and distinct[0].error == "ZeroDivisionError: division by zero"
    assert distinct[0].first_time == T0.timestamp() and distinct[0].last_time == (T0 + timedelta(seconds=4)).timestamp()
    text = " ".join(e.error for e in distinct)
    assert "s3cret" not in text and "sk-abcdefghijklmnopqrst" not in text and "OPENAI_API_KEY=***" in text
    assert len(log.times) == 8 and len(log.timeout_times) == 1
    # why: incremental: nothing new, nothing re-read; appended lines are counted once
    assert not log.refresh()
    write_reward_errors(tmp_path, [{"time": T0, "kind": "inf", "error": "score is inf"}])
    assert log.refresh() and log.count == 9


def test_a_huge_file_is_counted_whole_but_parsed_only_at_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(re_mod, "TAIL_BYTES", 4096)
    write_reward_errors(tmp_path, [{"time": T0 + timedelta(seconds=i), "error": f"early error {i % 3}"} for i in range(200)])
    write_reward_errors(tmp_path, [{"time": T0 + timedelta(hours=1), "kind": "timeout", "error": "late timeout"}])
    log = RewardErrorLog(tmp_path / "reward_errors.jsonl")
    log.refresh()
    # why: every line counts; only the last 4 KB (~15 lines) were parsed into times and distinct errors
    assert log.count == 201 and log.parsed < 30 and log.timeout_times.size == 1
    assert any(e.error == "late timeout" for e in log.distinct())


def test_corrupt_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / "reward_errors.jsonl"
    path.write_bytes(b'{"time": "not a time", "kind": 5}\n\xff\xfe garbage\n[]\n{"time": "2026-11-21T10:00:00Z"}\n')
    log = RewardErrorLog(path)
    log.refresh()
    assert log.count == 4 and log.corrupt == 2 and len(log.times) == 1


def test_alerts_tab_places_errors_into_steps(tmp_path, make_run):
    log_dir = tmp_path / "outputs"
    # Steps 1-10 of 30 s each; run.json records the launch's end, so step s ends at start + 30 s * s.
    run = make_run(log_dir / "exp", [{"steps": range(1, 11), "metrics": lambda s: grpo_metrics(s)}], total_steps=10)
    write_run_config(run, train_batch_size=8, n=4)  # 32 samples per step: 1 failure = 3.1% > 1%
    start = T0
    write_reward_errors(run, [{"time": start + timedelta(seconds=30 * 6 + 10), "error": "KeyError: 'answer'"},
                              {"time": start + timedelta(seconds=30 * 2 + 5), "kind": "timeout", "error": "took 30 s"}])
    c = MetricsCollector(log_dir)
    df = c.metrics("exp")
    starts, ends = step_intervals(df)
    assert ends[6] - starts[6] == 30.0 and ends[0] == start.timestamp() + 30
    table, summary, errors = read_alerts_table(c, ["exp"], {})
    found = {(r["alert"], r["step"]) for _, r in table.iterrows()}
    # why: 190 s after the start falls in step 7 (180-210 s); the timeout at 65 s in step 3
    assert ("reward_errors", 7) in found and ("reward_timeout", 3) in found
    assert set(errors["kind"]) == {"exception", "timeout"} and "2 failed reward call(s)" in summary
