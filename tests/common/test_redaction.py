"""Secrets never reach the console, train.log or config.yaml: by variable name, URL credentials, token shapes.

    .venv/bin/python -m pytest tests/common/test_redaction.py -q
"""

from __future__ import annotations

import pytest
import yaml

from common.redaction import SecretFilter, is_secret_name, redact

NAMES = [
    ("WANDB_API_KEY", True),  # the wandb key
    ("AWS_SECRET_ACCESS_KEY", True),  # printed by a trainer once reached train.log verbatim
    ("AWS_SESSION_TOKEN", True),
    ("HF_TOKEN", True),
    ("JUDGE_API_KEY", True),
    ("DB_PASSWORD", True),
    ("GOOGLE_APPLICATION_CREDENTIALS", True),  # a path, but hiding it costs nothing
    ("MY_SECRET_THING", True),  # SECRET anywhere
    ("openai_api_key", True),  # lower case names count too
    ("MAX_TOKENS_PER_GPU", False),  # a size: TOKENS is not TOKEN
    ("TOKENIZERS_PARALLELISM", False),
    ("balance_dp_token_x", False),  # verl config keys named *_token_* are sizes and flags
    ("KEY_FILE", False),  # KEY must be the last word
    ("PATH", False),
]


@pytest.mark.parametrize("name, secret", NAMES)
def test_secret_names(name, secret):
    assert is_secret_name(name) is secret


ENV = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "HF_TOKEN": "hf_short_but_long_enough",
    "MAX_TOKENS_PER_GPU": "4096",  # not a secret: "4096" must stay visible
    "SOME_FLAG_TOKEN": "true",  # a flag value under a secret's name is not hidden everywhere
}

TEXTS = [
    # (text, what must be gone, what must stay)
    ("aws key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in a log", "wJalrXUtnFEMI", "aws key *** in a log"),
    ("JUDGE_BASE_URL=https://user:pa55word@judge.example.com/v1", "pa55word", "https://***@judge.example.com/v1"),
    ("dsn postgres://admin:hunter2@db:5432/x", "hunter2", "postgres://***@db:5432/x"),
    ("key sk-proj-abcdefghijklmnopqrstuvwx used", "sk-proj-abcdefghijkl", "key *** used"),
    ("token hf_abcdefghijklmnopqrstuvwxyz0123456789 here", "hf_abcdefghijklmnop", "token *** here"),
    ("max_token_len_per_gpu: 4096 and HF hf_short_but_long_enough", "hf_short_but_long_enough", "max_token_len_per_gpu: 4096"),
    ("balance_dp_token: true", None, "balance_dp_token: true"),  # verl's SFT key, a flag, not a secret
    # why: an Authorization header, whatever its scheme; a bare bearer token
    ("Authorization: Token 9f8e7d6c5b4a", "9f8e7d6c5b4a", "Authorization: Token ***"),
    ("curl -H 'Authorization: Bearer abc123def456'", "abc123def456", "Bearer ***"),
    ("bearer eyJhbGciOiJIUzI1NiJ9.x1", "eyJhbGciOiJIUzI1NiJ9", "bearer ***"),
    # why: words that follow "token", "basic" or "bearer" in prose and commands stay (RAY_AUTH_MODE=token path)
    ("RAY_AUTH_MODE=token /work/main/.venv/bin/ray job submit", None, "token /work/main/.venv/bin/ray job"),
    ("use basic arithmetic; the bearer of the message", None, "basic arithmetic; the bearer of the message"),
]


@pytest.mark.parametrize("text, gone, kept", TEXTS)
def test_redact(text, gone, kept):
    out = redact(text, ENV)
    if gone:
        assert gone not in out
    assert kept in out


def test_config_yaml_stays_parseable_and_secret_free():
    text = yaml.safe_dump(
        {"reward": {"kwargs": {"api_key": "abc-123-secret", "base_url": "https://u:p@h/v1", "model": "judge"}},
         "data": {"balance_dp_token": True}, "aws": ENV["AWS_SECRET_ACCESS_KEY"]}
    )
    out = redact(text, ENV)
    parsed = yaml.safe_load(out)  # a value replaced by *** is quoted, never a YAML alias
    assert parsed["reward"]["kwargs"]["api_key"] == "***"
    assert parsed["reward"]["kwargs"]["base_url"] == "https://***@h/v1"
    assert parsed["aws"] == "***" and parsed["data"]["balance_dp_token"] is True


@pytest.mark.parametrize("cut", [1, 3, 7, 64, 1000])
def test_filter_catches_secrets_split_across_chunks(cut):
    stream = (b"step:1 - loss:0.5\rprogress 50%\r" + b"x" * 2000
              + b" key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY url=https://u:secretpw@host/x\nend\n")
    f = SecretFilter(ENV, hold=128)  # a tiny hold forces the long-line path too
    out = b"".join(f.feed(stream[i : i + cut]) for i in range(0, len(stream), cut)) + f.flush()
    assert b"wJalrXUtnFEMI" not in out and b"secretpw" not in out
    assert out.endswith(b"key=*** url=https://***@host/x\nend\n")
    assert out.startswith(b"step:1 - loss:0.5\rprogress 50%\r")
