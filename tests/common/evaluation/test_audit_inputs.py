"""./test.sh --batch on odd inputs and options: each fails with one clear line, or is read right.

    .venv/bin/python -m pytest tests/common/evaluation/test_audit_inputs.py -q

Real files, the tiny model (tests/tiny_model.py) and the real CLI: through ./test.sh for the exit
status and the printed lines, through common.test_model.main for reports read back here.
"""

from __future__ import annotations

import codecs
import json
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook

from common.test_model import main

REPO_ROOT = Path(__file__).resolve().parents[3]
ROWS = [{"id": f"q{i}", "prompt": f"What is {i} + {i}?", "ground_truth": str(2 * i)} for i in range(3)]
FAST = ["--max_new_tokens", "4", "--batch_size", "4", "-q"]


def run_test_sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / "test.sh"), *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(autouse=True)
def default_output_dir(tmp_path_factory, monkeypatch) -> Path:
    """Reports without --output_file go here, not into the repository's outputs/eval."""
    folder = tmp_path_factory.mktemp("default_eval") / "eval"
    monkeypatch.setattr("common.test_model.DEFAULT_OUTPUT_DIR", folder)
    return folder


# (label, file name, bytes): files the data tools read, which --batch refused or crashed on.
READABLE = [
    # why: Notepad's "UTF-8 with BOM": was "invalid JSON at line 1 column 1: Unexpected UTF-8 BOM"
    ("json with BOM", "in.json", codecs.BOM_UTF8 + json.dumps(ROWS).encode()),
    # why: UTF-16 from Windows tools: was "error: 'utf-8' codec can't decode byte 0xff" naming no file
    ("utf-16 json", "in.json", json.dumps(ROWS).encode("utf-16")),
    # why: the wrapper `python -m common.data_utils` accepts: was "expected a JSON list, got dict"
    ("wrapped json", "in.json", json.dumps({"data": ROWS}).encode()),
    ("nested wrapper", "in.json", json.dumps({"data": {"rows": ROWS}}).encode()),
    # why: a file name with spaces and non-ASCII letters
    ("name with spaces", "test data é名.jsonl", "\n".join(json.dumps(r) for r in ROWS).encode()),
]


@pytest.mark.parametrize("label, name, data", READABLE, ids=[c[0] for c in READABLE])
def test_inputs_the_data_tools_read_are_evaluated(tiny_model_dir, tmp_path, label, name, data):
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "r.json"
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src), "--output_file", str(out),
                 *FAST]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["id"] for r in results] == ["q0", "q1", "q2"] and results[2]["ground_truth"] == "4"
    assert src.read_bytes() == data


# (label, name, bytes, fragments of the one error line or of the listed rows)
UNREADABLE = [
    # why: Latin-1 bytes: was a bare UnicodeDecodeError message, no file, no line, no fix
    ("latin-1 jsonl", "in.jsonl", '{"prompt": "café?", "ground_truth": "1"}\n'.encode("latin-1"),
     ["in.jsonl: line 1, byte", "--encoding"]),
    # why: 100,000 nested brackets: was "maximum recursion depth exceeded", exit status 1, no file named
    ("json nested too deep", "in.json", b"[" * 100_000 + b"]" * 100_000, ["in.json: nested deeper than the JSON"]),
    # why: a lone surrogate escape: text that cannot be written to the report
    ("lone surrogate", "in.json", b'[{"prompt": "a \\ud800", "ground_truth": "1"}]',
     ["row 1: field 'prompt' holds an unpaired surrogate"]),
    # why: an empty or NaN ground truth was accepted: every sample scored against "" or "nan"
    ("empty and NaN ground truth", "in.json",
     b'[{"prompt": "a", "ground_truth": ""}, {"prompt": "b", "ground_truth": NaN},'
     b' {"prompt": "c", "ground_truth": "  "}]',
     ["3 malformed row(s)", "row 1: 'ground_truth' is an empty string", "row 2: 'ground_truth' is nan",
      "row 3: 'ground_truth' is an empty string"]),
    # why: None and empty prompts are named by row
    ("None and empty prompt", "in.json", b'[{"prompt": null, "ground_truth": "1"}, {"prompt": "", "ground_truth": "1"}]',
     ["row 1: missing 'prompt'", "row 2: 'prompt' is an empty string"]),
]


@pytest.mark.parametrize("label, name, data, fragments", UNREADABLE, ids=[c[0] for c in UNREADABLE])
def test_unreadable_inputs_fail_with_exit_2_naming_file_and_row(tiny_model_dir, tmp_path, label, name, data, fragments):
    src = tmp_path / name
    src.write_bytes(data)
    proc = run_test_sh("--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src), "--output_file",
                   str(tmp_path / "r.xlsx"), *FAST)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {src}") and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no report, no temp file
    assert src.read_bytes() == data


def test_a_folder_as_input_file_is_named_a_folder(tmp_path):
    # why: was "input file not found" for a folder that exists
    (tmp_path / "data.json").mkdir()
    proc = run_test_sh("--model_path", str(tmp_path), "--batch", "--input_file", str(tmp_path / "data.json"))
    assert proc.returncode == 2 and "data.json: is a folder" in proc.stderr, proc.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_temperature_must_be_a_finite_number(tmp_path, value):
    # why: --temperature nan and inf were accepted and a report written with them
    proc = run_test_sh("--model_path", str(tmp_path), "--batch", "--input_file", str(tmp_path / "x.json"),
                   "--temperature", value)
    assert proc.returncode == 2 and f"--temperature {float(value)}: must be a number >= 0" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_formula_like_text_stays_text_in_excel(tiny_model_dir, tmp_path):
    # ids, prompts and ground truths starting with = + - @ must not become formulas
    rows = [{"id": "=1+1", "prompt": "=SUM(A1:A2)", "ground_truth": "+5"},
            {"id": "@x", "prompt": "-2+3", "ground_truth": "-1"},
            {"id": "+q", "prompt": "@cmd", "ground_truth": '=HYPERLINK("http://x")'}]
    src = tmp_path / "f.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "f.xlsx"
    assert main(["--model_path", str(tiny_model_dir), "--batch", "--input_file", str(src), "--output_file", str(out),
                 *FAST]) == 0
    ws = load_workbook(out)["Results"]
    header = [c.value for c in ws[1]]
    cells = [dict(zip(header, r)) for r in ws.iter_rows(min_row=2)]
    for row, cell in zip(rows, cells):
        for key in ("id", "prompt", "ground_truth"):
            assert cell[key].value == row[key] and cell[key].data_type == "s", (key, cell[key].value)
        assert cell["id"].quotePrefix
