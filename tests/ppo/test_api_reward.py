"""Tests for ppo/api_reward.py against a real scripted HTTP judge server on 127.0.0.1.

    .venv/bin/python -m pytest tests/ppo/test_api_reward.py -q

The server speaks the OpenAI chat completions shape and plays a script per test: good replies,
slow replies past the timeout, 429 with and without Retry-After, 500, malformed JSON, replies
without a number, 4xx. It counts requests, records headers and measures requests in flight;
nothing in the HTTP client is mocked. Timeouts are 0.2 s and backoff bases 0.01 s to stay fast.
"""

from __future__ import annotations

import asyncio
import doctest
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import ppo.api_reward as api_reward
from ppo.api_reward import RESULT_KEYS, ConfigError, CrossLoopSemaphore, JudgeConfig, ScoreCache, parse_score

SECRET = "sk-test-5f3b9c1e-do-not-log"


# ----------------------------------------------------------------------------------------------
# A scripted OpenAI-compatible server
# ----------------------------------------------------------------------------------------------


class JudgeServer:
    """Threaded HTTP server; `plan(marker, *steps)` scripts the replies to prompts containing marker.

    Steps, consumed one per request (the last one repeats):
      {"reply": "Score: 7"}                      200 with that message content
      {"reply": ..., "delay": 0.1}               the same after a short wait (within the timeout)
      {"sleep": 0.6}                             no reply before the client's 0.2 s timeout
      {"status": 429, "headers": {...}}          an error status (body may echo the auth header)
      {"status": 400, "body": b"..."}            an error status with this exact body
      {"raw": b"..."}                            200 with this exact body (malformed JSON)
      {"json": {...}}                            200 with this JSON body
      {"drip": 0.05, "reply": "Score: 9"}        a good reply sent one byte every 0.05 s
    """

    def __init__(self):
        self.plans: dict[str, list[dict]] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                content = body["messages"][-1]["content"]
                with server.lock:
                    marker = next((m for m in server.plans if m in content), None)
                    steps = server.plans.get(marker, [{"reply": "Score: 5"}])
                    step = steps.pop(0) if len(steps) > 1 else steps[0]
                    server.requests.append(
                        {"t": time.monotonic(), "marker": marker, "auth": self.headers.get("Authorization"),
                         "path": self.path, "body": body}
                    )
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._play(step)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow reply, as it should
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, status, payload: bytes, headers=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _play(self, step):
                if "sleep" in step:
                    time.sleep(step["sleep"])
                    return
                if "delay" in step:
                    time.sleep(step["delay"])
                if "drip" in step:
                    # Headers at once, then the body byte by byte: every single read is quick, the
                    # whole reply is slow (what a stalled proxy or an overloaded server does).
                    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": step["reply"]}}]}
                    payload = json.dumps(reply).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.flush()
                    for i in range(len(payload)):
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                        time.sleep(step["drip"])
                elif "status" in step:
                    # Echo the Authorization header in the body, like APIs that quote a bad key.
                    text = step.get("body") or f"error for {self.headers.get('Authorization')}".encode()
                    self._send(step["status"], text, step.get("headers"))
                elif "raw" in step:
                    self._send(200, step["raw"])
                elif "json" in step:
                    self._send(200, json.dumps(step["json"]).encode())
                else:
                    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": step["reply"]}}]}
                    self._send(200, json.dumps(reply).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # poll_interval 0.05 s: shutdown() waits up to one interval, x ~40 tests.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def plan(self, marker: str, *steps: dict) -> None:
        with self.lock:
            self.plans[marker] = list(steps)

    def count(self, marker: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["marker"] == marker)

    def of(self, marker: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["marker"] == marker]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = JudgeServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """Each test starts with empty process caches and no key or URL from the environment."""
    for name in ("JUDGE_API_KEY", "JUDGE_BASE_URL", "JUDGE_MODEL", "JUDGE_CACHE_PATH", "JUDGE_TEST_KEY"):
        monkeypatch.delenv(name, raising=False)
    # Failures are logged for the first 5 per process only; start each test at zero.
    monkeypatch.setattr(api_reward, "_failure_count", 0)
    yield
    api_reward._MEMORY.clear()
    api_reward._JUDGES.clear()
    with api_reward._STORES_LOCK:
        for store in api_reward._STORES.values():
            store._conn.close()
        api_reward._STORES.clear()


def kwargs_for(server: JudgeServer, **over) -> dict:
    kw = dict(
        base_url=server.url + "/v1",
        model="judge-test",
        timeout_s=0.2,
        backoff_base_s=0.01,
        backoff_max_s=2.0,
        max_retries=2,
        max_concurrency=4,
    )
    kw.update(over)
    return kw


def score(response: str, reference="42", question="What is 6 x 7?", **kw) -> dict:
    return asyncio.run(
        api_reward.compute_score("test/judge", response, reference, {"question": question, "split": "train", "index": 0}, **kw)
    )


def marker() -> str:
    return f"resp-{uuid.uuid4().hex[:10]}"


def assert_result_shape(result: dict) -> None:
    assert list(result) == list(RESULT_KEYS)
    assert all(type(v) is float for v in result.values()), result


# ----------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, max_score, expected",
    [
        ("Score: 7", 10, 0.7),  # why: the asked-for format
        ("7", 10, 0.7),  # why: a bare number is enough
        ("Score: 0.8", 1, 0.8),  # why: a 0-1 judge with max_score 1
        ("Step 1 is right, step 2 wrong.\nScore: 6", 10, 0.6),  # why: the LAST number wins
        ("Score: 8/10", 10, 0.8),  # why: a fraction is read as a fraction, not as "10"
        ("Score: 3/5", 10, 0.6),  # why: the fraction's own scale beats max_score
        ("<think>it could be 2 or 9</think>\nScore: 4", 10, 0.4),  # why: reasoning is not the score
        ("Score: 15", 10, 1.0),  # why: clamped to 1
        ("Score: -3", 10, 0.0),  # why: clamped to 0
        ("Score: 9.5.", 10, 0.95),  # why: a sentence's full stop is not a decimal
        ("Using gpt4 I say: Score: 5", 10, 0.5),  # why: digits glued to a word are ignored
        ("Qwen2 says: Score: 5", 10, 0.5),  # why: a model name's digit is not the score
        ("hash 5f3b has no score", 10, None),  # why: digits glued to letters after them are ignored
        ("I cannot grade this.", 10, None),  # why: no number -> a failed attempt
        ("", 10, None),  # why: empty reply
        (None, 10, None),  # why: content null (some servers put reasoning elsewhere)
        ("Score: 1/0", 10, None),  # why: a zero denominator is not a score
    ],
)
def test_parse_score(reply, max_score, expected):
    assert parse_score(reply, max_score) == expected


def test_module_doctests_pass():
    result = doctest.testmod(api_reward)
    assert result.attempted >= 6 and result.failed == 0


# ----------------------------------------------------------------------------------------------
# Scoring, retries, failures
# ----------------------------------------------------------------------------------------------


def test_good_reply_is_scaled_and_request_is_well_formed(server):
    m = marker()
    server.plan(m, {"reply": "The response matches.\nScore: 7"})
    result = score(m, reference="forty-two", question="What is 6 x 7?", **kwargs_for(server))
    assert_result_shape(result)
    assert result["score"] == result["judge_score"] == pytest.approx(0.7)
    assert (result["judge_failed"], result["judge_cached"], result["judge_attempts"]) == (0.0, 0.0, 1.0)
    assert 0.0 < result["judge_latency_s"] < 5.0
    (req,) = server.of(m)
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "judge-test" and req["body"]["temperature"] == 0.0
    prompt = req["body"]["messages"][0]["content"]
    assert "What is 6 x 7?" in prompt and "forty-two" in prompt and m in prompt


OK = {"reply": "Score: 8"}

RETRY_CASES = [
    # (steps, expected score, expected judge_failed, expected requests)
    ([{"status": 500}, OK], 0.8, 0.0, 2),  # why: a 5xx is transient, retried
    ([{"status": 503}, {"status": 502}, OK], 0.8, 0.0, 3),  # why: up to max_retries=2 retries
    ([{"status": 429}, OK], 0.8, 0.0, 2),  # why: 429 without Retry-After uses backoff
    ([{"sleep": 0.6}, OK], 0.8, 0.0, 2),  # why: a reply slower than timeout_s=0.2 is retried
    ([{"raw": b"{not json"}, OK], 0.8, 0.0, 2),  # why: malformed JSON fails that attempt only
    ([{"json": {"choices": []}}, OK], 0.8, 0.0, 2),  # why: JSON without a message fails that attempt
    ([{"reply": "Looks fine to me."}, OK], 0.8, 0.0, 2),  # why: a reply with no number is retried
    ([{"status": 500}], 0.0, 1.0, 3),  # why: still failing after 1 + 2 attempts -> 0, counted
    ([{"sleep": 0.6}], 0.0, 1.0, 3),  # why: every attempt times out -> 0, counted
    ([{"reply": "no idea"}], 0.0, 1.0, 3),  # why: never a number -> 0, counted
    ([{"status": 400}, OK], 0.0, 1.0, 1),  # why: a 4xx is the request's fault, not retried
    ([{"status": 401}, OK], 0.0, 1.0, 1),  # why: a bad key does not get better by retrying
    ([{"status": 404}, OK], 0.0, 1.0, 1),  # why: a wrong base_url/model path is not retried
]


@pytest.mark.parametrize("steps, expected, failed, requests", RETRY_CASES)
def test_retries_and_failures(server, steps, expected, failed, requests):
    m = marker()
    server.plan(m, *steps)
    result = score(m, **kwargs_for(server))
    assert_result_shape(result)
    assert result["score"] == pytest.approx(expected)
    assert result["judge_failed"] == failed
    assert result["judge_attempts"] == requests
    assert server.count(m) == requests


def test_timeout_bounds_the_whole_attempt_not_each_read(server):
    # ~100 bytes at 0.05 s each = ~5 s per reply, while no single read waits more than 0.05 s: a
    # per-read timeout of 0.3 s never fires and the attempt succeeds ~5 s later.
    m = marker()
    server.plan(m, {"drip": 0.05, "reply": "Score: 9"})
    start = time.monotonic()
    result = score(m, **kwargs_for(server, timeout_s=0.3, max_retries=1))
    elapsed = time.monotonic() - start
    assert_result_shape(result)
    assert (result["judge_failed"], result["judge_attempts"]) == (1.0, 2.0)
    assert server.count(m) == 2
    # 2 attempts x 0.3 s plus a ~0.01 s backoff; a whole drip would take ~10 s.
    assert elapsed < 2.5, elapsed


def test_retry_after_is_honoured(server):
    m = marker()
    server.plan(m, {"status": 429, "headers": {"Retry-After": "1"}}, OK)
    result = score(m, **kwargs_for(server))
    first, second = server.of(m)
    assert result["score"] == pytest.approx(0.8)
    # backoff_base_s=0.01 alone would retry within ~0.02 s; the server asked for 1 s.
    assert second["t"] - first["t"] >= 0.9


def test_retry_after_is_capped_by_backoff_max(server):
    m = marker()
    server.plan(m, {"status": 503, "headers": {"Retry-After": "3600"}}, OK)
    start = time.monotonic()
    result = score(m, **kwargs_for(server, backoff_max_s=0.3))
    assert result["score"] == pytest.approx(0.8)
    assert time.monotonic() - start < 3.0


def test_dead_server_scores_zero_without_raising():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = score("anything", base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=0.2,
                   backoff_base_s=0.01, max_retries=1)
    assert_result_shape(result)
    assert (result["score"], result["judge_failed"], result["judge_attempts"]) == (0.0, 1.0, 2.0)


def test_sync_entry_point_from_plain_threads(server):
    m = marker()
    server.plan(m, {"reply": "Score: 3"})
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        api_reward.compute_score_sync("d", m, "r", {"question": "q"}, **kwargs_for(server)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["score"] for r in results] == pytest.approx([0.3] * 3)


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------


def test_cache_prevents_second_request_and_failures_are_not_cached(server):
    m = marker()
    server.plan(m, {"reply": "Score: 9"})
    kw = kwargs_for(server)
    first, second = score(m, **kw), score(m, **kw)
    assert first["judge_cached"] == 0.0 and second["judge_cached"] == 1.0
    assert second["score"] == first["score"] == pytest.approx(0.9)
    assert second["judge_attempts"] == 0.0
    assert server.count(m) == 1
    # Another reference is another question for the judge: a new request.
    score(m, reference="41", **kw)
    assert server.count(m) == 2

    f = marker()
    server.plan(f, {"status": 500}, {"status": 500}, {"reply": "Score: 2"})
    failed = score(f, **kwargs_for(server, max_retries=1))
    assert failed["judge_failed"] == 1.0
    retried = score(f, **kwargs_for(server, max_retries=1))
    assert retried["judge_failed"] == 0.0 and retried["score"] == pytest.approx(0.2)
    assert server.count(f) == 3


def test_sqlite_cache_survives_a_fresh_process(server, tmp_path, repo_root):
    m = marker()
    server.plan(m, {"reply": "Score: 6"})
    cache = tmp_path / "cache" / "judge.sqlite"
    kw = kwargs_for(server, cache_path=str(cache))
    assert score(m, **kw)["judge_cached"] == 0.0
    assert server.count(m) == 1
    child = textwrap.dedent(
        f"""
        import json, ppo.api_reward as a
        r = a.compute_score_sync("test/judge", {m!r}, "42", {{"question": "What is 6 x 7?"}}, **{kw!r})
        print(json.dumps(r))
        """
    )
    out = subprocess.run([sys.executable, "-c", child], cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["judge_cached"] == 1.0 and result["score"] == pytest.approx(0.6)
    assert server.count(m) == 1


def test_sqlite_cache_takes_concurrent_writers(tmp_path, repo_root):
    path = tmp_path / "shared.sqlite"
    child = textwrap.dedent(
        """
        import sys
        from ppo.api_reward import ScoreCache
        cache, worker = ScoreCache(sys.argv[1]), sys.argv[2]
        for i in range(200):
            cache.put(f"{worker}-{i}", i / 200)
            assert cache.get(f"{worker}-{i}") == i / 200
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", child, str(path), f"w{w}"], cwd=repo_root,
                              stderr=subprocess.PIPE, text=True) for w in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    import sqlite3

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM judge_cache").fetchone()[0] == 600
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_key_covers_what_changes_the_answer():
    base = JudgeConfig.from_kwargs({"base_url": "http://h/v1", "model": "a"})
    other_model = JudgeConfig.from_kwargs({"base_url": "http://h/v1", "model": "b"})
    other_url = JudgeConfig.from_kwargs({"base_url": "http://other/v1", "model": "a"})
    other_template = JudgeConfig.from_kwargs({"base_url": "http://h/v1", "model": "a", "prompt_template": "{response}"})
    k = ScoreCache.key(base, "q", "r", "g")
    assert k != ScoreCache.key(other_model, "q", "r", "g")
    assert k != ScoreCache.key(other_template, "q", "r", "g")
    assert k != ScoreCache.key(base, "q2", "r", "g") != ScoreCache.key(base, "q", "r", "g2")
    # The same judge behind another address gives the same answers: share the cache.
    assert k == ScoreCache.key(other_url, "q", "r", "g")


# ----------------------------------------------------------------------------------------------
# Concurrency
# ----------------------------------------------------------------------------------------------


def test_concurrency_limit_holds_across_threads_and_loops(server):
    m = marker()
    server.plan(m, {"reply": "Score: 5", "delay": 0.1})
    kw = kwargs_for(server, max_concurrency=3, timeout_s=2.0)

    def run_loop(worker: int):
        async def many():
            return await asyncio.gather(
                *[api_reward.compute_score("d", f"{m}-{worker}-{i}", "r", {"question": "q"}, **kw) for i in range(8)]
            )

        results.extend(asyncio.run(many()))

    results: list[dict] = []
    threads = [threading.Thread(target=run_loop, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16 and all(r["judge_failed"] == 0.0 for r in results)
    assert server.count(m) == 16
    # 16 requests of 0.1 s from two event loops: the shared limit is reached, never passed.
    assert server.max_in_flight == 3


def test_semaphore_cancelled_waiters_do_not_leak_permits():
    async def scenario():
        sem = CrossLoopSemaphore(1)
        await sem.acquire()
        waiters = [asyncio.create_task(sem.acquire()) for _ in range(3)]
        await asyncio.sleep(0)
        waiters[0].cancel()
        waiters[1].cancel()
        sem.release()
        await asyncio.wait_for(waiters[2], 1.0)  # the one left gets the permit
        sem.release()
        # One permit again: one immediate acquire, and a second one has to wait.
        await asyncio.wait_for(sem.acquire(), 1.0)
        blocked = asyncio.create_task(sem.acquire())
        await asyncio.sleep(0.05)
        assert not blocked.done()
        blocked.cancel()
        return sem._value

    assert asyncio.run(scenario()) == 0


# ----------------------------------------------------------------------------------------------
# The API key
# ----------------------------------------------------------------------------------------------


def test_api_key_reaches_server_but_never_logs_output_or_cache(server, tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)  # httpx/httpcore debug logs included
    cache_dir = tmp_path / "c"
    kw = kwargs_for(server, api_key_env="JUDGE_TEST_KEY", cache_path=str(cache_dir / "judge.sqlite"), max_retries=1)
    steps = {
        "ok": [{"reply": "Score: 4"}],
        "unauthorized": [{"status": 401}],  # body echoes "Bearer <key>"
        "server-error": [{"status": 500}],  # body echoes the key too
        "echo": [{"reply": f"your key {SECRET} has no score"}],  # a reply quoting the key
    }
    markers = {}
    for name, plan in steps.items():
        markers[name] = marker()
        server.plan(markers[name], *plan)
    results = {name: score(m, **kw) for name, m in markers.items()}
    assert results["ok"]["score"] == pytest.approx(0.4)
    assert all(results[n]["judge_failed"] == 1.0 for n in ("unauthorized", "server-error", "echo"))
    assert {r["auth"] for r in server.requests} == {f"Bearer {SECRET}"}
    # The failures were logged (with the reason), just not the key.
    assert "HTTP 401" in caplog.text and "JUDGE_TEST_KEY" in caplog.text and "***" in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in caplog.text and SECRET not in out and SECRET not in err
    api_reward._STORES[str((cache_dir / "judge.sqlite").resolve())]._conn.close()
    api_reward._STORES.clear()
    for f in cache_dir.iterdir():  # the db and its -wal/-shm files
        assert SECRET.encode() not in f.read_bytes(), f
    judge = api_reward._get_judge(kw)
    assert SECRET not in repr(judge) and SECRET not in repr(judge.cfg)


# Bodies that put the key right where the log text is cut: at 300 characters for a 4xx body,
# at 80 for a non-JSON body or a reply without a number. Cutting before redacting logs "sk-t...".
KEY_AT_CUT = [
    ("4xx body", {"status": 400, "body": b"x" * 296 + SECRET.encode()}),  # why: the 300-character cut
    ("non-JSON body", {"raw": b"<" * 76 + SECRET.encode()}),  # why: the 80-character cut of a bad body
    ("reply without a number", {"reply": "z" * 76 + SECRET}),  # why: the 80-character cut of the reply
]


@pytest.mark.parametrize("label, step", KEY_AT_CUT, ids=[label for label, _ in KEY_AT_CUT])
def test_key_across_the_log_cut_is_redacted_whole(server, monkeypatch, caplog, label, step):
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    caplog.set_level(logging.WARNING, logger="ppo.api_reward")
    m = marker()
    server.plan(m, step)
    result = score(m, **kwargs_for(server, api_key_env="JUDGE_TEST_KEY", max_retries=0))
    assert result["judge_failed"] == 1.0
    assert "***" in caplog.text, caplog.text
    # Not even the key's first 4 characters: what a cut through the key would leave.
    assert SECRET[:4] not in caplog.text, caplog.text


def test_no_key_means_no_authorization_header(server):
    m = marker()
    server.plan(m, OK)
    score(m, **kwargs_for(server))
    assert server.of(m)[0]["auth"] is None


# ----------------------------------------------------------------------------------------------
# Configuration errors: the only exceptions that leave compute_score
# ----------------------------------------------------------------------------------------------


def _not_a_db(tmp_path: Path) -> str:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a cache\n" * 100)
    return str(path)


CONFIG_ERRORS = [
    # (kwargs changes, text the error must contain)
    ({"base_url": None}, "reward_kwargs.base_url is missing"),  # why: no URL and no JUDGE_BASE_URL
    ({"base_url": "127.0.0.1:8000/v1"}, "must start with http://"),  # why: a scheme-less URL
    ({"model": ""}, "reward_kwargs.model is missing"),  # why: empty model name
    ({"prompt_template": "Grade {question}"}, "must contain {response}"),  # why: judge sees nothing
    ({"prompt_template": "{response} vs {answer}"}, "unknown field(s) {answer}"),  # why: typo'd field
    ({"prompt_template": "{response} {"}, "not a valid format string"),  # why: a lone brace
    ({"max_concurency": 8}, "unknown key reward.custom_reward_function.reward_kwargs.max_concurency"),  # why: typo
    ({"max_concurrency": 0}, "reward_kwargs.max_concurrency must be >= 1"),  # why: would block forever
    ({"max_concurrency": 2.5}, "max_concurrency must be an integer"),  # why: half a request
    ({"timeout_s": "soon"}, "reward_kwargs.timeout_s must be a number"),  # why: not a number
    ({"max_score": 0}, "max_score must be > 0"),  # why: division by zero
    ({"max_retries": -1}, "max_retries must be >= 0"),  # why: negative retries
    ({"backoff_base_s": 5, "backoff_max_s": 1}, "backoff_max_s (1.0) must be >="),  # why: cap below base
    ({"api_key_env": SECRET}, "NAME of an environment variable"),  # why: the key pasted in by mistake
]


@pytest.mark.parametrize("changes, message", CONFIG_ERRORS)
def test_config_errors_name_the_key(server, changes, message):
    kw = kwargs_for(server)
    kw.update(changes)
    kw = {k: v for k, v in kw.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        score("x", **kw)
    assert message in str(err.value)
    assert SECRET not in str(err.value)
    assert server.requests == []


def test_bad_cache_path_is_a_config_error_and_the_file_is_left_alone(server, tmp_path):
    notes = _not_a_db(tmp_path)
    before = Path(notes).read_bytes()
    with pytest.raises(ConfigError, match=r"cache_path .*notes.txt.* is not a usable sqlite judge cache"):
        score("x", **kwargs_for(server, cache_path=notes))
    assert Path(notes).read_bytes() == before
    with pytest.raises(ConfigError, match=r"cache_path .* is a directory"):
        score("x", **kwargs_for(server, cache_path=str(tmp_path)))


def test_env_fallbacks_for_url_and_model(server, monkeypatch):
    monkeypatch.setenv("JUDGE_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("JUDGE_MODEL", "env-model")
    m = marker()
    server.plan(m, OK)
    assert score(m, timeout_s=0.2)["score"] == pytest.approx(0.8)
    assert server.of(m)[0]["body"]["model"] == "env-model"


def test_missing_question_falls_back_to_empty(server):
    m = marker()
    server.plan(m, OK)
    result = asyncio.run(api_reward.compute_score("d", m, ["42", "forty-two"], None, **kwargs_for(server)))
    assert result["score"] == pytest.approx(0.8)
    prompt = server.of(m)[0]["body"]["messages"][0]["content"]
    assert "Question:\n\n" in prompt and "42 | forty-two" in prompt


# ----------------------------------------------------------------------------------------------
# The YAML and verl's own loader and reward manager
# ----------------------------------------------------------------------------------------------


def load_yaml(repo_root: Path):
    return OmegaConf.load(repo_root / "ppo" / "api_reward_config.yaml")


def test_yaml_defaults_match_the_module_and_every_key_is_commented(repo_root):
    cfg = load_yaml(repo_root)
    kwargs = OmegaConf.to_container(cfg.reward.custom_reward_function.reward_kwargs, resolve=True)
    assert set(kwargs) == {"base_url", "model", "api_key_env", "prompt_template", "max_score",
                           "max_concurrency", "timeout_s", "max_retries", "cache_path"}
    assert kwargs["prompt_template"] == api_reward.DEFAULT_PROMPT_TEMPLATE
    assert kwargs["base_url"] == "http://127.0.0.1:8000/v1" and kwargs["cache_path"] is None
    JudgeConfig.from_kwargs(kwargs)  # the shipped settings pass the module's checks
    lines = (repo_root / "ppo" / "api_reward_config.yaml").read_text().splitlines()
    in_template = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if in_template and (not stripped or line.startswith(" " * 8)):
            continue  # inside the prompt_template block
        in_template = stripped.endswith(": |")
        if not stripped or stripped.startswith(("#", "-")):
            continue
        assert " #" not in line, f"inline comment on line {i + 1}: {line}"
        if stripped != "defaults:":
            assert lines[i - 1].strip().startswith("#"), f"line {i + 1} has no comment above: {line}"
            assert i < 2 or lines[i - 2].strip() == "" or lines[i - 2].strip().startswith("#"), (
                f"line {i + 1}: keys are separated by a blank line: {line}"
            )


def test_yaml_composes_over_verl_ppo_trainer(repo_root, tmp_path):
    from hydra import compose, initialize_config_dir

    # A stand-in for ppo/config.yaml: the PPO method config is verl's ppo_trainer plus overrides.
    (tmp_path / "config.yaml").write_text("defaults:\n  - ppo_trainer\n  - _self_\n")
    (tmp_path / "api_reward_config.yaml").write_text((repo_root / "ppo" / "api_reward_config.yaml").read_text())
    with initialize_config_dir(str(tmp_path), version_base=None):
        cfg = compose("api_reward_config", overrides=["hydra.searchpath=[pkg://verl.trainer.config]",
                                                      "reward.custom_reward_function.reward_kwargs.max_concurrency=3"])
    assert cfg.reward.custom_reward_function.name == "compute_score"
    assert cfg.reward.custom_reward_function.reward_kwargs.max_concurrency == 3
    assert cfg.reward.reward_manager.name == "naive"  # verl's defaults are still there


def test_verl_loader_and_naive_reward_manager_score_through_the_judge(server, repo_root, tiny_tokenizer):
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    shipped = load_yaml(repo_root).reward.custom_reward_function
    kwargs = OmegaConf.to_container(shipped.reward_kwargs, resolve=True)
    kwargs.update(base_url=server.url + "/v1", model="judge-test", timeout_s=0.5, backoff_base_s=0.01)
    cfg = OmegaConf.create({"reward": {"custom_reward_function": {
        "path": str(repo_root / "ppo" / "api_reward.py"), "name": shipped.name, "reward_kwargs": kwargs}}})
    fn = get_custom_reward_fn(cfg)
    import inspect

    assert inspect.iscoroutinefunction(fn)  # so verl awaits it instead of using a thread

    response = "The product is 42"
    server.plan("The product is 42", {"reply": "Correct.\nScore: 7"})
    prompt_ids = tiny_tokenizer("What is 6 x 7?", return_tensors="pt")["input_ids"][0]
    resp_ids = tiny_tokenizer(response, return_tensors="pt")["input_ids"][0]
    pad = 4  # right padding the reward manager must cut off
    responses = torch.cat([resp_ids, torch.full((pad,), tiny_tokenizer.pad_token_id or 0)])
    attention = torch.cat([torch.ones(len(prompt_ids) + len(resp_ids)), torch.zeros(pad)]).long()
    data = DataProto.from_dict(
        tensors={"prompts": prompt_ids[None], "responses": responses[None], "attention_mask": attention[None]},
        non_tensors={
            "data_source": np.array(["test/judge"], dtype=object),
            "reward_model": np.array([{"style": "model", "ground_truth": "42"}], dtype=object),
            "extra_info": np.array([{"split": "train", "index": 0, "question": "What is 6 x 7?"}], dtype=object),
        },
    )

    async def run():
        manager = NaiveRewardManager(cfg, tiny_tokenizer, fn)
        return await manager.run_single(data)

    out = asyncio.run(run())
    assert out["reward_score"] == pytest.approx(0.7)
    assert list(out["reward_extra_info"]) == list(RESULT_KEYS)
    (req,) = server.of("The product is 42")
    prompt = req["body"]["messages"][0]["content"]
    assert "Response:\nThe product is 42\n" in prompt and "What is 6 x 7?" in prompt
