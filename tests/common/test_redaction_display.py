"""Secrets in text the dashboard shows (common.redaction.redact_for_display): env-style assignments, Authorization headers, URL userinfo,
known key shapes; and what must stay untouched.

    .venv/bin/python -m pytest tests/common/test_redaction_display.py -q
"""

from __future__ import annotations

import pytest

from common.redaction import redact_for_display as redact

CASES = [
    # (text, secret that must go (or None), text that must stay)
    ("WANDB_API_KEY=abc123", "abc123", "WANDB_API_KEY="),  # why: the launcher's env printed by a run
    ("export HF_TOKEN=hf_abcdefghijklmnopqrstu", "hf_abcdefghijklmnopqrstu", "HF_TOKEN="),
    ('{"OPENAI_API_KEY": "sk-proj-abcdefghijklmnop1234", "x": 1}', "sk-proj", '"x": 1'),  # why: JSON config dump
    ("DB_PASSWORD='two words'", "two words", "DB_PASSWORD="),  # why: a quoted value with a space
    ("reward_kwargs.api_key=abcd1234", "abcd1234", "api_key="),  # why: a Hydra override in a log line
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "wJalrXUtnFEMI", None),
    ("GOOGLE_APPLICATION_CREDENTIALS=/keys/sa.json", "/keys/sa.json", None),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc", "eyJhbGciOiJIUzI1NiJ9", "Authorization"),
    ("https://bob:hunter2@example.com/x", "hunter2", "example.com/x"),  # why: URL userinfo
    ("git clone https://ghp_abcdefghijklmnopqrstuvwxyz12@github.com/a/b", "ghp_abcdefghijklmnopqrstuvwxyz12", "github.com"),
    ("the key sk-abcdefghijklmnopqrstuvwx leaked", "sk-abcdefghijklmnopqrstuvwx", "leaked"),  # why: a bare key shape
    # why: ordinary words that contain key/token must stay readable
    ("monkey=banana tokenizer=Qwen/Qwen2.5 max_tokens: 512", None, "monkey=banana tokenizer=Qwen/Qwen2.5 max_tokens: 512"),
    ("actor/pg_loss:0.5 - critic/score/mean:1", None, "actor/pg_loss:0.5 - critic/score/mean:1"),
    ("api_key=None", None, "api_key=None"),  # why: an unset key is not a secret
    ("ValueError: WANDB_API_KEY=abcdef123456", "abcdef123456", "ValueError: WANDB_API_KEY="),  # why: an assignment inside an error message
    ("error: HF_TOKEN: hfsecretvalue99 and x=1", "hfsecretvalue99", "and x=1"),  # why: a "NAME: value" after another label
    ("url: https://alice:pw55@host/x", "pw55", "host/x"),  # why: a URL after a label keeps its userinfo redaction
]


@pytest.mark.parametrize("text,secret,kept", CASES)
def test_redact(text, secret, kept):
    out = redact(text)
    if secret is not None:
        assert secret not in out and "***" in out
    if kept is not None:
        assert kept in out
