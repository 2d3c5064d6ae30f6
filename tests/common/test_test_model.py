"""Batch and single modes of ./test.sh (common/test_model.py) on the tiny model, CPU only.

    .venv/bin/python -m pytest tests/common/test_test_model.py -q
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from common.evaluation.generation import TEMPLATES, render_prompt, vllm_unavailable_reason
from common.evaluation.inputs import InputError, load_rows
from common.evaluation.report import pass_at_k
from common.test_model import main

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


def read_sheet(ws) -> list[dict]:
    values = list(ws.values)
    return [dict(zip(values[0], row)) for row in values[1:]]


def summary_of(wb) -> dict[str, dict]:
    """{model label: {metric: value}} from the Summary sheet (metrics block above the blank row)."""
    rows = list(wb["Summary"].values)
    labels = rows[0][1:]
    out = {label: {} for label in labels}
    for row in rows[1:]:
        if row[0] is None:
            break
        for label, value in zip(labels, row[1:]):
            out[label][row[0]] = value
    return out


def test_batch_json_writes_workbook(tiny_model_dir, data_json, tmp_path):
    out = tmp_path / "results.xlsx"
    rc = main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json),
               "--output_file", str(out), *FAST])
    assert rc == 0
    wb = load_workbook(out)
    assert wb.sheetnames == ["Summary", "Results"]
    results = read_sheet(wb["Results"])
    assert [r["id"] for r in results] == [f"q{i}" for i in range(20)]
    assert list(results[0]) == ["id", "data_source", "prompt", "ground_truth", "response", "extracted_answer",
                                "score", "correct", "format", "tokens", "truncated", "latency_s"]
    assert results[3]["prompt"] == "What is 3 + 3?" and results[3]["ground_truth"] == "6"
    assert all(r["data_source"] == "openai/gsm8k" for r in results)  # the documented default
    assert all(1 <= r["tokens"] <= 8 for r in results)
    # truncated <=> 8 tokens without a stop token; a random model nearly always runs to the limit
    assert all(r["truncated"] in (0, 1) and (r["truncated"] == 0 or r["tokens"] == 8) for r in results)
    assert wb["Results"].freeze_panes == "A2"
    assert wb["Results"].column_dimensions["E"].width == 60  # response column wrapped and wide
    summary = summary_of(wb)[tiny_model_dir.name]
    assert summary["rows"] == 20 and summary["samples"] == 20
    assert summary["accuracy"] == pytest.approx(sum(r["correct"] for r in results) / 20)
    assert summary["mean_score"] == pytest.approx(sum(r["score"] for r in results) / 20)
    assert summary["truncated_share"] == pytest.approx(sum(r["truncated"] for r in results) / 20)
    assert summary["throughput_tok_s"] > 0
    # Same --seed, same samples: a second run (JSON this time) reproduces every response.
    out2 = tmp_path / "again.json"
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(data_json),
                 "--output_file", str(out2), *FAST]) == 0
    again = json.loads(out2.read_text())["results"]
    assert sum(bool(r["response"]) for r in again) > 10  # sampled text, not only skipped special tokens
    # The sheet holds the text as Excel stores it: XML turns \r into \n, control characters into U+FFFD.
    as_in_excel = [ILLEGAL_CHARACTERS_RE.sub("\ufffd", r["response"]).replace("\r", "\n") for r in again]
    assert as_in_excel == [r["response"] or "" for r in results]


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
    assert summary["mean_score"] == pytest.approx(sum(r["score"] for r in results) / 24)
    assert summary["format_rate"] == 0  # the reward's format term is always 0.0


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (4, 0, 1, 0.0),  # why: no correct sample, never a pass
        (4, 4, 1, 1.0),  # why: all correct
        (4, 1, 1, 0.25),  # why: pass@1 is the plain accuracy
        (4, 1, 2, 0.5),  # why: 1 - C(3,2)/C(4,2) = 1 - 3/6
        (4, 3, 2, 1.0),  # why: fewer than k wrong samples, every draw of 2 has a correct one
        (10, 2, 5, 1 - 56 / 252),  # why: 1 - C(8,5)/C(10,5)
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


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
    assert payload["summary"][0]["rows"] == 5 and payload["settings"]["system_prompt"] == "Be brief."


def test_several_models_side_by_side(tiny_model_dir, tmp_path, data_json):
    from tests.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "rl_model", seed=1)  # different weights, different answers
    out = tmp_path / "cmp.xlsx"
    rc = main(["--model_path", str(tiny_model_dir), "--model_path", str(other), "--batch", "--input_file",
               str(data_json), "--limit", "4", "--output_file", str(out), *FAST])
    assert rc == 0
    wb = load_workbook(out)
    results = read_sheet(wb["Results"])
    a, b = tiny_model_dir.name, "rl_model"
    assert list(results[0])[:4] == ["id", "data_source", "prompt", "ground_truth"]
    assert f"[{a}] response" in results[0] and f"[{b}] correct" in results[0]
    assert any(r[f"[{a}] response"] != r[f"[{b}] response"] for r in results)
    summary = summary_of(wb)
    assert list(summary) == [a, b]
    for label in (a, b):
        assert summary[label]["accuracy"] == pytest.approx(sum(r[f"[{label}] correct"] for r in results) / 4)


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

    def stream_chat(self, messages, temperature, max_new_tokens):
        from common.evaluation.generation import Sample

        self.calls.append((list(messages), temperature))
        yield "ok"
        yield Sample(text=f"answer{len(self.calls)}", tokens=1, truncated=False, latency_s=0.01)


def test_single_mode_keeps_history_until_reset():
    import argparse
    import io

    from common.test_model import run_single

    rec = _Recorder()
    args = argparse.Namespace(system_prompt="S", temperature=0.7, max_new_tokens=4)
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
    ("ok.json", json.dumps(gsm8k_rows(2)), ["--use_vllm"] if vllm_unavailable_reason() else ["--model_path", "x"],
     "--use_vllm" if vllm_unavailable_reason() else "no such"),  # why: no vLLM/GPU here, and no --fallback
]


@pytest.mark.parametrize("name,content,extra,fragment", BAD_INPUTS)
def test_bad_inputs_fail_cleanly(tiny_model_dir, tmp_path, capsys, name, content, extra, fragment):
    src = tmp_path / name
    if content is not None:
        src.write_text(content)
    (tmp_path / "afile.txt").write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    model = ["--model_path", str(tiny_model_dir)] if "--model_path" not in extra else []
    rc = main([*model, "--batch", "--input_file", str(src), *extra, *FAST])
    assert rc in (1, 2)
    assert fragment in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no report, no temp file left


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
    assert json.loads(out.read_text())["summary"][0]["backend"] == "transformers"


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
