"""Turn whatever --model_path names into a Hugging Face folder transformers/vLLM can load.

    from common.evaluation.checkpoint import resolve_model
    resolved = resolve_model("checkpoints/gsm8k/grpo_run1")   # merges once, then reuses

Offers:
- resolve_model(path) -> ResolvedModel: accepts
  * a Hugging Face folder (config.json) or a hub id (org/name);
  * a verl experiment folder (trainer.default_local_dir): latest_checkpointed_iteration.txt picks
    the step, else the highest global_step_N; a checkpoints/ tree below it is searched too;
  * a global_step_N folder (RL layout: global_step_N/actor/; SFT layout: shards in the folder);
  * an actor/ folder (fsdp_config.json + model_world_size_W_rank_R.pt + huggingface/).
- merge_fsdp_checkpoint(actor_dir): runs verl's own FSDPModelMerger (the code behind
  `python -m verl.model_merger merge --backend fsdp`) into a temporary sibling folder and renames
  it to actor_dir/huggingface_merged, so an interrupted merge is never reused. LoRA checkpoints:
  verl's merger writes the base weights plus lora_adapter/; we fold the adapter into the base
  weights with peft (merge_and_unload) so both backends load one plain folder.
- CheckpointError: every path problem, with what was expected and how to fix it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MERGED_DIRNAME = "huggingface_merged"
TRACKER_FILENAME = "latest_checkpointed_iteration.txt"
_STEP_RE = re.compile(r"^global_step_(\d+)$")
# verl's default_local_dir is checkpoints/PROJECT/EXPERIMENT: 3 levels below a repo root.
_SEARCH_DEPTH = 3


class CheckpointError(ValueError):
    """--model_path does not name a usable model or checkpoint."""


@dataclass
class ResolvedModel:
    requested: str  # what the user passed
    hf_path: str  # Hugging Face folder or hub id to load
    label: str  # short name for reports
    checkpoint_dir: str | None = None  # the verl actor folder, when it was a checkpoint
    merged_now: bool = False  # True when this call ran the merger (False: cache reused)


def _is_fsdp_shard_dir(path: Path) -> bool:
    return (path / "fsdp_config.json").is_file() and any(path.glob("model_world_size_*_rank_*.pt"))


def _step_dirs(path: Path) -> list[tuple[int, Path]]:
    steps = []
    for child in path.iterdir() if path.is_dir() else []:
        match = _STEP_RE.match(child.name)
        if match and child.is_dir():
            steps.append((int(match.group(1)), child))
    return sorted(steps)


def _actor_dir_of_step(step_dir: Path) -> Path:
    if _is_fsdp_shard_dir(step_dir / "actor"):
        return step_dir / "actor"
    if _is_fsdp_shard_dir(step_dir):  # SFT trainer layout: shards directly in global_step_N
        return step_dir
    if (step_dir / "actor" / "dist_ckpt").exists() or (step_dir / "actor" / "model" / "dist_ckpt").exists():
        raise CheckpointError(
            f"{step_dir}: this is a Megatron checkpoint; merge it by hand with "
            "`python -m verl.model_merger merge --backend megatron --local_dir "
            f"{step_dir / 'actor'} --target_dir OUT` and pass --model_path OUT"
        )
    raise CheckpointError(
        f"{step_dir}: no FSDP model shards found (expected actor/fsdp_config.json and "
        "actor/model_world_size_W_rank_R.pt, as verl's FSDPCheckpointManager writes them)"
    )


def _experiment_actor_dir(exp_dir: Path) -> Path | None:
    """The actor folder of the latest step in an experiment folder, or None if it holds no steps."""
    tracker = exp_dir / TRACKER_FILENAME
    if tracker.is_file():
        text = tracker.read_text().strip()
        if not text.isdigit():
            raise CheckpointError(f"{tracker}: expected a step number, found {text[:40]!r}")
        step_dir = exp_dir / f"global_step_{int(text)}"
        if not step_dir.is_dir():
            raise CheckpointError(f"{tracker} points at step {text} but {step_dir} does not exist")
        return _actor_dir_of_step(step_dir)
    steps = _step_dirs(exp_dir)
    if steps:
        return _actor_dir_of_step(steps[-1][1])
    return None


def _find_experiment(root: Path) -> Path | None:
    """Search below root for folders holding checkpoints; exactly one must match."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        here = Path(dirpath)
        if (here / TRACKER_FILENAME).is_file() or _step_dirs(here):
            found.append(here)
            dirnames[:] = []  # do not descend into global_step_N folders
        elif depth >= _SEARCH_DEPTH:
            dirnames[:] = []
    if len(found) > 1:
        listed = "\n  ".join(str(p) for p in found[:20])
        raise CheckpointError(f"{root}: holds several experiments; pass one of them as --model_path:\n  {listed}")
    return found[0] if found else None


def _label_for(path: Path, actor_dir: Path | None) -> str:
    if actor_dir is None:
        return path.name or str(path)
    step_dir = actor_dir.parent if actor_dir.name == "actor" else actor_dir
    return f"{step_dir.parent.name}/{step_dir.name}"


def _merged_is_complete(folder: Path) -> bool:
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("pytorch_model*.bin"))
    return (folder / "config.json").is_file() and bool(weights)


def _fold_lora_adapter(folder: Path) -> None:
    """Replace the base weights in folder by base + LoRA (peft merge_and_unload)."""
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    weights = folder / "model.safetensors"
    if weights.is_file():
        with safe_open(str(weights), framework="pt") as f:
            if not list(f.keys()):
                raise CheckpointError(
                    f"{folder.parent}: the checkpoint holds only LoRA adapter weights (saved with "
                    "save_lora_only); the base weights are not in it. The adapter is in "
                    f"{folder / 'lora_adapter'}: load it on the base model with peft, save the merged "
                    "model and pass that folder as --model_path"
                )
    # verl's merger stores bf16; keep that dtype so the folded model has the same size on disk.
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    model = PeftModel.from_pretrained(base, folder / "lora_adapter").merge_and_unload()
    model.save_pretrained(folder)


def merge_fsdp_checkpoint(actor_dir: Path) -> tuple[Path, bool]:
    """Merge actor_dir into actor_dir/huggingface_merged once; return (folder, merged_now)."""
    target = actor_dir / MERGED_DIRNAME
    if _merged_is_complete(target):
        logger.info("reusing merged model %s", target)
        return target, False
    if not (actor_dir / "huggingface" / "config.json").is_file():
        raise CheckpointError(
            f"{actor_dir}: missing huggingface/config.json, which verl's merger needs "
            "(FSDPCheckpointManager writes it on rank 0 with every checkpoint)"
        )
    if not os.access(actor_dir, os.W_OK):
        raise CheckpointError(
            f"{actor_dir}: not writable, so the merged model cannot be cached next to it; merge it "
            f"elsewhere with `python -m verl.model_merger merge --backend fsdp --local_dir {actor_dir} "
            "--target_dir OUT` and pass --model_path OUT"
        )
    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    tmp = Path(tempfile.mkdtemp(prefix=f".{MERGED_DIRNAME}.tmp-", dir=actor_dir))
    logger.info("merging verl checkpoint %s (one time; cached in %s)", actor_dir, target)
    try:
        config = ModelMergerConfig(
            operation="merge",
            backend="fsdp",
            local_dir=str(actor_dir),
            target_dir=str(tmp),
            hf_model_config_path=str(actor_dir / "huggingface"),
        )
        # The merger prints progress on stdout; keep stdout for answers (single mode is scripted).
        with contextlib.redirect_stdout(sys.stderr):
            merger = FSDPModelMerger(config)
            merger.merge_and_save()
            merger.cleanup()
            if (tmp / "lora_adapter").is_dir():
                _fold_lora_adapter(tmp)
        (tmp / "merged_from.json").write_text(json.dumps({"checkpoint": str(actor_dir.resolve())}, indent=2))
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same merge first: use its result.
            if not _merged_is_complete(target):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return target, False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, True


def resolve_model(path: str) -> ResolvedModel:
    """Resolve one --model_path value (see the module docstring for what is accepted)."""
    p = Path(path).expanduser()
    if not p.exists():
        # Not a local path: a hub id looks like "org/name" (or a bare name) without leading ./ or /.
        if re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", path) and not path.startswith("."):
            return ResolvedModel(path, path, path.split("/")[-1])
        raise CheckpointError(f"--model_path {path}: no such file or folder")
    if not p.is_dir():
        raise CheckpointError(f"--model_path {path}: expected a folder, got a file")
    actor_dir: Path | None = None
    if _is_fsdp_shard_dir(p):
        actor_dir = p
    elif _STEP_RE.match(p.name):
        actor_dir = _actor_dir_of_step(p)
    elif (p / "config.json").is_file():
        return ResolvedModel(path, str(p), _label_for(p, None))
    else:
        actor_dir = _experiment_actor_dir(p)
        if actor_dir is None:
            experiment = _find_experiment(p)
            if experiment is not None:
                actor_dir = _experiment_actor_dir(experiment)
    if actor_dir is None:
        raise CheckpointError(
            f"--model_path {path}: neither a Hugging Face model folder (config.json) nor a verl "
            f"checkpoint ({TRACKER_FILENAME}, global_step_N/actor/ with fsdp_config.json)"
        )
    merged, merged_now = merge_fsdp_checkpoint(actor_dir)
    return ResolvedModel(path, str(merged), _label_for(p, actor_dir), str(actor_dir), merged_now)
