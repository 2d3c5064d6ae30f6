"""A random model with another model's architecture and tokenizer, small or full size (no download).

    .venv/bin/python -m common.rehearsal.tiny MODEL_PATH OUT_DIR [--full] [--reward]

Offers:
- local_model_dir(path) -> Path: MODEL_PATH as a folder on disk (a folder, or the local Hugging
  Face cache for a hub id; never the network), or a ModelNotLocal error saying what to do.
- shrink_config(config): the same architecture with 2 layers, 4 heads of 16, an intermediate size
  of 128 and the vocabulary kept (it must match the tokenizer), so a 7B layout builds in seconds.
- build_like(model_path, out_dir, full=False, reward=False) -> Path: saves a randomly initialised
  model of MODEL_PATH's architecture (shrunk unless full=True; a one-label
  *ForSequenceClassification head when reward=True) with MODEL_PATH's own tokenizer files.
- build_sized(config_dict, tokenizer_dir, out_dir) -> Path: a random model from an explicit config
  (e.g. Qwen2.5-0.5B's published sizes) with a given tokenizer, its vocabulary padded to the
  config's (how the 0.5B-size rehearsal is checked by hand without downloading the weights).

REHEARSAL_MODEL=tiny uses build_like: the rehearsal then exercises the real model class, config
keys and tokenizer of MODEL_PATH, with random weights, in seconds.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# Shrunk sizes: 2 layers of 4 heads x 16 dims (64 wide), 128-wide MLP. 2 layers keep the
# layer-stacking code paths (FSDP wrapping per layer, gradient checkpointing) exercised.
TINY_LAYERS = 2
TINY_HEADS = 4
TINY_HEAD_DIM = 16
TINY_INTERMEDIATE = 128
TINY_EXPERTS = 4
# Tokenizer and generation files copied next to the random weights.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "tokenizer.model", "added_tokens.json", "chat_template.jinja",
                    "chat_template.json", "generation_config.json")


class ModelNotLocal(RuntimeError):
    """MODEL_PATH is a hub id that is not in the local cache (and nothing may be downloaded)."""


def local_model_dir(path: str) -> Path:
    """The folder holding MODEL_PATH's config.json: the path itself or the local Hugging Face cache."""
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file():
        return folder
    if folder.exists():
        raise ModelNotLocal(f"MODEL_PATH={path}: {folder} has no config.json (not a Hugging Face model folder)")
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(path, local_files_only=True))
    except Exception:
        cached = None
    if cached is None or not (cached / "config.json").is_file():
        raise ModelNotLocal(
            f"MODEL_PATH={path} is a hub id that is not on this machine, and nothing is downloaded here. "
            f"Download it once (huggingface-cli download {path}) or set MODEL_PATH to a local folder"
        )
    return cached


def shrink_config(config):
    """A copy of a transformers config with the shrunk sizes; the vocabulary is kept."""
    import copy

    small = copy.deepcopy(config)
    if getattr(small, "vision_config", None) is not None or getattr(small, "text_config", None) is not None:
        raise ValueError(f"{type(config).__name__}: REHEARSAL_MODEL=tiny shrinks text-only models; "
                         "rehearse a multimodal model with REHEARSAL_MODEL=full")
    heads = TINY_HEADS
    kv = getattr(small, "num_key_value_heads", None) or heads
    kv = max(1, min(heads, heads * kv // max(1, getattr(config, "num_attention_heads", heads))))
    while heads % kv:
        kv -= 1
    sizes = {
        "hidden_size": heads * TINY_HEAD_DIM,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": TINY_LAYERS,
        "intermediate_size": TINY_INTERMEDIATE,
    }
    if hasattr(small, "head_dim"):
        sizes["head_dim"] = TINY_HEAD_DIM
    # Mixture-of-experts layouts: fewer, smaller experts.
    for key, value in (("num_experts", TINY_EXPERTS), ("num_local_experts", TINY_EXPERTS), ("n_routed_experts", TINY_EXPERTS),
                       ("moe_intermediate_size", TINY_INTERMEDIATE), ("shared_expert_intermediate_size", TINY_INTERMEDIATE)):
        if getattr(small, key, None):
            sizes[key] = min(int(getattr(small, key)), value)
    for key in ("num_experts_per_tok", "top_k"):
        if getattr(small, key, None):
            sizes[key] = min(int(getattr(small, key)), 2)
    for key, value in sizes.items():
        setattr(small, key, value)
    # Per-layer lists and layer indices must describe the 2 layers that remain.
    if isinstance(getattr(small, "layer_types", None), list):
        small.layer_types = list(small.layer_types[:TINY_LAYERS])
    if getattr(small, "max_window_layers", None) is not None:
        small.max_window_layers = min(int(small.max_window_layers), TINY_LAYERS)
    return small


def _copy_tokenizer(source: Path, out: Path) -> None:
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)


def build_like(model_path: str, out_dir: str | Path, full: bool = False, reward: bool = False, seed: int = 0) -> Path:
    """Save a random model of model_path's architecture (shrunk unless full) with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    source = local_model_dir(model_path)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = AutoConfig.from_pretrained(source, local_files_only=True)
    if not full:
        config = shrink_config(config)
    if reward:
        config.num_labels = 1
        if getattr(config, "pad_token_id", None) is None:
            config.pad_token_id = getattr(config, "eos_token_id", None)
    torch.manual_seed(seed)
    auto = AutoModelForSequenceClassification if reward else AutoModelForCausalLM
    model = auto.from_config(config, torch_dtype=torch.float32)
    model.save_pretrained(out)
    _copy_tokenizer(source, out)
    return out


def build_sized(config_dict: dict, tokenizer_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """A random causal LM from an explicit config (e.g. a published model's sizes) and a tokenizer.

    The tokenizer's vocabulary may be smaller than the config's (padded, as real checkpoints pad to
    a multiple of 64/128): token ids beyond it are simply never produced by the tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config_dict = dict(config_dict)
    if len(tokenizer) > int(config_dict["vocab_size"]):
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens, more than vocab_size {config_dict['vocab_size']}")
    config_dict.update(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.bos_token_id)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_path")
    parser.add_argument("out_dir")
    parser.add_argument("--full", action="store_true", help="keep the real sizes (random weights)")
    parser.add_argument("--reward", action="store_true", help="a one-label sequence-classification head")
    args = parser.parse_args(argv)
    print(build_like(args.model_path, args.out_dir, full=args.full, reward=args.reward))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
