"""Batch and single modes of ./test.sh (common/test_model.py) on the tiny model, CPU only.

    .venv/bin/python -m pytest tests/common/test_test_model.py -q
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from common.evaluation.generation import TEMPLATES, render_prompt, vllm_unavailable_reason
from common.evaluation.inputs import InputError, load_rows
from common.evaluation.metrics import pass_at_k
from common.test_model import main
from tests.workbooks import read_sheet, table_at

REPO_ROOT = Path(__file__).resolve().parents[2]

# Short generations keep the suite fast: 20 prompts x 8 tokens is ~1 s on 2 CPU cores.
FAST = ["--max_new_tokens", "8", "--batch_size", "8", "-q"]

# A deterministic reward with mixed outcomes on random text, so accuracy checks are not 0 == 0:
# correct when the response has an even number of characters.
PARITY_REWARD = '''
def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    ok = len(solution_str) % 2 == 0
    return {"score": 2.0 if ok else -1.0, "acc": float(ok), "format": 0.0, "pred": str(len(solution_str))}
'''


def gsm8k_rows(n: int) -> list[dict]:
    return [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "ground_truth": str(2 * i)} for i in range(n)]


@pytest.fixture(autouse=True)
def default_output_dir(tmp_path_factory, monkeypatch) -> Path:
    """Reports without --output_file go here, not into the repository's outputs/eval."""
    folder = tmp_path_factory.mktemp("default_eval") / "eval"
    monkeypatch.setattr("common.test_model.DEFAULT_OUTPUT_DIR", folder)
    return folder


@pytest.fixture
def data_json(tmp_path) -> Path:
    path = tmp_path / "test_data.json"
    path.write_text(json.dumps(gsm8k_rows(20)))
    return path


@pytest.fixture
def parity_reward(tmp_path) -> Path:
    path = tmp_path / "parity_reward.py"
    path.write_text(PARITY_REWARD)
    return path


def summary_of(wb) -> dict[str, dict]:
    """{model label: {metric: value}} from the Summary sheet's "all" rows, plus the model's tokens_per_s."""
    out = {s["model"]: s for s in table_at(wb["Summary"], "model", "data_source") if s["data_source"] == "all"}
    for m in table_at(wb["Summary"], "model", "backend"):
        out[m["model"]]["tokens_per_s"] = m["tokens_per_s"]
    return out


def test_batch_json_writes_workbook(tiny_model_dir, data_json, tmp_path):
    out = tmp_path / "results.xlsx"
    rc = main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json),
               "--output_file", str(out), *FAST])
    assert rc == 0
    wb = load_workbook(out)
    assert wb.sheetnames == ["Summary", "Results"]  # Compare only with several models
    results = read_sheet(wb["Results"])
    assert [r["id"] for r in results] == [f"q{i}" for i in range(20)]
    assert list(results[0]) == ["model", "id", "data_source", "prompt", "ground_truth", "response",
                                "extracted_answer", "score", "correct", "format", "tokens", "truncated",
                                "reward_error"]
    assert results[3]["prompt"] == "What is 3 + 3?" and results[3]["ground_truth"] == "6"
    assert all(r["data_source"] == "openai/gsm8k" for r in results)  # the documented default
    assert all(1 <= r["tokens"] <= 8 for r in results)
    # truncated <=> 8 tokens without a stop token; a random model nearly always runs to the limit
    assert all(r["truncated"] in (0, 1) and (r["truncated"] == 0 or r["tokens"] == 8) for r in results)
    assert all(r["reward_error"] is None for r in results)
    assert wb["Results"].freeze_panes == "C2" and wb["Results"].auto_filter.ref == "A1:M21"
    summary = summary_of(wb)[tiny_model_dir.name]
    assert summary["prompts"] == 20 and summary["samples"] == 20
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in results) / 20)
    assert summary["mean_score"] == pytest.approx(sum(r["score"] for r in results) / 20)
    assert summary["truncated_share"] == pytest.approx(sum(r["truncated"] for r in results) / 20)
    assert summary["mean_tokens"] == pytest.approx(sum(r["tokens"] for r in results) / 20)
    assert summary["tokens_per_s"] > 0
    settings = {s["setting"]: s["value"] for s in table_at(wb["Summary"], "setting", "value")}
    assert settings["temperature"] == 0.7 and settings["top_p"] == 1 and settings["max_new_tokens"] == 8
    assert settings["n_samples"] == 1 and settings["chat_template_kwargs"] == "{}"
    assert settings["reward_timeout_s"] == 10
    # Same --seed, same samples: a second run (JSON this time) reproduces every response.
    out2 = tmp_path / "again.json"
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json),
                 "--output_file", str(out2), *FAST]) == 0
    again = json.loads(out2.read_text())
    assert sum(bool(r["response"]) for r in again["results"]) > 10  # sampled text, not only skipped special tokens
    # The sheet holds the text as Excel stores it: XML turns \r into \n, control characters into U+FFFD.
    as_in_excel = [ILLEGAL_CHARACTERS_RE.sub("\ufffd", r["response"]).replace("\r", "\n") for r in again["results"]]
    assert as_in_excel == [r["response"] or "" for r in results]
    model = again["models"][0]
    assert model["tokens_per_s"] == pytest.approx(model["generated_tokens"] / model["generation_s"])
    assert model["warmup_s"] > 0  # the warm-up ran, outside the timed generation


def test_batch_pass_at_k_matches_results(tiny_model_dir, data_json, parity_reward, tmp_path):
    out = tmp_path / "k.xlsx"
    rc = main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json), "--limit", "6",
               "--n_samples", "4", "--reward", str(parity_reward), "--output_file", str(out), "--seed", "3", *FAST])
    assert rc == 0
    wb = load_workbook(out)
    results = read_sheet(wb["Results"])
    assert len(results) == 6 * 4 and [r["sample"] for r in results[:4]] == [0, 1, 2, 3]
    summary = summary_of(wb)[tiny_model_dir.name]
    correct = [r["correct"] for r in results]
    assert 0 < sum(correct) < len(correct), "the parity reward should give mixed outcomes"
    assert summary["accuracy"] == pytest.approx(sum(correct) / 24)
    assert summary["mean@4"] == pytest.approx(summary["accuracy"])
    per_prompt = [sum(correct[i : i + 4]) for i in range(0, 24, 4)]
    for k in (1, 2, 4):
        assert summary[f"pass@{k}"] == pytest.approx(sum(pass_at_k(4, c, k) for c in per_prompt) / 6)
    # maj@4 by hand: the parity reward's pred is the response length; the most common length wins
    maj = 0
    for i in range(0, 24, 4):
        block = results[i : i + 4]
        preds = [r["extracted_answer"] for r in block]
        top = max(preds.count(p) for p in preds)
        winner = next(p for p in preds if preds.count(p) == top)
        maj += block[preds.index(winner)]["correct"]
    assert summary["maj@4"] == pytest.approx(maj / 6)
    assert summary["mean_score"] == pytest.approx(sum(r["score"] for r in results) / 24)
    assert summary["format_rate"] == 0  # the reward's format term is always 0.0


def write_jsonl(path: Path) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in gsm8k_rows(5)) + "\n\n")  # a blank line is ignored
    return path


def write_parquet(path: Path) -> Path:
    # verl's RL schema, as examples/data_preprocess/gsm8k.py writes it
    frame = pd.DataFrame(
        [
            {
                "data_source": "openai/gsm8k",
                "prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": str(2 * i)},
                "extra_info": {"split": "test", "index": 100 + i},
            }
            for i in range(5)
        ]
    )
    frame.to_parquet(path)
    return path


@pytest.mark.parametrize(
    "writer,name,ids",
    [
        (write_jsonl, "data.jsonl", [f"q{i}" for i in range(5)]),  # why: ids come from the rows
        (write_parquet, "val.parquet", [str(100 + i) for i in range(5)]),  # why: ids from extra_info.index
    ],
)
def test_batch_jsonl_and_parquet_inputs(tiny_model_dir, tmp_path, writer, name, ids):
    src = writer(tmp_path / name)
    out = tmp_path / "out.json"
    rc = main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src), "--output_file", str(out),
               "--system_prompt", "Be brief.", *FAST])
    assert rc == 0
    payload = json.loads(out.read_text())
    assert [r["id"] for r in payload["results"]] == ids
    assert [r["ground_truth"] for r in payload["results"]] == [str(2 * i) for i in range(5)]
    assert payload["results"][0]["prompt"] == "[system] Be brief.\n[user] What is 0 + 0?"
    assert payload["summary"][0]["prompts"] == 5 and payload["settings"]["system_prompt"] == "Be brief."


def test_several_models_side_by_side(tiny_model_dir, tmp_path, data_json):
    from tests.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "rl_model", seed=1)  # different weights, different answers
    out = tmp_path / "cmp.xlsx"
    rc = main(["--model_path", str(tiny_model_dir), "--model_path", str(other), "--batch", "--input_file",
               str(data_json), "--limit", "4", "--output_file", str(out), *FAST])
    assert rc == 0
    wb = load_workbook(out)
    assert wb.sheetnames == ["Summary", "Results", "Compare"]
    results = read_sheet(wb["Results"])
    a, b = tiny_model_dir.name, "rl_model"
    assert [r["model"] for r in results] == [a] * 4 + [b] * 4  # long format: filter by model
    compare = read_sheet(wb["Compare"])
    assert list(compare[0]) == ["id", "data_source", "prompt", "ground_truth", f"[{a}] response", f"[{a}] score",
                                f"[{a}] correct", f"[{b}] response", f"[{b}] score", f"[{b}] correct"]
    for label, mine in ((a, results[:4]), (b, results[4:])):  # the same answers as in Results, side by side
        assert [c[f"[{label}] response"] for c in compare] == [r["response"] for r in mine]
        assert [c[f"[{label}] score"] for c in compare] == [r["score"] for r in mine]
    assert any(c[f"[{a}] response"] != c[f"[{b}] response"] for c in compare)
    summary = summary_of(wb)
    assert list(summary) == [a, b]
    for label in (a, b):
        mine = [r for r in results if r["model"] == label]
        assert summary[label]["accuracy"] == pytest.approx(sum(r["correct"] for r in mine) / 4)
        assert summary[label]["tokens_per_s"] > 0  # per model, each measured after its own warm-up


# A reward with trouble on purpose: one row raises, one hangs in C code; the rest get the parity score.
TROUBLE_REWARD = PARITY_REWARD.replace(
    "    ok = len(solution_str)",
    "    if ground_truth == 'bad':\n        raise ValueError('cannot parse ground truth bad')\n"
    "    if ground_truth == 'hang':\n        import re\n        re.match(r'(a+)+$', 'a' * 64 + 'b')\n"
    "    ok = len(solution_str)",
)


def test_a_failing_or_hanging_row_is_that_rows_error_only(tiny_model_dir, tmp_path):
    reward = tmp_path / "trouble.py"
    reward.write_text(TROUBLE_REWARD)
    src = tmp_path / "d.json"
    rows = gsm8k_rows(4)
    rows[1]["ground_truth"], rows[2]["ground_truth"] = "bad", "hang"
    src.write_text(json.dumps(rows))
    out = tmp_path / "r.xlsx"
    t0 = time.monotonic()
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src), "--output_file", str(out),
                 "--reward", str(reward), "--reward_timeout_s", "1", "--n_samples", "2", *FAST]) == 0
    assert time.monotonic() - t0 < 60  # two 1 s timeouts, not a hang
    wb = load_workbook(out)
    results = read_sheet(wb["Results"])
    assert len(results) == 8 and all(r["response"] is not None or r["tokens"] for r in results)  # every generation kept
    by_id = {}
    for r in results:
        by_id.setdefault(r["id"], []).append(r)
    assert all(r["reward_error"] == "ValueError: cannot parse ground truth bad" for r in by_id["q1"])
    assert all("no result within 1 s" in r["reward_error"] for r in by_id["q2"])
    assert all(r["reward_error"] is None and r["score"] in (2.0, -1.0) for r in by_id["q0"] + by_id["q3"])
    summary = summary_of(wb)[tiny_model_dir.name]
    assert summary["reward_errors"] == 2 and summary["reward_timeouts"] == 2
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in results) / 8)


def test_default_output_goes_to_outputs_eval(tiny_model_dir, data_json, default_output_dir, capsys):
    before = sorted(p.name for p in data_json.parent.iterdir())
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json), "--limit", "2",
                 *FAST]) == 0
    printed = Path(capsys.readouterr().out.strip())
    (made,) = default_output_dir.iterdir()
    assert printed == made and made.suffix == ".xlsx"
    stem, model, stamp = made.stem.split("-", 2)[0], tiny_model_dir.name, made.stem[-15:]
    assert stem == "test_data" and made.stem == f"test_data-{model}-{stamp}"
    assert datetime.strptime(stamp, "%Y%m%d-%H%M%S")  # a dated name
    assert sorted(p.name for p in data_json.parent.iterdir()) == before  # nothing next to the input


def test_unwritable_default_folder_is_one_line(tiny_model_dir, data_json, monkeypatch, capsys):
    monkeypatch.setattr("common.test_model.DEFAULT_OUTPUT_DIR", Path("/proc/eval"))  # not writable, even for root
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: default report folder /proc/eval cannot be written") and "--output_file" in err
    assert len(err.splitlines()) == 1


def test_force_replaces_and_says_so(tiny_model_dir, data_json, tmp_path, capsys):
    out = tmp_path / "r.json"
    out.write_text("an earlier report")
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json), "--limit", "2",
                 "--output_file", str(out), "--force", *FAST]) == 0
    assert f"replaced the existing {out} (--force)" in capsys.readouterr().err
    assert len(json.loads(out.read_text())["results"]) == 2


# Qwen3-style: with enable_thinking false the template pre-fills an empty think block.
THINKING_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}"
    "{% endif %}"
)


@pytest.fixture
def run_folder(tiny_model_dir, tmp_path) -> Path:
    """A run folder as the launcher writes it, holding a model whose template reads enable_thinking."""
    import shutil

    run = tmp_path / "grpo-tiny"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "model" / "chat_template.jinja").write_text(THINKING_TEMPLATE)
    (run / "run.json").write_text("{}")
    (run / "config.yaml").write_text("data:\n  # Qwen3 without thinking\n  apply_chat_template_kwargs:\n"
                                     "    enable_thinking: false\n")
    return run


def test_chat_template_kwargs_from_the_run_folder_or_the_flag(run_folder, data_json, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run_folder / "model")
    msgs = [{"role": "user", "content": "Q"}]
    assert render_prompt(tok, msgs, "auto", {"enable_thinking": False}).endswith("<think>\n\n</think>\n\n")
    assert render_prompt(tok, msgs, "auto").endswith("assistant\n")

    def run(model: Path, *extra: str) -> dict:
        out = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
        assert main(["--model_path", str(model), "--batch", "--input_file", str(data_json), "--limit", "4",
                     "--output_file", str(out), *extra, *FAST]) == 0
        return json.loads(out.read_text())

    from_run = run(run_folder / "model")  # same seed: the responses depend only on the rendered prompts
    assert from_run["models"][0]["chat_template_kwargs"] == '{"enable_thinking": false}'
    assert from_run["settings"]["chat_template_kwargs"] == '{"enable_thinking": false}'
    overridden = run(run_folder / "model", "--chat_template_kwargs", "{}")
    assert overridden["models"][0]["chat_template_kwargs"] == "{}"
    outside = tmp_path / "elsewhere"
    (run_folder / "model").rename(outside)  # the same model outside any run folder, flag given
    flag = run(outside, "--chat_template_kwargs", '{"enable_thinking": false}')
    responses = [[r["response"] for r in p["results"]] for p in (from_run, overridden, flag)]
    assert responses[0] == responses[2] and responses[0] != responses[1]
    assert sum(bool(r) for r in responses[0]) >= 2  # real text to compare, not empty answers


def test_single_mode_reads_the_run_folder_kwargs(run_folder, monkeypatch, caplog, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    with caplog.at_level("INFO", logger="test_model"):
        assert main(["--model_path", str(run_folder / "model"), "--max_new_tokens", "3"]) == 0
    assert f'chat template arguments {{"enable_thinking": false}} (from {run_folder / "config.yaml"})' in caplog.text
    assert ">>> hi" in capsys.readouterr().out


def test_sigterm_mid_generation_leaves_nothing(tiny_model_dir, repo_root, tmp_path):
    src = tmp_path / "d.json"
    src.write_text(json.dumps(gsm8k_rows(8)))
    out = tmp_path / "r.xlsx"
    proc = subprocess.Popen(  # 8 prompts x 4,000 tokens: minutes of generation, stopped in its first seconds
        [str(repo_root / "test.sh"), "--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src),
         "--output_file", str(out), "--max_new_tokens", "4000", "--batch_size", "4"],
        stderr=subprocess.PIPE, text=True,
    )
    seen = ""
    deadline = time.monotonic() + 120
    while "generating" not in seen and time.monotonic() < deadline:  # the reward worker is up by now
        seen += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
    workers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).endswith(f", {proc.pid})")]
    assert workers, "the reward worker should be running"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated (SIGTERM): no report written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json"]  # no report, no temp file
    assert not any(_cmdline(p) for p in workers)  # the reward worker was stopped too


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# The chat loop with a generator that records each prompt, run on a pseudo-terminal.
CHAT_SCRIPT = """
import argparse, sys
from common.evaluation.generation import Sample
from common.test_model import run_single

class Recorder:
    def stream_chat(self, messages, temperature, max_new_tokens, top_p=1.0):
        with open(sys.argv[1], "a") as f:
            f.write(repr(messages[-1]["content"]) + "\\n")
        yield "ok"
        yield Sample("ok", 1, False, 0.01)

args = argparse.Namespace(system_prompt=None, temperature=0.7, max_new_tokens=4, top_p=1.0)
sys.exit(run_single(Recorder(), args, sys.stdin, sys.stdout))
"""

LEFT, UP = b"\x1b[D", b"\x1b[A"


def _chat_on_a_terminal(tmp_path: Path, keys: list[bytes]) -> tuple[list[str], str]:
    """Type keys (one line each, after each prompt) into the chat loop on a pty; (prompts sent, screen)."""
    record = tmp_path / "sent.txt"
    record.unlink(missing_ok=True)
    env = {**os.environ, "TERM": "xterm", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO_ROOT), "INPUTRC": "/dev/null"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the chat loop, its stdin/stdout the terminal
        os.chdir(REPO_ROOT)
        os.execvpe(sys.executable, [sys.executable, "-c", CHAT_SCRIPT, str(record)], env)
    screen = b""

    def read_until(marker: bytes, count: int) -> None:
        nonlocal screen
        deadline = time.monotonic() + 30
        while screen.count(marker) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(fd, 4096)
                except OSError:
                    return

    try:
        for i, key in enumerate(keys, start=1):
            read_until(b">>> ", i)
            os.write(fd, key + b"\r")
        read_until(b"never", 1)  # drain until the child exits
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, screen.decode(errors="replace")
    sent = [eval(line) for line in record.read_text().splitlines()] if record.exists() else []  # noqa: S307
    return sent, screen.decode(errors="replace")


def test_chat_line_editing_and_history_on_a_terminal(tmp_path):
    # "helo", left arrow, "l" -> "hello"; then up arrow recalls it. Without readline the terminal
    # would pass the escape bytes through and the model would be asked "helo\x1b[Dl".
    sent, screen = _chat_on_a_terminal(tmp_path, [b"helo" + LEFT + b"l", UP, b"/exit"])
    assert sent == ["hello", "hello"], screen
    history = tmp_path / "cache" / "verl-posttrain" / "test_sh_history"
    assert history.read_text().splitlines() == ["hello", "/exit"]  # a repeated line is kept once, as in bash
    # A new session starts with that history: one up arrow gives the last line before /exit.
    sent, _ = _chat_on_a_terminal(tmp_path, [UP + UP, b"/exit"])
    assert sent == ["hello"]


def test_single_mode_through_test_sh(tiny_model_dir, repo_root, tmp_path):
    script = "hello there\n/temp 0\nWhat is 2 + 2?\n/system Answer in one word.\n/reset\nbye\n/exit\nnever asked\n"
    proc = subprocess.run(
        [str(repo_root / "test.sh"), "--model_path", str(tiny_model_dir), "--max_new_tokens", "6", "-q"],
        input=script, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert ">>> hello there" in out and ">>> What is 2 + 2?" in out and ">>> bye" in out
    assert "never asked" not in out  # /exit stops the loop
    assert out.count(" tokens, ") == 3  # one stats line per answer
    assert "[temperature 0.0]" in out and "[history cleared]" in out and "[system prompt set" in out


class _Recorder:
    """A generator stand-in that records the messages the chat loop sends (history handling)."""

    def __init__(self):
        self.calls = []

    def stream_chat(self, messages, temperature, max_new_tokens, top_p=1.0):
        from common.evaluation.generation import Sample

        self.calls.append((list(messages), temperature))
        yield "ok"
        yield Sample(text=f"answer{len(self.calls)}", tokens=1, truncated=False, latency_s=0.01)


def test_single_mode_keeps_history_until_reset():
    import argparse
    import io

    from common.test_model import run_single

    rec = _Recorder()
    args = argparse.Namespace(system_prompt="S", temperature=0.7, max_new_tokens=4, top_p=1.0)
    run_single(rec, args, io.StringIO("a\nb\n/temp 0.2\n/reset\nc\n"), io.StringIO())
    roles = [[m["role"] + ":" + m["content"] for m in msgs] for msgs, _ in rec.calls]
    assert roles[0] == ["system:S", "user:a"]
    assert roles[1] == ["system:S", "user:a", "assistant:answer1", "user:b"]  # multi-turn history
    assert roles[2] == ["system:S", "user:c"]  # forgotten after /reset
    assert [t for _, t in rec.calls] == [0.7, 0.7, 0.2]


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_templates_render(tiny_tokenizer, template):
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    text = render_prompt(tiny_tokenizer, messages, template)
    expected_tail = {
        "auto": "<|im_start|>assistant\n",  # why: the tiny tokenizer's own ChatML template
        "chatml": "<|im_start|>assistant\n",
        "default": "User: Q\nAssistant:",
        "llama": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    }[template]
    assert text.endswith(expected_tail) and "S" in text and "Q" in text


BAD_INPUTS = [
    # (name, file content or None for missing, extra args, error fragment)
    ("missing.json", None, [], "input file not found"),  # why: typo in the path
    ("broken.json", '[{"prompt": "a", "ground_truth": "1"},', [], "invalid JSON at line 1"),  # why: cut file
    ("noprompt.json", json.dumps([{"prompt": "a", "ground_truth": "1"}, {"ground_truth": "2"}]), [],
     "row 2: missing 'prompt'"),  # why: the row number tells which row to fix
    ("nogt.jsonl", '{"prompt": "a"}\n', [], "row 1: missing 'ground_truth'"),  # why: nothing to score against
    ("badline.jsonl", '{"prompt": "a", "ground_truth": "1"}\nnot json\n', [], "line 2 is not valid JSON"),
    ("data.csv", "prompt,ground_truth\n", [], "unsupported extension '.csv'"),  # why: unknown format
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--output_file", "{tmp}/afile.txt/out.xlsx"],
     "does not exist"),  # why: the output's parent is a file, so it cannot be written
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--output_file", "{tmp}/out.csv"], "use a .xlsx or .json"),
    ("ds.json", json.dumps([{"prompt": "a", "ground_truth": "1", "data_source": "nope"}]), [],
     "rejects data_source 'nope'"),  # why: the reward knows no such dataset; stop before generating
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--reward", "{tmp}/nowhere.py"], "not found"),
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--output_file", "{tmp}/old.xlsx"],
     "already exists; pass --force"),  # why: an existing report is never replaced silently
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--chat_template_kwargs", '{"enable_thinking": fal'],
     "--chat_template_kwargs: not valid JSON"),  # why: a typo in the JSON
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--chat_template_kwargs", "[1]"],
     "--chat_template_kwargs: expected a JSON object"),  # why: valid JSON, but not keyword arguments
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--model_path", "{tmp}/afile.txt"],
     "expected a folder, got a file"),  # why: a file is not a model
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--use_vllm"] if vllm_unavailable_reason() else ["--model_path", "x"],
     "--use_vllm" if vllm_unavailable_reason() else "no such"),  # why: no vLLM/GPU here, and no --fallback
]


@pytest.mark.parametrize("name,content,extra,fragment", BAD_INPUTS)
def test_bad_inputs_fail_cleanly(tiny_model_dir, tmp_path, capsys, name, content, extra, fragment):
    src = tmp_path / name
    if content is not None:
        src.write_text(content)
    (tmp_path / "afile.txt").write_text("not a folder")
    (tmp_path / "old.xlsx").write_text("an earlier report")
    before = sorted(p.name for p in tmp_path.iterdir())
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    model = ["--model_path", str(tiny_model_dir)] if "--model_path" not in extra else []
    rc = main([*model, "--batch", "--input_file", str(src), *extra, *FAST])
    assert rc in (1, 2)
    err = capsys.readouterr().err
    assert fragment in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no report, no temp file left
    assert (tmp_path / "old.xlsx").read_text() == "an earlier report"


def test_bad_rows_skipped_on_request(tiny_model_dir, tmp_path, caplog):
    src = tmp_path / "mixed.json"
    src.write_text(json.dumps([*gsm8k_rows(3), {"prompt": ""}, {"ground_truth": "1"}]))
    out = tmp_path / "out.json"
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src), "--output_file",
                 str(out), "--skip_bad_rows", "--max_new_tokens", "4"]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["results"]) == 3 and payload["settings"]["skipped_bad_rows"] == 2
    err = caplog.text
    assert "row 4: 'prompt' is an empty string" in err and "row 5: missing 'prompt'" in err


def test_vllm_fallback_uses_transformers(tiny_model_dir, data_json, tmp_path):
    if vllm_unavailable_reason() is None:
        pytest.skip("vLLM can run on this machine, so --fallback is not exercised")
    out = tmp_path / "fb.json"
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json), "--limit", "2",
                 "--use_vllm", "--fallback", "--output_file", str(out), *FAST]) == 0
    assert json.loads(out.read_text())["models"][0]["backend"] == "transformers"


def test_cli_errors_exit_non_zero_through_test_sh(repo_root, tmp_path):
    proc = subprocess.run(
        [str(repo_root / "test.sh"), "--model_path", str(tmp_path / "nope"), "--batch", "--input_file",
         str(tmp_path / "missing.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "input file not found" in proc.stderr
    proc = subprocess.run([str(repo_root / "test.sh"), "--model_path", "m", "--n_samples", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--n_samples 0: must be >= 1" in proc.stderr


def test_load_rows_lists_every_bad_row(tmp_path):
    src = tmp_path / "bad.json"
    src.write_text(json.dumps([{"prompt": 3, "ground_truth": "1"}, {"prompt": "a", "ground_truth": True},
                               {"prompt": [{"role": "assistant", "content": "x"}], "ground_truth": "1"}]))
    with pytest.raises(InputError) as err:
        load_rows(src)
    msg = str(err.value)
    assert "3 malformed row(s)" in msg and "row 1:" in msg and "row 2:" in msg and "role 'user'" in msg
    assert str(src) in msg and "--skip_bad_rows" in msg


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
