"""The dashboard as a real server on 127.0.0.1: its API through gradio_client, uploads refused,
auth, live refresh, the CLI's errors, and one headless-Chromium test per tab asserting what a
person sees (text present, headers not broken letter by letter, one legend entry per run, responses
with their line breaks and no sideways scrolling).

    .venv/bin/python -m pytest tests/monitor/test_app.py -q
    MONITOR_SCREENSHOT_DIR=/tmp/shots .venv/bin/python -m pytest tests/monitor/test_app.py -q   # keep the PNGs

The browser tests need Debian's chromium (`apt-get install -y chromium`); they alone skip, saying
so, where it is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.panels.curves import PALETTE
from tests.monitor.browser import CHROMIUM, Browser
from tests.monitor.conftest import grpo_metrics, write_dump, write_reward_errors, write_run_config, write_verl_run

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "monitor" / "app.py"
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


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
    deadline = time.time() + 120
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
    raise RuntimeError("app did not start within 120 s")


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
    a = write_verl_run(log_dir / "grpo-a", [{"steps": range(1, 31), "metrics": lambda s: grpo_metrics(s, seed=1), "val": val}],
                       total_steps=30)
    write_run_config(a, train_batch_size=8, n=4)
    b = write_verl_run(log_dir / "grpo-b", [
        {"steps": range(1, 16), "metrics": lambda s: grpo_metrics(s, seed=2, reward_slope=0.02), "exit_code": 1},
        {"steps": range(10, 26), "metrics": lambda s: grpo_metrics(s, seed=3, reward_slope=0.02, nan_from=22),
         "exit_code": None, "ended": None, "pid": os.getpid()},
    ], total_steps=40)
    write_verl_run(log_dir / "sft-c", [{"steps": range(1, 21), "metrics": lambda s: {"train/loss": 2.0 / s},
                                        "val": {20: {"val/loss": 0.31}}}], method="sft", total_steps=20)
    crash = write_verl_run(log_dir / "grpo-crash", [{"steps": range(1, 4), "metrics": lambda s: grpo_metrics(s),
                                                     "exit_code": 1}], total_steps=10)
    with open(crash / "train.log", "a") as f:
        f.write("HF_TOKEN=hf_secretsecretsecret123\nTraceback (most recent call last):\n  File \"trainer.py\", line 9\n"
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    write_dump(a, "rollout", 10, n=8, group=4)
    t0 = write_verl_run.__globals__["datetime"](2026, 11, 21, 10, 0, tzinfo=write_verl_run.__globals__["timezone"].utc)
    write_reward_errors(a, [{"time": t0 + timedelta(seconds=65), "kind": "timeout", "error": "reward call exceeded 10 s"},
                            {"time": t0 + timedelta(seconds=200), "error": "ValueError: no \\boxed{} in the response"}])
    (b / "README").write_text("a run folder may hold anything else")
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
    assert rows["sft-c"]["reward / loss"] == "loss 0.1 (val 0.31)"
    assert rows["grpo-a"]["reward errors"] == 2
    assert "CUDA out of memory" in rows["grpo-crash"]["detail"] and "hf_secret" not in problems
    alerts, summary, errors = c.predict(["grpo-b", "grpo-a"], api_name="/alerts")
    names = {r[2] for r in alerts["data"]}
    assert {"nan_loss", "reward_timeout"} <= names and "critical" in summary
    assert {r[1] for r in errors["data"]} == {"timeout", "exception"}
    samples = c.predict("grpo-a", "rollout", 10, "", None, None, api_name="/samples")
    assert len(samples["rows"]) == 8 and samples["groups"] == 2 and "Step **10**" in samples["summary"]
    gpus, text = c.predict(api_name="/gpu")
    assert gpus["data"] == [] and "No GPU visible" in text
    fig = c.predict(["grpo-a", "grpo-b"], 0.6, "step", [], api_name="/curves")
    plot = json.loads(fig["plot"])
    assert [t["name"] for t in plot["data"] if t.get("showlegend")] == ["grpo-a", "grpo-b"]


def test_live_refresh_and_new_run(server):
    url, log_dir = server
    c = _client(url)
    metrics_file = sorted((log_dir / "grpo-b" / "metrics").glob("*.jsonl"))[-1]
    with open(metrics_file, "ab") as f:
        f.write(b'{"step":26,"data":{"critic/score/mean":0.77,"timing_s/step":30.0}}\n')
    write_verl_run(log_dir / "grpo-new", [{"steps": range(1, 3), "metrics": lambda s: grpo_metrics(s)}])
    time.sleep(1.1)  # the tabs share one refresh per second
    table, _ = c.predict(api_name="/runs")
    rows = {r[0]: dict(zip(table["headers"], r)) for r in table["data"]}
    assert rows["grpo-b"]["step"] == "26 / 40" and rows["grpo-b"]["reward / loss"] == "0.77"
    assert "grpo-new" in rows


def _upload(url: str, cookie: str | None = None) -> int:
    body = b"--X\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.bin\"\r\n\r\n" + b"x" * 4096 + b"\r\n--X--\r\n"
    req = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": "multipart/form-data; boundary=X", **({"Cookie": cookie} if cookie else {})})
    try:
        return urllib.request.urlopen(req, timeout=30).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_uploads_are_refused(server):
    # why: the upload route stored and served files for anyone reaching the port; nothing here takes files
    url, _ = server
    assert _upload(url) == 403


def test_auth_required_uploads_refused_and_password_never_printed(tmp_path):
    log_dir = tmp_path / "outputs"
    write_verl_run(log_dir / "exp", [{"steps": range(1, 3), "metrics": lambda s: grpo_metrics(s)}])
    proc, url = _start(log_dir, env={"MONITOR_AUTH": "alice:s3cret-pw"})
    try:
        with pytest.raises(Exception):
            _client(url).predict(api_name="/runs")
        table, _ = _client(url, auth=("alice", "s3cret-pw")).predict(api_name="/runs")
        assert table["data"][0][0] == "exp"
        assert _upload(url) in (401, 403)
        login = urllib.request.Request(url + "login", data=b"username=alice&password=s3cret-pw", method="POST",
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        cookie = urllib.request.urlopen(login, timeout=30).headers.get("set-cookie", "").split(";")[0]
        assert cookie and _upload(url, cookie) == 403  # why: logged in or not, no uploads
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


# ---- one browser test per tab ---------------------------------------------------------------
# A text that needs more lines than it has words was broken inside a word ("corrup/t lines").
# Checked per text node (a header's menu icon is a text node of its own).
LINES_JS = """((sel) => [...document.querySelectorAll(sel)].map(el => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT); const nodes = [];
  while (walker.nextNode()) { const n = walker.currentNode; const text = n.textContent.trim(); if (!text) continue;
    const r = document.createRange(); r.selectNodeContents(n); const tops = new Set();
    for (const rect of r.getClientRects()) if (rect.width > 0) tops.add(Math.round(rect.top));
    nodes.push({text, lines: tops.size, words: text.split(/\\s+/).length}); }
  return {text: nodes.map(n => n.text).join(' '), nodes, width: el.getBoundingClientRect().width}; }))"""


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with Browser(width=1400, height=1000) as b:
        yield b


def _keep(b: Browser, name: str, tmp_path: Path) -> Path:
    png = b.screenshot(tmp_path / f"{name}.png")
    if os.environ.get("MONITOR_SCREENSHOT_DIR"):  # keep a copy to look at by eye
        shutil.copy(png, Path(os.environ["MONITOR_SCREENSHOT_DIR"]) / png.name)
    return png


def _no_broken_words(b: Browser, selector: str) -> list[dict]:
    cells = b.eval(f"{LINES_JS}({json.dumps(selector)})")
    assert cells, f"nothing matches {selector}"
    broken = [c for c in cells if any(n["lines"] > n["words"] for n in c["nodes"])]
    assert not broken, f"text broken inside a word: {broken}"
    return cells


@needs_chromium
def test_runs_tab_in_a_browser(server, browser, tmp_path):
    url, _ = server
    browser.open(url + "?tab=runs&__theme=light")
    # (gradio draws the table body virtually: its text, not its <tr>s, says what is on screen)
    browser.wait_for("['grpo-a', 'grpo-b', 'sft-c', 'grpo-crash'].every(n => "
                     "document.querySelector('#runs-table').innerText.includes(n)) && "
                     "document.querySelector('#runs-problems').innerText.includes('CUDA out of memory')")
    headers = _no_broken_words(browser, "#runs-table thead th")
    assert [h["nodes"][0]["text"] for h in headers][:5] == ["run", "method", "status", "step", "reward / loss"]
    assert min(h["width"] for h in headers) > 60
    text = browser.eval("document.querySelector('#runs-table').innerText")
    assert "loss 0.1 (val 0.31)" in text and "finished" in text and "running" in text
    problems = browser.eval("document.querySelector('#runs-problems').innerText")
    # why: a failed run says why, from its train.log, with the token it printed hidden
    assert "torch.OutOfMemoryError: CUDA out of memory" in problems and "hf_secret" not in problems
    _keep(browser, "runs", tmp_path)


@needs_chromium
def test_curves_tab_in_a_browser(server, browser, tmp_path):
    url, _ = server
    browser.open(url + "?tab=curves&__theme=light")
    browser.wait_for("document.querySelectorAll('#curves-plot .legendtext').length > 0 && "
                     "document.querySelectorAll('#curves-plot .scatterlayer .trace').length > 10", settle=1.5)
    legend = browser.eval("[...document.querySelectorAll('#curves-plot .legendtext')].map(e => e.textContent)")
    # why: one legend entry per run (it was one per run x metric: 46 entries below all the plots)
    assert len(legend) == len(set(legend)) and 1 <= len(legend) <= 3 and not any("·" in name for name in legend)
    legend_top = browser.eval("document.querySelector('#curves-plot .legend').getBoundingClientRect().top")
    first_panel = browser.eval("Math.min(...[...document.querySelectorAll('#curves-plot .draglayer .nsewdrag')]"
                               ".map(e => e.getBoundingClientRect().top))")
    assert legend_top < first_panel, "the legend sits above the panels"
    titles = " ".join(browser.eval("[...document.querySelectorAll('#curves-plot .annotation-text')].map(e => e.textContent)"))
    assert "Reward" in titles and "Policy loss" in titles and "KL" in titles
    png = _keep(browser, "curves", tmp_path)
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    # Each drawn run in its own colour: runs are coloured by creation (all fixtures start at 10:00, so by name).
    _, log_dir = server
    order = sorted(p.name for p in log_dir.iterdir() if (p / "run.json").is_file())
    for name in legend:
        colour = PALETTE[order.index(name)]
        rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        pixels = int((np.abs(img - rgb).sum(axis=2) < 40).sum())
        assert pixels > 100, f"{name}: its colour {colour} covers only {pixels} pixels"
    legend_box = browser.eval("(() => { const r = document.querySelector('#curves-plot .legend').getBoundingClientRect();"
                              " return [r.top, r.bottom]; })()")
    title_tops = browser.eval("[...document.querySelectorAll('#curves-plot .annotation')].map(e => e.getBoundingClientRect().top)")
    # why: the legend does not cover the first panels' titles
    assert legend_box[1] <= min(title_tops) + 1, (legend_box, min(title_tops))


@needs_chromium
def test_samples_tab_in_a_browser(server, browser, tmp_path):
    url, _ = server
    browser.open(url + "?tab=samples&__theme=light")
    browser.wait_for("document.querySelectorAll('#samples-view .sv-group').length === 2")
    groups = browser.eval("[...document.querySelectorAll('#samples-view .sv-group')].map(g => g.innerText)")
    assert "What is 0 + 10?" in groups[0] and "GROUND TRUTH" in groups[0].upper() and "4 response(s)" in groups[0]
    # why: responses keep their line breaks (they were flattened into one line)
    response = browser.eval("document.querySelector('#samples-view .sv-resp[open] .sv-text').innerText")
    assert "\n" in response.strip() and "<think>" in response
    # why: no sideways scrolling, in the page or inside any text box
    overflow = browser.eval("[document.documentElement.scrollWidth - window.innerWidth, ...[...document.querySelectorAll("
                            "'#samples-view .sv-text')].map(e => e.scrollWidth - e.clientWidth)]")
    assert max(overflow) <= 1, overflow
    _no_broken_words(browser, "#samples-view .sv-head b, #samples-view .sv-score")
    _keep(browser, "samples", tmp_path)


@needs_chromium
def test_alerts_tab_in_a_browser(server, browser, tmp_path):
    url, _ = server
    browser.open(url + "?tab=alerts&__theme=light")
    browser.wait_for("document.querySelector('#alerts-table').innerText.includes('nan_loss') && "
                     "document.querySelector('#reward-errors-table').innerText.includes('timeout')")
    _no_broken_words(browser, "#alerts-table thead th")
    _no_broken_words(browser, "#reward-errors-table thead th")
    text = browser.eval("document.querySelector('#alerts-table').innerText")
    assert "reward_timeout" in text and "Resume from the last good checkpoint" in text
    assert "reward call exceeded 10 s" in browser.eval("document.querySelector('#reward-errors-table').innerText")
    _keep(browser, "alerts", tmp_path)


@needs_chromium
def test_gpu_tab_in_a_browser(server, browser, tmp_path):
    url, _ = server
    browser.open(url + "?tab=gpu&__theme=light")
    browser.wait_for("document.querySelector('#gpu-status') && document.querySelector('#gpu-status').innerText.length > 0")
    assert "No GPU visible" in browser.eval("document.querySelector('#gpu-status').innerText")
    _keep(browser, "gpu", tmp_path)
