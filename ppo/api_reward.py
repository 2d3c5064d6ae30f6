"""Rewards from an LLM judge behind an OpenAI-compatible ``/v1/chat/completions`` API.

Use it in a run (the launcher sets the path; ppo/api_reward_config.yaml sets the rest)::

    python -m verl.trainer.main_ppo --config-path "$PWD/ppo" --config-name api_reward_config \
        'hydra.searchpath=[pkg://verl.trainer.config]' \
        reward.custom_reward_function.path="$PWD/ppo/api_reward.py"

Test it::

    .venv/bin/python -m pytest tests/ppo/test_api_reward.py -q

What it offers:

- ``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``: verl's
  reward signature, ``async`` so verl 0.9.1's reward loop awaits it on the reward worker's event
  loop (``NaiveRewardManager.run_single`` checks ``inspect.iscoroutinefunction``). Returns
  ``{"score", "judge_score", "judge_failed", "judge_cached", "judge_attempts",
  "judge_latency_s"}``, all floats, the same keys on every call. verl keeps the extra keys as
  ``reward_extra_info``: they appear in validation metrics
  (``val-aux/{data_source}/judge_failed/mean@N``, ...) and in the generation dumps.
- ``compute_score_sync(...)``: the same for callers without an event loop (runs on one
  background loop per process).
- ``parse_score(reply, max_score)``: the judge's reply -> a score in [0, 1], or None.
- ``JudgeConfig.from_kwargs(kwargs)``: the validated settings; ``ConfigError`` names the bad key.
- ``ScoreCache``: the in-process + sqlite cache; ``CrossLoopSemaphore``: the concurrency limit.

Settings (``reward.custom_reward_function.reward_kwargs.*``; verl passes them as kwargs):

- ``base_url`` (required; env ``JUDGE_BASE_URL`` if unset): e.g. ``http://127.0.0.1:8000/v1``.
- ``model`` (required; env ``JUDGE_MODEL`` if unset): the served model name.
- ``api_key_env`` (``JUDGE_API_KEY``): name of the environment variable holding the key. The key
  is read at each request, sent as ``Authorization: Bearer ...`` and never logged, cached or put
  in an error; when the variable is unset no Authorization header is sent (local servers).
- ``prompt_template`` (``DEFAULT_PROMPT_TEMPLATE``): ``str.format`` fields ``{question}``,
  ``{response}`` (required) and ``{reference}``; write literal braces as ``{{`` and ``}}``.
- ``max_score`` (10): the judge's scale; the last number of the reply is divided by it.
- ``max_concurrency`` (16): requests in flight per process, shared by every call, thread and
  event loop in that process (verl runs ``reward.num_workers`` processes, 8 by default, so up to
  8 x 16 = 128 in flight against the server).
- ``timeout_s`` (60): per attempt, the whole request (connect, send, every byte of the reply),
  not per read. ``max_retries`` (4): retries after the first attempt.
- ``cache_path`` (None): sqlite file shared by all processes (WAL mode); None keeps the cache in
  memory only. Use an absolute path: Ray workers do not promise the launcher's working directory.
- ``backoff_base_s`` (1.0), ``backoff_max_s`` (30): retry waits of base x 2^attempt with jitter,
  capped; a ``Retry-After`` header replaces the computed wait (also capped).
- ``temperature`` (0.0), ``max_tokens`` (None: the server's default).

The question comes from ``extra_info["question"]`` (our data builders put it there; verl itself
does not pass the prompt to reward functions); without it the judge sees an empty question.

Failure policy: a judge that still fails after the retries (timeouts, 429/5xx, connection errors,
malformed JSON, a reply with no number), or that answers 4xx other than 429 (not retried: the
request itself is wrong), scores 0 with ``judge_failed = 1``; nothing escapes ``compute_score``
except ``ConfigError`` at first use (a missing ``base_url``, a template without ``{response}``,
an unknown key, an unusable ``cache_path``), so a misconfigured run stops at step 1 with the
key to fix instead of training on zeros.
"""

# No `from __future__ import annotations` here: verl loads this file with
# importlib.util.module_from_spec without adding it to sys.modules, and @dataclass then fails
# resolving string annotations (sys.modules[cls.__module__] is None).
import asyncio
import collections
import email.utils
import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import ssl
import string
import threading
import time
import weakref
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import httpx

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "RESULT_KEYS",
    "ConfigError",
    "CrossLoopSemaphore",
    "JudgeConfig",
    "ScoreCache",
    "compute_score",
    "compute_score_sync",
    "parse_score",
]

# A fixed name: verl loads this file under a generated module name (custom_module_<hash>).
logger = logging.getLogger("ppo.api_reward")

# Where the settings live in the verl config; every ConfigError names the full key.
CONFIG_PREFIX = "reward.custom_reward_function.reward_kwargs"

DEFAULT_PROMPT_TEMPLATE = """\
You are grading a response to a question against a reference answer.

Question:
{question}

Reference answer:
{reference}

Response:
{response}

Rate how correct and complete the response is on a scale from 0 to 10, where 0 means wrong or \
empty and 10 means it fully matches the reference. Answer with one final line of the form \
"Score: N" and write nothing after it.
"""

# The returned dict's keys, `score` first; verl takes the keys of the first sample for all.
RESULT_KEYS = ("score", "judge_score", "judge_failed", "judge_cached", "judge_attempts", "judge_latency_s")

# Keyword arguments verl's reward managers add on their own (NaiveRewardManager passes these
# when a reward router runs); accepted and ignored, any other unknown key is a ConfigError.
_VERL_CALL_KWARGS = frozenset({"reward_router_address", "reward_model_tokenizer"})

# 100,000 entries x ~200 bytes (64-char key + float + dict overhead) = ~20 MB per process.
_MEMORY_CACHE_ENTRIES = 100_000

# Log the first 5 judge failures in a process, then every 100th, so a dead server during a
# 1,024-sample step writes ~15 lines instead of 1,024.
_LOG_FIRST_FAILURES = 5
_LOG_EVERY_FAILURES = 100


class ConfigError(ValueError):
    """A reward_kwargs setting is missing or wrong; the message names the key and the fix."""


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeConfig:
    """Validated judge settings. Holds the *name* of the key's variable, never the key."""

    base_url: str
    model: str
    api_key_env: str = "JUDGE_API_KEY"
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    max_score: float = 10.0
    max_concurrency: int = 16
    timeout_s: float = 60.0
    max_retries: int = 4
    cache_path: Optional[str] = None
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    temperature: float = 0.0
    max_tokens: Optional[int] = None

    @property
    def url(self) -> str:
        """The chat completions endpoint: ``{base_url}/chat/completions``."""
        base = self.base_url.rstrip("/")
        return base if base.endswith("/chat/completions") else base + "/chat/completions"

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "JudgeConfig":
        """Build and check settings from verl's reward kwargs; raise ConfigError naming the key.

        >>> JudgeConfig.from_kwargs({"base_url": "http://127.0.0.1:8000/v1", "model": "m"}).url
        'http://127.0.0.1:8000/v1/chat/completions'
        >>> try:
        ...     JudgeConfig.from_kwargs({"base_url": "http://h/v1", "model": "m", "max_scor": 5})
        ... except ConfigError as exc:
        ...     print(str(exc).split(";")[0])
        unknown key reward.custom_reward_function.reward_kwargs.max_scor
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in kwargs if k not in known and k not in _VERL_CALL_KWARGS)
        if unknown:
            raise ConfigError(
                f"unknown key {', '.join(f'{CONFIG_PREFIX}.{k}' for k in unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        values = {k: v for k, v in kwargs.items() if k in known and v is not None}
        values.setdefault("base_url", os.environ.get("JUDGE_BASE_URL") or None)
        values.setdefault("model", os.environ.get("JUDGE_MODEL") or None)

        def need_str(key: str, example: str) -> str:
            value = values.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{CONFIG_PREFIX}.{key} is missing or empty (got {value!r}); set it, "
                    f"e.g. +{CONFIG_PREFIX}.{key}={example}"
                )
            return value.strip()

        def number(key: str, kind: type, low: float, inclusive: bool = True):
            default = getattr(cls, key)
            value = values.get(key, default)
            if value is None:
                return None
            try:
                if isinstance(value, bool):
                    raise TypeError
                converted = kind(value)
                if kind is int and converted != float(value):
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{CONFIG_PREFIX}.{key} must be {'an integer' if kind is int else 'a number'}, "
                    f"got {value!r}"
                ) from None
            if converted < low or (not inclusive and converted == low):
                raise ConfigError(
                    f"{CONFIG_PREFIX}.{key} must be {'>=' if inclusive else '>'} {low}, got {value!r}"
                )
            return converted

        base_url = need_str("base_url", "http://127.0.0.1:8000/v1 (or export JUDGE_BASE_URL)")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{CONFIG_PREFIX}.base_url must start with http:// or https://, got {base_url!r}; "
                "e.g. http://127.0.0.1:8000/v1"
            )
        model = need_str("model", "Qwen/Qwen2.5-7B-Instruct (or export JUDGE_MODEL)")
        api_key_env = values.get("api_key_env", cls.api_key_env)
        if not isinstance(api_key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", api_key_env):
            raise ConfigError(
                f"{CONFIG_PREFIX}.api_key_env must be the NAME of an environment variable "
                f"(like JUDGE_API_KEY), got a value that is not a variable name; never put the key itself here"
            )
        template = values.get("prompt_template", cls.prompt_template)
        if not isinstance(template, str):
            raise ConfigError(f"{CONFIG_PREFIX}.prompt_template must be a string, got {type(template).__name__}")
        _check_template(template)
        cache_path = values.get("cache_path")
        if cache_path is not None and (not isinstance(cache_path, (str, os.PathLike)) or not str(cache_path)):
            raise ConfigError(f"{CONFIG_PREFIX}.cache_path must be a file path or null, got {cache_path!r}")
        backoff_base_s = number("backoff_base_s", float, 0.0)
        backoff_max_s = number("backoff_max_s", float, 0.0)
        if backoff_max_s < backoff_base_s:
            raise ConfigError(
                f"{CONFIG_PREFIX}.backoff_max_s ({backoff_max_s}) must be >= "
                f"{CONFIG_PREFIX}.backoff_base_s ({backoff_base_s})"
            )
        return cls(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            prompt_template=template,
            max_score=number("max_score", float, 0.0, inclusive=False),
            max_concurrency=number("max_concurrency", int, 1),
            timeout_s=number("timeout_s", float, 0.0, inclusive=False),
            max_retries=number("max_retries", int, 0),
            cache_path=None if cache_path is None else str(cache_path),
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            temperature=number("temperature", float, 0.0),
            max_tokens=number("max_tokens", int, 1),
        )


def _check_template(template: str) -> None:
    """Raise ConfigError unless the template formats with exactly our three fields."""
    allowed = {"question", "response", "reference"}
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(
            f"{CONFIG_PREFIX}.prompt_template is not a valid format string ({exc}); "
            "write literal braces as {{ and }}"
        ) from None
    bad = sorted(n for n in names if n not in allowed)
    if bad:
        raise ConfigError(
            f"{CONFIG_PREFIX}.prompt_template uses unknown field(s) {', '.join('{' + n + '}' for n in bad)}; "
            "allowed: {question}, {response}, {reference} (write literal braces as {{ and }})"
        )
    if "response" not in names:
        raise ConfigError(f"{CONFIG_PREFIX}.prompt_template must contain {{response}}, or the judge never sees it")


# --------------------------------------------------------------------------------------------
# Score parsing
# --------------------------------------------------------------------------------------------

# A number, optionally followed by "/ denominator" ("8/10"). The look-arounds skip digits glued
# to a word or a dot, e.g. the "4" of "gpt4", the "5" of "v1.5" or the "5" of "5f3b".
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?(?!\w)")
# Reasoning judges (Qwen3, DeepSeek-R1) think aloud first; numbers in there are not the score.
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


def parse_score(reply: Optional[str], max_score: float) -> Optional[float]:
    """The last number of ``reply`` divided by ``max_score``, clamped to [0, 1]; None if none.

    A final ``a/b`` is read as the fraction a/b whatever ``max_score`` is, so "8/10" means 0.8.

    >>> parse_score("Score: 7", 10)
    0.7
    >>> parse_score("Two of 3 steps hold. Score: 8/10", 10)
    0.8
    >>> parse_score("<think>maybe 2?</think>Score: 9.5", 10)
    0.95
    >>> parse_score("Score: 12", 10), parse_score("Score: -1", 10), parse_score("0.25", 1)
    (1.0, 0.0, 0.25)
    >>> parse_score("I cannot grade this.", 10) is None
    True
    """
    if not isinstance(reply, str):
        return None
    matches = _NUMBER.findall(_THINK.sub("", reply))
    if not matches:
        return None
    numerator, denominator = matches[-1]
    value = float(numerator)
    scale = float(denominator) if denominator else float(max_score)
    if scale <= 0:
        return None
    return min(1.0, max(0.0, value / scale))


# --------------------------------------------------------------------------------------------
# Concurrency limit shared by threads and event loops
# --------------------------------------------------------------------------------------------


class CrossLoopSemaphore:
    """An async semaphore usable from any thread and any event loop of the process.

    ``asyncio.Semaphore`` binds to the first loop that waits on it and fails in the others;
    verl awaits async reward functions on the reward worker's loop but runs sync ones in
    executor threads, and ``compute_score_sync`` uses its own loop, so the permit count lives
    behind a ``threading.Lock`` and waiters are woken with ``call_soon_threadsafe`` on their
    own loop. Permits are handed over first come, first served.
    """

    def __init__(self, value: int):
        if value < 1:
            raise ValueError(f"semaphore value must be >= 1, got {value}")
        self._value = value
        self._lock = threading.Lock()
        self._waiters: collections.deque[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = collections.deque()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._value > 0 and not self._waiters:
                self._value -= 1
                return
            fut = loop.create_future()
            self._waiters.append((loop, fut))
        try:
            await fut
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove((loop, fut))
                    holds_permit = False
                except ValueError:
                    # release() already picked us: if the grant landed we own a permit; if the
                    # future was cancelled first, _grant() sees that and passes the permit on.
                    holds_permit = fut.done() and not fut.cancelled()
            if holds_permit:
                self.release()
            raise

    def _grant(self, fut: asyncio.Future) -> None:
        if fut.cancelled():
            self.release()
        else:
            fut.set_result(None)

    def release(self) -> None:
        with self._lock:
            while self._waiters:
                loop, fut = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._grant, fut)
                    return
                except RuntimeError:
                    # That waiter's loop is closed; nobody will ever take the permit there.
                    continue
            self._value += 1

    async def __aenter__(self) -> "CrossLoopSemaphore":
        await self.acquire()
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.release()


# --------------------------------------------------------------------------------------------
# Cache: in-process LRU in front of an optional sqlite file
# --------------------------------------------------------------------------------------------


class _MemoryLRU:
    def __init__(self, capacity: int):
        self._capacity = capacity
        self._data: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[float]:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: float) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_MEMORY = _MemoryLRU(_MEMORY_CACHE_ENTRIES)


class _SqliteStore:
    """One connection per process and file; WAL lets several Ray workers read while one writes."""

    def __init__(self, path: str):
        self.path = Path(path).expanduser().resolve()
        where = f"{CONFIG_PREFIX}.cache_path ({self.path})"
        if self.path.is_dir():
            raise ConfigError(f"{where} is a directory; give a file path such as {self.path / 'judge_cache.sqlite'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot create its folder ({exc.strerror}); choose a writable path") from None
        self._lock = threading.Lock()
        self._warned = False
        try:
            # timeout=30: a writer in another process holds the lock for ~1 ms per insert, so 30 s
            # only trips on a stuck process; autocommit (isolation_level=None) keeps each
            # INSERT its own atomic transaction.
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS judge_cache (key TEXT PRIMARY KEY, score REAL NOT NULL, created REAL NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"{where} is not a usable sqlite judge cache ({exc}); delete the file or point "
                f"{CONFIG_PREFIX}.cache_path at a new one"
            ) from None
        logger.info("judge cache: %s", self.path)

    def _warn_once(self, action: str, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("judge cache %s: %s failed (%s); going on with the in-process cache only", self.path, action, exc)

    def get(self, key: str) -> Optional[float]:
        try:
            with self._lock:
                row = self._conn.execute("SELECT score FROM judge_cache WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            self._warn_once("read", exc)
            return None
        return None if row is None else float(row[0])

    def put(self, key: str, score: float) -> None:
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO judge_cache (key, score, created) VALUES (?, ?, ?)", (key, score, time.time())
                )
        except sqlite3.Error as exc:
            self._warn_once("write", exc)


_STORES: dict[str, _SqliteStore] = {}
_STORES_LOCK = threading.Lock()


class ScoreCache:
    """Judge scores by key: a per-process LRU, backed by a sqlite file when ``path`` is set.

    Only successful judgements are stored, so a failed sample is asked again on the next step.
    """

    def __init__(self, path: Optional[str] = None):
        self._store: Optional[_SqliteStore] = None
        if path is not None:
            resolved = str(Path(path).expanduser().resolve())
            with _STORES_LOCK:
                if resolved not in _STORES:
                    _STORES[resolved] = _SqliteStore(resolved)
                self._store = _STORES[resolved]

    @staticmethod
    def key(cfg: JudgeConfig, question: str, response: str, reference: str) -> str:
        """sha256 over everything that changes the judge's answer (never the API key)."""
        payload = [1, cfg.model, cfg.prompt_template, cfg.max_score, cfg.temperature, question, response, reference]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()

    def get(self, key: str) -> Optional[float]:
        value = _MEMORY.get(key)
        if value is None and self._store is not None:
            value = self._store.get(key)
            if value is not None:
                _MEMORY.put(key, value)
        return value

    def put(self, key: str, score: float) -> None:
        _MEMORY.put(key, score)
        if self._store is not None:
            self._store.put(key, score)

    @property
    def persistent(self) -> bool:
        return self._store is not None


# --------------------------------------------------------------------------------------------
# The judge
# --------------------------------------------------------------------------------------------


@dataclass
class _Attempt:
    score: Optional[float]
    reason: str = ""
    retryable: bool = False
    retry_after: Optional[float] = None


def _retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: either a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _redact(text: str, secret: Optional[str]) -> str:
    return text.replace(secret, "***") if secret else text


_failure_count = 0
_failure_lock = threading.Lock()


def _log_failure(cfg: JudgeConfig, reason: str, attempts: int) -> None:
    global _failure_count
    with _failure_lock:
        _failure_count += 1
        count = _failure_count
    if count <= _LOG_FIRST_FAILURES or count % _LOG_EVERY_FAILURES == 0:
        logger.warning(
            "judge %s at %s failed after %d attempt(s): %s; scoring 0 (%d judge failure(s) in this process so far)",
            cfg.model, cfg.url, attempts, reason, count,
        )


class _Judge:
    """One per distinct JudgeConfig per process: its semaphore, cache and HTTP clients."""

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.semaphore = CrossLoopSemaphore(cfg.max_concurrency)
        self.cache = ScoreCache(cfg.cache_path)
        # httpx.AsyncClient belongs to one event loop; keep one per loop, dropped with the loop.
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
            weakref.WeakKeyDictionary()
        )
        self._clients_lock = threading.Lock()
        # Loading the CA bundle costs ~10 ms; do it once, not per client.
        self._ssl = ssl.create_default_context() if cfg.url.startswith("https://") else None

    def __repr__(self) -> str:
        return f"_Judge(model={self.cfg.model!r}, url={self.cfg.url!r}, key from ${self.cfg.api_key_env})"

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._clients_lock:
            client = self._clients.get(loop)
            if client is None:
                limits = httpx.Limits(max_connections=self.cfg.max_concurrency, max_keepalive_connections=self.cfg.max_concurrency)
                client = httpx.AsyncClient(
                    timeout=httpx.Timeout(self.cfg.timeout_s),
                    limits=limits,
                    verify=self._ssl if self._ssl is not None else True,
                    trust_env=True,
                )
                self._clients[loop] = client
            return client

    def _backoff(self, retry: int) -> float:
        # Equal jitter: half the exponential wait fixed, half random, so 8 workers that hit the
        # same 503 do not come back in lockstep. base 1 s -> ~0.75, 1.5, 3, 6 s for retries 0..3.
        wait = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * (2**retry))
        return wait / 2 + random.uniform(0, wait / 2)

    async def _attempt(self, body: dict, api_key: Optional[str]) -> _Attempt:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            async with self.semaphore:
                # httpx's timeout bounds each read, so a server sending a byte every 0.5 s would
                # hold the attempt indefinitely; wait_for bounds connect + send + the whole body.
                resp = await asyncio.wait_for(
                    self._client().post(self.cfg.url, json=body, headers=headers), self.cfg.timeout_s
                )
        except (httpx.TimeoutException, asyncio.TimeoutError):
            return _Attempt(None, f"no complete reply within timeout_s={self.cfg.timeout_s}", retryable=True)
        except httpx.TransportError as exc:
            return _Attempt(None, f"connection error {type(exc).__name__}: {_redact(str(exc), api_key)}", retryable=True)
        status = resp.status_code
        if status == 429 or status >= 500:
            return _Attempt(
                None, f"HTTP {status}", retryable=True, retry_after=_retry_after_seconds(resp.headers.get("retry-after"))
            )
        if status >= 400:
            hint = f" (check ${self.cfg.api_key_env})" if status in (401, 403) else ""
            # Redact the whole text first: cutting first could leave the key's first characters.
            snippet = _redact(resp.text, api_key)[:300]
            return _Attempt(None, f"HTTP {status}{hint}, not retried: {snippet!r}")
        try:
            data = resp.json()
        except ValueError:
            return _Attempt(None, f"HTTP {status} with a body that is not JSON: {_redact(resp.text, api_key)[:80]!r}", retryable=True)
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            return _Attempt(None, "JSON without choices[0].message.content", retryable=True)
        score = parse_score(content, self.cfg.max_score)
        if score is None:
            return _Attempt(None, f"no number in the judge's reply {_redact(str(content), api_key)[:80]!r}", retryable=True)
        return _Attempt(score)

    async def score(self, question: str, response: str, reference: str) -> dict[str, float]:
        start = time.perf_counter()
        key = ScoreCache.key(self.cfg, question, response, reference)
        if self.cache.persistent:
            cached = await asyncio.to_thread(self.cache.get, key)
        else:
            cached = self.cache.get(key)
        if cached is not None:
            return _result(cached, failed=False, cached=True, attempts=0, latency=time.perf_counter() - start)

        prompt = self.cfg.prompt_template.format(question=question, response=response, reference=reference)
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.cfg.temperature,
        }
        if self.cfg.max_tokens is not None:
            body["max_tokens"] = self.cfg.max_tokens

        attempts = 0
        outcome = _Attempt(None, "not tried")
        for retry in range(self.cfg.max_retries + 1):
            attempts += 1
            # Read at each attempt: a rotated key is picked up without a restart.
            api_key = os.environ.get(self.cfg.api_key_env) or None
            outcome = await self._attempt(body, api_key)
            if outcome.score is not None or not outcome.retryable or retry == self.cfg.max_retries:
                break
            wait = outcome.retry_after if outcome.retry_after is not None else self._backoff(retry)
            await asyncio.sleep(min(wait, self.cfg.backoff_max_s))

        if outcome.score is None:
            _log_failure(self.cfg, outcome.reason, attempts)
            return _result(0.0, failed=True, cached=False, attempts=attempts, latency=time.perf_counter() - start)
        if self.cache.persistent:
            await asyncio.to_thread(self.cache.put, key, outcome.score)
        else:
            self.cache.put(key, outcome.score)
        return _result(outcome.score, failed=False, cached=False, attempts=attempts, latency=time.perf_counter() - start)


def _result(score: float, *, failed: bool, cached: bool, attempts: int, latency: float) -> dict[str, float]:
    return {
        "score": float(score),
        "judge_score": float(score),
        "judge_failed": float(failed),
        "judge_cached": float(cached),
        "judge_attempts": float(attempts),
        "judge_latency_s": float(latency),
    }


_JUDGES: dict[JudgeConfig, _Judge] = {}
_JUDGES_LOCK = threading.Lock()


def _get_judge(kwargs: dict[str, Any]) -> _Judge:
    cfg = JudgeConfig.from_kwargs(kwargs)
    with _JUDGES_LOCK:
        judge = _JUDGES.get(cfg)
        if judge is None:
            judge = _JUDGES[cfg] = _Judge(cfg)
            if not os.environ.get(cfg.api_key_env):
                logger.info("$%s is not set: judge requests carry no Authorization header", cfg.api_key_env)
        return judge


_warned_no_question = False


def _question(extra_info: Any) -> str:
    global _warned_no_question
    question = extra_info.get("question") if isinstance(extra_info, dict) else None
    if question is None:
        if not _warned_no_question:
            _warned_no_question = True
            logger.warning(
                "extra_info has no 'question': the judge sees an empty question; put the question in "
                "extra_info['question'] when building the data"
            )
        return ""
    return str(question)


def _reference(ground_truth: Any) -> str:
    if ground_truth is None:
        return ""
    if isinstance(ground_truth, str):
        return ground_truth
    if isinstance(ground_truth, (list, tuple)):
        return " | ".join(str(x) for x in ground_truth)
    # numpy arrays from parquet and other scalars
    tolist = getattr(ground_truth, "tolist", None)
    return _reference(tolist()) if callable(tolist) else str(ground_truth)


# --------------------------------------------------------------------------------------------
# verl entry points
# --------------------------------------------------------------------------------------------


async def compute_score(
    data_source: Any, solution_str: str, ground_truth: Any, extra_info: Optional[dict] = None, **kwargs: Any
) -> dict[str, float]:
    """Score ``solution_str`` with the judge; see the module docstring for settings and policy.

    Raises only ConfigError (bad reward_kwargs); every judge or network failure scores 0 with
    ``judge_failed = 1``.
    """
    judge = _get_judge(kwargs)
    try:
        return await judge.score(_question(extra_info), "" if solution_str is None else str(solution_str), _reference(ground_truth))
    except ConfigError:
        raise
    except Exception as exc:  # a reward must never stop training; the failure is counted instead
        api_key = os.environ.get(judge.cfg.api_key_env) or None
        _log_failure(judge.cfg, f"unexpected {type(exc).__name__}: {_redact(str(exc), api_key)}", 0)
        return _result(0.0, failed=True, cached=False, attempts=0, latency=0.0)


_background_loop: Optional[asyncio.AbstractEventLoop] = None
_background_lock = threading.Lock()


def _get_background_loop() -> asyncio.AbstractEventLoop:
    global _background_loop
    with _background_lock:
        if _background_loop is None or _background_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="api-reward-loop", daemon=True).start()
            _background_loop = loop
        return _background_loop


def compute_score_sync(
    data_source: Any, solution_str: str, ground_truth: Any, extra_info: Optional[dict] = None, **kwargs: Any
) -> dict[str, float]:
    """Blocking ``compute_score`` for callers without an event loop (safe from any thread)."""
    coro = compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs)
    return asyncio.run_coroutine_threadsafe(coro, _get_background_loop()).result()

