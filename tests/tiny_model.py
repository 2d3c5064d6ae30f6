"""A tiny causal LM and tokenizer built in-process: no download, no network.

    python -m tests.tiny_model OUT_DIR [--vocab 512] [--layers 2]

Offers:
- build_tokenizer(vocab_size): a byte-level BPE tokenizer trained on a small built-in corpus,
  with a ChatML chat template and Qwen-style special tokens.
- build_tiny_model(out_dir, ...): saves that tokenizer plus a randomly initialised Qwen2 model
  (a few hundred thousand parameters) in Hugging Face format and returns the folder.

Used by the test suite, the benchmarks and the GPU smoke test, so every one of them runs on a
machine that cannot reach a model hub.
"""

from __future__ import annotations

import argparse
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Reasoning tags are ordinary added tokens, as in Qwen's tokenizers: decoding with
# skip_special_tokens=True (what verl does) keeps them, so format rewards can see them.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "How many clips did Natalia sell altogether in April and May? #### 72",
    "Let's think step by step. The answer is \\boxed{42}. Put your final answer in \\boxed{}.",
    "What is 3 + 4 * 2? First multiply, then add: 3 + 8 = 11. The final answer is 11.",
    "system user assistant You are a helpful assistant. Solve the problem and explain.",
    "\\frac{1}{2} \\sqrt{3} x^2 + y^2 = z^2 (0, 1] [2, 3) {1, 2, 3} 50% 0.5 1,000 $12.50",
    "<think> reasoning goes here </think> <answer> \\boxed{7} </answer>",
    "the a an of to in is it that for on with as was at by be this are or from",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 100 1000 3.14 -5 +",
    "Question: Answer: Solution: Final answer: #### = + - * / ( ) , . ? ! : ;",
]


def build_tokenizer(vocab_size: int = 512):
    """Train a byte-level BPE tokenizer on the built-in corpus; returns a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.add_tokens(TAG_TOKENS, special_tokens=False)
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(
    out_dir: str | Path,
    vocab_size: int = 512,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Path:
    """Save a random Qwen2 model and its tokenizer to out_dir (Hugging Face layout); return the path."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    path = build_tiny_model(args.out_dir, vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers)
    print(path)


if __name__ == "__main__":
    main()
