"""Training dashboard: runs, curves, samples, GPU and alerts of the runs under --log_dir.

    cd monitor && python app.py --port 7860 --log_dir ../outputs
    python monitor/app.py                          # from the top level: log_dir = <repo>/outputs
    MONITOR_AUTH=user:password python monitor/app.py --host 0.0.0.0   # exposed: protect it

Offers:
    build_app(log_dir, config) -> gr.Blocks   assembles the tabs of monitor/panels/ around one
                                              MetricsCollector (no module-level state).
    NoUploads                                 ASGI middleware refusing gradio's upload route: the
                                              dashboard takes no files, so nothing may be stored.
    LAUNCH_OPTIONS                            what main() passes to launch() besides host/port/auth.
    main(argv) -> exit code
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

# Run as a script from monitor/ or from the top level: make `import monitor` resolve to this repo.
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402

from monitor.metrics_collector import MetricsCollector  # noqa: E402
from monitor.panels import alerts, curves, gpu, runs, samples  # noqa: E402
from monitor.settings import DEFAULT_CONFIG_PATH, ConfigError, load_config  # noqa: E402

DEFAULT_LOG_DIR = _REPO / "outputs"
TAB_IDS = ("runs", "curves", "samples", "alerts", "gpu")


def build_app(log_dir: str | os.PathLike, config: dict) -> gr.Blocks:
    """Input: the folder holding run folders, and a config from settings.load_config.
    Output: the Blocks app (not launched). API endpoints: /runs, /curves, /samples,
    /sample_steps, /gpu, /alerts."""
    collector = MetricsCollector(log_dir, stale_after_s=float(config["stale_after_seconds"]),
                                 memory_budget_mb=float(config["memory_budget_mb"]))
    with gr.Blocks(title="Training monitor") as demo:
        gr.Markdown("## Training monitor")
        timer = gr.Timer(float(config["refresh_seconds"]))
        # The tab in front, per browser session: timers skip the work of hidden tabs.
        active = gr.State("runs")
        built = {}
        with gr.Tabs() as tabs:
            for name, panel in (("runs", runs), ("curves", curves), ("samples", samples), ("alerts", alerts), ("gpu", gpu)):
                built[name] = panel.build(demo, collector, config, timer, active)

        def open_tab(request: gr.Request):
            # Deep link: http://host:port/?tab=curves opens that tab (ids: runs, curves, samples, alerts, gpu).
            wanted = request.query_params.get("tab") if request else None
            if wanted in TAB_IDS:
                return gr.Tabs(selected=wanted), wanted
            return gr.skip(), "runs"

        fn, inputs, outputs = built["alerts"]["on_open"]
        demo.load(open_tab, outputs=[tabs, active], api_name=False).then(fn, inputs=inputs, outputs=outputs,
                                                                        api_name=False)
    demo.collector = collector  # for tests and benchmarks (e.g. wait for background loads)
    return demo


class NoUploads:
    """Refuse gradio's /upload route (403): no component here takes files, and an open upload
    route lets anyone who reaches the port store files on this machine (with or without --auth)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and scope.get("path", "").rstrip("/").endswith("/upload"):
            response = PlainTextResponse("uploads are disabled: the training monitor reads run folders and takes no files",
                                         status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# Table headers wrap between words, never inside one ("corrupt lines", not "corrup/t lines").
CSS = "#runs-table th, #alerts-table th, #reward-errors-table th {word-break: keep-all; overflow-wrap: normal;}"
# max_file_size=0 refuses any upload body too, should a route other than /upload take files.
LAUNCH_OPTIONS = {"show_error": True, "quiet": True, "max_file_size": 0, "css": CSS,
                  "app_kwargs": {"middleware": [Middleware(NoUploads)]}, "footer_links": ["api"]}


def _parse_auth(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        # Never echo the value: it may be a password typed in the wrong format.
        raise ValueError("--auth / MONITOR_AUTH must look like user:password (both non-empty)")
    return user, password


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log_dir", default=str(DEFAULT_LOG_DIR), help="folder holding one folder per run (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it (then use --auth)")
    parser.add_argument("--auth", default=None, help="user:password for the login page (default: $MONITOR_AUTH)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="dashboard config (default: %(default)s)")
    args = parser.parse_args(argv)

    log_dir = Path(args.log_dir).expanduser()
    if log_dir == DEFAULT_LOG_DIR and not log_dir.exists():
        # The project's own outputs/ before the first run: open an empty dashboard that picks runs up.
        log_dir.mkdir(parents=True)
    if not log_dir.is_dir():
        print(f"error: --log_dir {log_dir} is not a folder; create it (mkdir -p {log_dir}) or pass the "
              f"folder your runs write to (the launcher's --log_dir)", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
        auth = _parse_auth(args.auth or os.environ.get("MONITOR_AUTH"))
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"error: --port {args.port} is not a TCP port (1-65535)", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        print(f"warning: serving on {args.host} without --auth: anyone who can reach this port sees your runs",
              file=sys.stderr)

    demo = build_app(log_dir, config)
    print(f"monitor: {log_dir.resolve()} on http://{args.host}:{args.port}"
          + (f" (login required, user {auth[0]!r})" if auth else ""), flush=True)
    demo.queue(default_concurrency_limit=4).launch(server_name=args.host, server_port=args.port, auth=auth,
                                                   prevent_thread_lock=True, **LAUNCH_OPTIONS)
    threading.Thread(target=warm_up, args=(demo, f"http://127.0.0.1:{args.port}/", auth), name="monitor-warm-up",
                     daemon=True).start()
    demo.block_thread()
    return 0


def warm_up(demo: gr.Blocks, url: str, auth: tuple[str, str] | None) -> None:
    """Make the first page fast: one /runs and one empty /curves request through the server (gradio
    builds an endpoint's request and response models on its first call: ~0.6 s each) read every run's
    tail, and the preview of the runs the Curves tab opens with is read (no full parse starts here)."""
    try:
        headers = {"Content-Type": "application/json"}
        if auth:
            login = urllib.request.Request(url + "login", data=urllib.parse.urlencode(
                {"username": auth[0], "password": auth[1]}).encode(), method="POST")
            cookie = urllib.request.urlopen(login, timeout=30).headers.get("set-cookie", "")
            headers["Cookie"] = cookie.split(";")[0]
        # /curves with no run: its models are built, nothing is parsed.
        for api, data in (("runs", []), ("curves", [[], 0.8, "step", []])):
            call = urllib.request.Request(f"{url}gradio_api/call/{api}", data=json.dumps({"data": data}).encode(),
                                          headers=headers, method="POST")
            event = json.loads(urllib.request.urlopen(call, timeout=60).read())["event_id"]
            urllib.request.urlopen(urllib.request.Request(f"{url}gradio_api/call/{api}/{event}", headers=headers),
                                   timeout=120).read()
        collector = demo.collector
        collector.columns(curves.default_runs(collector))
    except Exception:  # noqa: BLE001 - a warm-up that fails only leaves the first page slower
        pass
    print(f"monitor: ready ({len(demo.collector.runs)} runs)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
