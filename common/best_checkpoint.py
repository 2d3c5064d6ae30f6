"""The best checkpoint of a run, kept where verl's checkpoint rotation cannot remove it.

    KEEP_BEST_METRIC=val_acc MAX_CKPT_TO_KEEP=2 ./grpo/train.sh    # the watcher (common/callbacks.py) calls keep()

verl 0.9.1 rotates checkpoints in the workers' checkpoint manager (utils/checkpoint/checkpoint_manager.py:
ensure_checkpoint_capacity before a save and register_checkpoint after it `shutil.rmtree` the oldest
`global_step_N/actor` beyond `trainer.max_actor_ckpt_to_keep`), with no notion of a metric. Rather
than fork verl, the launcher's watcher hard-links the checkpoint of each new best validation score
into `checkpoints/best/global_step_N/`: a hard link shares the file's data, so it costs no disk
space while verl's copy exists and keeps the data alive when verl removes its copy. verl saves a
step's checkpoint before it validates that step (trainer/ppo/v1/trainer_base.py, fit: save, then
validate, then log), so the checkpoint of a score is on disk when the score appears in the metrics
file, and verl removes it only MAX_CKPT_TO_KEEP saves later: minutes, against the watcher's 5 s poll.

Layout: checkpoints/best/global_step_N/ (actor/, critic/, data.pt as verl wrote them) and
checkpoints/best/best.json ({"step", "metric", "value", "mode", "linked_files", "copied_files"}).
best/ is not a global_step_N folder and verl resumes from latest_checkpointed_iteration.txt, so
verl's own resume and the model merger never see it.

Offers:
- ALIASES: short metric names (val_acc) and what they mean in verl's metric keys.
- metric_value(name, metrics): the value of KEEP_BEST_METRIC in one step's metrics, or None.
- infer_mode(name): 'max' or 'min' from the metric's name (acc/score/reward -> max, loss -> min), or None.
- is_better(value, best, mode).
- BestRecord; read_best(checkpoints_dir) -> BestRecord | None.
- keep(checkpoints_dir, step, metric, value, mode) -> BestRecord: link global_step_N into best/,
  atomically (a temp folder renamed over the old best/).
- detach(checkpoints_dir) -> int: give best/ private copies of the files it still shares with
  verl's folders, for a launch that may write the same global_step_N again (RESUME_MODE=disable or
  resume_path: verl's torch.save truncates the existing file, which a hard link would follow).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

BEST_DIRNAME = "best"
RECORD = "best.json"

# Short names for KEEP_BEST_METRIC. verl logs validation scores per data source
# (trainer/ppo/v1/trainer_base.py, _val_metrics_update): val-core/<data_source>/<acc or reward>/mean@<n>.
ALIASES = {
    "val_acc": "the mean over the validation data sources of verl's val-core/<data_source>/<acc|reward>/mean@<n>",
    "val_reward": "the mean over the validation data sources of verl's val-*/<data_source>/reward/mean@<n>",
}
_MIN_WORDS = ("loss", "perplexity", "ppl", "error", "kl")
_MAX_WORDS = ("acc", "score", "reward", "pass", "mean@", "maj@", "best@", "f1", "win")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _mean_of(values: list) -> float | None:
    numbers = [v for v in (_number(x) for x in values) if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


def metric_value(name: str, metrics: dict) -> float | None:
    """KEEP_BEST_METRIC's value in one step's metrics: a verl key as logged, or an alias of ALIASES.

    >>> metric_value("val_acc", {"val-core/openai/gsm8k/acc/mean@1": 0.5, "val-core/math/acc/mean@1": 0.25})
    0.375
    >>> metric_value("val-core/openai/gsm8k/acc/mean@1", {"actor/pg_loss": 0.1}) is None
    True
    """
    if name == "val_acc":
        return _mean_of([v for k, v in metrics.items() if k.startswith("val-core/") and k.rsplit("/", 1)[-1].startswith("mean@")])
    if name == "val_reward":
        return _mean_of([v for k, v in metrics.items() if k.startswith(("val-core/", "val-aux/"))
                         and k.split("/")[-2:-1] == ["reward"] and k.rsplit("/", 1)[-1].startswith("mean@")])
    return _number(metrics.get(name))


def infer_mode(name: str) -> str | None:
    """'min' for loss-like names, 'max' for score-like ones, None when the name does not say.

    >>> infer_mode("val/loss"), infer_mode("val-core/openai/gsm8k/acc/mean@1"), infer_mode("response_length/mean")
    ('min', 'max', None)
    """
    low = name.lower()
    if any(word in low for word in _MIN_WORDS):
        return "min"
    if name in ALIASES or any(word in low for word in _MAX_WORDS):
        return "max"
    return None


def is_better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


@dataclass
class BestRecord:
    step: int
    metric: str
    value: float
    mode: str
    linked_files: int = 0
    copied_files: int = 0

    def path(self, checkpoints_dir: Path) -> Path:
        return Path(checkpoints_dir) / BEST_DIRNAME / f"global_step_{self.step}"


def read_best(checkpoints_dir: Path) -> BestRecord | None:
    """The best record of checkpoints_dir, or None when there is none (or its folder is gone)."""
    try:
        data = json.loads((Path(checkpoints_dir) / BEST_DIRNAME / RECORD).read_text())
        record = BestRecord(**{k: data[k] for k in BestRecord.__dataclass_fields__ if k in data})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return record if record.path(checkpoints_dir).is_dir() else None


def _link_tree(src: Path, dst: Path) -> tuple[int, int]:
    """Recreate src under dst with a hard link per file (a copy where the filesystem refuses links)."""
    linked = copied = 0
    for root, _dirs, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            source = Path(root) / name
            if source.is_symlink():
                os.symlink(os.readlink(source), target / name)
                continue
            try:
                os.link(source, target / name)
                linked += 1
            except OSError:  # another filesystem or one without hard links
                shutil.copy2(source, target / name)
                copied += 1
    return linked, copied


def keep(checkpoints_dir: Path, step: int, metric: str, value: float, mode: str) -> BestRecord:
    """Make global_step_<step> the best checkpoint: link it into best/ and record why, atomically."""
    checkpoints_dir = Path(checkpoints_dir)
    source = checkpoints_dir / f"global_step_{step}"
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist")
    best = checkpoints_dir / BEST_DIRNAME
    staging = Path(tempfile.mkdtemp(prefix=f".{BEST_DIRNAME}.new-", dir=checkpoints_dir))
    old = None
    try:
        linked, copied = _link_tree(source, staging / source.name)
        record = BestRecord(step=step, metric=metric, value=float(value), mode=mode, linked_files=linked, copied_files=copied)
        (staging / RECORD).write_text(json.dumps(asdict(record), indent=2) + "\n")
        if best.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{BEST_DIRNAME}.old-", dir=checkpoints_dir))
            os.replace(best, old / BEST_DIRNAME)
        os.replace(staging, best)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not best.exists() and (old / BEST_DIRNAME).exists():
            os.replace(old / BEST_DIRNAME, best)  # put the previous best back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return record


def detach(checkpoints_dir: Path) -> int:
    """Replace each hard link best/ still shares with verl's folders by a private copy; returns the count."""
    best = Path(checkpoints_dir) / BEST_DIRNAME
    count = 0
    for root, _dirs, files in os.walk(best):
        for name in files:
            path = Path(root) / name
            if path.is_symlink() or path.stat().st_nlink < 2:
                continue
            tmp = path.with_name(f".{name}.detach")
            shutil.copy2(path, tmp)
            os.replace(tmp, path)
            count += 1
    return count
