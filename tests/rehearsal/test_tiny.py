"""REHEARSAL_MODEL=tiny: a random model of MODEL_PATH's architecture, shrunk, with its tokenizer.

    .venv/bin/python -m pytest tests/rehearsal/test_tiny.py -q
"""

from __future__ import annotations

import pytest

from common.rehearsal.tiny import ModelNotLocal, build_like, local_model_dir, shrink_config


def _config(kind: str):
    import transformers as tf

    # Real layouts at their published sizes (only the numbers that matter here).
    if kind == "qwen2_7b":
        return tf.Qwen2Config(hidden_size=3584, num_attention_heads=28, num_key_value_heads=4, num_hidden_layers=28,
                              intermediate_size=18944, vocab_size=152064, max_window_layers=28)
    if kind == "qwen3":
        return tf.Qwen3Config(hidden_size=2560, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                              num_hidden_layers=36, intermediate_size=9728, vocab_size=151936)
    if kind == "llama_mha":
        return tf.LlamaConfig(hidden_size=4096, num_attention_heads=32, num_key_value_heads=32, num_hidden_layers=32,
                              intermediate_size=11008, vocab_size=32000)
    if kind == "qwen2_moe":
        return tf.Qwen2MoeConfig(hidden_size=2048, num_attention_heads=16, num_key_value_heads=16, num_hidden_layers=24,
                                 intermediate_size=5632, moe_intermediate_size=1408, num_experts=60,
                                 num_experts_per_tok=4, shared_expert_intermediate_size=5632, vocab_size=151936)
    raise KeyError(kind)


@pytest.mark.parametrize("kind", ["qwen2_7b", "qwen3", "llama_mha", "qwen2_moe"])
def test_shrink_keeps_the_layout_and_the_vocabulary(kind):
    import torch
    from transformers import AutoModelForCausalLM

    big = _config(kind)
    small = shrink_config(big)
    assert type(small) is type(big) and small.vocab_size == big.vocab_size  # the tokenizer must still fit
    assert small.num_hidden_layers == 2 and small.num_attention_heads == 4 and small.hidden_size == 64
    assert small.num_attention_heads % small.num_key_value_heads == 0
    # grouped-query attention stays grouped, full multi-head attention stays full
    assert (small.num_key_value_heads < small.num_attention_heads) == (big.num_key_value_heads < big.num_attention_heads)
    if isinstance(getattr(small, "layer_types", None), list):
        assert len(small.layer_types) == 2
    model = AutoModelForCausalLM.from_config(small)  # builds, and runs a forward pass
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, big.vocab_size)
    assert big.num_hidden_layers > 2  # the original is untouched


def test_multimodal_configs_are_refused():
    from transformers import Qwen2VLConfig

    with pytest.raises(ValueError, match="text-only"):
        shrink_config(Qwen2VLConfig())


def test_build_like_copies_the_tokenizer(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    out = build_like(str(tiny_model_dir), tmp_path / "tiny")
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tiny_model_dir).get_vocab()
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 2
    reward = build_like(str(tiny_model_dir), tmp_path / "rm", full=True, reward=True)
    model = AutoModelForSequenceClassification.from_pretrained(reward)
    assert model.config.num_labels == 1 and model.config.hidden_size == 64  # full: the original sizes


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nobody/not-a-cached-model", "not on this machine, and nothing is downloaded here"),  # why: hub id, offline
        ("__empty__", "has no config.json"),  # why: a folder that is not a model
    ],
)
def test_model_not_on_disk_is_said_clearly(tmp_path, path, message):
    if path == "__empty__":
        path = str(tmp_path)
    with pytest.raises(ModelNotLocal, match=message):
        local_model_dir(path)
