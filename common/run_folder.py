"""The run folder's files that the launcher writes: atomically, and without secrets.

    outputs/<EXPERIMENT_NAME>/run.json, config.yaml      (the rest is written by verl and the watcher)

Offers:
- atomic_write(path, text): write a file whole or not at all (temp file + rename, removed on error).
- total_steps(cfg): the training steps verl will run, from the config and the train file's rows.
- update_run_json(plan, cfg, **fields): run.json with this launch's entry (started, pid, host,
  metrics file, ended, exit code, and any extra fields such as a Ray job id).
- write_config(plan, cfg, hide=None): config.yaml, the resolved config of the latest launch, redacted.
- write_dry_run_config(plan, cfg) -> Path: dry_run.yaml, the full resolved config a dry run checked.
- prepare(plan): the sub-folders verl writes into (metrics/, checkpoints/).
- launch_lock(plan): held while a launch runs; a second live launch of the same run folder is
  refused, naming the PID and host that hold it. lock_holder(run_dir) says who holds it now.
- recorded_model(run_dir): the model the run folder was trained from (run.json), to refuse a
  resume from another model.
- wandb_id(run_dir): the wandb run id run.json keeps (None before the first launch with wandb);
  new_wandb_id(): a fresh one. update_run_json records plan.wandb_id, so a relaunch that resumes
  the checkpoints logs into the same wandb run (the plan reads the id; only a real launch writes it).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import socket
import string
import tempfile
from pathlib import Path

from common.printout import resolved_yaml
from common.redaction import redact


def atomic_write(path: Path, text: str) -> None:
    """Write text to path whole or not at all: a temp file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def total_steps(cfg) -> int | None:
    """Training steps verl will run, from the config and the train file's row count."""
    configured = cfg.trainer.get("total_training_steps")
    if configured:
        return int(configured)
    try:
        import pyarrow.parquet as pq

        files = cfg.data.train_files
        files = [files] if isinstance(files, str) else list(files)
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    except Exception:
        return None
    per_epoch = rows // int(cfg.data.train_batch_size)
    return per_epoch * int(cfg.trainer.total_epochs)


# wandb's own ids are 8 characters of [a-z0-9] (wandb.util.generate_id); 36^8 = 2.8e12 choices.
_WANDB_ID_CHARS = string.ascii_lowercase + string.digits
WANDB_ID_LENGTH = 8


def new_wandb_id() -> str:
    return "".join(secrets.choice(_WANDB_ID_CHARS) for _ in range(WANDB_ID_LENGTH))


def wandb_id(run_dir: Path) -> str | None:
    """The wandb run id recorded in run_dir/run.json, or None (no run.json, no id, or an unreadable file)."""
    try:
        meta = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    value = meta.get("wandb_id") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def update_run_json(plan, cfg, **launch_fields) -> None:
    """Record this launch in run.json (created on the first launch; other launches are kept)."""
    path = plan.run_dir / "run.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        meta = {"launches": []}
    meta.update(
        method=plan.method,
        experiment=plan.run_dir.name,
        project=str(cfg.trainer.project_name),
        model=model_of(cfg),
        total_steps=total_steps(cfg),
    )
    launches = meta.setdefault("launches", [])
    current = next((entry for entry in launches if entry.get("id") == plan.launch_id), None)
    if current is None:
        current = {
            "id": plan.launch_id,
            "started": _now(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "metrics_file": str(plan.metrics_file.relative_to(plan.run_dir)),
            "ended": None,
            "exit_code": None,
        }
        launches.append(current)
    if getattr(plan, "wandb_id", None):
        # The run's wandb id (a relaunch reuses it) and, per launch, the id that launch logged to.
        meta["wandb_id"] = plan.wandb_id
        current["wandb_id"] = plan.wandb_id
    current.update(launch_fields)
    atomic_write(path, json.dumps(meta, indent=2) + "\n")


def model_of(cfg) -> str:
    """The policy (or SFT) model path of a composed config."""
    model = cfg.get("actor_rollout_ref", {}).get("model") if "actor_rollout_ref" in cfg else cfg.get("model")
    return str((model or {}).get("path") or "")


def recorded_model(run_dir: Path) -> str | None:
    try:
        return json.loads((Path(run_dir) / "run.json").read_text()).get("model") or None
    except (OSError, ValueError, AttributeError):
        return None


def write_config(plan, cfg, hide=None) -> None:
    """config.yaml: the resolved config of this launch, with secrets (and `hide`'s) redacted."""
    text = redact(resolved_yaml(cfg))
    atomic_write(plan.run_dir / "config.yaml", hide(text) if hide else text)


def write_dry_run_config(plan, cfg) -> Path:
    """dry_run.yaml: the full resolved config a dry run checked (secrets redacted)."""
    path = plan.run_dir / "dry_run.yaml"
    atomic_write(path, f"# DRY_RUN of {plan.method} at {_now()}: the config verl would run with\n" + redact(resolved_yaml(cfg)))
    return path


def prepare(plan) -> None:
    for sub in ("metrics", "checkpoints"):
        (plan.run_dir / sub).mkdir(parents=True, exist_ok=True)


LOCK_NAME = ".launch.lock"


def lock_holder(run_dir: Path) -> dict | None:
    """Who holds the run folder's launch lock now ({pid, host, launch, started}), or None."""
    import fcntl

    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        try:
            return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except ValueError:
            return {}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def holder_text(holder: dict) -> str:
    return (f"launch {holder.get('launch', '?')} (pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')})")


class launch_lock:
    """`with launch_lock(plan):` holds <run_dir>/.launch.lock (flock) for the whole launch.

    A second launch of the same run folder while the first lives gets a ConfigError naming the
    first's PID and host; the lock goes when the process does, so a crash never leaves it behind."""

    def __init__(self, plan):
        self.plan = plan
        self.fd: int | None = None

    def __enter__(self):
        import fcntl

        from common.knobs import ConfigError

        self.plan.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.plan.run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise ConfigError(
                f"{self.plan.run_dir} is in use by {holder_text(holder)}: two launches of one run would write the same "
                "checkpoints. Wait for it or stop it, or set EXPERIMENT_NAME for a separate run"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "launch": self.plan.launch_id, "started": _now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None
