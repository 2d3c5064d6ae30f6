"""Per-GPU memory estimate of a verl FSDP run, from the model's shape and the config block.

    .venv/bin/python -m common.memory Qwen/Qwen2.5-7B-Instruct --gpus 8 --gpu-memory-gb 80

Offers:
- ModelShape / shape_from_config(config_dict) / shape_for(model_path): the numbers the estimate
  needs (parameters, layers, hidden size, heads, vocabulary), read from a local config.json (a
  folder, or the local Hugging Face cache; never the network), else from KNOWN_SHAPES (common
  model ids), else None.
- Estimate / estimate_rl(cfg, shape, gpu_gb) / estimate_sft(cfg, shape, gpu_gb): the breakdown
  in GiB per GPU, the peak, whether it fits, and concrete suggestions when it does not.
- gpu_memory_gb(env): the smallest visible GPU's memory via NVML, else the GPU_MEMORY_GB knob
  (default 80), with a note saying which.

The formula (docs/preflight.md has the derivation and a comparison with a published run):
  training states = P x (4 fp32 weights + 4 fp32 grads + 8 Adam m,v) / world, less what is offloaded
  (LoRA: bf16 frozen weights 2P / world, states only for the adapter);
  reference model = 2P / world (bf16, only when a KL term needs it; 0 when REF_PARAM_OFFLOAD);
  activations (one micro batch, T tokens = micro x (prompt + response), or the token budget with
  dynamic batching, divided by SP) = T x hidden x 2 bytes x layers (checkpointed inputs) +
  T x (16 x hidden + 6 x intermediate) bytes (one layer recomputed) + T x vocab x 8 bytes
  (bf16 logits + fp32 log-softmax for log-probs and entropy); without gradient checkpointing the
  per-layer term is kept for every layer;
  rollout engine = GPU_MEM_UTIL x GPU memory (vLLM/SGLang reserve that share for weights + KV cache);
  peak = max(rollout phase, training phase) where both phases keep the training states resident
  (verl's engine sleeps during training but FSDP states stay unless offloaded).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

GIB = 1024**3
# Assumed when no GPU can be queried (a CPU-only dry run): an 80 GB A100/H100.
DEFAULT_GPU_MEMORY_GB = 80.0
# CUDA context + NCCL buffers + allocator fragmentation per process, measured at 1-3 GiB on H100.
OVERHEAD_GIB = 2.0


@dataclass(frozen=True)
class ModelShape:
    params: float  # total parameters
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    max_positions: int | None = None
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def _params_from_config(c: dict) -> float:
    """Dense decoder parameter count (embeddings + attention + SwiGLU MLP + norms)."""
    h, i, v, n = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    hd = c.get("head_dim") or h // heads
    attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h + (heads * hd + 2 * kv * hd)  # q,k,v,o + qkv bias
    mlp = 3 * h * i
    embed = v * h * (1 if c.get("tie_word_embeddings") else 2)
    return float(n * (attn + mlp + 2 * h) + embed + h)


def shape_from_config(c: dict, source: str = "config.json") -> ModelShape:
    c = c.get("text_config", c) if "hidden_size" not in c else c
    heads = int(c["num_attention_heads"])
    return ModelShape(
        params=_params_from_config(c),
        layers=int(c["num_hidden_layers"]),
        hidden=int(c["hidden_size"]),
        intermediate=int(c["intermediate_size"]),
        heads=heads,
        kv_heads=int(c.get("num_key_value_heads") or heads),
        vocab=int(c["vocab_size"]),
        max_positions=c.get("max_position_embeddings"),
        source=source,
    )


def _qwen25(params: float, layers: int, hidden: int, inter: int, heads: int, kv: int, tie: bool) -> dict:
    return dict(
        num_hidden_layers=layers, hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
        num_key_value_heads=kv, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=tie,
        _params=params,
    )


# Shapes of common models, from their published config.json files (Qwen2.5 model cards).
KNOWN_CONFIGS: dict[str, dict] = {
    "Qwen/Qwen2.5-0.5B-Instruct": _qwen25(0.49e9, 24, 896, 4864, 14, 2, True),
    "Qwen/Qwen2.5-1.5B-Instruct": _qwen25(1.54e9, 28, 1536, 8960, 12, 2, True),
    "Qwen/Qwen2.5-3B-Instruct": _qwen25(3.09e9, 36, 2048, 11008, 16, 2, True),
    "Qwen/Qwen2.5-7B-Instruct": _qwen25(7.62e9, 28, 3584, 18944, 28, 4, False),
    "Qwen/Qwen2.5-14B-Instruct": _qwen25(14.7e9, 48, 5120, 13824, 40, 8, False),
    "Qwen/Qwen2.5-32B-Instruct": _qwen25(32.8e9, 64, 5120, 27648, 40, 8, False),
}
for _name in list(KNOWN_CONFIGS):
    KNOWN_CONFIGS[_name.removesuffix("-Instruct")] = KNOWN_CONFIGS[_name]  # base models: same shape


def local_config_json(model_path: str) -> Path | None:
    """config.json of a local folder or of the local Hugging Face cache (no network)."""
    path = Path(os.path.expanduser(model_path))
    if path.is_dir():
        return path / "config.json" if (path / "config.json").is_file() else None
    if model_path.count("/") != 1 or model_path.startswith((".", "/")):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_path, "config.json")
    except Exception:  # huggingface_hub missing or a malformed id
        return None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def load_model_config(model_path: str) -> tuple[dict | None, str]:
    """(config dict, where it came from) or (None, why not)."""
    path = local_config_json(model_path)
    if path is not None:
        try:
            return json.loads(path.read_text()), str(path)
        except (OSError, ValueError) as exc:
            return None, f"{path} is not readable JSON ({exc})"
    return None, f"{model_path} has no config.json on this machine (not a folder, not in the Hugging Face cache)"


def shape_for(model_path: str) -> ModelShape | None:
    config, where = load_model_config(model_path)
    if config is not None:
        try:
            return shape_from_config(config, where)
        except (KeyError, TypeError):
            return None
    known = KNOWN_CONFIGS.get(model_path)
    if known is not None:
        shape = shape_from_config(known, "built-in table of known models")
        return ModelShape(**{**shape.__dict__, "params": known["_params"]})
    return None


def gpu_memory_gb(env: dict[str, str] | None = None) -> tuple[float, str]:
    """Memory of the smallest visible GPU in GB (10^9), and how it was found."""
    env = os.environ if env is None else env
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
            if count:
                sizes = [pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total for i in range(count)]
                return min(sizes) / 1e9, f"NVML: smallest of {count} GPU(s)"
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver / no GPU: fall back to the knob
        pass
    raw = env.get("GPU_MEMORY_GB") or ""
    if raw.strip():
        return float(raw), f"GPU_MEMORY_GB={raw} (no GPU visible here)"
    return DEFAULT_GPU_MEMORY_GB, f"no GPU visible here: assumed {DEFAULT_GPU_MEMORY_GB:g} GB (set GPU_MEMORY_GB)"


@dataclass
class Estimate:
    parts: dict[str, float]  # GiB per GPU, by component
    peak_gib: float
    gpu_gib: float
    phase: str  # which phase is the peak
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.peak_gib <= self.gpu_gib

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in self.parts.items() if v >= 0.05)
        return f"~{self.peak_gib:.1f} of {self.gpu_gib:.1f} GiB per GPU at {self.phase} ({parts})"


def _activations(shape: ModelShape, tokens: float, checkpointing: bool) -> float:
    per_layer_ckpt = tokens * shape.hidden * 2  # bf16 layer input kept per layer
    one_layer = tokens * (16 * shape.hidden + 6 * shape.intermediate)  # q,k,v,o, norms, SwiGLU in bf16
    logits = tokens * shape.vocab * 8  # bf16 logits + fp32 log-softmax
    layers = per_layer_ckpt * shape.layers + one_layer if checkpointing else one_layer * shape.layers
    return (layers + logits) / GIB


def _critic_tokens(critic, seq: int) -> float:
    """Tokens per critic micro-batch in the engine verl really builds: critic.fsdp holds its batch
    settings (dynamic batching on unless set), and the V1 trainer sets its budget from
    critic.ppo_infer_max_token_len_per_gpu (trainer_base.py, "define critic class")."""
    fsdp = critic.get("fsdp", {}) or {}
    if fsdp.get("use_dynamic_bsz", True):
        return float(critic.get("ppo_infer_max_token_len_per_gpu", 32768) or 32768)
    return float(fsdp.get("micro_batch_size_per_gpu") or 1) * seq


def _training_states(params: float, world: int, lora_params: float, param_off: bool, optim_off: bool) -> dict[str, float]:
    if lora_params:
        return {
            "weights": 0.0 if param_off else 2 * params / world / GIB,
            "grads+optimizer": (0.0 if optim_off else 16 * lora_params / world / GIB),
        }
    return {
        "weights": 0.0 if param_off else 4 * params / world / GIB,
        "grads": 0.0 if param_off else 4 * params / world / GIB,
        "optimizer": 0.0 if optim_off else 8 * params / world / GIB,
    }


def _lora_params(shape: ModelShape, rank: int) -> float:
    # Adapters on the 7 linear layers of each block (q,k,v,o,gate,up,down): r x (in + out) each.
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_heads * shape.head_dim
    return float(rank * shape.layers * (2 * h + 2 * (h + kv) + 2 * h + 3 * (h + i)))


def estimate_rl(cfg, shape: ModelShape, gpu_gb: float) -> Estimate:
    """Per-GPU estimate for verl.trainer.main_ppo with FSDP (the default strategy)."""
    arr = cfg.actor_rollout_ref
    actor, rollout, model = arr.actor, arr.rollout, arr.model
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    gpu_gib = gpu_gb * 1e9 / GIB
    sp = int(actor.get("ulysses_sequence_parallel_size", 1) or 1)
    seq = int(cfg.data.max_prompt_length) + int(cfg.data.max_response_length)
    if actor.use_dynamic_bsz:
        tokens = int(actor.ppo_max_token_len_per_gpu)
    else:
        tokens = int(actor.ppo_micro_batch_size_per_gpu or 1) * seq / sp
    lora_rank = int(model.get("lora_rank", 0) or 0)
    lora = _lora_params(shape, lora_rank) if lora_rank > 0 else 0.0
    fsdp = actor.get("fsdp_config", {}) or {}
    param_off, optim_off = bool(fsdp.get("param_offload", False)), bool(fsdp.get("optimizer_offload", False))
    parts = _training_states(shape.params, world, lora, param_off, optim_off)
    from verl.trainer.ppo.utils import need_reference_policy

    try:
        use_ref = bool(need_reference_policy(cfg)) and not lora
    except Exception:
        use_ref = bool(actor.use_kl_loss or cfg.algorithm.use_kl_in_reward)
    ref_off = bool((arr.ref.get("fsdp_config", {}) or {}).get("param_offload", False))
    parts["reference"] = 2 * shape.params / world / GIB if use_ref and not ref_off else 0.0
    critic_enabled = cfg.critic.get("enable")
    use_critic = cfg.algorithm.adv_estimator == "gae" if critic_enabled is None else bool(critic_enabled)
    if use_critic:
        critic_fsdp = cfg.critic.get("fsdp", {}) or {}
        c_states = _training_states(
            shape.params, world, 0.0, bool(critic_fsdp.get("param_offload", False)), bool(critic_fsdp.get("optimizer_offload", False))
        )
        parts["critic"] = sum(c_states.values())
    checkpointing = bool(model.get("enable_gradient_checkpointing", True))
    parts["activations"] = _activations(shape, tokens, checkpointing)
    if use_critic:
        # The critic trains after the actor's pass, not with it: the larger of the two counts. Its
        # value head has no vocabulary logits.
        critic_shape = ModelShape(shape.params, shape.layers, shape.hidden, shape.intermediate, shape.heads,
                                  shape.kv_heads, 0, shape.max_positions, shape.source)
        critic_act = _activations(critic_shape, _critic_tokens(cfg.critic, seq), checkpointing)
        parts["activations"] = max(parts["activations"], critic_act)
    util = float(rollout.gpu_memory_utilization)
    parts["rollout engine"] = util * gpu_gib
    rm = cfg.get("reward", {}).get("reward_model", {}) or {}
    if rm.get("enable") and not rm.get("enable_resource_pool"):
        # A colocated reward model keeps its own engine (its gpu_memory_utilization share) on the same GPUs.
        parts["reward model"] = float(rm.get("rollout", {}).get("gpu_memory_utilization", 0.5)) * gpu_gib
    parts["overhead"] = OVERHEAD_GIB
    resident = sum(v for k, v in parts.items() if k not in {"activations", "rollout engine"})
    # verl puts the engine to sleep (free_cache_engine) while training: its KV cache is released.
    rollout_phase = resident + parts["rollout engine"]
    training_phase = resident + parts["activations"]
    peak, phase = max((rollout_phase, "rollout"), (training_phase, "training"))
    est = Estimate(parts, peak, gpu_gib, phase)

    # KV cache: what the engine's share holds after its bf16 weights (tensor-parallel split).
    tp = int(rollout.tensor_model_parallel_size)
    kv_gib = util * gpu_gib - 2 * shape.params / tp / GIB - 1.0  # ~1 GiB for CUDA graphs and buffers
    kv_per_token = 2 * shape.layers * (shape.kv_heads / tp if shape.kv_heads >= tp else 1) * shape.head_dim * 2
    kv_tokens = max(0.0, kv_gib * GIB / kv_per_token)
    est.notes.append(f"KV cache ~{max(kv_gib, 0):.1f} GiB = {kv_tokens:,.0f} tokens per engine")
    if kv_tokens < seq:
        est.suggestions.append(
            f"GPU_MEM_UTIL={util} leaves no room for one {seq}-token sequence in the KV cache: "
            f"raise GPU_MEM_UTIL or ROLLOUT_TP"
        )
    if not est.fits:
        est.suggestions += _suggest(est, cfg, lora_rank, param_off, optim_off, util, training_phase, rollout_phase)
    return est


def _suggest(est, cfg, lora_rank, param_off, optim_off, util, training_phase, rollout_phase) -> list[str]:
    over = est.peak_gib - est.gpu_gib
    out = []
    if not optim_off:
        out.append(f"OPTIMIZER_OFFLOAD=true (frees {est.parts.get('optimizer', 0):.1f} GiB)")
    if not param_off:
        out.append(f"PARAM_OFFLOAD=true (frees {est.parts.get('weights', 0) + est.parts.get('grads', 0):.1f} GiB)")
    if est.phase == "rollout":
        new_util = max(0.1, util - over / est.gpu_gib - 0.05)
        out.append(f"GPU_MEM_UTIL={new_util:.2f} (now {util}; the engine's share is {est.parts['rollout engine']:.1f} GiB)")
    else:
        out.append("lower MICRO_BATCH_SIZE_PER_GPU (or MAX_TOKENS_PER_GPU with USE_DYNAMIC_BSZ) or raise SP_SIZE")
    if not lora_rank:
        out.append("USE_LORA=true (the frozen base needs no gradients or optimizer states)")
    out.append("more GPUs (N_GPUS_PER_NODE / NNODES: FSDP shards the states over all of them)")
    if est.parts.get("reference"):
        out.append("REF_PARAM_OFFLOAD=true (the reference model's weights live on the CPU)")
    return out


def estimate_sft(cfg, shape: ModelShape, gpu_gb: float) -> Estimate:
    """Per-GPU estimate for verl.trainer.sft_trainer (FSDP engine)."""
    world = int(cfg.trainer.n_gpus_per_node) * int(cfg.trainer.nnodes)
    gpu_gib = gpu_gb * 1e9 / GIB
    engine = cfg.get("engine", {}) or {}
    sp = int(engine.get("ulysses_sequence_parallel_size", 1) or 1)
    data = cfg.data
    if data.get("use_dynamic_bsz", False):
        tokens = int(data.max_token_len_per_gpu)
    else:
        tokens = int(data.micro_batch_size_per_gpu) * int(data.max_length) / sp
    lora_rank = int(cfg.model.get("lora_rank", 0) or 0)
    lora = _lora_params(shape, lora_rank) if lora_rank > 0 else 0.0
    param_off, optim_off = bool(engine.get("param_offload", False)), bool(engine.get("optimizer_offload", False))
    parts = _training_states(shape.params, world, lora, param_off, optim_off)
    parts["activations"] = _activations(shape, tokens, bool(cfg.model.get("enable_gradient_checkpointing", True)))
    parts["overhead"] = OVERHEAD_GIB
    peak = sum(parts.values())
    est = Estimate(parts, peak, gpu_gib, "training")
    if not est.fits:
        est.suggestions += [s for s in _suggest(est, cfg, lora_rank, param_off, optim_off, 0.0, peak, 0) if "GPU_MEM_UTIL" not in s and "REF_" not in s]
    return est


def main(argv: list[str] | None = None) -> int:
    import argparse

    from omegaconf import OmegaConf

    p = argparse.ArgumentParser(description="Per-GPU memory estimate of a verl GRPO run (FSDP + vLLM).")
    p.add_argument("model", help="local folder or Hugging Face id (cache or built-in table)")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--gpu-memory-gb", type=float, default=DEFAULT_GPU_MEMORY_GB)
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--response", type=int, default=1024)
    p.add_argument("--micro", type=int, default=8)
    p.add_argument("--util", type=float, default=0.5)
    args = p.parse_args(argv)
    shape = shape_for(args.model)
    if shape is None:
        print(f"{args.model}: unknown shape (no local config.json, not in the built-in table)")
        return 2
    cfg = OmegaConf.create(
        {
            "trainer": {"n_gpus_per_node": args.gpus, "nnodes": 1},
            "data": {"max_prompt_length": args.prompt, "max_response_length": args.response},
            "algorithm": {"adv_estimator": "grpo", "use_kl_in_reward": False},
            "critic": {"enable": False},
            "actor_rollout_ref": {
                "model": {"lora_rank": 0, "enable_gradient_checkpointing": True},
                "actor": {"use_dynamic_bsz": False, "ppo_micro_batch_size_per_gpu": args.micro, "use_kl_loss": True,
                          "fsdp_config": {}},
                "ref": {"fsdp_config": {}},
                "rollout": {"gpu_memory_utilization": args.util, "tensor_model_parallel_size": 1},
            },
        }
    )
    est = estimate_rl(cfg, shape, args.gpu_memory_gb)
    print(est.summary())
    for line in est.notes + est.suggestions:
        print(" -", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
