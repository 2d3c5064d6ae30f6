"""Hide secrets in text the dashboard shows (train.log lines, samples, reward errors).

Offers:
    redact(text) -> text   env-style assignments of secret-named variables (WANDB_API_KEY=...,
                           "OPENAI_API_KEY": "...", export HF_TOKEN=...), Authorization headers,
                           URL userinfo (https://user:pass@host), and well-known key shapes
                           (sk-..., hf_..., ghp_..., AKIA...) become "***".

    >>> redact("WANDB_API_KEY=abc123 url=https://bob:pw@host/x")
    'WANDB_API_KEY=*** url=https://***@host/x'

A run prints whatever its code prints; the dashboard may be exposed with --host 0.0.0.0, so
anything it displays from a run folder goes through redact().
"""

from __future__ import annotations

import re

__all__ = ["redact", "REDACTED"]

REDACTED = "***"

# NAME=value / NAME: value / "NAME": "value" where NAME ends in a secret word
# (WANDB_API_KEY, HF_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, GOOGLE_APPLICATION_CREDENTIALS, ...).
# The secret word must end the name and start it or follow a separator: WANDB_API_KEY, api-key,
# token; not monkey, tokenizer or max_tokens.
_SECRET_NAME = r"(?:[A-Za-z0-9]+[_.\-])*(?:KEY|APIKEY|TOKEN|SECRET|PASSWORD|PASSWD|PWD|CREDENTIALS?)"
_ASSIGN_RE = re.compile(
    r"(?P<name>['\"]?\b" + _SECRET_NAME + r"\b['\"]?)(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s'\",;}\]]+)",
    re.IGNORECASE,
)
# Authorization: Bearer xxx / Basic xxx
_AUTH_HEADER_RE = re.compile(r"(?P<pre>\b(?:Bearer|Basic|Token)\s+)(?P<value>[A-Za-z0-9._~+/=\-]{8,})", re.IGNORECASE)
# scheme://user:password@host -> scheme://***@host (also user-only tokens: https://TOKEN@github.com)
_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s/@:]+(?::[^\s/@]*)?)@")
# Key shapes with a known prefix: OpenAI/Anthropic sk-..., Hugging Face hf_..., GitHub ghp_/gho_/...,
# AWS access key ids, Slack xox*-, Google AIza...
_KEY_SHAPE_RE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{30,})"
)


def _assign(m: re.Match) -> str:
    value = m.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    inner = value[1:-1] if quote else value
    if inner in ("", REDACTED) or inner.lower() in ("none", "null", "false", "true"):
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{quote}{REDACTED}{quote}"


def redact(text) -> str:
    """Text with secrets replaced by ***; non-strings are converted with str() first."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    text = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _AUTH_HEADER_RE.sub(lambda m: f"{m.group('pre')}{REDACTED}", text)
    text = _ASSIGN_RE.sub(_assign, text)
    return _KEY_SHAPE_RE.sub(REDACTED, text)
