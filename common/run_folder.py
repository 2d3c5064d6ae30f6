"""The run folder's files that the launcher writes: atomically, and without secrets.

    outputs/<EXPERIMENT_NAME>/run.json, config.yaml      (the rest is written by verl and the watcher)

Offers:
- atomic_write(path, text): write a file whole or not at all (temp file + rename, removed on error).
- total_steps(cfg): the training steps verl will run, from the config and the train file's rows.
- update_run_json(plan, cfg, **fields): run.json with this launch's entry (started, pid, host,
  metrics file, ended, exit code, and any extra fields such as a Ray job id).
- write_config(plan, cfg, hide=None): config.yaml, the resolved config of the latest launch, redacted.
- prepare(plan): the sub-folders verl writes into (metrics/, checkpoints/).
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


def write_config(plan, cfg, hide=None) -> None:
    """config.yaml: the resolved config of this launch, with secrets (and `hide`'s) redacted."""
    text = redact(resolved_yaml(cfg))
    atomic_write(plan.run_dir / "config.yaml", hide(text) if hide else text)


def prepare(plan) -> None:
    for sub in ("metrics", "checkpoints"):
        (plan.run_dir / sub).mkdir(parents=True, exist_ok=True)
