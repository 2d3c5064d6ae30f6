"""A headless Chromium driven over the DevTools protocol through a pipe (no extra packages):
open a page, wait for what a person would wait for, measure the layout with JavaScript, screenshot.

    with Browser() as b:
        b.open("http://127.0.0.1:7860/?tab=curves")
        b.wait_for("document.querySelector('#curves-plot .legend') !== null")
        widths = b.eval("[...document.querySelectorAll('th')].map(th => th.clientWidth)")
        b.screenshot(path)

Used by tests/monitor/test_app.py; needs Debian's chromium (`apt-get install -y chromium`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; messages are JSON terminated by NUL on fds 3/4."""

    def __init__(self, width: int = 1400, height: int = 1000):
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed (apt-get install -y chromium)")
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="monitor-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire():  # in the child: the protocol wants our pipe ends as fds 3 (in) and 4 (out)
            # Copy first: dup2 onto the same number keeps close-on-exec, and 3/4 may be our own fds.
            src_in, src_out = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(src_in, 3)
            os.dup2(src_out, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={self._profile}",
             # A page opened over the protocol counts as a background tab: without these its
             # animation frames (which draw the virtual tables) are throttled to nothing.
             "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
             "--disable-backgrounding-occluded-windows",
             f"--window-size={width},{height}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None

    # ---- protocol ------------------------------------------------------------------------
    def _send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" not in self._buf:
                if time.time() > deadline:
                    raise BrowserError(f"no answer to {method} within {timeout} s")
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise BrowserError("chromium closed the pipe")
                self._buf += chunk
            raw, _, self._buf = self._buf.partition(b"\0")
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                          "deviceScaleFactor": 1, "mobile": False}, self.session)
        self._send("Emulation.setFocusEmulationEnabled", {"enabled": True}, self.session)
        self._send("Page.bringToFront", {}, self.session)
        self._send("Page.navigate", {"url": url}, self.session)

    def eval(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self._send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                            self.session)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 60.0, settle: float = 0.5) -> None:
        """Poll a JavaScript condition until true (then let the page settle for `settle` s)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.eval(f"Boolean({condition})"):
                    time.sleep(settle)
                    return
            except BrowserError:
                pass
            time.sleep(0.25)
        raise BrowserError(f"timed out after {timeout} s waiting for: {condition}")

    def click_text(self, selector: str, text: str) -> None:
        found = self.eval(f"""(() => {{ const el = [...document.querySelectorAll({json.dumps(selector)})]
            .find(e => e.textContent.trim() === {json.dumps(text)}); if (el) el.click(); return !!el; }})()""")
        if not found:
            raise BrowserError(f"no {selector} with text {text!r}")

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        params = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            h = int(self.eval("document.documentElement.scrollHeight") or self.height)
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": min(h, 8000), "scale": 1}
        data = self._send("Page.captureScreenshot", params, self.session)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        try:
            self._send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
