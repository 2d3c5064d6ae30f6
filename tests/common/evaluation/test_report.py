"""common/evaluation/report.py: the workbook read back cell by cell, the JSON, and the output path.

    .venv/bin/python -m pytest tests/common/evaluation/test_report.py -q
"""

from __future__ import annotations

import json
import os
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from common.evaluation.generation import Sample
from common.evaluation.inputs import EvalRow
from common.evaluation.metrics import group_metrics
from common.evaluation.report import (
    ModelResult,
    check_output_path,
    default_output_path,
    number_format,
    write_report,
)
from common.evaluation.scoring import Score
from tests.workbooks import table_at

# Text a spreadsheet would run as a formula if stored as one (CSV/Excel injection).
FORMULAS = ['=HYPERLINK("http://x","click")', "+1+1", "-2-2", "@SUM(A1:A2)", "=1/0"]
LONG = "word " * 400  # 2,000 characters: wraps, width capped


def _rows() -> list[EvalRow]:
    return [
        EvalRow(FORMULAS[0], [{"role": "user", "content": FORMULAS[1]}], FORMULAS[2], "math"),
        EvalRow("q2", [{"role": "user", "content": "What is 2+2?"}], "4", "openai/gsm8k"),
        EvalRow("q3", [{"role": "user", "content": LONG}], "7", "math"),
    ]


def _result(label: str, responses: list[list[str]], correct: list[list[bool]], tokens_per_s: float) -> ModelResult:
    samples = [[Sample(r, tokens=10 + i, truncated=i == 0, latency_s=9.9) for i, r in enumerate(rs)] for rs in responses]
    scores = [[Score(float(c), c, 1.0 if c else 0.0, r[:5]) for r, c in zip(rs, cs)] for rs, cs in zip(responses, correct)]
    tokens = sum(s.tokens for per in samples for s in per)
    return ModelResult(label, f"/models/{label}", f"/resolved/{label}", "transformers", samples, scores,
                       generation_s=tokens / tokens_per_s, warmup_s=0.5, chat_template_kwargs={"enable_thinking": False})


@pytest.fixture
def results() -> list[ModelResult]:
    base = _result("base", [[FORMULAS[3], "a"], ["4", "5"], [LONG, "\x01ctrl"]],
                   [[False, True], [True, False], [False, False]], tokens_per_s=100.0)
    rl = _result("run/global_step_5", [[FORMULAS[4], "b"], ["4", "4"], ["7", "7"]],
                 [[True, True], [True, True], [True, False]], tokens_per_s=250.0)
    return [base, rl]


SETTINGS = {"input_file": "/data/test.json", "rows": 3, "n_samples": 2, "temperature": 0.7, "top_p": 0.9,
            "max_new_tokens": 64, "template": "auto", "chat_template_kwargs": '{"enable_thinking": false}',
            "created": "2025-01-02T03:04:05"}


def test_workbook_tables_formats_and_colours(tmp_path, results):
    out = tmp_path / "r.xlsx"
    payload = write_report(out, SETTINGS, _rows(), results)
    wb = load_workbook(out)
    assert wb.sheetnames == ["Summary", "Results", "Compare"]

    # Summary: one row per model x data_source (in input order) plus each model's "all"
    summary = table_at(wb["Summary"], "model", "data_source")
    assert [(s["model"], s["data_source"]) for s in summary] == [
        ("base", "math"), ("base", "openai/gsm8k"), ("base", "all"),
        ("run/global_step_5", "math"), ("run/global_step_5", "openai/gsm8k"), ("run/global_step_5", "all"),
    ]
    expected_all = group_metrics(results[1].samples, results[1].scores)
    for key, value in expected_all.items():
        assert summary[5][key] == pytest.approx(value), key
    # 5 of 6 samples right; maj@2 is 1: on q3 both say "7" and the first of them is right
    assert summary[5]["accuracy"] == pytest.approx(5 / 6) and summary[5]["maj@2"] == 1.0
    models = table_at(wb["Summary"], "model", "backend")
    assert [m["tokens_per_s"] for m in models] == [pytest.approx(100.0), pytest.approx(250.0)]
    assert models[0]["chat_template_kwargs"] == '{"enable_thinking": false}'
    settings = {s["setting"]: s["value"] for s in table_at(wb["Summary"], "setting", "value")}
    assert settings["top_p"] == 0.9 and settings["chat_template_kwargs"] == '{"enable_thinking": false}'
    assert "top_p 0.9" in wb["Summary"]["A2"].value and "enable_thinking" in wb["Summary"]["A2"].value

    ws = wb["Summary"]
    header = [c.value for c in ws[4]]
    cell = {name: ws.cell(row=5, column=header.index(name) + 1) for name in header}
    assert cell["accuracy"].number_format == "0.000" and cell["pass@2"].number_format == "0.000"
    assert cell["truncated_share"].number_format == "0.0%" and cell["format_rate"].number_format == "0.0%"
    assert cell["samples"].number_format == "#,##0" and cell["p95_tokens"].number_format == "#,##0.0"
    assert ws.freeze_panes == "C5" and ws.auto_filter.ref == f"A4:{ws.cell(row=4, column=len(header)).column_letter}10"

    # Results: one row per model x prompt x sample, filterable, green/red on correct and response
    rs = wb["Results"]
    results_rows = table_at(rs, "model", "id")
    assert len(results_rows) == 2 * 3 * 2
    assert list(results_rows[0]) == ["model", "id", "sample", "data_source", "prompt", "ground_truth", "response",
                                     "extracted_answer", "score", "correct", "format", "tokens", "truncated",
                                     "reward_error"]
    assert "latency_s" not in results_rows[0]  # per batch, repeated on every row: not a per-row number
    assert rs.freeze_panes == "C2" and rs.auto_filter.ref == "A1:N13"
    head = [c.value for c in rs[1]]
    letter = {h: rs.cell(row=1, column=i + 1).column_letter for i, h in enumerate(head)}
    rules = {str(cf.sqref): [(r.type, r.operator, r.formula, r.dxf.fill.fgColor.rgb) for r in cf.rules]
             for cf in rs.conditional_formatting}
    assert rules[f"{letter['correct']}2:{letter['correct']}13"] == [
        ("cellIs", "equal", ["1"], "00C6EFCE"), ("cellIs", "equal", ["0"], "00FFC7CE")]
    assert rules[f"{letter['response']}2:{letter['response']}13"] == [
        ("expression", None, [f"${letter['correct']}2=1"], "00C6EFCE"),
        ("expression", None, [f"${letter['correct']}2=0"], "00FFC7CE")]
    widths = {h: rs.column_dimensions[letter[h]].width for h in head}
    assert widths["response"] == 60 and widths["prompt"] == 60  # long text: capped
    assert rs[f"{letter['response']}6"].alignment.wrap_text  # ... and wrapped (the LONG response)
    assert widths["model"] >= len("run/global_step_5") and widths["correct"] >= len("correct")
    assert rs[f"{letter['score']}2"].number_format == "0.000" and rs[f"{letter['tokens']}2"].number_format == "#,##0"
    assert results_rows[5]["response"] == "\ufffdctrl"  # control characters are illegal in .xlsx

    # Compare: one row per prompt, each model's first response and score side by side
    compare = table_at(wb["Compare"], "id", "data_source")
    assert [c["id"] for c in compare] == [r.id for r in _rows()]
    assert compare[0]["[base] response"] == FORMULAS[3] and compare[0]["[run/global_step_5] response"] == FORMULAS[4]
    assert [c["[run/global_step_5] score"] for c in compare] == [1.0, 1.0, 1.0]
    assert [c["[base] correct"] for c in compare] == [0, 1, 0]
    cf = {str(c.sqref) for c in wb["Compare"].conditional_formatting}
    assert len(cf) == 4 and wb["Compare"].freeze_panes == "B2"

    # JSON payload = what the sheets hold
    assert payload["summary"][5]["accuracy"] == summary[5]["accuracy"]
    assert len(payload["results"]) == 12 and len(payload["compare"]) == 3


def test_text_that_looks_like_a_formula_is_stored_as_text(tmp_path, results):
    out = tmp_path / "inj.xlsx"
    write_report(out, SETTINGS, _rows(), results)
    wb = load_workbook(out)
    seen = set()
    for ws in wb:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if cell.value in FORMULAS:
                    seen.add(cell.value)
                    assert cell.data_type == "s" and cell.quotePrefix, cell.coordinate
    assert seen == set(FORMULAS)  # ids, prompts, ground truths and responses, all read back verbatim
    with zipfile.ZipFile(out) as z:  # and no formula element anywhere in the file
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not any("<f>" in z.read(n).decode() or "<f " in z.read(n).decode() for n in sheets)


def test_one_model_has_no_compare_sheet_and_json_matches(tmp_path, results):
    wb_path = tmp_path / "one.xlsx"
    write_report(wb_path, SETTINGS, _rows(), results[:1])
    assert load_workbook(wb_path).sheetnames == ["Summary", "Results"]
    js = tmp_path / "one.json"
    payload = write_report(js, SETTINGS, _rows(), results[:1])
    on_disk = json.loads(js.read_text())
    assert on_disk == json.loads(json.dumps(payload)) and "compare" not in on_disk
    assert on_disk["results"][0]["response"] == FORMULAS[3]  # JSON keeps the raw text
    assert on_disk["results"][5]["response"] == "\x01ctrl"


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit(143), OSError("disk full")])
def test_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path, results, monkeypatch, error):
    out = tmp_path / "r.xlsx"
    out.write_bytes(b"previous report")

    def boom(self, filename):
        Path(filename).write_bytes(b"half")
        raise error

    monkeypatch.setattr("openpyxl.workbook.workbook.Workbook.save", boom)
    with pytest.raises(type(error) if isinstance(error, BaseException) else error):
        write_report(out, SETTINGS, _rows(), results)
    assert out.read_bytes() == b"previous report" and sorted(p.name for p in tmp_path.iterdir()) == ["r.xlsx"]


@pytest.mark.parametrize(
    "name,force,fragment",
    [
        ("exists.xlsx", False, "already exists; pass --force"),  # why: never replace a report silently
        ("r.csv", False, "use a .xlsx or .json"),  # why: unknown format
        ("input.json", True, "would overwrite the input file"),  # why: not even with --force
        ("missing/r.xlsx", False, "does not exist"),  # why: the folder must exist
        ("adir.xlsx", False, "is a folder"),  # why: a folder named like a report
    ],
)
def test_check_output_path_refuses(tmp_path, name, force, fragment):
    (tmp_path / "exists.xlsx").write_text("old")
    (tmp_path / "input.json").write_text("[]")
    (tmp_path / "adir.xlsx").mkdir()
    with pytest.raises(ValueError) as err:
        check_output_path(tmp_path / name, tmp_path / "input.json", force=force)
    assert fragment in str(err.value) and str(err.value).startswith("--output_file ")
    assert (tmp_path / "exists.xlsx").read_text() == "old"


def test_check_output_path_force_and_unwritable(tmp_path):
    (tmp_path / "exists.xlsx").write_text("old")
    assert check_output_path(tmp_path / "exists.xlsx", force=True) is True  # will be replaced: the caller says so
    assert check_output_path(tmp_path / "new.json") is False
    with pytest.raises(ValueError, match="cannot write in /proc"):  # not writable, even for root
        check_output_path(Path("/proc/report.xlsx"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.xlsx"]  # the probe file is gone


def test_default_output_path(tmp_path):
    now = datetime(2025, 1, 2, 3, 4, 5)
    first = default_output_path("grpo/data/test.json", ["Qwen2.5-0.5B-Instruct"], tmp_path, now)
    assert first == tmp_path / "test-Qwen2.5-0.5B-Instruct-20250102-030405.xlsx"
    first.write_text("x")
    second = default_output_path("grpo/data/test.json", ["Qwen2.5-0.5B-Instruct"], tmp_path, now)
    assert second.name == "test-Qwen2.5-0.5B-Instruct-20250102-030405-2.xlsx"  # same second: not replaced
    odd = default_output_path("val.parquet", ["run/global_step_5", "a b:c"], tmp_path, now)
    assert odd.name == "val-run_global_step_5-vs-a_b_c-20250102-030405.xlsx"
    many = default_output_path("val.parquet", ["x" * 100] * 3, tmp_path, now)
    assert len(many.name) <= 120 + len("-20250102-030405.xlsx") and os.sep not in many.name


@pytest.mark.parametrize(
    "column,fmt",
    [("accuracy", "0.000"), ("[rl] score", "0.000"), ("maj@8", "0.000"), ("mean@4", "0.000"),
     ("truncated_share", "0.0%"), ("format_rate", "0.0%"), ("tokens", "#,##0"), ("reward_timeouts", "#,##0"),
     ("tokens_per_s", "#,##0.0"), ("warmup_s", "#,##0.00"), ("response", None), ("correct", None)],
)
def test_number_format(column, fmt):
    assert number_format(column) == fmt
