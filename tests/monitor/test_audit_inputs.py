"""Bad and odd run folders, as a careless user or an attacker leaves them: the dashboard keeps
serving the other runs, says what is wrong with the bad one, never shows a secret and never reads
outside --log_dir. Run folders are written under a temp dir; the server is the real app.

    .venv/bin/python -m pytest tests/monitor/test_audit_inputs.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from monitor.log_parser import parse_console_line, parse_jsonl_line
from monitor.metrics_collector import MetricsCollector, read_error_lines, read_sample_steps, read_samples
from tests.monitor.conftest import grpo_metrics, write_verl_run
from tests.monitor.test_app import _client, _start, _stop

REPO = Path(__file__).resolve().parents[2]
# Secrets in shapes the redaction knows; none of these strings may reach a page or an API answer.
PASSWORD = "hunter2pwVeryLongPasswordXYZ"
BEARER = "eyJsecretTOKEN12345"
WANDB = "abcdef0123456789abcdef0123456789abcdef01"
SECRET_LINE = f"WANDB_API_KEY={WANDB} Authorization: Bearer {BEARER} url https://alice:{PASSWORD}@host.example/x"
SECRETS = (PASSWORD, BEARER, WANDB, PASSWORD[:9])


def _run(root: Path, name: str, **launch) -> Path:
    """A small finished run; `launch` overrides fields of its run.json launch record."""
    d = write_verl_run(root / name, [{"steps": range(1, 4), "metrics": lambda s: grpo_metrics(s)}], total_steps=3)
    if launch:
        meta = json.loads((d / "run.json").read_text())
        meta["launches"][-1].update(launch)
        (d / "run.json").write_text(json.dumps(meta))
    return d


def _status(root: Path, name: str):
    return {s.name: s for s in MetricsCollector(root, background=False).statuses()}[name]


def _no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secret shown: {leaked} in {text[:500]!r}"


def test_run_json_values_shown_in_the_detail_are_redacted(log_dir):
    # why: exit_code, pid and host of run.json went into the Runs tab's detail cut to 20/60 characters
    # and unredacted ("on host https://alice:pw@host", "exited with code WANDB_API_KEY=abcdef")
    _run(log_dir, "code", exit_code=SECRET_LINE)
    _run(log_dir, "pid", pid=SECRET_LINE, ended=None, exit_code=None)
    _run(log_dir, "host", host=f"https://alice:{PASSWORD}@host.example", ended=None, exit_code=None)
    statuses = MetricsCollector(log_dir, background=False).statuses()
    for s in statuses:
        _no_secret(s.detail + " ".join(s.problems))
    by_name = {s.name: s for s in statuses}
    assert "***@host.example" in by_name["host"].detail


def test_exit_code_written_as_text(log_dir):
    # why: "exit_code": "0" read as a failure ("exited with code 0"); text that is no number
    # must say which field is wrong, not pass for an exit code
    _run(log_dir, "zero", exit_code="0")
    _run(log_dir, "one", exit_code="1")
    _run(log_dir, "word", exit_code="oops")
    assert _status(log_dir, "zero").status == "finished"
    one = _status(log_dir, "one")
    assert one.status == "failed" and "exited with code 1" in one.detail
    word = _status(log_dir, "word")
    assert word.status == "unknown"
    assert "exit_code" in word.detail and "not an integer" in word.detail and "run.json" in word.detail


def test_pid_alive_but_not_the_launcher_is_not_running(log_dir):
    # why: a dead run whose pid the system gave to another program showed "running" forever
    other = subprocess.Popen(["sleep", "60"])
    try:
        _run(log_dir, "reused", pid=other.pid, ended=None, exit_code=None)
        _run(log_dir, "ours", pid=os.getpid(), ended=None, exit_code=None)  # pytest: a Python process
        reused = _status(log_dir, "reused")
        assert reused.status == "failed" and "another program" in reused.detail
        assert _status(log_dir, "ours").status == "running"
    finally:
        other.kill()
        other.wait()


def test_corrupt_line_reasons_never_hold_a_piece_of_a_secret(log_dir):
    # why: the console parser quoted the field cut at its last ':' ("https://alice:" | "pw@host"), so
    # the redaction no longer saw a URL and the password reached the Runs tab's problems
    d = log_dir / "console"
    d.mkdir()
    (d / "train.log").write_text(f"step:1 - critic/score/mean:0.5 - {SECRET_LINE}\n"
                                 f"step:2 - https://alice:{PASSWORD}@host.example:1\n")
    jsonl = write_verl_run(log_dir / "jsonl", [{"steps": range(1, 3), "metrics": lambda s: grpo_metrics(s)}])
    metrics = next((jsonl / "metrics").glob("*.jsonl"))
    with open(metrics, "a") as f:
        f.write(json.dumps({"step": f"https://alice:{PASSWORD}{'x' * 40}@host", "data": {}}) + "\n")
    collector = MetricsCollector(log_dir, background=False)
    for name in ("console", "jsonl"):
        collector.metrics(name)
    statuses = collector.statuses()
    text = " ".join(p for s in statuses for p in s.problems)
    assert "corrupt line" in text and "train.log:1" in text and "step is not an integer" in text
    _no_secret(text)
    for line in (f"step:1 - {SECRET_LINE}".encode(), f"step:1 - x:https://alice:{PASSWORD}@h".encode()):
        with pytest.raises(ValueError) as err:
            parse_console_line(line)
        _no_secret(str(err.value))


def test_a_huge_step_is_named_in_a_short_message():
    # why: a step of 1e308 was printed with all its 309 digits in the Runs tab
    with pytest.raises(ValueError) as err:
        parse_jsonl_line(b'{"step": 1e308, "data": {"a": 1}}')
    assert "1e+308" in str(err.value) and "out of range" in str(err.value) and len(str(err.value)) < 80


def test_sample_dumps_that_are_not_files_or_point_outside(log_dir, tmp_path):
    # why: a rollout dump symlinked outside --log_dir was reported as "no dump for step 7"; a FIFO
    # counted as a dump and became the step the tab opened on
    d = _run(log_dir, "samples")
    (d / "rollout").mkdir()
    outside = tmp_path / "outside.jsonl"
    outside.write_text(json.dumps({"input": "x", "output": "secret outside", "score": 1}) + "\n")
    os.symlink(outside, d / "rollout" / "7.jsonl")
    os.mkfifo(d / "rollout" / "9.jsonl")
    (d / "rollout" / "3.jsonl").write_text(json.dumps({"input": "q", "output": "a", "score": 1}) + "\n")
    assert read_sample_steps(d, "rollout") == [3, 7]
    with pytest.raises(PermissionError, match="outside --log_dir"):
        read_samples(d, "rollout", 7)


def test_progress_bar_lines_show_what_a_terminal_shows(tmp_path):
    # why: a tqdm bar's carriage returns went into the error lines as one long line of every frame
    log = tmp_path / "train.log"
    log.write_bytes(b"".join(b"\rloading %d%%" % i for i in range(0, 101, 10)) + b" Error: shard 3 missing\r\n")
    assert read_error_lines(log) == ["loading 100% Error: shard 3 missing"]


def test_thousands_of_keys_make_one_frame_without_warnings(log_dir):
    # why: adding the wall-time column to a 4,096-column frame raised pandas' PerformanceWarning on every draw
    d = log_dir / "wide"
    (d / "metrics").mkdir(parents=True)
    (d / "metrics" / "20261121-100000.jsonl").write_text(
        "".join(json.dumps({"step": s, "data": {f"k/{i}": i for i in range(3000)}}) + "\n" for s in (1, 2)))
    collector = MetricsCollector(log_dir, background=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        df = collector.metrics("wide")
    assert df.shape == (2, 3003)


def test_plots_cli_says_why_it_cannot_write(log_dir):
    # why: `python -m monitor.plots` ended in a FileExistsError traceback when plots/ was a file
    d = _run(log_dir, "plots-blocked")
    (d / "plots").write_text("not a folder")
    out = subprocess.run([sys.executable, "-m", "monitor.plots", str(d)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "cannot write the plots" in out.stderr and "plots" in out.stderr
    assert (d / "plots").read_text() == "not a folder"


@pytest.fixture(scope="module")
def bad_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    _run(root, "good")
    _run(root, "exitcode-secret", exit_code=SECRET_LINE)
    _run(root, "host-secret", host=f"https://alice:{PASSWORD}@host.example", ended=None, exit_code=None)
    (_run(root, "runjson-array") / "run.json").write_text("[1, 2]")
    d = _run(root, "samples")
    (d / "rollout").mkdir()
    rows = [{"input": "<script>alert(1)</script>", "output": f"{SECRET_LINE} </div><script>alert(2)</script> $\\frac12$",
             "gts": "<img src=x onerror=alert(3)>", "score": 1.0, "uid": "a_0_0", "note": SECRET_LINE},
            {"input": "huge", "output": "H" * (5 * 2**20) + SECRET_LINE, "score": 0.0, "uid": "b_0_0"},
            {"uid": "c_0_0"}]
    (d / "rollout" / "3.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.symlink("/etc", root / "etc-link")
    proc, url = _start(root)
    yield url, root
    _stop(proc)


def test_server_keeps_serving_and_hides_secrets(bad_server):
    url, root = bad_server
    c = _client(url)
    table, problems = c.predict(api_name="/runs")
    _no_secret(json.dumps(table) + problems)
    rows = {r[0]: dict(zip(table["headers"], r)) for r in table["data"]}
    assert rows["good"]["status"] == "finished" and rows["exitcode-secret"]["status"] == "unknown"
    assert "run.json: expected a JSON object" in problems and "etc-link" in problems and "refused" in problems
    samples = c.predict("samples", "rollout", 3, "", None, None, api_name="/samples")
    _no_secret(json.dumps(samples))
    assert "<script" not in samples["html"] and "&lt;script&gt;" in samples["html"] and "\\frac12" in samples["html"]
    assert "more characters)" in samples["html"]
    huge = next(r for r in samples["rows"] if r["input"] == "huge")
    assert huge["output"].startswith("HHHH") and huge["output"].endswith("@host.example/x")
    for bad in ("../../etc", "etc-link", "good/../../etc", "/etc"):
        out = c.predict(bad, "rollout", None, "", None, None, api_name="/samples")
        assert "no run named" in out["summary"] and "root:" not in json.dumps(out)
        fig = c.predict([bad], 0.8, "step", [], api_name="/curves")
        assert "Not drawn" in fig["note"]


@pytest.mark.parametrize("code", ["²", "9" * 400, 10**30, True, 1.5, [1]])
def test_exit_code_of_odd_types_is_named_not_crashing(log_dir, code):
    # why: "²".isdigit() is True but int("²") raises; a 400-digit code filled the detail
    _run(log_dir, "odd", exit_code=code)
    s = _status(log_dir, "odd")
    assert s.status == "unknown" and "exit_code" in s.detail and "not an integer" in s.detail
    assert len(s.detail) < 200 and not s.problems


def test_one_huge_number_does_not_make_run_json_unreadable(log_dir):
    # why: orjson refuses an integer past 1e308, so one such value hid the run's whole run.json
    d = _run(log_dir, "bignum")
    meta = json.loads((d / "run.json").read_text())
    (d / "run.json").write_text(json.dumps(meta)[:-1] + ', "seed": ' + "9" * 400 + "}")
    s = _status(log_dir, "bignum")
    assert s.status == "finished" and not s.problems
