"""RL data: json_to_parquet, validation, the bundled data and its generator, loaded by verl's RLHFDataset.

    .venv/bin/python -m pytest tests/common/test_data_utils.py -q
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common import data_utils as du
from common import make_bundled_data as mbd

INSTRUCTION = du.GSM8K_INSTRUCTION


def write_jsonl(path: Path, rows: list) -> Path:
    # Each item is either a dict (dumped) or a raw string (written as is, to make bad lines).
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def rl_config(tmp_path: Path, **over):
    """verl's own data defaults (legacy_data.yaml) with a private cache and length filtering on."""
    from omegaconf import OmegaConf

    import verl

    cfg = OmegaConf.load(Path(verl.__file__).parent / "trainer/config/data/legacy_data.yaml")
    cfg.cache_dir = str(tmp_path / "verl_cache")
    # Filtering makes RLHFDataset apply the chat template to every prompt and count tokens.
    cfg.filter_overlong_prompts = True
    cfg.filter_overlong_prompts_workers = 1
    for k, v in over.items():
        cfg[k] = v
    return cfg


def load_rlhf(path: Path, tokenizer, tmp_path: Path, **over):
    from verl.utils.dataset.rl_dataset import RLHFDataset

    return RLHFDataset(data_files=str(path), tokenizer=tokenizer, config=rl_config(tmp_path, **over), processor=None)


def rendered_prompt(tokenizer, raw_prompt) -> str:
    """The prompt as the rollout sees it: verl's chat-template helper, tokenized, then decoded."""
    from verl.utils.tokenizer.chat_template import apply_chat_template

    ids = apply_chat_template(tokenizer, list(raw_prompt), tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    return tokenizer.decode(ids)


# ---------------------------------------------------------------- answer extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("48 / 2 = 24\n#### 72", "72"),  # why: the plain GSM8K case
        ("#### 1,072", "1072"),  # why: thousands separators are removed (verl compares strings)
        ("#### $18", "18"),  # why: currency sign removed like verl's gsm8k extractor
        ("a #### 3\nb #### -4", "-4"),  # why: the last "####" wins, negatives kept
        ("no marker here", None),  # why: no answer -> None, the row gets rejected
    ],
)
def test_extract_hash_answer(text, expected):
    assert du.extract_hash_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{5}.", "5"),  # why: the simple case
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),  # why: nested braces are kept whole
        (r"\boxed{1} then \boxed{ 2 }", "2"),  # why: the last boxed answer, stripped
        (r"\fbox{x^{2}}", "x^{2}"),  # why: \fbox is an alias used in MATH solutions
        (r"\boxed{3", None),  # why: unbalanced braces are not an answer
        ("no box", None),  # why: nothing to extract
    ],
)
def test_extract_last_boxed(text, expected):
    assert du.extract_last_boxed(text) == expected


# ---------------------------------------------------------------- row builders


@pytest.mark.parametrize(
    "record, kwargs, source, truth, content",
    [
        # why: the batch evaluator's shape, no options needed; data_source defaults to gsm8k
        ({"prompt": "1+1?", "ground_truth": "2"}, {}, "openai/gsm8k", "2", "1+1?"),
        # why: an integer ground truth becomes a string (verl's gsm8k scorer compares strings)
        ({"prompt": "2+2?", "ground_truth": 4, "data_source": "mine"}, {}, "mine", "4", "2+2?"),
        # why: gsm8k preset detected automatically from question/answer
        ({"question": "Q?", "answer": "step\n#### 1,200"}, {}, "openai/gsm8k", "1200", "Q?"),
        # why: MATH preset: the last boxed content with nested braces
        (
            {"problem": "P?", "solution": r"so \boxed{\frac{3}{4}}"},
            {},
            "DigitalLearningGmbH/MATH-lighteval",
            r"\frac{3}{4}",
            "P?",
        ),
        # why: the template wraps the prompt; doubled braces stay literal
        (
            {"prompt": "3*3?", "ground_truth": "9"},
            {"prompt_template": r"{prompt} Put the answer in \boxed{{}}."},
            "openai/gsm8k",
            "9",
            r"3*3? Put the answer in \boxed{}.",
        ),
        # why: custom fields with answer extraction and an explicit data_source
        (
            {"q": "x?", "sol": "work #### 7"},
            {"fmt": "fields", "prompt_field": "q", "answer_field": "sol", "answer_extract": "hash", "data_source": "d"},
            "d",
            "7",
            "x?",
        ),
    ],
)
def test_rl_row_builders(record, kwargs, source, truth, content):
    row = du.make_rl_row_fn(**{"fmt": "auto", **kwargs})(record, 5)
    assert row["data_source"] == source
    assert row["reward_model"] == {"style": "rule", "ground_truth": truth}
    assert row["prompt"] == [{"role": "user", "content": content}]
    assert row["ability"] == "math"
    assert row["extra_info"]["split"] == "train" and row["extra_info"]["index"] == 5
    assert du.check_rl_row(row) == []


@pytest.mark.parametrize(
    "record, preset, template, content, truth",
    [
        # why: --preset gsm8k asks for "#### N" exactly as the bundled data does
        ({"question": "Q?", "answer": "w\n#### 5"}, "gsm8k", None, "Q? " + INSTRUCTION, "5"),
        # why: --preset math asks for \boxed{}, which the math scorers read
        ({"problem": "P?", "solution": r"\boxed{2}"}, "math", None, "P? " + du.MATH_INSTRUCTION, "2"),
        # why: MATH-500/AIME rows carry `answer` apart from the solution; it wins over the boxed text
        ({"problem": "P?", "solution": r"so \boxed{204}", "answer": "204"}, "math", None,
         "P? " + du.MATH_INSTRUCTION, "204"),
        # why: AIME sets with an integer answer and no solution at all
        ({"problem": "P?", "answer": 33}, "math", None, "P? " + du.MATH_INSTRUCTION, "33"),
        # why: an explicit template replaces the preset's instruction; "{prompt}" keeps the bare question
        ({"question": "Q?", "answer": "#### 5"}, "gsm8k", "{prompt}", "Q?", "5"),
    ],
)
def test_presets_add_the_instruction_their_scorer_needs(tmp_path, record, preset, template, content, truth):
    src = write_jsonl(tmp_path / "in.jsonl", [record])
    out = tmp_path / "out.parquet"
    report = du.json_to_parquet(src, out, preset=preset, prompt_template=template, progress=False)
    row = pq.read_table(out).to_pylist()[0]
    assert row["prompt"] == [{"role": "user", "content": content}]
    assert row["reward_model"]["ground_truth"] == truth
    assert row["extra_info"]["question"] == record.get("question", record.get("problem"))
    assert (PRESET_NOTE in report.summary()) == (template is None)


PRESET_NOTE = "prompt instruction (--preset"


def test_gsm8k_preset_matches_the_bundled_prompts(tmp_path, repo_root):
    # A GSM8K-shaped row converted with --preset gsm8k reads exactly like a bundled training row.
    bundled = pq.read_table(repo_root / "grpo/data/train.parquet").slice(0, 1).to_pylist()[0]
    question = bundled["extra_info"]["question"]
    src = write_jsonl(tmp_path / "g.jsonl", [{"question": question, "answer": "work\n#### 7"}])
    out = tmp_path / "g.parquet"
    res = subprocess.run([sys.executable, "-m", "common.data_utils", "rl", str(src), str(out), "--preset", "gsm8k",
                          "--no_progress"], capture_output=True, text=True, cwd=repo_root)
    assert res.returncode == 0, res.stderr
    assert f"{PRESET_NOTE} gsm8k; --prompt_template replaces it): {INSTRUCTION}" in res.stdout  # printed
    assert pq.read_table(out).to_pylist()[0]["prompt"] == bundled["prompt"]


def test_system_prompt_goes_first():
    row = du.make_rl_row_fn(system_prompt="Be brief.")({"prompt": "1+1?", "ground_truth": "2"}, 0)
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][0]["content"] == "Be brief."


@pytest.mark.parametrize(
    "record, reason",
    [
        ({"prompt": "   ", "ground_truth": "2"}, "empty 'prompt'"),  # why: whitespace is not a prompt
        ({"prompt": "hi"}, "missing field 'ground_truth'"),  # why: half of the plain format
        ({"text": "hi"}, "unknown row format"),  # why: no known field at all
        ({"question": "Q", "answer": "no final"}, "no '#### N'"),  # why: gsm8k row without its answer
        ({"problem": "P", "solution": "x"}, "no \\boxed"),  # why: MATH row without a boxed answer
        ({"prompt": ["not", "text"], "ground_truth": "1"}, "must be text"),  # why: wrong type
        ("a string", "expected an object"),  # why: a JSON line that is not an object
        (  # why: a verl-schema row whose prompt ends with the assistant
            {"data_source": "d", "prompt": [{"role": "assistant", "content": "x"}], "reward_model": {"ground_truth": "1"}},
            "expected a user turn",
        ),
    ],
)
def test_rl_row_rejections(record, reason):
    with pytest.raises(du.RowError, match=re.escape(reason)):
        du.make_rl_row_fn()(record, 0)


@pytest.mark.parametrize(
    "template",
    [
        "no placeholder",  # why: the prompt would be dropped
        "{prompt} {answer}",  # why: only {prompt} is filled in
        "{prompt} \\boxed{}",  # why: single braces are a format error; the message says to double them
    ],
)
def test_bad_prompt_template_is_an_option_error(template):
    with pytest.raises(du.DataError, match="--prompt_template"):
        du.make_rl_row_fn(prompt_template=template)


# ---------------------------------------------------------------- json_to_parquet


def test_json_to_parquet_loads_in_rlhf_dataset(tmp_path, tiny_tokenizer):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "prompt": "Tom has 3 apples and buys 4 more. How many?", "ground_truth": "7"},
            {"question": "Sara has 10 pens and loses 2. How many?", "answer": "10 - 2 = 8\n#### 8"},
        ],
    )
    out = tmp_path / "out.parquet"
    report = du.json_to_parquet(src, out, prompt_template="{prompt} " + INSTRUCTION, progress=False)
    assert (report.rows_in, report.rows_written, report.rows_rejected) == (2, 2, 0)
    assert report.formats == {"plain": 1, "gsm8k": 1}

    ds = load_rlhf(out, tiny_tokenizer, tmp_path)
    assert len(ds) == 2
    item = ds[0]
    assert item["reward_model"]["ground_truth"] == "7"
    assert item["data_source"] == "openai/gsm8k"
    assert item["extra_info"]["id"] == "a"
    text = rendered_prompt(tiny_tokenizer, item["raw_prompt"])
    assert text.startswith("<|im_start|>user\nTom has 3 apples")
    assert text.endswith(INSTRUCTION + "<|im_end|>\n<|im_start|>assistant\n")
    assert ds[1]["reward_model"]["ground_truth"] == "8"


@pytest.mark.parametrize("method", mbd.RL_METHODS)
def test_bundled_rl_data_loads_in_rlhf_dataset(method, repo_root, tiny_tokenizer, tmp_path):
    for split, n in (("train", mbd.RL_TRAIN), ("val", mbd.RL_VAL)):
        path = repo_root / method / "data" / f"{split}.parquet"
        # 512 tokens is verl's default max_prompt_length; with filtering on, none may be dropped.
        ds = load_rlhf(path, tiny_tokenizer, tmp_path)
        assert len(ds) == n
        item = ds[n // 2]
        truth = item["reward_model"]["ground_truth"]
        assert re.fullmatch(r"-?\d+", truth)
        assert item["extra_info"]["split"] == split
        text = rendered_prompt(tiny_tokenizer, item["raw_prompt"])
        assert text.startswith("<|im_start|>user\n") and INSTRUCTION in text


def test_rlhf_filter_sees_the_chat_template(tmp_path, tiny_tokenizer):
    # A 10-token limit is below any rendered prompt: verl's filter must drop every row, which
    # proves it measured the templated prompt from our `prompt` column.
    out = tmp_path / "o.parquet"
    du.json_to_parquet(write_jsonl(tmp_path / "i.jsonl", [{"prompt": "1+1?", "ground_truth": "2"}]), out, progress=False)
    assert len(load_rlhf(out, tiny_tokenizer, tmp_path, max_prompt_length=64)) == 1
    assert len(load_rlhf(out, tiny_tokenizer, tmp_path, max_prompt_length=3)) == 0


def test_bad_rows_are_reported_with_line_numbers(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"prompt": "ok 1", "ground_truth": "1"},
            "{not json",
            {"prompt": "", "ground_truth": "2"},
            "",  # blank lines are skipped, but still counted in line numbers
            {"prompt": "no answer"},
            {"prompt": "ok 2", "ground_truth": "3"},
        ],
    )
    before = src.read_bytes()
    out = tmp_path / "out.parquet"
    report = du.json_to_parquet(src, out, progress=False)
    assert (report.rows_in, report.rows_written) == (5, 2)
    assert [w for w, _ in report.rejected] == ["line 2", "line 3", "line 5"]
    assert "invalid JSON" in report.rejected[0][1]
    assert "empty 'prompt'" in report.rejected[1][1]
    assert "line 2: invalid JSON" in report.summary()
    assert src.read_bytes() == before
    rows = pq.read_table(out).to_pylist()
    # extra_info.index counts written rows, so it stays dense after rejections.
    assert [(r["reward_model"]["ground_truth"], r["extra_info"]["index"]) for r in rows] == [("1", 0), ("3", 1)]


def test_python_callers_get_a_warning_naming_the_rejected_lines(tmp_path, caplog):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ok", "ground_truth": "1"}, "{broken",
                                              {"prompt": "x"}, {"prompt": "ok 2", "ground_truth": "2"}])
    with caplog.at_level(logging.WARNING, logger="common.data_utils"):
        report = du.json_to_parquet(src, tmp_path / "out.parquet", progress=False)
    assert report.rows_written == 2
    (record,) = [r for r in caplog.records if r.name == "common.data_utils"]
    assert record.levelno == logging.WARNING
    assert "in.jsonl: rejected 2 of 4 rows (line 2: invalid JSON" in record.getMessage()
    assert "line 3: missing field 'ground_truth'" in record.getMessage()


def test_cli_prints_rejections_once(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ok", "ground_truth": "1"}, {"prompt": "x"}])
    assert du.main(["rl", str(src), str(tmp_path / "o.parquet"), "--no_progress"]) == 0
    out, err = capsys.readouterr()
    assert out.count("line 2: missing field 'ground_truth'") == 1 and "line 2" not in err


REPEATED = [
    {"id": "a", "prompt": "1+1?", "ground_truth": "2"},
    {"id": "b", "prompt": "2+2?", "ground_truth": "4"},
    {"id": "a", "prompt": "3+3?", "ground_truth": "6"},
    {"id": "a", "prompt": "4+4?", "ground_truth": "8"},
    {"id": "c", "prompt": "5+5?", "ground_truth": "10"},
    {"id": "c", "prompt": "6+6?", "ground_truth": "12"},
    {"prompt": "no id", "ground_truth": "1"},  # rows without an id are not duplicates of each other
    {"prompt": "no id either", "ground_truth": "2"},
]


def test_repeated_ids_are_counted_and_warned(tmp_path, caplog, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", REPEATED)
    out = tmp_path / "out.parquet"
    with caplog.at_level(logging.WARNING, logger="common.data_utils"):
        report = du.json_to_parquet(src, out, progress=False)
    # "a" x3 and "c" x2: three rows repeat an earlier id.
    assert (report.rows_written, report.duplicate_ids, report.repeated) == (8, 3, [("a", 3), ("c", 2)])
    assert "3 rows repeat an id of an earlier row ('a' x3, 'c' x2)" in caplog.text
    assert "warning: " in report.summary() and "'a' x3" in report.summary()
    with pytest.raises(du.DataError, match="--strict: 0 bad rows, 3 repeated ids, nothing written"):
        du.json_to_parquet(src, tmp_path / "strict.parquet", strict=True, progress=False)
    assert not (tmp_path / "strict.parquet").exists()
    # validate: the converted file and the evaluator-style input both report them; a warning, exit 0.
    for path in (out, src):
        assert du.validate_file(path, progress=False).duplicate_ids == 3
        capsys.readouterr()
        assert du.main(["validate", str(path), "--no_progress"]) == 0
        assert "warning: " in capsys.readouterr().out


def test_strict_fails_before_writing(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "a", "ground_truth": "1"}, {"prompt": "b"}])
    out = tmp_path / "out.parquet"
    with pytest.raises(du.DataError, match=r"(?s)--strict: 1 bad rows.*line 2: missing field 'ground_truth'"):
        du.json_to_parquet(src, out, strict=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


def test_zero_rows_is_an_error_and_leaves_no_file(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ["{broken", {"prompt": "x"}])
    assert du.main(["rl", str(src), str(tmp_path / "out.parquet"), "--no_progress"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: [d / "missing.jsonl", d / "o.parquet"], "no such file"),  # why: missing input path
        (lambda d: [d / "in.jsonl", d / "in.jsonl"], "must end in .parquet"),  # why: would clobber input
        (lambda d: [d / "in.parquet", d / "in.parquet"], "is the input file"),  # why: output == input
        (lambda d: [d / "in.txt", d / "o.parquet"], "unsupported file type"),  # why: unknown extension
        (lambda d: [d / "in.jsonl", d], "must end in .parquet"),  # why: a folder is not an output file
    ],
)
def test_path_errors(tmp_path, make_args, message):
    write_jsonl(tmp_path / "in.jsonl", [{"prompt": "a", "ground_truth": "1"}])
    du.write_parquet([du.make_rl_row_fn()({"prompt": "a", "ground_truth": "1"}, 0)], tmp_path / "in.parquet")
    (tmp_path / "in.txt").write_text("x")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(du.DataError, match=message):
        du.json_to_parquet(*make_args(tmp_path), progress=False)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_interrupt_keeps_the_old_output_and_leaves_no_temp(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": f"p{i}", "ground_truth": str(i)} for i in range(30)])
    out = tmp_path / "out.parquet"
    du.json_to_parquet(src, out, progress=False)
    old = hashlib.sha256(out.read_bytes()).hexdigest()
    calls = []
    real = du.AtomicParquetWriter.write_rows

    def interrupted(self, rows):
        calls.append(len(rows))
        if len(calls) == 2:  # the second row group: a partial file exists in the temp path
            raise KeyboardInterrupt
        real(self, rows)

    monkeypatch.setattr(du.AtomicParquetWriter, "write_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        du.json_to_parquet(src, out, batch_size=10, progress=False)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.parquet"]


def test_streams_in_row_groups(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": f"p{i}", "ground_truth": str(i)} for i in range(20)])
    out = tmp_path / "out.parquet"
    du.json_to_parquet(src, out, batch_size=7, progress=False)
    meta = pq.ParquetFile(out).metadata
    # 20 rows in groups of 7 -> 7 + 7 + 6.
    assert (meta.num_rows, meta.num_row_groups) == (20, 3)


def test_verl_rows_pass_through_with_their_extra_info(tmp_path):
    # Rows with different extra_info keys in different row groups: the union schema keeps both.
    rows = [
        {"data_source": "s", "prompt": [{"role": "user", "content": "a"}], "reward_model": {"style": "rule",
         "ground_truth": 5}, "extra_info": {"level": 3}},
        {"data_source": "s", "prompt": [{"role": "user", "content": "b"}], "reward_model": {"style": "rule",
         "ground_truth": "x"}, "extra_info": {"tag": "t"}},
    ]
    src = tmp_path / "in.json"
    src.write_text(json.dumps(rows))
    out = tmp_path / "out.parquet"
    report = du.json_to_parquet(src, out, batch_size=1, progress=False)
    assert report.formats == {"verl": 2}
    got = pq.read_table(out).to_pylist()
    assert got[0]["reward_model"]["ground_truth"] == "5"
    assert got[0]["extra_info"]["level"] == 3 and got[1]["extra_info"]["tag"] == "t"
    assert got[1]["extra_info"]["level"] is None


def test_csv_and_custom_fields(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('question_text,final,data_source\n"What is 6*7, exactly?",42,my/set\n"Empty answer",,my/set\n')
    out = tmp_path / "out.parquet"
    report = du.json_to_parquet(src, out, prompt_field="question_text", answer_field="final", progress=False)
    assert (report.rows_written, report.rejected) == (1, [("line 3", "empty 'final'")])
    row = pq.read_table(out).to_pylist()[0]
    assert row["prompt"][0]["content"] == "What is 6*7, exactly?"
    assert row["reward_model"]["ground_truth"] == "42" and row["data_source"] == "my/set"


def test_cli_help_and_run(tmp_path):
    res = subprocess.run([sys.executable, "-m", "common.data_utils", "rl", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--prompt_template" in res.stdout and "--preset" in res.stdout
    src = write_jsonl(tmp_path / "g.jsonl", [{"question": "Q?", "answer": "#### 3"}, {"question": "R?"}])
    out = tmp_path / "g.parquet"
    res = subprocess.run(
        [sys.executable, "-m", "common.data_utils", "rl", str(src), str(out), "--preset", "gsm8k",
         "--system_prompt", "Be exact.", "--no_progress"],
        capture_output=True, text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "read 2 rows, wrote 1" in res.stdout and "line 2: missing field 'answer'" in res.stdout
    assert [m["role"] for m in pq.read_table(out).to_pylist()[0]["prompt"]] == ["system", "user"]
    res = subprocess.run([sys.executable, "-m", "common.data_utils", "validate", str(out), "--no_progress"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "1 rows, 0 bad" in res.stdout


def test_validate_reports_bad_rows(tmp_path):
    good = du.make_rl_row_fn()({"prompt": "a", "ground_truth": "1"}, 0)
    bad = {**good, "prompt": [{"role": "user", "content": ""}], "reward_model": {"style": "rule", "ground_truth": ""}}
    path = tmp_path / "v.parquet"
    du.write_parquet([good, bad, good], path)
    report = du.validate_file(path, progress=False)
    assert report.rows_in == 3
    assert [w for w, _ in report.rejected] == ["row 2"]
    assert "turn 1: empty content" in report.rejected[0][1] and "empty reward_model.ground_truth" in report.rejected[0][1]
    assert du.main(["validate", str(path), "--no_progress"]) == 1


# ---------------------------------------------------------------- bundled data and its generator


def test_bundled_files_match_a_fresh_generation(repo_root):
    # Fails if someone edits the generator without re-running it (or edits a data file by hand).
    assert mbd.check_all(repo_root) == []
    for rel in mbd.build_all():
        assert (repo_root / rel).stat().st_size < 1_000_000, rel
        # test.json holds evaluator rows ({prompt, ground_truth}): checked as `rl` input.
        report = du.validate_file(repo_root / rel, progress=False)
        assert report.rows_in > 0 and report.rejected == [], rel
    assert du.validate_file(repo_root / "grpo/data/test.json", progress=False).formats == {"rl_input": mbd.TEST_ROWS}
    for method in (*mbd.RL_METHODS, "sft"):
        readme = (repo_root / method / "data" / "README.md").read_text()
        assert "python -m common.make_bundled_data" in readme


def test_generator_is_deterministic():
    assert mbd.build_all(seed=0) == mbd.build_all(seed=0)
    assert mbd.make_problems(50, seed=1) != mbd.make_problems(50, seed=0)


def test_splits_are_disjoint_and_sized():
    files = mbd.build_all()

    rl_train = {r["prompt"][0]["content"] for r in files["grpo/data/train.parquet"]}
    rl_val = {r["prompt"][0]["content"] for r in files["grpo/data/val.parquet"]}
    test = {r["prompt"] for r in files["grpo/data/test.json"]}
    sft = {next(m["content"] for m in r["messages"] if m["role"] == "user")
           for r in files["sft/data/train.parquet"] + files["sft/data/val.parquet"]}
    assert (len(rl_train), len(rl_val), len(test)) == (mbd.RL_TRAIN, mbd.RL_VAL, mbd.TEST_ROWS)
    assert len(sft) == mbd.SFT_TRAIN + mbd.SFT_VAL
    for a, b in ((rl_train, rl_val), (rl_train, test), (rl_val, test), (rl_train, sft), (test, sft)):
        assert not a & b
    templates = {p.template for p in mbd.make_problems(400)}
    assert templates == set(mbd.TEMPLATES)


# Independent formulas for each template, from the drawn numbers (not from the generator's code).
RECOMPUTE = {
    "shopping": lambda p: p["bill"] - p["a"] * p["p"] - p["b"] * p["q"],
    "rate": lambda p: p["r"] * p["h"] * p["d"],
    "travel": lambda p: p["v"] * p["t"] + p["w"] * p["s"],
    "ages": lambda p: p["k"] * p["b"] + p["b"] + 2 * p["n"],
    "sum_difference": lambda p: p["a"] - p["b"] + p["c"] + p["d"],
    "bakery": lambda p: (p["a"] * p["b"] - p["c"]) / 2,
    "discount": lambda p: p["n"] * p["p"] * (100 - p["d"]) / 100,
    "sharing": lambda p: p["m"] * p["c"] / p["n"],
    "saving": lambda p: (p["target"] - p["have"]) / p["s"],
}


def test_answers_are_right():
    from verl.utils.reward_score import gsm8k

    problems = mbd.make_problems(500)
    for prob in problems:
        assert RECOMPUTE[prob.template](prob.params) == prob.answer, prob
        assert prob.answer > 0
        # Every number in the question is one of the drawn parameters (the story matches the math).
        assert {int(x) for x in re.findall(r"\d+", prob.question)} <= {int(v) for v in prob.params.values()}, prob
        # Every "a op b = c" step of the worked solution is true arithmetic.
        steps = re.findall(r"(\d+(?: [-+*/] \d+)+) = (\d+)", prob.solution)
        assert len(steps) >= 2, prob.solution
        for expr, value in steps:
            assert eval(expr) == int(value), (expr, value)  # noqa: S307 - digits and operators only
        # verl's own gsm8k scorer gives the reference solution full marks.
        assert gsm8k.compute_score(prob.solution, str(prob.answer)) == 1.0


def test_bundled_rows_agree_with_their_problems():
    # Ground truth in the parquet rows is the problem's answer, and the SFT answers end in it.
    files = mbd.build_all()
    for row in random.Random(0).sample(files["ppo/data/train.parquet"], 50):
        truth = row["reward_model"]["ground_truth"]
        assert row["prompt"][0]["content"].endswith(INSTRUCTION)
        assert truth == str(int(truth))
    multi = [r for r in files["sft/data/train.parquet"] if len(r["messages"]) > 3]
    assert 0.05 < len(multi) / mbd.SFT_TRAIN < 0.30  # ~15% follow-ups
    for row in multi[:20]:
        *_, user, answer = row["messages"]
        first = next(m for m in row["messages"] if m["role"] == "assistant")
        base = int(du.extract_hash_answer(first["content"]))
        k = int(re.search(r"\d+", user["content"]).group())
        expected = base * k if "times" in user["content"] else base + k
        assert du.extract_hash_answer(answer["content"]) == str(expected)
    for row in files["sft/data/train.parquet"]:
        assert du.check_messages(row["messages"]) == []
