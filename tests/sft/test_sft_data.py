"""SFT data: converters to a `messages` parquet, validation, and verl's MultiTurnSFTDataset loss mask.

    .venv/bin/python -m pytest tests/sft/test_sft_data.py -q
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from common import data_utils as du
from common import make_bundled_data as mbd

U, A, S = "user", "assistant", "system"


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def write(path: Path, rows: list[dict]) -> Path:
    """Write rows as .json (a list), .jsonl or .csv (nested values JSON-encoded in their cell)."""
    if path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        keys = sorted({k for r in rows for k in r})
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for r in rows:
                w.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()})
    return path


CASES = [
    # why: Alpaca with an input: instruction and input joined by a blank line
    ("alpaca", {"instruction": "Add.", "input": "2 and 3", "output": "5"}, [msg(U, "Add.\n\n2 and 3"), msg(A, "5")]),
    # why: Alpaca with an empty input and a system field
    (
        "alpaca",
        {"instruction": "Say hi.", "input": "", "output": "hi", "system": "Be kind."},
        [msg(S, "Be kind."), msg(U, "Say hi."), msg(A, "hi")],
    ),
    # why: ShareGPT roles human/gpt/system mapped, multi-turn kept in order
    (
        "sharegpt",
        {"conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "q1"},
                           {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"},
                           {"from": "gpt", "value": "a2"}]},
        [msg(S, "sys"), msg(U, "q1"), msg(A, "a1"), msg(U, "q2"), msg(A, "a2")],
    ),
    # why: OpenAI messages pass through unchanged
    ("openai", {"messages": [msg(U, "q"), msg(A, "a")]}, [msg(U, "q"), msg(A, "a")]),
    # why: prompt/response pairs
    ("pair", {"prompt": "p", "response": "r"}, [msg(U, "p"), msg(A, "r")]),
]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
@pytest.mark.parametrize("fmt, record, expected", CASES)
def test_converters_autodetect_each_format_from_each_file_type(tmp_path, suffix, fmt, record, expected):
    src = write(tmp_path / f"in{suffix}", [record, record])
    out = tmp_path / "out.parquet"
    report = du.sft_to_parquet(src, out, progress=False)
    assert report.formats == {fmt: 2}
    assert (report.rows_written, report.rows_rejected) == (2, 0)
    assert pq.read_table(out).to_pylist()[0]["messages"] == expected


def test_format_override_and_system_prompt(tmp_path):
    # A file with both `prompt`/`response` and `messages`: auto picks openai, the override picks pair.
    rows = [{"prompt": "p", "response": "r", "messages": [msg(U, "q"), msg(A, "a")]}]
    src = write(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.parquet"
    du.sft_to_parquet(src, out, progress=False)
    assert pq.read_table(out).to_pylist()[0]["messages"] == [msg(U, "q"), msg(A, "a")]
    du.sft_to_parquet(src, out, fmt="pair", system_prompt="Sys.", progress=False)
    assert pq.read_table(out).to_pylist()[0]["messages"] == [msg(S, "Sys."), msg(U, "p"), msg(A, "r")]


def test_unknown_format_is_a_clear_error(tmp_path):
    src = write(tmp_path / "in.jsonl", [{"text": "hello"}])
    with pytest.raises(du.DataError, match="cannot tell the SFT format.*pass --format"):
        du.sft_to_parquet(src, tmp_path / "out.parquet", progress=False)
    assert du.main(["sft", str(src), str(tmp_path / "out.parquet"), "--no_progress"]) == 1
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([msg(U, "q"), msg(A, "  ")], "turn 2: empty content"),  # why: whitespace-only answer teaches nothing
        ([msg("bot", "q"), msg(A, "a")], "turn 1: unknown role 'bot'"),  # why: the chat template has no such role
        ([msg(U, "q"), msg(A, "a"), msg(U, "q2")], "ends with 'user'"),  # why: trailing turn is never trained on
        ([msg(S, "s"), msg(U, "q")], "no assistant turn"),  # why: nothing to learn from
        ([msg(U, "q"), msg(S, "s"), msg(A, "a")], "system message not first"),  # why: templates put it first
        ([], "no messages"),  # why: an empty conversation
        ([msg(U, "q"), {"role": A, "content": 3}], "content must be text"),  # why: the tokenizer needs text
    ],
)
def test_check_messages(messages, problem):
    assert any(problem in p for p in du.check_messages(messages)), du.check_messages(messages)


def test_bad_rows_reported_by_number_and_validate(tmp_path):
    rows = [
        {"messages": [msg(U, "q"), msg(A, "a")]},
        {"messages": [msg(U, "q"), msg(A, "")]},
        {"messages": [msg(U, "q")]},
        {"messages": [msg(U, "q2"), msg(A, "a2")]},
    ]
    src = write(tmp_path / "in.json", rows)
    out = tmp_path / "out.parquet"
    report = du.sft_to_parquet(src, out, progress=False)
    assert (report.rows_in, report.rows_written) == (4, 2)
    assert report.rejected == [("row 2", "turn 2: empty content"), ("row 3", "no assistant turn")]
    with pytest.raises(du.DataError, match="--strict"):
        du.sft_to_parquet(src, tmp_path / "strict.parquet", strict=True, progress=False)
    assert not (tmp_path / "strict.parquet").exists()
    # validate reads the JSON directly and reports the same rows; the converted parquet is clean.
    assert [w for w, _ in du.validate_file(src, progress=False).rejected] == ["row 2", "row 3"]
    assert du.validate_file(out, progress=False).rejected == []
    assert du.main(["validate", str(src), "--no_progress"]) == 1
    assert du.main(["validate", str(out), "--no_progress"]) == 0


def test_sharegpt_unknown_role_rejected(tmp_path):
    src = write(tmp_path / "in.jsonl", [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "narrator", "value": "q"}, {"from": "gpt", "value": "a"}]},
    ])
    report = du.sft_to_parquet(src, tmp_path / "out.parquet", progress=False)
    assert report.rows_written == 1
    assert report.rejected[0][0] == "line 2" and "unknown role 'narrator'" in report.rejected[0][1]


# ---------------------------------------------------------------- verl's SFT dataset


def sft_dataset(path: Path, tokenizer, **over):
    """The dataset verl.trainer.sft_trainer builds for `messages` data, with its config keys."""
    from omegaconf import OmegaConf

    from verl.trainer.sft_trainer import create_sft_dataset

    cfg = OmegaConf.create({
        "messages_key": "messages", "pad_mode": "no_padding", "max_length": 1024, "truncation": "error",
        "custom_cls": {"path": None, "name": None}, "apply_chat_template_kwargs": {}, **over,
    })
    return create_sft_dataset(str(path), cfg, tokenizer, processor=None)


def masked_spans(tokenizer, item) -> list[str]:
    """Decode each contiguous run of loss_mask == 1."""
    spans, cur = [], []
    for tok, m in zip(item["input_ids"].tolist(), item["loss_mask"].tolist(), strict=True):
        if m:
            cur.append(tok)
        elif cur:
            spans.append(cur)
            cur = []
    if cur:
        spans.append(cur)
    return [tokenizer.decode(s) for s in spans]


def expected_spans(messages: list[dict]) -> list[str]:
    # Each assistant turn is trained on its content and the end-of-turn token; "<|im_start|>assistant\n"
    # (the generation prompt) is masked out. verl tokenizes turn by turn, so the template's "\n"
    # after <|im_end|> belongs to the assistant turn and is trained on too.
    return [m["content"] + "<|im_end|>\n" for m in messages if m["role"] == "assistant"]


def test_loss_mask_covers_exactly_the_assistant_tokens(tmp_path, tiny_tokenizer):
    conversation = [
        msg(S, "You are a careful math tutor."),
        msg(U, "Tom has 3 apples and buys 4 more. How many?"),
        msg(A, "3 + 4 = 7.\n#### 7"),
        msg(U, "What is that answer times 2?"),
        msg(A, "7 * 2 = 14.\n#### 14"),
    ]
    src = write(tmp_path / "in.jsonl", [{"conversations": [
        {"from": {S: "system", U: "human", A: "gpt"}[m["role"]], "value": m["content"]} for m in conversation
    ]}])
    out = tmp_path / "out.parquet"
    du.sft_to_parquet(src, out, progress=False)
    for pad_mode in ("no_padding", "right"):
        ds = sft_dataset(out, tiny_tokenizer, pad_mode=pad_mode, max_length=256)
        item = ds[0]
        assert masked_spans(tiny_tokenizer, item) == expected_spans(conversation), pad_mode
        n_real = int(item["attention_mask"].sum()) if "attention_mask" in item else len(item["input_ids"])
        text = tiny_tokenizer.decode(item["input_ids"][:n_real])
        assert text == tiny_tokenizer.apply_chat_template(conversation, tokenize=False)


def test_bundled_sft_data_trains_on_assistant_turns_only(repo_root, tiny_tokenizer):
    for split, n in (("train", mbd.SFT_TRAIN), ("val", mbd.SFT_VAL)):
        path = repo_root / "sft" / "data" / f"{split}.parquet"
        assert du.validate_file(path, progress=False).rejected == []
        ds = sft_dataset(path, tiny_tokenizer)
        assert len(ds) == n
        rows = pq.read_table(path).to_pylist()
        # The first few rows plus the first multi-turn and the first system-prompt conversation.
        picks = list(range(5))
        picks.append(next(i for i, r in enumerate(rows) if len(r["messages"]) > 3))
        picks.append(next(i for i, r in enumerate(rows) if r["messages"][0]["role"] == "system"))
        for i in picks:
            spans = masked_spans(tiny_tokenizer, ds[i])
            assert spans == expected_spans(rows[i]["messages"]), i
            assert spans[0].rstrip().endswith("<|im_end|>") and "#### " in spans[0]
