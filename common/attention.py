"""The attention backend of every model verl trains: the ATTN_IMPL knob.

    ATTN_IMPL=sdpa ./grpo/train.sh          # auto (default) | flash_attention_2 | sdpa
    .venv/bin/python -m common.attention    # what auto resolves to on this machine, and why

verl 0.9.1 builds the actor, reference, critic and SFT models with
`attn_implementation=override_config.get("attn_implementation", "flash_attention_2")`
(verl/workers/config/model.py, HFModelConfig.__post_init__): without flash-attn installed, every
launch stops at model loading ("FlashAttention2 has been toggled on, but it cannot be used").

Offers:
- CHOICES: the values ATTN_IMPL accepts.
- flash_attn_status() -> (usable, why): whether transformers can run flash_attention_2 here
  (flash_attn imports, a CUDA device is visible, version >= 2.3.3 as transformers requires).
- Attention / resolve(raw, status=None): the backend a launch uses and why. auto picks
  flash_attention_2 when flash_attn is usable, else sdpa.
- overrides(attention, trainer) -> list[str]: the Hydra overrides that put the choice where verl
  reads it: `model.override_config.attn_implementation` of the actor (the reference model copies
  the actor's model config) and of the critic, or of the SFT model. With sdpa they also set
  `use_remove_padding=false`: verl's packed ("remove padding") path feeds the model one row of all
  sequences with position ids restarting per sequence. flash-attn's varlen kernel attends within
  each sequence; sdpa gets transformers' block-diagonal mask over the whole row (masking_utils.py,
  find_packed_sequence_indices): right, but attention costs (sum of lengths)^2 instead of
  sum(length^2), e.g. 8x for 8 equal sequences in a micro-batch, plus a T x T mask. Padded batches
  cost the pad tokens instead (the rehearsal prints their share for a real batch). Ulysses
  sequence parallelism (SP_SIZE > 1) needs the packed path and so needs flash_attention_2.
  The reward model is served by vLLM/SGLang, whose attention backends are their own: ATTN_IMPL
  does not apply to it. Nor to PPO's critic: verl 0.9.1 loads it with flash_attention_2 written into
  the call (verl/utils/model.py:649, load_valuehead_model), so PPO needs flash-attn on the GPU.
- configured(cfg, trainer): each model's backend and packing as a composed config sets them.
The preflight's "attention" row is common/checks/attention.py.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

CHOICES = ("auto", "flash_attention_2", "sdpa")
# The flash-attn release setup_env.sh installs (verl 0.9.1's fsdp extra pins 2.8.3).
FLASH_ATTN_VERSION = "2.8.3"
INSTALL_HINT = (f"run ./setup_env.sh on the GPU machine (it installs flash-attn {FLASH_ATTN_VERSION} for the installed "
                "torch and CUDA), or set ATTN_IMPL=sdpa")


@dataclass(frozen=True)
class Attention:
    impl: str  # flash_attention_2 | sdpa
    requested: str  # what ATTN_IMPL said (auto when unset)
    why: str

    @property
    def remove_padding(self) -> bool:
        """verl's packed sequences (use_remove_padding) only with flash-attn's varlen kernel."""
        return self.impl == "flash_attention_2"


def flash_attn_status() -> tuple[bool, str]:
    """(usable, why): can transformers run flash_attention_2 in this environment?"""
    if importlib.util.find_spec("flash_attn") is None:
        return False, "flash_attn is not installed"
    try:
        import flash_attn
    except Exception as exc:  # a wheel built for another torch/CUDA: undefined symbols, missing libs
        return False, f"flash_attn is installed but does not import ({type(exc).__name__}: {str(exc)[:160]})"
    version = getattr(flash_attn, "__version__", "?")
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        return False, f"flash_attn {version} imports, but transformers cannot use it here (no CUDA device visible?)"
    return True, f"flash_attn {version} imports"


def resolve(raw: str | None, status: tuple[bool, str] | None = None) -> Attention:
    """The backend for ATTN_IMPL=raw (auto when unset); raises ValueError on an unknown value."""
    requested = (raw or "auto").strip() or "auto"
    if requested not in CHOICES:
        raise ValueError(f"ATTN_IMPL={requested!r} is not one of: {', '.join(CHOICES)}")
    if requested != "auto":
        return Attention(requested, requested, f"ATTN_IMPL={requested}")
    usable, why = status if status is not None else flash_attn_status()
    if usable:
        return Attention("flash_attention_2", "auto", f"ATTN_IMPL=auto: {why}")
    return Attention("sdpa", "auto", f"ATTN_IMPL=auto: {why}, so sdpa")


def overrides(attention: Attention, trainer: str) -> list[str]:
    """Hydra overrides that put the backend (and the packing it needs) where verl reads it."""
    models = ["model"] if trainer == "sft" else ["actor_rollout_ref.model", "critic.model"]
    out = []
    for model in models:
        # override_config is an empty dict in verl's YAML: "++" adds the key or replaces it.
        out.append(f"++{model}.override_config.attn_implementation={attention.impl}")
        if not attention.remove_padding:
            out.append(f"{model}.use_remove_padding=false")
    return out


def configured(cfg, trainer: str) -> dict[str, tuple[str, bool]]:
    """{model key: (attn_implementation verl will use, use_remove_padding)} read from a composed config."""
    from omegaconf import OmegaConf

    keys = ["model"] if trainer == "sft" else ["actor_rollout_ref.model", "critic.model"]
    out = {}
    for key in keys:
        node = OmegaConf.select(cfg, key)
        if node is None:
            continue
        override = node.get("override_config", {}) or {}
        out[key] = (str(override.get("attn_implementation", "flash_attention_2")), bool(node.get("use_remove_padding", True)))
    return out


def main() -> int:
    usable, why = flash_attn_status()
    chosen = resolve(os.environ.get("ATTN_IMPL"), (usable, why))
    print(f"ATTN_IMPL={chosen.requested} -> {chosen.impl} ({chosen.why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
