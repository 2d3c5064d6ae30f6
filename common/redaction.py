"""Keeping secrets out of everything the project prints or writes.

    from common.redaction import redact, SecretFilter
    redact(text)                       # env secrets, URL credentials and well-known token shapes -> ***

Offers:
- is_secret_name(name): True for environment variables (and config keys) that hold secrets, by
  name: the last word is KEY, TOKEN, SECRET, PASSWORD, PASSWD or CREDENTIAL(S) (WANDB_API_KEY,
  HF_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, GOOGLE_APPLICATION_CREDENTIALS), or any word is
  SECRET, PASSWORD or CREDENTIAL(S). Words, not substrings: MAX_TOKENS_PER_GPU and
  TOKENIZERS_PARALLELISM are not secrets, and neither is verl's `balance_dp_token`.
- secret_values(env): the values of those variables, longest first (values under 4 characters
  and plain booleans are left alone: hiding every "1" would garble the log, not protect it).
- redact(text, env=None, assignments=False): the text with secret values, URL userinfo
  (`https://user:pass@host`), YAML values of keys named like secrets (`api_key: ...`) and
  well-known token shapes (sk-..., hf_..., ghp_..., AKIA..., xox..., AIza..., Bearer ...)
  replaced by ***; with assignments=True also `NAME=value` where NAME is a secret's name (for
  text whose environment is unknown: the dashboard, the console stream).
- redact_for_display(value): for anything the dashboard shows from a run folder (str() of it,
  assignments=True).
- SecretFilter(env): the same (assignments=True) for a byte stream (verl's console output on its way to the
  console and train.log), line by line, so a secret cut by a chunk boundary is still caught.
"""

from __future__ import annotations

import os
import re

# The last word of a secret's name, and words that make any name a secret.
_LAST_WORDS = frozenset({"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"})
_ANY_WORDS = frozenset({"SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS"})
# Values that are never treated as secrets even under a secret's name (flags, empties).
_NOT_SECRET_VALUES = frozenset({"true", "false", "none", "null", "auto", "yes", "no", "on", "off"})
# scheme://user:password@host -> scheme://***@host
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@'\"]+(?::[^/\s@'\"]*)?@")
# A YAML line whose key is a secret's name: `  api_key: sk-...` (a null or empty value stays).
_YAML_SECRET = re.compile(
    r"^(\s*(?:-\s+)?['\"]?([\w.-]+)['\"]?\s*:\s+)(?!null\s*$|''\s*$|\"\"\s*$|'\*\*\*')(\S.*)$", re.MULTILINE
)
_YAML_STARRED = re.compile(r"^(\s*(?:-\s+)?[\w.-]+\s*:\s+)(\*\*\*[^'\"\n]*?)\s*$", re.MULTILINE)
# Token shapes that are secrets wherever they appear (OpenAI/Anthropic-style keys, Hugging Face,
# GitHub, AWS access key ids, wandb keys are 40 hex characters only after `WANDB_API_KEY=`).
_TOKEN_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})\b")
# An HTTP Authorization header's credentials, wherever a log or an error message repeats it.
# "Authorization: <scheme> <credentials>" whatever the scheme, and a bare "Bearer <token>" (with a
# digit in it, so that prose such as "the bearer of ..." stays).
_AUTH_HEADER = re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?(?:[A-Za-z]+\s+)?)[A-Za-z0-9._~+/=-]{6,}")
_BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}")
# More key shapes with a known prefix: Slack xox*-, Google AIza...
_MORE_SHAPES = re.compile(r"\b(?:xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{30,})")
# NAME=value, NAME: value, "NAME": "value" in text from elsewhere (a run folder's train.log), where
# NAME is a secret's name (is_secret_name) and the environment that held the value is unknown.
# A value that is itself "NAME=" or "NAME:" ("ValueError: WANDB_API_KEY=abc") starts the next
# assignment: the match moves on to it.
_ASSIGNMENT = re.compile(
    r"(?P<name>['\"]?\b[A-Za-z][A-Za-z0-9_.-]*['\"]?)(?P<sep>\s*[=:]\s*)(?![A-Za-z][A-Za-z0-9_.-]*\s*[=:])(?P<value>\"[^\"\n]*\"|'[^'\n]*'|[^\s'\",;}\]]+)"
)
# Values under a secret's name that are not secrets: flags, numbers, one plain lower-case word
# (verl's `prompt_key: prompt`, `reward_fn_key: data_source`).
_PLAIN = re.compile(r"^(?:[a-z_]+|-?\d+(?:\.\d+)?|\*\*\*)$")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]


def is_secret_name(name: str) -> bool:
    """Does a variable or config key of this name hold a secret?

    >>> [is_secret_name(n) for n in ("WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "api_key")]
    [True, True, True, True]
    >>> [is_secret_name(n) for n in ("MAX_TOKENS_PER_GPU", "balance_dp_token_x", "TOKENIZERS_PARALLELISM", "KEY_FILE")]
    [False, False, False, False]
    """
    words = _words(name)
    return bool(words) and (words[-1] in _LAST_WORDS or any(w in _ANY_WORDS for w in words))


def secret_values(env: dict[str, str] | None = None) -> list[str]:
    """Values of the secret-named variables of env (default: os.environ), longest first."""
    values = set()
    for name, value in (os.environ if env is None else env).items():
        value = (value or "").strip()
        if is_secret_name(name) and len(value) >= 4 and value.lower() not in _NOT_SECRET_VALUES:
            values.add(value)
    return sorted(values, key=len, reverse=True)


def _yaml_key_is_secret(key: str) -> bool:
    # Config keys are judged by their last dotted part, exactly: `api_key`, `password`, `token`;
    # verl's `balance_dp_token` or `max_token_len` are sizes, not secrets.
    leaf = key.rsplit(".", 1)[-1].lower()
    return leaf in {"api_key", "apikey", "password", "passwd", "secret", "secret_key", "access_key", "access_token",
                    "auth_token", "token", "credentials", "credential", "private_key", "client_secret", "bearer_token"}


def _assignment(m: re.Match) -> str:
    name = m.group("name").strip("'\"")
    value = m.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    inner = value[1:-1] if quote else value
    if not is_secret_name(name) or inner.lower() in _NOT_SECRET_VALUES or _PLAIN.match(inner) or not inner:
        return m.group(0)
    return f"{m.group('name')}{m.group('sep')}{quote}***{quote}"


def redact(text: str, env: dict[str, str] | None = None, assignments: bool = False) -> str:
    """text with every secret replaced by ***.

    >>> redact("url https://me:pw@host/x and sk-abcdefghijklmnopqrstuv", env={})
    'url https://***@host/x and ***'
    >>> redact("api_key: abc123\\nbalance_dp_token: true", env={})
    "api_key: '***'\\nbalance_dp_token: true"

    assignments=True also hides the value of any `NAME=value` whose NAME is a secret's name, for
    text from elsewhere whose environment is unknown (the dashboard reading a run's train.log):

    >>> redact("WANDB_API_KEY=abc123 prompt_key=prompt max_tokens: 512", env={}, assignments=True)
    'WANDB_API_KEY=*** prompt_key=prompt max_tokens: 512'
    """
    if not text:
        return text
    text = _YAML_SECRET.sub(lambda m: f"{m.group(1)}'***'" if _yaml_key_is_secret(m.group(2)) else m.group(0), text)
    for value in secret_values(env):
        text = text.replace(value, "***")
    text = _USERINFO.sub(r"\1***@", text)
    text = _TOKEN_SHAPES.sub("***", text)
    text = _MORE_SHAPES.sub("***", text)
    text = _AUTH_HEADER.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    if assignments:
        text = _ASSIGNMENT.sub(_assignment, text)
    # A YAML value that now starts with * would read as an alias: quote it so config.yaml still parses.
    return _YAML_STARRED.sub(lambda m: f"{m.group(1)}'{m.group(2)}'", text)


def redact_for_display(value) -> str:
    """Anything shown to a person from a run folder (train.log lines, samples, reward errors): str()
    of it (None is ""), with redact()'s rules and assignments=True.

    >>> redact_for_display({"HF_TOKEN": "hf_x1y2z3w4"})
    "{'HF_TOKEN': '***'}"
    """
    if value is None:
        return ""
    return redact(value if isinstance(value, str) else str(value), assignments=True)


class SecretFilter:
    """redact() for a byte stream: complete lines (ended by \\n or \\r, as progress bars write them)
    pass through redact(); a partial line is held back until it ends, or until it is longer than
    `hold` bytes (then all but the last `keep` bytes go out, so a secret cut there is still seen
    whole next time)."""

    def __init__(self, env: dict[str, str] | None = None, hold: int = 65536):
        self.env = dict(os.environ if env is None else env)
        secrets = secret_values(self.env)
        self.keep = max([len(s.encode()) for s in secrets] + [256])
        self.hold = max(hold, 2 * self.keep)
        self.pending = b""

    def _clean(self, data: bytes) -> bytes:
        text = redact(data.decode("utf-8", "surrogateescape"), self.env, assignments=True)
        return text.encode("utf-8", "surrogateescape")

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut:
            self.pending = data[cut:]
            return self._clean(data[:cut])
        if len(data) <= self.hold:
            self.pending = data
            return b""
        # A very long line: clean what there is, hold back its tail (a secret still arriving
        # starts within the last `keep` bytes, as no secret is longer).
        cleaned = self._clean(data)
        self.pending = cleaned[-self.keep :]
        return cleaned[: -self.keep]

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return self._clean(data) if data else b""
