"""How the math presets ask for a final answer, and how their reference answers are read.

    .venv/bin/python -m doctest common/math_formats.py

Offers:
- GSM8K_INSTRUCTION, MATH_INSTRUCTION, PRESET_INSTRUCTIONS: the sentence each preset appends to a
  prompt (the one its scorer reads: "#### N" for GSM8K, the last \\boxed{} for math). Shared by
  common/data_utils.py (--preset), common/hub_data.py (datasets and benchmarks by name) and
  common/make_bundled_data.py, so training data and evaluation ask the same way.
- extract_hash_answer(text): a GSM8K reference answer (after "####").
- extract_last_boxed(text): a MATH reference solution's last complete \\boxed{} (responses are read
  by common/math_answer.py, which also joins several boxes and caps the input; a reference solution
  is trusted data, so the plain last box is the answer).
"""

from __future__ import annotations

import re

# verl's gsm8k instruction (examples/data_preprocess/gsm8k.py); the gsm8k scorer reads "#### N".
GSM8K_INSTRUCTION = 'Let\'s think step by step and output the final answer after "####".'
# The math scorers (common/reward_functions.py, verl's math ones) read the last \boxed{...}.
MATH_INSTRUCTION = "Let's think step by step and put your final answer within \\boxed{}."
# What --preset appends to every prompt: the bundled data's instruction for gsm8k, so a model
# trained on converted GSM8K is asked for the same "#### N" the scorer reads.
PRESET_INSTRUCTIONS = {"gsm8k": GSM8K_INSTRUCTION, "math": MATH_INSTRUCTION}


def extract_hash_answer(text: str) -> str | None:
    """The GSM8K final answer after "####", commas and "$" removed; None if there is none.

    >>> extract_hash_answer("48 / 2 = 24 clips in May.\\n#### 1,072")
    '1072'
    """
    if not isinstance(text, str) or "####" not in text:
        return None
    tail = text.rsplit("####", 1)[1].strip()
    tail = tail.splitlines()[0].strip() if tail else ""
    answer = tail.replace(",", "").replace("$", "").strip()
    return answer or None


def extract_last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}), nested braces handled; None if none.

    >>> extract_last_boxed(r"so $x = \\boxed{\\frac{1}{2}}$ and not \\boxed{3")
    '\\\\frac{1}{2}'
    """
    if not isinstance(text, str):
        return None
    found = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found = text[m.end() : i - 1].strip()
    return found or None
