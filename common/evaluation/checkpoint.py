"""Turn whatever --model_path names into a Hugging Face folder transformers/vLLM can load.

    from common.evaluation.checkpoint import resolve_model
    resolved = resolve_model("checkpoints/gsm8k/grpo_run1")   # merges once, then reuses

Offers:
- resolve_model(path) -> ResolvedModel: accepts
  * a Hugging Face folder (config.json) or a hub id (org/name);
  * a verl experiment folder (trainer.default_local_dir): latest_checkpointed_iteration.txt picks
    the step, else the highest global_step_N; a checkpoints/ tree below it is searched too;
  * a global_step_N folder (RL layout: global_step_N/actor/; SFT layout: shards in the folder);
  * an actor/ folder (fsdp_config.json + model_world_size_W_rank_R.pt + huggingface/), or its
    huggingface_merged/ cache (checked like any cache below).
- merge_fsdp_checkpoint(actor_dir): runs verl's own FSDPModelMerger (the code behind
  `python -m verl.model_merger merge --backend fsdp`) into a temporary sibling folder and renames
  it to actor_dir/huggingface_merged, so an interrupted merge is never reused. LoRA checkpoints:
  verl's merger writes the base weights plus lora_adapter/; we fold the adapter into the base
  weights with peft (merge_and_unload) so both backends load one plain folder.
- merged_folder_problem(folder, source_hf_dir) -> str | None: why a cached merge cannot be used
  (config.json missing or unreadable, tokenizer files missing or cut, a shard named by the
  index missing, a .safetensors file truncated or with a broken header, a .bin that is not a
  complete zip), or None. It reads headers only, not the weights. An unusable cache is merged
  again into a temporary folder and swapped in by rename: there is never a half folder under
  the cache's name.
- find_run_dir(path) -> Path | None: the run folder (config.yaml beside run.json or
  checkpoints/) that holds path, when path is one or lies inside one.
- run_chat_template_kwargs(run_dir) -> dict: data.apply_chat_template_kwargs of its config.yaml.
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
# RUN/checkpoints/global_step_N/actor/huggingface_merged is 4 levels below the run folder.
_RUN_DIR_DEPTH = 5
# Tokenizer files: when the checkpoint's huggingface/ has one, the merged folder must have it too.
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "vocab.txt")
# A safetensors header is a few KB to a few MB; more than 100 MB means the length bytes are garbage.
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """--model_path does not name a usable model or checkpoint."""


@dataclass
class ResolvedModel:
    requested: str  # what the user passed
    hf_path: str  # Hugging Face folder or hub id to load
    label: str  # short name for reports
    checkpoint_dir: str | None = None  # the verl actor folder, when it was a checkpoint
    merged_now: bool = False  # True when this call ran the merger (False: cache reused)
    run_dir: str | None = None  # the run folder holding it (config.yaml), when there is one


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


def _safetensors_problem(path: Path) -> str | None:
    """Why path is not a whole safetensors file (header length, JSON header, data size), or None."""
    import struct

    size = path.stat().st_size
    if size < 8:
        return f"{path.name} is {size} bytes long, not a safetensors file"
    with path.open("rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > min(size - 8, _MAX_SAFETENSORS_HEADER):
            return f"{path.name} has a broken header (length {header_len:,} in a {size:,}-byte file)"
        try:
            header = json.loads(f.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"{path.name} has a broken header (not JSON)"
    if not isinstance(header, dict):
        return f"{path.name} has a broken header (not a JSON object)"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    expected = 8 + header_len + end
    if size != expected:
        return f"{path.name} is truncated: {size:,} of {expected:,} bytes" if size < expected else (
            f"{path.name} has {size - expected:,} bytes more than its header describes"
        )
    return None


def _weights_problem(folder: Path) -> str | None:
    import zipfile

    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                return f"{index_name} is unreadable"
            for shard in sorted(set(weight_map.values())):
                if not (folder / shard).is_file():
                    return f"shard {shard} named by {index_name} is missing"
            shards = sorted(folder / s for s in set(weight_map.values()))
            break
    else:
        shards = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not shards:
        return "no weights (*.safetensors or pytorch_model*.bin)"
    for shard in shards:
        if shard.suffix == ".safetensors":
            problem = _safetensors_problem(shard)
            if problem:
                return problem
        else:  # torch.save writes a zip whose directory sits at the end: a cut file has none
            try:
                with zipfile.ZipFile(shard):
                    pass
            except (zipfile.BadZipFile, OSError):
                return f"{shard.name} is truncated or not a torch checkpoint"
    return None


def merged_folder_problem(folder: Path, source_hf_dir: Path | None = None) -> str | None:
    """Why the merged folder cannot be used, or None (see the module docstring)."""
    if not folder.is_dir():
        return "not there"
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        return "config.json is missing"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "config.json is not valid JSON"
    if not isinstance(config, dict):
        return "config.json is not a JSON object"
    wanted = [n for n in _TOKENIZER_FILES if source_hf_dir is not None and (source_hf_dir / n).is_file()]
    for name in wanted:
        if not (folder / name).is_file():
            return f"tokenizer file {name} is missing"
        if name.endswith(".json"):
            try:
                json.loads((folder / name).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return f"tokenizer file {name} is cut or not valid JSON"
    return _weights_problem(folder)


def _merged_is_complete(folder: Path, source_hf_dir: Path | None = None) -> bool:
    return merged_folder_problem(folder, source_hf_dir) is None


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
    source_hf = actor_dir / "huggingface"
    problem = merged_folder_problem(target, source_hf)
    if problem is None:
        logger.info("reusing merged model %s", target)
        return target, False
    if target.exists():
        logger.warning("cached merged model %s cannot be used (%s): merging the checkpoint again", target, problem)
    if not (source_hf / "config.json").is_file():
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

    for old in actor_dir.glob(f".{MERGED_DIRNAME}.old-*"):  # a swap interrupted after its renames
        shutil.rmtree(old, ignore_errors=True)
    leftovers = sorted(actor_dir.glob(f".{MERGED_DIRNAME}.tmp-*"))
    if leftovers:
        logger.warning(
            "%s: %d temporary folder(s) of interrupted merges (%s); delete them if no merge is running",
            actor_dir, len(leftovers), ", ".join(p.name for p in leftovers),
        )
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
        problem = merged_folder_problem(tmp, source_hf)
        if problem is not None:
            raise CheckpointError(f"{actor_dir}: verl's model merger wrote an unusable folder ({problem})")
        old = None
        if target.exists() and merged_folder_problem(target, source_hf) is not None:
            # Swap the unusable cache out by rename: the cache name holds the old or the new
            # folder, never a half-deleted one.
            old = Path(tempfile.mkdtemp(prefix=f".{MERGED_DIRNAME}.old-", dir=actor_dir))
            os.rename(target, old / MERGED_DIRNAME)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same merge first: use its result.
            if not _merged_is_complete(target, source_hf):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return target, False
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
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
    run_dir = find_run_dir(p)
    if _is_fsdp_shard_dir(p):
        actor_dir = p
    elif p.name == MERGED_DIRNAME and _is_fsdp_shard_dir(p.parent):
        actor_dir = p.parent  # the cache itself: checked (and merged again if unusable) like any cache
    elif _STEP_RE.match(p.name):
        actor_dir = _actor_dir_of_step(p)
    elif (p / "config.json").is_file():
        return ResolvedModel(path, str(p), _label_for(p, None), run_dir=_str(run_dir))
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
    return ResolvedModel(
        path, str(merged), _label_for(p, actor_dir), str(actor_dir), merged_now, _str(run_dir or find_run_dir(actor_dir))
    )


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)


def find_run_dir(path: Path) -> Path | None:
    """The run folder (config.yaml beside run.json or checkpoints/) at or above path, or None."""
    path = Path(path).resolve()
    for candidate in [path, *path.parents][: _RUN_DIR_DEPTH + 1]:
        if (candidate / "config.yaml").is_file() and (
            (candidate / "run.json").is_file() or (candidate / "checkpoints").is_dir()
        ):
            return candidate
    return None


def run_chat_template_kwargs(run_dir: Path) -> dict:
    """data.apply_chat_template_kwargs of run_dir/config.yaml ({} when the key is absent or null)."""
    import yaml

    config_file = Path(run_dir) / "config.yaml"
    fix = "fix it, or pass --chat_template_kwargs '{...}' to set them yourself"
    try:
        config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{config_file}: cannot read it ({first}); {fix}") from None
    data = config.get("data") if isinstance(config, dict) else None
    value = data.get("apply_chat_template_kwargs") if isinstance(data, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{config_file}: data.apply_chat_template_kwargs is {type(value).__name__}, expected a mapping; {fix}"
        )
    return value
