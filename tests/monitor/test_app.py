"""The dashboard as a real server on 127.0.0.1: its API through gradio_client, a headless
Chromium screenshot of the Curves tab, live refresh, auth, and the CLI's errors.

    .venv/bin/python -m pytest tests/monitor/test_app.py -q

The screenshot needs Debian's chromium (`apt-get install -y chromium`); that test alone skips,
saying so, where it is not installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.monitor.conftest import grpo_metrics, write_dump, write_verl_run

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "monitor" / "app.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(log_dir: Path, *extra: str, env: dict | None = None):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(APP), "--port", str(port), "--log_dir", str(log_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited {proc.returncode}: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except urllib.error.HTTPError:
            return proc, url  # answering (e.g. 401 behind auth)
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("app did not start within 90 s")


def _stop(proc) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("outputs")
    val = {s: {"val-core/openai/gsm8k/acc/mean@1": 0.2 + s / 100} for s in (10, 20, 30)}
    write_verl_run(log_dir / "grpo-a", [{"steps": range(1, 31), "metrics": lambda s: grpo_metrics(s, seed=1), "val": val}],
                   total_steps=30)
    write_verl_run(log_dir / "grpo-b", [
        {"steps": range(1, 16), "metrics": lambda s: grpo_metrics(s, seed=2, reward_slope=0.02), "exit_code": 1},
        {"steps": range(10, 26), "metrics": lambda s: grpo_metrics(s, seed=3, reward_slope=0.02, nan_from=22),
         "exit_code": None, "ended": None, "pid": os.getpid()},
    ], total_steps=40)
    write_dump(log_dir / "grpo-a", "rollout", 10)
    proc, url = _start(log_dir)
    yield url, log_dir
    _stop(proc)


def _client(url, **kw):
    from gradio_client import Client

    return Client(url, verbose=False, **kw)


def test_api_runs_alerts_samples_gpu(server):
    url, log_dir = server
    c = _client(url)
    table, problems = c.predict(api_name="/runs")
    rows = {r[0]: dict(zip(table["headers"], r)) for r in table["data"]}
    assert rows["grpo-a"]["status"] == "finished" and rows["grpo-a"]["step"] == "30 / 30"
    # why: launch 2 of grpo-b has no exit and its pid (this test process) is alive
    assert rows["grpo-b"]["status"] == "running" and rows["grpo-b"]["step"] == "25 / 40"
    assert rows["grpo-b"]["ETA"] == "7m 30s"  # 15 steps x 30 s
    alerts, summary = c.predict(["grpo-b"], api_name="/alerts")
    names = {r[2] for r in alerts["data"]}
    assert "nan_loss" in names and "critical" in summary
    samples = c.predict("grpo-a", "rollout", 10, "", None, None, api_name="/samples")
    assert len(samples["rows"]) == 8 and "Step **10**" in samples["summary"]
    gpus, text = c.predict(api_name="/gpu")
    assert gpus["data"] == [] and "No GPU visible" in text
    fig = c.predict(["grpo-a", "grpo-b"], 0.6, "step", api_name="/curves")
    assert fig["type"] == "plotly"
    assert '"grpo-a' in fig["plot"] and '"grpo-b' in fig["plot"] and "Reward" in fig["plot"]


def test_live_refresh_and_new_run(server):
    url, log_dir = server
    c = _client(url)
    metrics_file = sorted((log_dir / "grpo-b" / "metrics").glob("*.jsonl"))[-1]
    with open(metrics_file, "ab") as f:
        f.write(b'{"step":26,"data":{"critic/score/mean":0.77,"timing_s/step":30.0}}\n')
    write_verl_run(log_dir / "grpo-c", [{"steps": range(1, 3), "metrics": lambda s: grpo_metrics(s)}])
    table, _ = c.predict(api_name="/runs")
    rows = {r[0]: dict(zip(table["headers"], r)) for r in table["data"]}
    assert rows["grpo-b"]["step"] == "26 / 40" and rows["grpo-b"]["last reward"] == "0.77"
    assert "grpo-c" in rows


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_curves_tab_screenshot_shows_both_runs(server, tmp_path):
    url, _ = server
    # The first curves request imports plotly and parses the runs (seconds of real time, which
    # chromium's virtual-time budget does not wait for): make it once through the API first.
    _client(url).predict(["grpo-a", "grpo-b"], 0.0, "step", api_name="/curves")
    png = tmp_path / "curves.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1400,1000",
           "--virtual-time-budget=20000", f"{url}?tab=curves&__theme=light"]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    if os.environ.get("MONITOR_SCREENSHOT_DIR"):  # keep a copy to look at by eye
        shutil.copy(png, Path(os.environ["MONITOR_SCREENSHOT_DIR"]) / "curves.png")
    assert png.is_file(), "chromium wrote no screenshot"
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)

    def count(rgb, tol=40):
        return int((np.abs(img - np.array(rgb)).sum(axis=2) < tol).sum())

    # Plotly's first two palette colours: the two runs' lines (grpo-a #636EFA, grpo-b #EF553B).
    blue, red = count((99, 110, 250)), count((239, 85, 59))
    assert blue > 1500 and red > 1500, f"plot lines not drawn: blue={blue} red={red} pixels"


def test_auth_required_and_password_never_printed(tmp_path):
    log_dir = tmp_path / "outputs"
    write_verl_run(log_dir / "exp", [{"steps": range(1, 3), "metrics": lambda s: grpo_metrics(s)}])
    proc, url = _start(log_dir, env={"MONITOR_AUTH": "alice:s3cret-pw"})
    try:
        with pytest.raises(Exception):
            _client(url).predict(api_name="/runs")
        table, _ = _client(url, auth=("alice", "s3cret-pw")).predict(api_name="/runs")
        assert table["data"][0][0] == "exp"
    finally:
        out = _stop(proc)
    assert "alice" in out and "s3cret-pw" not in out


CLI_ERRORS = [
    # why: a missing log folder names the path and how to fix it
    (["--log_dir", "{tmp}/nope"], "is not a folder"),
    # why: auth without a password is refused without echoing the value
    (["--log_dir", "{tmp}", "--auth", "bob-only"], "must look like user:password"),
    # why: a typo in the config is named
    (["--log_dir", "{tmp}", "--config", "{tmp}/bad.yaml"], "unknown key(s) ['refresh_secs']"),
]


@pytest.mark.parametrize("args,msg", CLI_ERRORS)
def test_cli_errors(tmp_path, args, msg):
    (tmp_path / "bad.yaml").write_text("refresh_secs: 5\n")
    out = subprocess.run([sys.executable, str(APP), *[a.format(tmp=tmp_path) for a in args]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and msg in out.stderr
    assert "bob-only" not in out.stderr
