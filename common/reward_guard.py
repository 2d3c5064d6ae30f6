"""A guard around any reward function: a time limit per call, and a score of 0 instead of a crash.

verl's reward loop calls the configured function with no time limit and no error handling: one
call that hangs freezes training, one that raises ends it. The launcher therefore points verl at
this file and passes the user's function along (``REWARD_GUARD=true``, the default):

    reward.custom_reward_function.path=$REPO/common/reward_guard.py
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.guard_target_path=$REPO/grpo/reward_func.py
    +reward.custom_reward_function.reward_kwargs.guard_target_name=compute_score
    +reward.custom_reward_function.reward_kwargs.guard_timeout_s=30

Test it:

    .venv/bin/python -m pytest tests/common/test_reward_guard.py -q

What it offers:

- ``compute_score(data_source, solution_str, ground_truth, extra_info=None, *, guard_target_path,
  guard_target_name="compute_score", guard_timeout_s=30, **kwargs)``: the entry verl loads. It
  pops the ``guard_*`` kwargs, loads the target once per process, and passes everything else
  on. ``async`` so that verl awaits it on its event loop (verl checks
  ``inspect.iscoroutinefunction``); a sync target runs in verl's executor threads as before.
- ``guard_reward_fn(fn, timeout_s, *, source=None, isolation="process") -> callable``: the
  same guard around a function object, with verl's signature (async when ``fn`` is async).
  ``.guard`` on the result is the ``RewardGuard``.
- ``RewardGuard``: ``__call__`` (sync), ``acall`` (async), ``call_checked`` (returns the
  ``Outcome``: result, error kind, message, milliseconds, the raw return value) for callers that
  report errors per row (test.sh, through common/evaluation/scoring.py's ``make_reward``);
  ``close()`` or ``with``; ``pool`` (its common/workers.py pool), ``start_error``.
- ``fuzz_reward(fn, rows, kwargs, timeout_s) -> FuzzReport``: the pre-launch fuzz (right and
  wrong answers for each row, then an empty response, a 512 KB one, one cut off inside LaTeX,
  repeated tags, non-ASCII); ``FuzzReport.findings``, ``.per_call_ms``, ``.cost_line(n)``.
- ``redact(text)``: secrets (values of environment variables named like ``*KEY``, ``*TOKEN``,
  ``*SECRET``, ``*PASSWORD``, ``*CREDENTIAL``; URL userinfo; bearer tokens) replaced by ``***``.
- ``DEFAULT_TIMEOUT_S``, ``ERROR_KINDS``, ``ERRORS_ENV``.

What a guarded call returns: the function's own dict (or ``{"score": x, "acc": x}`` for a float,
as verl itself reads a float) plus ``reward_error: 0.0``. On an exception, a time-out, a NaN or
infinite score, or a score that is no number: ``score`` 0.0, the same keys (numbers 0.0, strings
"", unknown ones None, which verl's metrics skip) and ``reward_error: 1.0``. The keys come from
``REWARD_KEYS`` in the target's module if it defines one (common/reward_functions.py does),
else from the first good call. Each failure is logged once per distinct error (kind, exception
type, message) with the data_source and a 200-character excerpt of the response, redacted, and
appended as one JSON line to the file named by ``$POSTTRAIN_REWARD_ERRORS`` (the launcher sets
``<run_dir>/reward_errors.jsonl``; the dashboard counts them per step):
``{"time", "kind", "data_source", "error", "excerpt", "first"}``.

Why a process and not a thread, with numbers. A thread that runs past its limit cannot be
stopped: it keeps its CPU share for ever, and a call stuck in C code that holds the GIL (a
regex backtracking inside ``re``, sympy on ``10^{10^{10}}``, a big-int power) stalls every thread
of the process, so the caller cannot even return: ``format_reward``'s old regex held the GIL for
~55 s on 250 repeated tag pairs, and a thread guard would have returned only after it. A worker
process is killed at the deadline (its whole process group, so helpers it started die too) and
replaced, and dies with this process (common/workers.py, the pool shared with math-verify's
checks, says how). Measured by benchmarks/bench_reward.py on the 2-core development machine: a
guarded call costs 0.03-0.05 ms more than the function itself in a worker process (one pickle
round trip over a socket; workers are reused) against 0.1-0.3 ms in a fresh thread, next to
15-50 ms for one plain math-verify check; the default reward runs at ~180x plain math-verify
guarded, ~350x unguarded. Workers start on demand, at most ``REWARD_GUARD_WORKERS`` per process
(default min(4, CPUs)), load the target once, and are reused; a worker's start (~0.1 s plus the
target's imports) is not part of a call's limit, and a call's limit starts when a worker takes
it. A worker that cannot load the target makes every call fail fast with why for 30 s, then
is tried again.
``isolation="thread"`` remains for functions that cannot be sent to another process (a closure
holding a client, say); async functions are awaited with ``asyncio.wait_for`` on the caller's
loop (one that blocks its loop without awaiting cannot be interrupted; its late result is
discarded as a time-out).
"""

import asyncio
import datetime
import inspect
import json
import logging
import math
import numbers
import os
import pickle
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

from common import workers

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ERRORS_ENV",
    "ERROR_KINDS",
    "FuzzReport",
    "Outcome",
    "RewardGuard",
    "compute_score",
    "fuzz_reward",
    "guard_reward_fn",
    "redact",
]

logger = logging.getLogger(__name__)

# The default per-call limit (knob REWARD_TIMEOUT_S). common/reward_functions.py bounds a whole
# call at 5 s, and a fresh worker may first spend 1-3 s importing sympy for math-verify (more
# on a loaded node): 30 s leaves room for both with margin, and is small next to a training
# step of minutes. Rewards that wait on a network service need more (the PPO judge: up to
# 60 s x 5 attempts): set REWARD_TIMEOUT_S for them.
DEFAULT_TIMEOUT_S = 30.0
ERROR_KINDS = ("exception", "timeout", "nan", "inf", "not_a_number")
ERRORS_ENV = "POSTTRAIN_REWARD_ERRORS"
# A worker that does not report ready in this long (imports hanging) is killed; the error is
# then served for _START_RETRY_S before the next attempt, so calls fail fast meanwhile.
_START_TIMEOUT_S = 120.0
_START_RETRY_S = 30.0
# Distinct errors logged per process; past this they are only counted in the JSONL file.
_MAX_LOGGED = 50
_EXCERPT_CHARS = 200
_ERROR_CHARS = 300


# ---------------------------------------------------------------------------------------------
# Redaction and the error record
# ---------------------------------------------------------------------------------------------

def redact(text: str) -> str:
    """``text`` with secret values replaced by ``***`` (common/redaction.py's rules, on this
    process's environment).

    >>> os.environ["DEMO_API_KEY"] = "sk-123456789"
    >>> redact("failed: key sk-123456789 at https://bob:pw@host/v1")
    'failed: key *** at https://***@host/v1'
    >>> del os.environ["DEMO_API_KEY"]
    """
    from common.redaction import redact as redact_secrets

    return redact_secrets(str(text), dict(os.environ))


class _ErrorLog:
    """Logs each distinct error once and appends every failed call to $POSTTRAIN_REWARD_ERRORS."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def record(self, kind: str, error: str, data_source, solution_str) -> None:
        error = redact(error)[:_ERROR_CHARS]
        excerpt = redact(solution_str[:_EXCERPT_CHARS] if isinstance(solution_str, str) else repr(solution_str)[:_EXCERPT_CHARS])
        source = str(data_source)[:100]
        with self._lock:
            first = (kind, error) not in self._seen
            if first:
                self._seen.add((kind, error))
            n_seen = len(self._seen)
        if first and n_seen <= _MAX_LOGGED:
            logger.warning("reward %s on data_source %r: %s | response starts: %r", kind, source, error, excerpt)
        elif first and n_seen == _MAX_LOGGED + 1:
            logger.warning("more than %d distinct reward errors: further ones are only counted in $%s", _MAX_LOGGED, ERRORS_ENV)
        path = os.environ.get(ERRORS_ENV)
        if not path:
            return
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = json.dumps({"time": stamp, "kind": kind, "data_source": source, "error": error, "excerpt": excerpt,
                           "first": first}, ensure_ascii=True) + "\n"
        try:
            # One write with O_APPEND: lines from every reward process stay whole (< 4 KB each).
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk must not turn into a reward crash
            logger.warning("cannot append to %s=%s: %s", ERRORS_ENV, path, exc)


_ERRORS = _ErrorLog()


# ---------------------------------------------------------------------------------------------
# Loading a target and checking what it returns
# ---------------------------------------------------------------------------------------------


def _declared_keys(module) -> tuple[str, ...] | None:
    keys = getattr(module, "REWARD_KEYS", None)
    if isinstance(keys, list | tuple) and keys and all(isinstance(k, str) for k in keys) and "score" in keys:
        return tuple(keys)
    return None


class Outcome(NamedTuple):
    """One guarded call: the ``result`` returned, ``kind`` (None or one of ERRORS_KINDS), ``error``, ``ms``, ``raw``."""

    result: dict
    kind: str | None
    error: str
    ms: float
    raw: Any  # what the function itself returned (None on an exception or a time-out)


def _check(raw) -> tuple[str | None, str]:
    """(error kind, message) for a return value, (None, "") when it is a usable score."""
    if isinstance(raw, dict):
        if "score" not in raw:
            return "not_a_number", f"returned a dict without 'score' (keys {sorted(map(str, raw))[:20]})"
        value = raw["score"]
    else:
        value = raw
    if not isinstance(value, numbers.Real):
        return "not_a_number", f"score is {type(value).__name__} ({str(value)[:60]!r}), not a number"
    value = float(value)
    if math.isnan(value):
        return "nan", "score is NaN"
    if math.isinf(value):
        return "inf", f"score is {value}"
    return None, ""


def _zero_like(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, numbers.Number):
        return 0.0
    if isinstance(value, str):
        return ""
    return None


# ---------------------------------------------------------------------------------------------
# Worker processes (common/workers.py)
# ---------------------------------------------------------------------------------------------


def _worker_target(spec: dict):
    """A worker's setup: the target (loaded from its file or unpickled) and (is_async, declared keys)."""
    if "pickled" in spec:
        fn = pickle.loads(spec["pickled"])
        module = sys.modules.get(getattr(fn, "__module__", ""), None)
    else:
        fn, module = workers.load_function(spec["path"], spec["name"])
    return fn, (inspect.iscoroutinefunction(fn), _declared_keys(module) if module else None)


def _pool_size() -> int:
    raw = os.environ.get("REWARD_GUARD_WORKERS", "")
    if raw:
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(f"REWARD_GUARD_WORKERS must be an integer >= 1, got {raw!r}")
        return size
    # verl runs sync reward functions in up to 32 executor threads per reward process. A rule
    # reward costs ~0.05 ms per call through a worker, so 4 workers score ~40,000 responses a
    # second per reward process; more would only add interpreters (each with its own ~150 MB
    # math-verify helper once needed) on every one of the REWARD_WORKERS processes.
    return min(4, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# The guard
# ---------------------------------------------------------------------------------------------


class _LoopThread:
    """One background event loop per process, for sync callers of an async reward function."""

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="reward-guard-loop").start()
                cls._loop = loop
            return cls._loop


class RewardGuard:
    """A time limit and error handling around one reward function (see the module docstring).

    ``fn``: the function, or None with ``source=(path, name)``; ``source`` also tells worker
    processes how to load a function that pickle cannot name (verl loads files without
    registering them as modules); its path may also be a module name. ``isolation``: "process"
    (default for sync functions) or "thread". ``label`` names the function in messages.
    ``log_errors=False`` keeps failures out of the log and $POSTTRAIN_REWARD_ERRORS (test.sh
    lists them in its report instead).

    ``pool``: the common/workers.py pool of its worker processes (None for threads and async
    functions); ``start_error``: why the worker could not load the function, None when it could.
    A guard is a context manager (``close`` on exit).
    """

    def __init__(
        self,
        fn: Callable | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        *,
        source: tuple[str, str] | None = None,
        isolation: str = "process",
        label: str | None = None,
        log_errors: bool = True,
    ) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s < math.inf:
            raise ValueError(f"REWARD_TIMEOUT_S (guard_timeout_s) must be a positive number of seconds, got {timeout_s!r}")
        if isolation not in ("process", "thread"):
            raise ValueError(f"isolation must be 'process' or 'thread', got {isolation!r}")
        if fn is None and source is None:
            raise ValueError("RewardGuard needs a function or source=(path, name)")
        self.timeout_s = float(timeout_s)
        self.isolation = isolation
        self.label = label or (f"{source[0]}:{source[1]}" if source else getattr(fn, "__qualname__", repr(fn)))
        self._fn = fn
        self._source = source
        self._keys: tuple[str, ...] | None = None
        self._defaults: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._mismatch_logged = False
        self._log_errors = log_errors
        self.abandoned_threads = 0
        self.pool: workers.WorkerPool | None = None
        self.is_async = inspect.iscoroutinefunction(fn) if fn is not None else None
        if fn is not None:
            module = sys.modules.get(getattr(fn, "__module__", "") or "")
            self._set_keys(_declared_keys(module) if module else None)
        if self.is_async is False and isolation == "process":
            self.pool = self._new_pool()
        elif fn is None:
            if isolation == "thread":
                self._fn, module = workers.load_function(*source)
                self.is_async = inspect.iscoroutinefunction(self._fn)
                self._set_keys(_declared_keys(module))
            else:
                # Load it in a worker first: the target's imports run there, not in verl's process.
                self.pool = self._new_pool()
                if self.pool.warm(_START_TIMEOUT_S + 5.0):
                    self.is_async, keys = self.pool.info
                    self._set_keys(keys)
                else:
                    self.is_async = False  # every call will report the start-up error
                if self.is_async:
                    # Awaited on the caller's loop, so it must live in this process.
                    self.pool.close()
                    self.pool = None
                    self._fn, module = workers.load_function(*source)
                    self._set_keys(_declared_keys(module))

    def _new_pool(self) -> workers.WorkerPool:
        # The parent's sys.path goes along: a function sent by pickle is found by its module name.
        return workers.WorkerPool(("common.reward_guard", "_worker_target", (self._spec(),)), _pool_size(),
                                  name="reward", sys_path=list(sys.path), start_timeout_s=_START_TIMEOUT_S,
                                  retry_after_s=_START_RETRY_S)

    @property
    def start_error(self) -> str | None:
        return self.pool.start_error if self.pool is not None else None

    def _spec(self) -> dict:
        if self._source is not None:
            path, name = self._source
            return {"path": os.path.abspath(path) if path.endswith(".py") or os.path.isfile(path) else path, "name": name}
        try:
            data = pickle.dumps(self._fn)
            if pickle.loads(data) is not self._fn:
                raise pickle.PicklingError("it does not unpickle to the same object")
        except Exception as exc:
            raise ValueError(
                f"cannot send {self.label} to a worker process ({exc}): pass source=(file path, function name), "
                "use a module-level function, or isolation='thread'"
            ) from None
        return {"pickled": data}

    def _set_keys(self, keys) -> None:
        if keys and self._keys is None:
            keys = tuple(k for k in keys if k != "reward_error")
            self._keys = keys if keys[0] == "score" else ("score",) + tuple(k for k in keys if k != "score")
            self._defaults = {k: (0.0 if k == "score" else None) for k in self._keys}

    # -- results -------------------------------------------------------------------------------

    def _good(self, raw) -> dict:
        result = dict(raw) if isinstance(raw, dict) else {"score": float(raw), "acc": float(raw)}
        result["score"] = float(result["score"])
        result.pop("reward_error", None)
        with self._lock:
            if self._keys is None or all(v is None for k, v in self._defaults.items() if k != "score"):
                if self._keys is None:
                    self._keys = tuple(result)
                self._defaults = {k: 0.0 if k == "score" else _zero_like(result.get(k)) for k in self._keys}
            keys = self._keys
        if tuple(result) != keys:
            if set(result) != set(keys) and not self._mismatch_logged:
                self._mismatch_logged = True
                logger.warning("%s returned keys %s, earlier calls %s: missing ones are filled, extra ones dropped "
                               "(verl takes the keys from the first sample of a batch)", self.label, sorted(result), list(keys))
            result = {k: result.get(k, self._defaults.get(k)) for k in keys}
        result["reward_error"] = 0.0
        return result

    def _failed(self) -> dict:
        with self._lock:
            keys = self._keys or ("score",)
            result = {k: self._defaults.get(k) for k in keys}
        result["score"] = 0.0
        result["reward_error"] = 1.0
        return result

    def _finish(self, raw, kind: str | None, error: str, started: float, args: tuple) -> Outcome:
        ms = 1000 * (time.monotonic() - started)
        if kind is None:
            kind, error = _check(raw)
        if kind is None:
            return Outcome(self._good(raw), None, "", ms, raw)
        data_source, solution_str = (args + (None, None))[:2]
        if self._log_errors:
            _ERRORS.record(kind, error, data_source, solution_str)
        return Outcome(self._failed(), kind, error, ms, raw)

    # -- calls ---------------------------------------------------------------------------------

    @staticmethod
    def _args(data_source, solution_str, ground_truth, extra_info) -> tuple:
        return (data_source, solution_str, ground_truth, extra_info)

    @staticmethod
    def _call_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        # extra_info by keyword, as verl passes it: a function that takes it only in **kwargs
        # gets it there; the first three by position, as test.sh has always called them.
        return args[:3], {"extra_info": args[3], **kwargs}

    def call_checked(self, data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> Outcome:
        """Score one response (sync); the Outcome says what went wrong, if anything."""
        args = self._args(data_source, solution_str, ground_truth, extra_info)
        started = time.monotonic()
        if self.is_async:
            loop = _LoopThread.get()
            future = asyncio.run_coroutine_threadsafe(self._await(args, kwargs, started), loop)
            try:
                return future.result(self.timeout_s + 5.0)
            except Exception as exc:  # the loop itself is wedged by the function: count a time-out
                future.cancel()
                why = f"no result within {self.timeout_s:g} s ({type(exc).__name__})"
                return self._finish(None, "timeout", why, started, args)
        if self.pool is not None:
            try:
                raw = self.pool.call(*self._call_args(args, kwargs), self.timeout_s)
            except TimeoutError as exc:
                return self._finish(None, "timeout", str(exc), started, args)
            except (workers.CallError, workers.WorkerError) as exc:  # a raise, a worker that died or cannot start
                return self._finish(None, "exception", str(exc), started, args)
            return self._finish(raw, None, "", started, args)
        return self._in_thread(args, kwargs, started)

    def _in_thread(self, args: tuple, kwargs: dict, started: float) -> Outcome:
        box: dict = {}
        done = threading.Event()

        def run() -> None:
            try:
                positional, named = self._call_args(args, kwargs)
                box["value"] = self._fn(*positional, **named)
            except BaseException as exc:  # reported as the call's error
                box["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                done.set()

        thread = threading.Thread(target=run, daemon=True, name="reward-guard-call")
        thread.start()
        if not done.wait(self.timeout_s):
            with self._lock:
                self.abandoned_threads += 1
            return self._finish(None, "timeout", f"no result within {self.timeout_s:g} s (thread left running)", started, args)
        if "error" in box:
            return self._finish(None, "exception", box["error"], started, args)
        return self._finish(box.get("value"), None, "", started, args)

    async def _await(self, args: tuple, kwargs: dict, started: float) -> Outcome:
        positional, named = self._call_args(args, kwargs)
        try:
            raw = await asyncio.wait_for(self._fn(*positional, **named), self.timeout_s)
        except asyncio.TimeoutError:
            return self._finish(None, "timeout", f"no result within {self.timeout_s:g} s", started, args)
        except Exception as exc:
            return self._finish(None, "exception", f"{type(exc).__name__}: {exc}", started, args)
        if time.monotonic() - started > self.timeout_s:
            # It blocked the loop instead of awaiting: wait_for could not interrupt it.
            return self._finish(None, "timeout", f"answered after {time.monotonic() - started:.1f} s, past the "
                                f"{self.timeout_s:g} s limit (it blocks its event loop)", started, args)
        return self._finish(raw, None, "", started, args)

    def __call__(self, data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> dict:
        return self.call_checked(data_source, solution_str, ground_truth, extra_info, **kwargs).result

    async def acall(self, data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> dict:
        """Score one response from an event loop: awaits an async target, runs a sync one in the loop's executor."""
        args = self._args(data_source, solution_str, ground_truth, extra_info)
        if self.is_async:
            return (await self._await(args, kwargs, time.monotonic())).result
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(None, lambda: self.call_checked(*args, **kwargs))
        return outcome.result

    def close(self) -> None:
        """Stop this guard's worker processes (they also exit when this process does)."""
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> "RewardGuard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def guard_reward_fn(fn: Callable, timeout_s: float = DEFAULT_TIMEOUT_S, *, source: tuple[str, str] | None = None,
                    isolation: str = "process") -> Callable:
    """``fn`` with a time limit and errors turned into ``score`` 0 and ``reward_error`` 1.

    The result has verl's signature and is async when ``fn`` is; ``.guard`` is the RewardGuard.

    >>> import common.reward_functions as rf
    >>> scorer = guard_reward_fn(rf.compute_score, timeout_s=30, isolation="thread")
    >>> scorer("math", "\\\\boxed{2}", "2")["reward_error"], scorer("nope", "\\\\boxed{2}", "2")["reward_error"]
    (0.0, 1.0)
    """
    guard = RewardGuard(fn, timeout_s, source=source, isolation=isolation)
    if guard.is_async:
        async def guarded_async(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs):
            return await guard.acall(data_source, solution_str, ground_truth, extra_info, **kwargs)

        guarded_async.guard = guard
        return guarded_async

    def guarded(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs):
        return guard(data_source, solution_str, ground_truth, extra_info, **kwargs)

    guarded.guard = guard
    return guarded


# ---------------------------------------------------------------------------------------------
# The entry verl loads
# ---------------------------------------------------------------------------------------------

_GUARDS: dict[tuple, RewardGuard] = {}
_GUARDS_LOCK = threading.Lock()


def _guard_key(path: str, name: str, timeout_s, isolation: str) -> tuple:
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise ValueError(f"reward_kwargs.guard_timeout_s (REWARD_TIMEOUT_S) must be a number of seconds, got {timeout_s!r}")
    return (os.path.abspath(str(path)), str(name), float(timeout_s), isolation, os.getpid())


def _guard_for(path: str, name: str, timeout_s: float, isolation: str) -> RewardGuard:
    """The guard of this process for a target, built on first use (the pid: a fork builds its own)."""
    key = _guard_key(path, name, timeout_s, isolation)
    # Held while building: verl's first batch calls from many threads at once, and each build
    # starts a worker process; one build, the others wait for it.
    with _GUARDS_LOCK:
        guard = _GUARDS.get(key)
        if guard is None:
            guard = _GUARDS[key] = RewardGuard(source=(str(path), str(name)), timeout_s=timeout_s, isolation=isolation)
    return guard


async def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, *,
                        guard_target_path: str | None = None, guard_target_name: str = "compute_score",
                        guard_timeout_s: float = DEFAULT_TIMEOUT_S, guard_isolation: str = "process", **kwargs) -> dict:
    """verl's entry: score with the function at ``guard_target_path`` under the guard.

    Every other keyword argument goes to the target. The target is loaded once per process.
    """
    if not guard_target_path:
        raise ValueError(
            "common/reward_guard.py needs reward_kwargs.guard_target_path (the reward function file it guards); "
            "the launcher sets it from REWARD_FUNC_PATH when REWARD_GUARD=true"
        )
    guard = _GUARDS.get(_guard_key(guard_target_path, guard_target_name, guard_timeout_s, guard_isolation))
    if guard is None:
        # The first call of a process builds the guard (it may start a worker): off the event loop.
        guard = await asyncio.get_running_loop().run_in_executor(
            None, _guard_for, guard_target_path, guard_target_name, guard_timeout_s, guard_isolation
        )
    return await guard.acall(data_source, solution_str, ground_truth, extra_info, **kwargs)


# ---------------------------------------------------------------------------------------------
# The pre-launch fuzz
# ---------------------------------------------------------------------------------------------

# Longer than any response verl can return (32k tokens x ~4 characters = 128 KB), four times over.
_LONG_CHARS = 512 * 1024
_FUZZ_INPUTS = (
    ("empty", ""),
    ("long", ("Let us compute step by step. " * (_LONG_CHARS // 29 + 1))[:_LONG_CHARS] + " \\boxed{1}"),
    ("cut inside LaTeX", "We simplify and get $\\frac{3}{\\sqrt{2"),
    ("repeated tags", "<think>a</think><answer>" * 2000),
    # What a tokenizer can decode to (no lone surrogates: verl's decode never returns them).
    ("non-ASCII", "答案是 \\boxed{४२}. Ответ: ½ — 🙂\u200b\ufeff"),
)


class Finding(NamedTuple):
    """One problem the fuzz found: ``input_kind`` (which input), ``kind`` (error kind or "keys"), ``detail``."""

    input_kind: str
    kind: str
    detail: str


class FuzzReport(NamedTuple):
    findings: list[Finding]
    per_call_ms: float  # mean over the right/wrong answers of the sample rows
    max_ms: float  # slowest call of all, fuzz inputs included
    calls: int
    keys: tuple | None  # the keys of the first good dict result
    right_mean: float  # mean score of the right answers
    wrong_mean: float  # mean score of the wrong answers

    @property
    def ok(self) -> bool:
        return not self.findings

    def cost_line(self, responses_per_step: int, workers: int | None = None) -> str:
        """The reward cost of one training step.

        >>> FuzzReport([], 2.0, 3.0, 10, None, 1.0, 0.0).cost_line(1024, workers=8)
        '2.00 ms per call x 1024 responses per step = 2.0 s per step (8 REWARD_WORKERS workers: ~0.3 s)'
        """
        if workers is None:
            workers = int(os.environ.get("REWARD_WORKERS", "8") or 8)
        total = self.per_call_ms * responses_per_step / 1000
        return (f"{self.per_call_ms:.2f} ms per call x {responses_per_step} responses per step = {total:.1f} s per step "
                f"({workers} REWARD_WORKERS workers: ~{total / max(workers, 1):.1f} s)")


def _answers_for(ground_truth) -> tuple[str, str]:
    """(a response with the ground truth, a wrong one), readable by math and GSM8K scorers alike."""
    gold = ground_truth
    if not isinstance(gold, str | bytes) and hasattr(gold, "__len__") and len(gold):
        gold = gold[0]  # several accepted answers (a list, a numpy array): the first
    gold = str(gold)
    wrong = "1234567" if gold.strip() != "1234567" else "7654321"
    right = f"<think>Working it out.</think><answer>The answer is \\boxed{{{gold}}}.</answer>\n#### {gold}"
    return right, f"<think>Working it out.</think><answer>The answer is \\boxed{{{wrong}}}.</answer>\n#### {wrong}"


def fuzz_reward(fn, rows: list[dict], kwargs: dict | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                *, source: tuple[str, str] | None = None, isolation: str = "process") -> FuzzReport:
    """Call ``fn`` on right and wrong answers for each row, then on hostile inputs; report what broke.

    ``rows``: dicts with ``data_source``, ``ground_truth`` and optionally ``extra_info``.
    ``kwargs``: the reward kwargs. A finding is a raise (with the input kind and the exception),
    a time-out, a NaN or infinite score, a score that is no number, or keys that differ between
    calls. ``fn`` may be a RewardGuard already, else one is built (``source``/``isolation`` as
    for RewardGuard) and closed at the end.
    """
    if isinstance(fn, RewardGuard):
        return _fuzz(fn, rows, dict(kwargs or {}))
    with RewardGuard(fn, timeout_s, source=source, isolation=isolation) as guard:
        return _fuzz(guard, rows, dict(kwargs or {}))


def _fuzz(guard: RewardGuard, rows: list[dict], kwargs: dict) -> FuzzReport:
    findings: list[Finding] = []
    keys, key_source = None, ""
    typical_ms, all_ms, right, wrong = [], [], [], []
    calls = []
    for row in rows:
        good, bad = _answers_for(row.get("ground_truth"))
        calls += [("right answer", good, row, right), ("wrong answer", bad, row, wrong)]
    first_row = rows[0] if rows else {"data_source": "math", "ground_truth": "1"}
    calls += [(kind, text, first_row, None) for kind, text in _FUZZ_INPUTS]
    reported: set[tuple[str, str]] = set()
    for input_kind, response, row, bucket in calls:
        outcome = guard.call_checked(row.get("data_source"), response, row.get("ground_truth"), row.get("extra_info"),
                                     **kwargs)
        all_ms.append(outcome.ms)
        label = f"{input_kind} ({row.get('data_source')!r})" if bucket is not None else input_kind
        if outcome.kind is not None:
            if (input_kind, outcome.kind) not in reported:
                reported.add((input_kind, outcome.kind))
                findings.append(Finding(label, outcome.kind, outcome.error))
            continue
        if bucket is not None:
            typical_ms.append(outcome.ms)
            bucket.append(float(outcome.raw["score"] if isinstance(outcome.raw, dict) else outcome.raw))
        raw_keys = tuple(outcome.raw) if isinstance(outcome.raw, dict) else ("<float>",)
        if keys is None:
            keys, key_source = raw_keys, label
        elif sorted(raw_keys) != sorted(keys) and ("keys", input_kind) not in reported:
            reported.add(("keys", input_kind))
            findings.append(Finding(label, "keys", f"returned keys {sorted(raw_keys)}, but {sorted(keys)} on {key_source}; "
                                    "verl takes the keys from the first sample of a batch"))
    return FuzzReport(findings, _mean(typical_ms), max(all_ms, default=0.0), len(all_ms),
                      keys if keys != ("<float>",) else None, _mean(right), _mean(wrong))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


if __name__ == "__main__":
    sys.exit("usage: this file is loaded by verl (see its docstring); run its tests with "
             ".venv/bin/python -m pytest tests/common/test_reward_guard.py -q")
