"""After the rehearsal's step: merge its checkpoint to Hugging Face format and score it with ./test.sh.

    code = merge_and_score(plan, cfg, settings, result, print)

Offers:
- merge_and_score(plan, cfg, settings, result, out) -> (exit code, {merged_model, eval_report}): merges the actor checkpoint with
  verl's model merger (common/evaluation/checkpoint.py: FSDPModelMerger, LoRA folded in), then runs
  what `./test.sh --model_path <merged> --batch --input_file VAL_DATA --limit N` runs
  (common.test_model.main, in this process) into <rehearsal folder>/eval.json. 0 when the merged
  model loads and is scored, 1 otherwise (the message says which step failed).
- sft_eval_rows(parquet, limit, out_path): an SFT validation file (`messages`) as test.sh input:
  the conversation up to its last user turn is the prompt, the '#### <answer>' that ends the last
  assistant turn the reference (conversations without one are not scored).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Longest answer test.sh generates per row in the rehearsal: enough to show the model loads and talks.
EVAL_MAX_NEW_TOKENS = 32


def sft_eval_rows(parquet: str, limit: int, out_path: Path) -> Path | None:
    """The first `limit` conversations whose last assistant turn ends in '#### <answer>' (the bundled
    format, which the project's reward scores) as test.sh rows; None when there is none."""
    import pandas as pd

    rows = []
    for index, messages in enumerate(pd.read_parquet(parquet, columns=["messages"])["messages"]):
        if len(rows) == limit:
            break
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
        if last_user is None:
            continue
        answer = next((m["content"] for m in messages[last_user + 1:] if m["role"] == "assistant"), "")
        if "####" not in answer:
            continue
        rows.append({"id": index, "prompt": messages[: last_user + 1], "ground_truth": answer.rsplit("####", 1)[1].strip(),
                     "data_source": "openai/gsm8k"})
    if not rows:
        return None
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, out_path)
    return out_path


def _val_file(plan, cfg, settings) -> Path | None:
    files = cfg.data.get("val_files")
    files = [files] if isinstance(files, str) else list(files or [])
    if not files:
        return None
    if plan.trainer == "sft":
        return sft_eval_rows(files[0], settings.eval_rows, settings.folder / "eval_input.json")
    return Path(files[0])


def merge_and_score(plan, cfg, settings, result, out) -> tuple[int, dict]:
    from common.evaluation.checkpoint import CheckpointError, resolve_model

    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is None:
        out("[rehearsal] no checkpoint was written: nothing to merge")
        return 1, {}
    try:
        resolved = resolve_model(str(checkpoint))
    except CheckpointError as exc:
        out(f"[rehearsal] merge to Hugging Face format FAILED: {exc}")
        return 1, {}
    info = {"merged_model": resolved.hf_path}
    out(f"[rehearsal] checkpoint {checkpoint} merged by verl's model merger into {resolved.hf_path}")
    if settings.eval_rows == 0:
        out("[rehearsal] REHEARSAL_EVAL_ROWS=0: test.sh not run")
        return 0, info
    val = _val_file(plan, cfg, settings)
    if val is None:
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(resolved.hf_path)
        out("[rehearsal] the merged model loads; test.sh not run: no VAL_DATA rows with an answer to score")
        return 0, info
    report = settings.folder / "eval.json"
    argv = ["--model_path", resolved.hf_path, "--batch", "--input_file", str(val), "--limit", str(settings.eval_rows),
            "--output_file", str(report), "--max_new_tokens", str(EVAL_MAX_NEW_TOKENS),
            "--device", "cpu" if settings.device == "cpu" else "auto",
            "--batch_size", str(settings.eval_rows), "-q"]
    out("[rehearsal] ./test.sh " + " ".join(argv))
    from common.test_model import main as test_model

    code = test_model(argv)
    if code != 0 or not report.is_file():
        out(f"[rehearsal] test.sh on the merged model FAILED (exit {code})")
        return 1, info
    summary = json.loads(report.read_text()).get("summary", [{}])[0]
    shown = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out(f"[rehearsal] test.sh scored the merged model on {settings.eval_rows} VAL_DATA row(s): "
        + ", ".join(f"{k}={v:g}" for k, v in list(shown.items())[:6]) + f" (report {report})")
    info["eval_report"] = str(report)
    return 0, info
