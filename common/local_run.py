"""Run verl on this machine: the trainer as a child process, its output teed into train.log.

    ./grpo/train.sh                  # a launch without NNODES > 1 or RAY_ADDRESS ends here

Offers:
- run(plan, cfg) -> exit code: writes config.yaml and run.json, starts the trainer command, copies
  its output (secrets hidden) to the console and train.log, runs the training callbacks
  (common/callbacks.py: alerts, NaN/KL stops, export and evaluation at the end) while it trains,
  and records the end in run.json. Ctrl-C stops verl as Ray expects (SIGINT, then SIGTERM).
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import threading

from common import run_folder
from common.knobs import ConfigError
from common.plan import REPO_ROOT
from common.redaction import SecretFilter

def _interrupt(child) -> None:
    """Stop verl as Ctrl-C would (SIGINT: Ray shuts its workers down), then SIGTERM after 60 s."""
    import signal

    if child is None or child.poll() is not None:
        return
    child.send_signal(signal.SIGINT)

    def escalate():
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.terminate()

    threading.Thread(target=escalate, daemon=True).start()


def run(plan, cfg) -> int:
    """Run verl with the plan, tee its output into train.log; return its exit code. The run folder is
    locked for the launch: a second launch of the same run is refused (ConfigError)."""
    with run_folder.launch_lock(plan):
        return _run(plan, cfg)


def _run(plan, cfg) -> int:
    run_folder.prepare(plan)
    run_folder.write_config(plan, cfg)
    run_folder.update_run_json(plan, cfg)
    env = {**os.environ, **plan.env}
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    header = f"==== launch {started} pid={os.getpid()} method={plan.method} ====\n"
    code = 1
    with open(plan.run_dir / "train.log", "ab", buffering=0) as log:
        log.write(header.encode())
        sys.stdout.write(header)
        sys.stdout.flush()
        # Training callbacks (common/callbacks.py): alerts, NaN/KL stops, export and evaluation at the end.
        from common import callbacks

        lock = threading.Lock()  # verl's output and the watcher's alerts share the console and train.log

        def emit(data: bytes) -> None:
            with lock:
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
                log.write(data)

        def say(message: str) -> None:
            emit((message + "\n").encode())

        holder: dict = {}
        cb_ctx = callbacks.context_for(plan, cfg, dict(os.environ), out=say)
        watcher = callbacks.Watcher(cb_ctx, terminate=lambda: _interrupt(holder.get("child")))
        try:
            child = subprocess.Popen(plan.command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except FileNotFoundError as exc:
            raise ConfigError(f"cannot start {plan.command[0]}: {exc}; run ./setup_env.sh first") from None
        assert child.stdout is not None
        holder["child"] = child
        watcher.start()
        try:
            secrets = SecretFilter(env)
            for chunk in iter(lambda: child.stdout.read1(65536), b""):
                emit(secrets.feed(chunk))
            emit(secrets.flush())
            code = child.wait()
            watcher.stop()
            callbacks.on_end(code, cb_ctx, watcher)
        except KeyboardInterrupt:
            watcher.stop()
            # Ctrl-C reached verl too (same process group); give it time to stop its Ray workers.
            try:
                code = child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                code = child.wait()
        finally:
            run_folder.update_run_json(
                plan,
                cfg,
                ended=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                exit_code=code,
            )
    return code
