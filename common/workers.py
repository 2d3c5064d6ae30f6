"""A pool of killable worker processes: run a Python call in a child, kill it at a deadline, start another.

Used by the reward guard (common/reward_guard.py: any reward function under REWARD_TIMEOUT_S,
in verl's reward workers, the preflight's fuzz and test.sh's scoring) and by the math-verify
checks of common/reward_functions.py. Test it:

    .venv/bin/python -m pytest tests/common/test_workers.py -q

What it offers:

- ``WorkerPool(setup, size, *, name, sys_path=None, start_timeout_s=120, retry_after_s=30)``:
  up to ``size`` worker processes shared by all threads of this process. ``setup`` is
  ``(module name or file path, function name, args)``: each worker imports it, calls it once
  and serves calls of the function it returns. Methods:
  ``call(args, kwargs, timeout_s, *, start_in_limit=False)`` (the function's value in a worker),
  ``warm(wait_s)``, ``close()``; attributes ``info`` (what setup reported), ``starts`` (worker
  starts so far), ``start_error``, ``pids()``.
- What ``call`` raises: ``CallError`` (the function raised, or its arguments or result cannot
  cross: ``.type_name``, ``.message``; the worker stays), ``CallTimeout`` (a TimeoutError: no
  result by the deadline; the worker was killed), ``WorkerDied`` (the worker ended during the
  call: ``os._exit``, a segfault, the OOM killer), ``WorkerStartError`` (no worker could start or
  load the function). The last two and ``WorkerClosed`` are ``WorkerError``s.
- ``load_function(where, name) -> (function, module)``: ``name`` from a file path or a module name.
- ``serve(fd, parent_pid)``: the worker's side (started as ``python -c``, never called here).

How a call runs. The arguments go over a Unix socket as one pickle (objects that are not plain
data, such as a tokenizer passed in the reward kwargs, cross once per worker and are then sent by
reference); the worker answers with the result or the exception's type and message. Measured by
benchmarks/bench_reward.py on the 2-core development machine (busy): a guarded call of a function
that returns a constant costs 0.03-0.05 ms through a worker, 0.1-0.3 ms in a fresh thread; a
worker starts in ~0.1 s plus its setup's imports (1-3 s for sympy and math-verify), and is
reused for every call.

Why processes that are killed, with the cases each measure covers:

- A deadline: a thread cannot be stopped, and C code holding the GIL (catastrophic regex
  backtracking, sympy on ``10^{10^{10}}``) stalls every thread of its process; signal.alarm works
  only on the main thread and between bytecodes. A worker past its deadline gets SIGKILL, sent
  to its process group (each worker starts a session of its own), so helpers the call started
  (a ``sleep``, a solver) end with it. The pool starts a replacement at once, in the background.
- Start-up apart from the call: ``call(..., start_in_limit=False)`` (the reward guard, test.sh)
  starts the call's limit when a worker takes it, and a start may take ``start_timeout_s``
  (imports that hang); ``start_in_limit=True`` (math-verify's 5 s bound on a whole reward call)
  waits for a worker only until the call's own deadline while it starts in the background. A
  start that fails is the error of every call for ``retry_after_s``, then tried again, so calls
  fail fast meanwhile.
- The parent's death: each worker asks the kernel for SIGKILL when its parent goes
  (prctl PR_SET_PDEATHSIG), which works even while it holds the GIL in C code. The kernel
  sends it when the *thread* that started the worker ends, so every worker of a process is
  started by one thread that lives as long as the process. If the parent dies mid-call anyway
  (no prctl), a CPU-time limit (the call's limit + 10 s, set before each call) lets the kernel
  end the worker even inside one long C call, and an idle orphan exits when its socket closes.
- Quiet: a worker's stdout goes to stderr (a reward's print must not corrupt test.sh's report
  path or the protocol), it ignores Ctrl-C (its parent's to handle) and exits without a
  traceback when its parent is gone.

Fresh interpreters (``python -c``), not fork: the parent holds torch's and verl's thread pools,
and a fork of a threaded process may inherit a held lock; not multiprocessing's spawn, which
re-imports the caller's ``__main__``. ``-P`` keeps the caller's folder off the worker's
sys.path, so a ``common/`` folder there cannot shadow this package.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import pickle
import queue
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any

__all__ = [
    "CallError",
    "CallTimeout",
    "WorkerClosed",
    "WorkerDied",
    "WorkerError",
    "WorkerPool",
    "WorkerStartError",
    "load_function",
    "serve",
]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()
# The CPU-time limit a worker gives itself beyond a call's limit, for the orphan case only.
_ORPHAN_CPU_SLACK_S = 10.0
# prctl(PR_SET_PDEATHSIG): the kernel signals the worker when the thread that started it ends.
_PR_SET_PDEATHSIG = 1
# Argument objects sent by reference per pool (kept alive here, so that their id() is not reused).
_MAX_REFS = 64
_PLAIN_TYPES = (str, int, float, bool, type(None), bytes)
_HEADER = struct.Struct(">Q")
# What one read asks for unless a message needs more: a read allocates this much, and 1 MB per
# read made a call ~2x slower (bench_reward.py's guard cost: 0.03 ms with 64 KB).
_READ_BYTES = 1 << 16
_MESSAGE_CHARS = 2000


class WorkerError(RuntimeError):
    """A worker could not serve the call (see the subclasses)."""


class WorkerStartError(WorkerError):
    """No worker could start, or its setup (the function's imports) failed."""


class WorkerDied(WorkerError):
    """The worker ended during the call: ``os._exit`` in the callee, a segfault, the OOM killer."""


class WorkerClosed(WorkerError):
    """The pool was closed."""


class CallTimeout(TimeoutError):
    """No result by the call's deadline; the worker running it was killed."""


class CallError(Exception):
    """The function raised in the worker, or its arguments or result could not cross; the worker stays."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


# ---------------------------------------------------------------------------------------------
# Loading a function, and the wire
# ---------------------------------------------------------------------------------------------


def _names_a_file(where: str) -> bool:
    return where.endswith(".py") or os.path.isfile(where)


def load_function(where: str, name: str):
    """``(function, module)``: ``name`` from the file at ``where`` or the module named ``where``.

    A file is loaded the way verl's loader does (not registered in sys.modules).

    >>> load_function("os.path", "join")[0] is os.path.join
    True
    >>> load_function("os.path", "nope")
    Traceback (most recent call last):
    AttributeError: os.path has no function 'nope'
    """
    if _names_a_file(where):
        if not os.path.isfile(where):
            raise FileNotFoundError(f"reward function file {where} not found")
        spec = importlib.util.spec_from_file_location(f"custom_module_{abs(hash(os.path.abspath(where)))}", where)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load a module from {where}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    fn = getattr(module, name, None)
    if not callable(fn):
        raise AttributeError(f"{where} has no function {name!r}")
    return fn, module


class _Channel:
    """Length-prefixed pickles over one socket; a read can honour a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    @staticmethod
    def pack(obj) -> bytes:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        return _HEADER.pack(len(data)) + data

    def send(self, obj) -> None:
        self.sock.sendall(self.pack(obj))

    def recv_bytes(self, deadline: float | None = None) -> bytes:
        """One message; TimeoutError past ``deadline``, EOFError when the other side is gone."""
        while True:
            want = _READ_BYTES
            if len(self._buf) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buf)
                end = _HEADER.size + size
                if len(self._buf) >= end:
                    data = bytes(self._buf[_HEADER.size : end])
                    del self._buf[:end]
                    return data
                want = max(want, end - len(self._buf))
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                    raise TimeoutError
            chunk = self.sock.recv(want)
            if not chunk:
                raise EOFError
            self._buf += chunk

    def recv(self, deadline: float | None = None):
        return pickle.loads(self.recv_bytes(deadline))

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# The worker's side
# ---------------------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    # Without prctl: an orphan that waits (network, sleep) exits within a second of its parent.
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(3)


def _detach(parent_pid: int) -> None:
    """Worker set-up: no Ctrl-C, die with the parent, prints go to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):  # not Linux
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    os.dup2(2, 1)


def _limit_cpu(budget_s: float) -> None:
    """A CPU-time limit ``budget_s`` from now: if the parent dies mid-call, nobody kills a stuck
    worker, but the kernel ends it (SIGXCPU) even inside one long C call."""
    import resource

    used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + budget_s) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _load_setup(init: dict):
    for entry in reversed(init.get("sys_path") or []):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    where, name, args = init["setup"]
    return load_function(where, name)[0](*args)


def _answer(fn, msg: tuple, refs: dict) -> bytes:
    """Run one call message; the packed reply (the value, or the exception's type and message)."""
    args, kwargs, by_ref, new_refs, cpu_budget_s = msg
    refs.update(new_refs)
    kwargs.update({name: refs[key] for name, key in by_ref.items()})
    _limit_cpu(cpu_budget_s)
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from the callee too
        return _Channel.pack(("raise", type(exc).__name__, str(exc)[:_MESSAGE_CHARS]))
    try:
        return _Channel.pack(("ok", value))
    except Exception as exc:  # a lambda in a dict, an open file, ...
        why = f"the result ({type(value).__name__}) cannot be sent back: {exc}"
        return _Channel.pack(("raise", type(exc).__name__, why[:_MESSAGE_CHARS]))


def serve(fd: int, parent_pid: int) -> None:
    """A worker's life: load the setup sent first, report ready, answer calls until the socket closes."""
    _detach(parent_pid)
    channel = _Channel(socket.socket(fileno=fd))
    try:
        try:
            fn, info = _load_setup(channel.recv())
        except BaseException as exc:  # reported to the parent, which reports it per call
            channel.send(("load_error", f"{type(exc).__name__}: {exc}"[:_MESSAGE_CHARS]))
            return
        channel.send(("ready", info))
        refs: dict[int, Any] = {}
        while True:
            try:
                msg = channel.recv()
            except EOFError:  # the parent closed its end
                return
            channel.sock.sendall(_answer(fn, msg, refs))
    except (BrokenPipeError, ConnectionResetError):  # the parent went away: exit quietly
        os._exit(0)


# ---------------------------------------------------------------------------------------------
# The parent's side
# ---------------------------------------------------------------------------------------------


class _Spawner:
    """Starts every worker of this process from one daemon thread, which lives as long as the
    process: PR_SET_PDEATHSIG fires when the thread that started a worker ends, and callers are
    short-lived threads (verl's executor, a background start)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="worker-spawner").start()

    def _run(self) -> None:
        while True:
            kwargs, future = self._jobs.get()
            try:
                future.set_result(subprocess.Popen(**kwargs))
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)

    def popen(self, **kwargs) -> subprocess.Popen:
        future: Future = Future()
        self._jobs.put((kwargs, future))
        return future.result()


_SPAWNER: _Spawner | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> _Spawner:
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or _SPAWNER.pid != os.getpid():  # a fork has no such thread: start one
            _SPAWNER = _Spawner()
        return _SPAWNER


def _exit_text(code: int | None) -> str:
    """How a process ended, in words.

    >>> _exit_text(3), _exit_text(-9)
    ('exit code 3', 'killed by SIGKILL')
    """
    if code is None:
        return "still running, its socket closed"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class _Worker:
    """One worker process, started and loaded (or WorkerStartError)."""

    def __init__(self, init: dict, name: str, start_timeout_s: float) -> None:
        if not sys.executable:
            raise WorkerStartError(f"sys.executable is empty: cannot start a {name} worker")
        self.name = name
        ours, theirs = socket.socketpair()
        # The parent's pid ends the command line (", <pid>)"): `ps` shows whose worker it is.
        code = (f"import sys; sys.path.insert(0, {_REPO_ROOT!r}); from common.workers import serve; "
                f"serve({theirs.fileno()}, {os.getpid()})")
        try:
            self.proc = _spawner().popen(
                args=[sys.executable, "-u", *_SAFE_PATH, "-c", code], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        except OSError as exc:
            ours.close()
            raise WorkerStartError(f"cannot start a {name} worker: {exc}") from None
        finally:
            theirs.close()
        self.channel = _Channel(ours)
        self.sent_refs: set[int] = set()
        try:
            self.channel.send(init)
            reply = self.channel.recv(time.monotonic() + start_timeout_s)
        except TimeoutError:
            self.kill()
            raise WorkerStartError(f"the {name} worker did not start within {start_timeout_s:g} s") from None
        except (EOFError, OSError):
            code = self.kill()
            raise WorkerStartError(f"the {name} worker ended while starting ({_exit_text(code)})") from None
        if reply[0] != "ready":
            self.kill()
            raise WorkerStartError(f"loading failed in the {name} worker: {reply[1]}")
        self.info = reply[1]

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, args: tuple, kwargs: dict, by_ref: dict, refs: dict, deadline: float, cpu_budget_s: float):
        """The value; raises CallError (nothing lost), TimeoutError or EOFError (kill this worker)."""
        new = {key: obj for key, obj in refs.items() if key not in self.sent_refs}
        try:
            data = _Channel.pack((args, kwargs, by_ref, new, cpu_budget_s))
        except Exception as exc:  # nothing was sent: the worker stays usable
            raise CallError(type(exc).__name__, f"cannot send the arguments to the {self.name} worker: {exc}") from None
        try:
            self.channel.sock.sendall(data)
        except OSError:
            raise EOFError from None
        self.sent_refs.update(new)
        try:
            reply = self.channel.recv_bytes(deadline)
        except TimeoutError:
            raise
        except OSError:  # ECONNRESET: the worker ended mid-call
            raise EOFError from None
        try:
            reply = pickle.loads(reply)
        except Exception as exc:  # a result whose class only the worker can import
            raise CallError(type(exc).__name__, f"the result cannot be read back: {exc}") from None
        if reply[0] == "raise":
            raise CallError(reply[1], reply[2])
        return reply[1]

    def kill(self, grace_s: float = 0.0) -> int | None:
        """SIGKILL to the worker's process group (helpers it started too), after ``grace_s`` for it
        to end on its own (so that its own exit code is reported); its exit code."""
        if grace_s:
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # uninterruptible sleep; the kernel reaps it later
            pass
        self.channel.close()
        return self.proc.returncode


_POOLS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_pools() -> None:
    # The kernel kills the workers themselves when this process ends; this also ends helper
    # processes an idle worker left in its process group.
    for pool in list(_POOLS):
        if pool.pid == os.getpid():
            pool.close()


class WorkerPool:
    """Up to ``size`` workers for one setup, shared by all threads of this process (see the module docstring)."""

    def __init__(self, setup: tuple[str, str, tuple], size: int, *, name: str = "worker",
                 sys_path: list[str] | None = None, start_timeout_s: float = 120.0,
                 retry_after_s: float = 30.0) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs size >= 1, got {size}")
        self.pid = os.getpid()
        self.size = size
        self.name = name
        self.start_timeout_s = start_timeout_s
        self.retry_after_s = retry_after_s
        self.info: Any = None  # what the first worker's setup reported
        self.starts = 0  # workers started (or tried): one, plus one per kill, death or failed start
        self._init = {"sys_path": list(sys_path or []), "setup": tuple(setup)}
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._starting = 0
        self._waiting = 0
        self._closed = False
        self._start_error: tuple[float, str] | None = None
        self._cond = threading.Condition()
        self._refs: dict[int, Any] = {}
        _POOLS.add(self)

    # -- starting ------------------------------------------------------------------------------

    @property
    def start_error(self) -> str | None:
        """Why the last start failed, while it is served to calls (``retry_after_s``), else None."""
        with self._cond:
            return self._recent_error()

    def _recent_error(self) -> str | None:
        if self._start_error and time.monotonic() - self._start_error[0] < self.retry_after_s:
            return self._start_error[1]
        return None

    def _start_async(self) -> None:
        """Start one worker in a thread (call with the condition held)."""
        self._starting += 1
        self.starts += 1
        threading.Thread(target=self._start_one, daemon=True, name=f"{self.name}-worker-start").start()

    def _start_one(self) -> None:
        try:
            worker, error = _Worker(self._init, self.name, self.start_timeout_s), None
        except WorkerStartError as exc:
            worker, error = None, str(exc)
        with self._cond:
            self._starting -= 1
            closed = self._closed
            if error is not None:
                self._start_error = (time.monotonic(), error)
            elif not closed:
                self.info = worker.info if self.info is None else self.info
                self._idle.append(worker)
            self._cond.notify_all()
        if worker is not None and closed:
            worker.kill()

    def warm(self, wait_s: float = 0.0) -> bool:
        """Start a worker unless one is idle or starting; wait up to ``wait_s`` for one to be idle."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            if not self._idle and not self._starting and len(self._busy) < self.size and not self._recent_error():
                self._start_async()
            while not self._idle and self._starting and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return bool(self._idle)

    # -- calls ---------------------------------------------------------------------------------

    def _take(self, deadline: float | None) -> _Worker | None:
        """An idle worker (starting one when none is idle or starting for this caller), None past ``deadline``."""
        dead = []
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self._closed:
                        raise WorkerClosed(f"the {self.name} worker pool is closed")
                    while self._idle:
                        worker = self._idle.pop()
                        if worker.alive:
                            self._busy.add(worker)
                            return worker
                        dead.append(worker)  # died while idle: reaped below
                    error = self._recent_error()
                    if error:
                        raise WorkerStartError(error)
                    if self._starting < self._waiting and len(self._busy) + self._starting < self.size:
                        self._start_async()
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
                for worker in dead:
                    worker.kill()

    def _give_back(self, worker: _Worker, kill: bool = False, grace_s: float = 0.0) -> None:
        """Back to the idle list, or killed and replaced at once in the background."""
        with self._cond:
            self._busy.discard(worker)
            keep = not kill and not self._closed
            if keep:
                self._idle.append(worker)
            elif not self._closed:
                self._start_async()  # a warm replacement for the next call
            self._cond.notify_all()
        if not keep:
            worker.kill(grace_s)

    def _split(self, kwargs: dict) -> tuple[dict, dict, dict]:
        """(plain kwargs sent per call, {name: key} of objects sent once per worker, {key: object})."""
        plain, by_ref, refs = {}, {}, {}
        for name, value in kwargs.items():
            if isinstance(value, _PLAIN_TYPES) or type(value).__module__ in ("numpy", "builtins"):
                plain[name] = value
                continue
            with self._cond:
                if len(self._refs) < _MAX_REFS:
                    self._refs.setdefault(id(value), value)
                known = self._refs.get(id(value)) is value
            if known:
                by_ref[name], refs[id(value)] = id(value), value
            else:
                plain[name] = value
        return plain, by_ref, refs

    def call(self, args: tuple, kwargs: dict | None, timeout_s: float, *, start_in_limit: bool = False):
        """``fn(*args, **kwargs)`` in a worker, within ``timeout_s`` seconds.

        ``start_in_limit=False``: the limit starts when a worker takes the call (waiting for a
        free worker or a start does not count). True: it covers the wait for a worker too.
        Raises CallError, CallTimeout, WorkerDied, WorkerStartError or WorkerClosed.
        """
        started = time.monotonic()
        plain, by_ref, refs = self._split(kwargs or {})
        worker = self._take(started + timeout_s if start_in_limit else None)
        if worker is None:
            raise CallTimeout(f"no {self.name} worker was ready within {timeout_s:g} s")
        deadline = (started if start_in_limit else time.monotonic()) + timeout_s
        cpu_budget_s = max(deadline - time.monotonic(), 0.0) + _ORPHAN_CPU_SLACK_S
        try:
            value = worker.call(args, plain, by_ref, refs, deadline, cpu_budget_s)
        except CallError:
            self._give_back(worker)
            raise
        except TimeoutError:
            self._give_back(worker, kill=True)
            raise CallTimeout(f"no result within {timeout_s:g} s") from None
        except EOFError:
            self._give_back(worker, kill=True, grace_s=1.0)
            raise WorkerDied(f"the {self.name} worker died ({_exit_text(worker.proc.returncode)})") from None
        self._give_back(worker)
        return value

    def pids(self) -> list[int]:
        """The process ids of the started workers, idle and busy."""
        with self._cond:
            return [w.proc.pid for w in [*self._idle, *self._busy]]

    def close(self) -> None:
        """Stop the workers (a busy one when its call returns); later calls raise WorkerClosed."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.kill()
