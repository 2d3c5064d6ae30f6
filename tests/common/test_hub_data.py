"""Datasets by name (common/hub_data.py): `data_utils rl|sft --hf_dataset` and `test.sh --benchmark`.

    .venv/bin/python -m pytest tests/common/test_hub_data.py -q

Nothing here reaches the network: the hub's datasets are rebuilt in the test with the published
field names (openai/gsm8k, HuggingFaceH4/MATH-500, HuggingFaceH4/aime_2024) and saved locally:
with `save_to_disk` under $LOCAL_DATASETS_DIR, as a folder of parquet files, and in a `datasets`
cache read with HF_HUB_OFFLINE=1, the three ways a machine without internet gets them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import datasets.config
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, DatasetDict

from common import data_utils as du
from common import hub_data as hd
from common import reward_functions as rf
from common.test_model import main as run_test_sh

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = ["--max_new_tokens", "8", "--batch_size", "8", "-q"]

# Rows shaped like the published sets (fields and answer formats as on their dataset cards).
GSM8K = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "A shop sells 1,200 pens a week. How many pens does it sell in 2 weeks?",
     "answer": "It sells 1,200 * 2 = <<1200*2=2400>>2,400 pens.\n#### 2,400"},
    {"question": "Tom has 5 apples and eats 2. How many are left?", "answer": "5 - 2 = <<5-2=3>>3\n#### 3"},
]
MATH500 = [
    {"problem": "Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.",
     "solution": "We have $r = 3$ and $\\theta = \\frac{\\pi}{2}$, so the answer is "
                 "$\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
     "answer": "\\left( 3, \\frac{\\pi}{2} \\right)", "subject": "Precalculus", "level": 2,
     "unique_id": "test/precalculus/807.json"},
    {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "$\\boxed{\\frac{3}{4}}$",
     "answer": "\\frac{3}{4}", "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
]
AIME24 = [
    {"id": 60, "problem": "Every morning Aya goes for a $9$-kilometer-long walk ... Find the number of minutes "
                          "the walk takes her, including the $t$ minutes spent in the coffee shop.",
     "solution": "... so the answer is $\\boxed{204}$.", "answer": "204",
     "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_1", "year": "2024"},
    {"id": 61, "problem": "Find the largest possible real part of an expression ...", "solution": "... 540",
     "answer": "540", "url": "https://artofproblemsolving.com/wiki/index.php/2024_AIME_I_Problems/Problem_2",
     "year": "2024"},
]
ULTRACHAT = [
    {"prompt": "Hi", "prompt_id": "p0",
     "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}]},
    {"prompt": "2+2?", "prompt_id": "p1",
     "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    """A $LOCAL_DATASETS_DIR holding copies saved with save_to_disk, named like their hub ids."""
    root = tmp_path_factory.mktemp("local_datasets")
    DatasetDict({"train": Dataset.from_list(GSM8K), "test": Dataset.from_list(GSM8K[:2])}).save_to_disk(
        root / "openai/gsm8k")
    DatasetDict({"test": Dataset.from_list(MATH500)}).save_to_disk(root / "HuggingFaceH4/MATH-500")
    DatasetDict({"train": Dataset.from_list(AIME24)}).save_to_disk(root / "HuggingFaceH4/aime_2024")
    DatasetDict({"train_sft": Dataset.from_list(ULTRACHAT)}).save_to_disk(root / "HuggingFaceH4/ultrachat_200k")
    return root


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Offline mode on and an empty datasets cache, whatever the environment says."""
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty_cache")
    monkeypatch.delenv(hd.LOCAL_DIR_ENV, raising=False)


@pytest.fixture
def local(monkeypatch, mirror) -> Path:
    monkeypatch.setenv(hd.LOCAL_DIR_ENV, str(mirror))
    return mirror


def subprocess_env(**extra) -> dict:
    """The environment of a child run: offline, no local-copy folder unless given."""
    env = {k: v for k, v in os.environ.items() if k != hd.LOCAL_DIR_ENV}
    return {**env, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **extra}


# ---------------------------------------------------------------- rl --hf_dataset


# (label, extra CLI options, expected rows: [(prompt, ground truth)], data_source, split)
RL_CASES = [
    # why: the known id brings config "main", split train, the gsm8k preset and its "#### N" instruction
    ("gsm8k train", ["--hf_dataset", "openai/gsm8k"],
     [(r["question"] + " " + du.GSM8K_INSTRUCTION, t) for r, t in zip(GSM8K, ["72", "2400", "3"])],
     "openai/gsm8k", "train"),
    # why: --split picks the split, and is written to extra_info.split
    ("gsm8k test", ["--hf_dataset", "openai/gsm8k", "--split", "test"],
     [(r["question"] + " " + du.GSM8K_INSTRUCTION, t) for r, t in zip(GSM8K, ["72", "2400"])],
     "openai/gsm8k", "test"),
    # why: MATH-500 has only a test split; its `answer` field is the ground truth, \boxed{} asked for
    ("math500", ["--hf_dataset", "HuggingFaceH4/MATH-500"],
     [(r["problem"] + " " + du.MATH_INSTRUCTION, r["answer"]) for r in MATH500], "HuggingFaceH4/MATH-500", "test"),
    # why: AIME 2024 sits in a "train" split; data_source aime24 is one the math scorer dispatches on
    ("aime24", ["--hf_dataset", "HuggingFaceH4/aime_2024"],
     [(r["problem"] + " " + du.MATH_INSTRUCTION, r["answer"]) for r in AIME24], "aime24", "train"),
    # why: field mapping on a dataset by name, like TRL's --dataset_name with column names
    ("fields mapping", ["--hf_dataset", "openai/gsm8k", "--prompt_field", "question", "--answer_field", "answer",
                        "--answer_extract", "hash", "--data_source", "gsm8k"],
     [(r["question"], t) for r, t in zip(GSM8K, ["72", "2400", "3"])], "gsm8k", "train"),
    # why: an explicit preset and template win over the known dataset's defaults
    ("explicit template", ["--hf_dataset", "openai/gsm8k", "--preset", "gsm8k", "--prompt_template", "Q: {prompt}"],
     [("Q: " + r["question"], t) for r, t in zip(GSM8K, ["72", "2400", "3"])], "openai/gsm8k", "train"),
]


@pytest.mark.parametrize("label, options, expected, source, split", RL_CASES, ids=[c[0] for c in RL_CASES])
def test_rl_from_a_dataset_by_name(local, tmp_path, capsys, label, options, expected, source, split):
    out = tmp_path / "out.parquet"
    assert du.main(["rl", *options, str(out), "--no_progress"]) == 0, capsys.readouterr().err
    rows = pq.read_table(out).to_pylist()
    assert [(r["prompt"][-1]["content"], r["reward_model"]["ground_truth"]) for r in rows] == expected
    assert {r["data_source"] for r in rows} == {source}
    assert {r["extra_info"]["split"] for r in rows} == {split}
    assert du.validate_file(out, progress=False).rejected == []
    # data_source must be one common.reward_functions scores.
    rf.compute_score(source, "x", "1")


def test_named_folders_without_the_mirror(tmp_path, mirror):
    # A save_to_disk folder given as the name; then a plain folder of parquet files.
    out = tmp_path / "a.parquet"
    assert du.main(["rl", "--hf_dataset", str(mirror / "openai/gsm8k"), "--split", "test", str(out),
                    "--preset", "gsm8k", "--no_progress"]) == 0
    assert pq.read_table(out).num_rows == 2
    files = tmp_path / "my_set" / "data"
    files.mkdir(parents=True)
    Dataset.from_list([{"prompt": "1+1?", "ground_truth": "2"}, {"prompt": "2+3?", "ground_truth": "5"}]).to_parquet(
        files / "train-00000-of-00001.parquet")
    out = tmp_path / "b.parquet"
    assert du.main(["rl", "--hf_dataset", str(tmp_path / "my_set"), str(out), "--no_progress"]) == 0
    assert [r["reward_model"]["ground_truth"] for r in pq.read_table(out).to_pylist()] == ["2", "5"]


def fake_hub_cache(cache: Path, repo_id: str, config: str | None, split: str, rows: list[dict]) -> None:
    """What `datasets.load_dataset(repo_id, config)` leaves in $HF_DATASETS_CACHE on a machine with
    internet: <namespace>___<name>/<config>/<version>/<hash>/ with dataset_info.json and Arrow files."""
    from datasets.naming import camelcase_to_snakecase
    from datasets.packaged_modules.parquet.parquet import Parquet

    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    src = cache / "src" / f"{name}.parquet"
    src.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(src)
    builder = Parquet(cache_dir=str(cache / "build"), config_name=config, data_files={split: str(src)},
                      dataset_name=name)
    builder.download_and_prepare()
    dest = cache / f"{repo_id.split('/')[0]}___{name}" / (config or "default") / "0.0.0" / "0123456789abcdef"
    dest.parent.mkdir(parents=True)
    shutil.move(builder.cache_dir, dest)
    shutil.rmtree(cache / "build")


def test_the_datasets_cache_is_used_offline(tmp_path, monkeypatch):
    cache = tmp_path / "hf_cache"
    fake_hub_cache(cache, "openai/gsm8k", "main", "test", GSM8K)
    out = tmp_path / "gsm8k_test.parquet"
    res = subprocess.run(
        [sys.executable, "-m", "common.data_utils", "rl", "--hf_dataset", "openai/gsm8k", "--split", "test",
         str(out), "--no_progress"],
        cwd=REPO_ROOT, capture_output=True, text=True, env=subprocess_env(HF_DATASETS_CACHE=str(cache)),
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    rows = pq.read_table(out).to_pylist()
    assert [r["reward_model"]["ground_truth"] for r in rows] == ["72", "2400", "3"]
    assert all(r["prompt"][0]["content"].endswith(du.GSM8K_INSTRUCTION) for r in rows)
    # The same through the Python API, with the cache set for this process.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    assert len(hd.load_by_name("openai/gsm8k", "main", "test")) == 3


# (label, CLI arguments, fragments of the one-line error)
MISSING = [
    # why: offline, not cached, no local copy: the name, why, and how to use a local copy
    ("not cached offline", ["--hf_dataset", "openai/gsm8k"],
     ["openai/gsm8k (config main) split 'train': not in the datasets cache", "offline mode is on",
      "save_to_disk", "LOCAL_DATASETS_DIR"]),
    # why: an unknown id fails the same way offline (the hub cannot be asked whether it exists)
    ("unknown id offline", ["--hf_dataset", "nobody/nothing"], ["nobody/nothing split 'train'", "LOCAL_DATASETS_DIR"]),
    # why: a split the local copy does not have lists the ones it has
    ("missing split", ["--hf_dataset", "HuggingFaceH4/MATH-500", "--split", "train"],
     ["has no split 'train' (it has: test); pass --split"]),
]


@pytest.mark.parametrize("label, args, fragments", MISSING, ids=[c[0] for c in MISSING])
def test_missing_datasets_are_one_line(mirror, monkeypatch, tmp_path, capsys, label, args, fragments):
    if label == "missing split":
        monkeypatch.setenv(hd.LOCAL_DIR_ENV, str(mirror))
    rc = du.main(["rl", *args, str(tmp_path / "o.parquet"), "--no_progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "o.parquet").exists()


def test_option_errors(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "a", "ground_truth": "1"}\n')
    with pytest.raises(SystemExit) as exc:
        du.main(["rl", "--hf_dataset", "openai/gsm8k", str(src), str(tmp_path / "o.parquet")])
    assert exc.value.code == 2 and "with --hf_dataset give only the OUTPUT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        du.main(["rl", str(src), str(tmp_path / "o.parquet"), "--hf_config", "main"])
    assert "--hf_config goes with --hf_dataset" in capsys.readouterr().err
    assert du.main(["rl", "--hf_dataset", str(src), str(tmp_path / "o.parquet")]) == 1
    assert "is a file: pass it as INPUT" in capsys.readouterr().err


def test_sft_from_a_dataset_by_name(local, tmp_path):
    out = tmp_path / "sft.parquet"
    assert du.main(["sft", "--hf_dataset", "HuggingFaceH4/ultrachat_200k", "--split", "train_sft", str(out),
                    "--no_progress"]) == 0
    assert [r["messages"] for r in pq.read_table(out).to_pylist()] == [r["messages"] for r in ULTRACHAT]


# ---------------------------------------------------------------- benchmarks


@pytest.fixture(scope="module", autouse=True)
def _stop_math_verifiers():
    yield
    rf.shutdown_verifiers()


# (benchmark, a response that follows the instruction with the right answer, a wrong one)
SCORED = [
    ("gsm8k", "Natalia sold 24 clips in May, 72 in all.\n#### 72", "#### 71"),  # why: "#### N" is what it reads
    ("math500", "So the point is $\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$.", "$\\boxed{(3, \\pi)}$"),
    ("aime24", "Altogether the walk takes $\\boxed{204}$ minutes.", "\\boxed{240}"),
]


@pytest.mark.parametrize("name, right, wrong", SCORED, ids=[c[0] for c in SCORED])
def test_benchmark_rows_match_their_scorer(local, name, right, wrong):
    bench = hd.BENCHMARKS[name]
    rows = hd.benchmark_rows(name)
    published = {"gsm8k": GSM8K[:2], "math500": MATH500, "aime24": AIME24}[name]  # gsm8k: its test split
    assert len(rows) == len(published)
    first = rows[0]
    assert first["prompt"] == published[0][bench.question_field] + " " + bench.instruction
    assert first["data_source"] == bench.data_source
    assert len({r["id"] for r in rows}) == len(rows)
    # The scorer that test.sh uses by default gives the right answer 1 and the wrong one 0.
    assert rf.compute_score(first["data_source"], right, first["ground_truth"])["acc"] == 1.0
    assert rf.compute_score(first["data_source"], wrong, first["ground_truth"])["acc"] == 0.0


def test_benchmark_ids_and_instructions(local):
    assert [r["id"] for r in hd.benchmark_rows("gsm8k")] == ["gsm8k-0000", "gsm8k-0001"]
    assert [r["id"] for r in hd.benchmark_rows("aime24")] == ["aime24-60", "aime24-61"]
    assert hd.benchmark_rows("math500", limit=1)[0]["id"] == "math500-test/precalculus/807.json"
    assert [r["ground_truth"] for r in hd.benchmark_rows("gsm8k")] == ["72", "2400"]
    assert "\\boxed{}" in hd.BENCHMARKS["math500"].instruction and "####" in hd.BENCHMARKS["gsm8k"].instruction


def test_test_sh_benchmark_end_to_end(local, tiny_model_dir, tmp_path):
    out = tmp_path / "gsm8k.json"
    rc = run_test_sh(["--model_path", str(tiny_model_dir), "--benchmark", "gsm8k", "--limit", "2",
                  "--output_file", str(out), *FAST])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["settings"]["input_file"] == "benchmark gsm8k" and report["settings"]["rows"] == 2
    results = report["results"]
    assert [r["id"] for r in results] == ["gsm8k-0000", "gsm8k-0001"]
    assert [r["ground_truth"] for r in results] == ["72", "2400"]
    assert all(r["data_source"] == "openai/gsm8k" and r["prompt"].endswith(du.GSM8K_INSTRUCTION) for r in results)


def test_test_sh_benchmark_errors(tiny_model_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        run_test_sh(["--model_path", str(tiny_model_dir), "--benchmark", "gsm8k", "--input_file", "x.json"])
    assert exc.value.code == 2 and "--benchmark is a --batch input" in capsys.readouterr().err
    # Not cached, offline, no local copy: exit 2 with the one-line explanation.
    rc = run_test_sh(["--model_path", str(tiny_model_dir), "--benchmark", "aime24", *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert "HuggingFaceH4/aime_2024 split 'train': not in the datasets cache" in line and "LOCAL_DATASETS_DIR" in line
