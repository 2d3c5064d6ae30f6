"""The data files: they exist, are parquet with verl's columns, hold a batch, and their prompts fit.

Offers:
- files_of(value): a data.train_files / val_files value as a list of paths.
- data_checks(plan, cfg, ctx): TRAIN_DATA and VAL_DATA exist, are readable parquet with verl's
  columns and types, and the train file holds at least one batch (else verl divides by zero).
- sample_table(files, columns, limit): up to `limit` rows spread over the files (seeded).
- prompt_length_checks(plan, cfg, ctx): a sample tokenized with the model's chat template and the
  run's data.apply_chat_template_kwargs (CHAT_TEMPLATE_KWARGS, as verl's datasets pass them) against
  MAX_PROMPT_LENGTH (RL) or MAX_LENGTH (SFT); template arguments that change nothing are a warning.
- template_kwargs(cfg): data.apply_chat_template_kwargs as verl's RLHFDataset passes them on
  (tokenize, return_dict, return_tensors dropped: utils/dataset/rl_dataset.py doc2len).
"""

from __future__ import annotations

from pathlib import Path

from common.checks.model import model_path
from common.checks.result import Result, file_problem


# Rows tokenized to measure prompt lengths: 2,000 rows give the 99th percentile within ~0.5%
# and take ~1 s with a fast tokenizer; larger files are sampled (seeded) rather than read whole.
PROMPT_SAMPLE_ROWS = 2000


def files_of(value) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


_RL_TYPES = {
    "data_source": "string",
    "prompt": "list of {role, content}",
    "reward_model": "struct with ground_truth",
}


def _rl_schema_problems(schema) -> list[str]:
    import pyarrow as pa

    problems = []
    names = set(schema.names)
    for col, want in _RL_TYPES.items():
        if col not in names:
            problems.append(f"column '{col}' is missing (want {want})")
    if "data_source" in names and not pa.types.is_string(schema.field("data_source").type) and not pa.types.is_large_string(schema.field("data_source").type):
        problems.append(f"column 'data_source' is {schema.field('data_source').type}, not a string")
    if "prompt" in names:
        t = schema.field("prompt").type
        ok = pa.types.is_list(t) or pa.types.is_large_list(t)
        if ok:
            inner = t.value_type
            ok = pa.types.is_struct(inner) and {"role", "content"} <= {f.name for f in inner}
        if not ok:
            problems.append(f"column 'prompt' is {t}, not a list of {{role, content}} messages")
    if "reward_model" in names:
        t = schema.field("reward_model").type
        if not (pa.types.is_struct(t) and "ground_truth" in {f.name for f in t}):
            problems.append(f"column 'reward_model' is {t}, not a struct with ground_truth")
    return problems


def _sft_schema_problems(schema, messages_key: str) -> list[str]:
    import pyarrow as pa

    if messages_key not in schema.names:
        return [f"column '{messages_key}' is missing (verl's SFT trainer reads a list of {{role, content}} messages)"]
    t = schema.field(messages_key).type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)) or not pa.types.is_struct(t.value_type):
        return [f"column '{messages_key}' is {t}, not a list of {{role, content}} messages"]
    return []


def data_checks(plan, cfg, ctx) -> list[Result]:
    """Files exist, are parquet with verl's columns and types, and hold at least one batch."""
    import pyarrow.parquet as pq

    results: list[Result] = []
    batch = int(cfg.data.train_batch_size)
    messages_key = str(cfg.data.get("messages_key", "messages")) if plan.trainer == "sft" else ""
    for knob, key in (("TRAIN_DATA", "train_files"), ("VAL_DATA", "val_files")):
        files = files_of(cfg.data.get(key))
        if not files:
            results.append(Result.fail("data", f"{knob} is not set (data.{key})", knob))
            continue
        rows = 0
        for f in files:
            if "://" in f:
                results.append(Result.skip("data", f"{knob}: {f} is remote; not checked"))
                continue
            problem = file_problem(f)
            if problem:
                results.append(Result.fail("data", f"{knob}: {f} {problem} (relative paths are taken from the method folder)", knob))
                continue
            try:
                meta = pq.ParquetFile(f)
            except Exception as exc:
                results.append(Result.fail("data", f"{knob}: {f} is not a readable parquet file ({type(exc).__name__}: {exc}); "
                                     "convert it with `python -m common.data_utils rl|sft IN OUT`", knob))
                continue
            schema = meta.schema_arrow
            problems = _sft_schema_problems(schema, messages_key) if plan.trainer == "sft" else _rl_schema_problems(schema)
            if problems:
                results.append(Result.fail("data", f"{knob}: {f}: " + "; ".join(problems)
                                     + "; convert it with `python -m common.data_utils`", knob))
                continue
            broken = _unreadable_page(meta)
            if broken:
                results.append(Result.fail("data", f"{knob}: {f}: {broken}; the file is damaged (re-copy or re-convert it "
                                           "with `python -m common.data_utils`)", knob))
                continue
            rows += meta.metadata.num_rows
            ctx.setdefault(f"{key}_ok", []).append(f)
        if key == "train_files" and files and ctx.get(f"{key}_ok") and rows < batch:
            results.append(Result.fail("data", f"{knob} has {rows} rows, fewer than TRAIN_BATCH_SIZE ({batch}): verl would "
                                 "run zero steps per epoch and divide by zero after validation", knob, "TRAIN_BATCH_SIZE"))
        elif ctx.get(f"{key}_ok") and rows == 0:
            results.append(Result.fail("data", f"{knob} has no rows", knob))
        elif ctx.get(f"{key}_ok"):
            ctx[f"{key}_rows"] = rows
    if not results:
        results.append(Result.ok("data", f"train {ctx.get('train_files_rows')} rows, val {ctx.get('val_files_rows')} rows, "
                           f"{ctx['train_files_rows'] // batch} steps per epoch"))
    results += _bundled_val_with_own_train(plan, cfg)
    return results


def _unreadable_page(meta) -> str | None:
    """Decode every page (row group by row group): a damaged page fails verl's dataset mid-run.
    Returns where it broke (row group, column) or None. Reading is ~1 s per 100 MB."""
    for group in range(meta.num_row_groups):
        try:
            meta.read_row_group(group)
        except Exception as exc:  # ArrowInvalid, OSError (decompression), ...
            column = next((name for name in meta.schema_arrow.names if not _column_reads(meta, group, name)), "?")
            return (f"row group {group} of {meta.num_row_groups}, column '{column}' cannot be read "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
    return None


def _column_reads(meta, group: int, name: str) -> bool:
    try:
        meta.read_row_group(group, columns=[name])
        return True
    except Exception:
        return False


def _bundled_val_with_own_train(plan, cfg) -> list[Result]:
    """Your TRAIN_DATA with VAL_DATA left at the bundled synthetic set validates on the wrong task."""
    bundled = plan.method_dir / "data"
    train = [Path(f).resolve() for f in files_of(cfg.data.get("train_files")) if "://" not in f]
    val = [Path(f).resolve() for f in files_of(cfg.data.get("val_files")) if "://" not in f]
    own_train = any(f.parent != bundled.resolve() for f in train)
    bundled_val = val and all(f.parent == bundled.resolve() for f in val)
    if own_train and bundled_val:
        return [Result.warn("data", f"TRAIN_DATA is your file but VAL_DATA is still the bundled synthetic set ({val[0]}): "
                            "validation scores would measure grade-school arithmetic, not your task. Set VAL_DATA to a "
                            "held-out split of your data", "VAL_DATA")]
    return []


def sample_table(files: list[str], columns: list[str], limit: int):
    """Up to `limit` rows of the given columns, spread over the file (seeded), read by row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for f in files:
        pf = pq.ParquetFile(f)
        cols = [c for c in columns if c in pf.schema_arrow.names]
        groups = list(range(pf.num_row_groups))
        # Every k-th row group: a spread sample without reading a 100k-row file whole.
        step = max(1, len(groups) * pf.metadata.num_rows // max(1, limit) // max(1, pf.metadata.num_rows))
        tables.append(pf.read_row_groups(groups[::step] or [0], columns=cols))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if table.num_rows > limit:
        import random

        idx = sorted(random.Random(0).sample(range(table.num_rows), limit))
        table = table.take(idx)
    return table


def template_kwargs(cfg) -> dict:
    from omegaconf import OmegaConf

    raw = cfg.data.get("apply_chat_template_kwargs") or {}
    kwargs = OmegaConf.to_container(raw, resolve=True) if OmegaConf.is_config(raw) else dict(raw)
    for key in ("tokenize", "return_dict", "return_tensors"):
        kwargs.pop(key, None)
    return kwargs


def _ids(tok, messages, generation: bool, kwargs: dict) -> list:
    ids = tok.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True, **kwargs)
    if hasattr(ids, "keys") and "input_ids" in ids:  # transformers 5 returns a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def prompt_length_checks(plan, cfg, ctx) -> list[Result]:
    """Tokenize a sample with the model's chat template and CHAT_TEMPLATE_KWARGS: how many exceed the limit."""
    files = ctx.get("train_files_ok", [])
    if not files:
        return []
    tok = ctx.get("tokenizer")
    if tok is None:
        return [Result.skip("prompt lengths", f"tokenizer of {model_path(plan, cfg)} not on disk here: prompt lengths not measured")]
    if plan.trainer == "sft":
        key, limit, knob = str(cfg.data.get("messages_key", "messages")), int(cfg.data.max_length), "MAX_LENGTH"
    else:
        key, limit, knob = str(cfg.data.get("prompt_key", "prompt")), int(cfg.data.max_prompt_length), "MAX_PROMPT_LENGTH"
    table = sample_table(files, [key], PROMPT_SAMPLE_ROWS)
    kwargs = template_kwargs(cfg)
    generation = plan.trainer == "rl"
    lengths = []
    for messages in table.column(key).to_pylist():
        try:
            lengths.append(len(_ids(tok, messages, generation, kwargs)))
        except Exception as exc:
            knobs = ("MODEL_PATH", "CHAT_TEMPLATE_KWARGS") if kwargs else ("MODEL_PATH",)
            extra = f" with CHAT_TEMPLATE_KWARGS {kwargs}" if kwargs else ""
            return [Result.fail("prompt lengths", f"the model's chat template fails on a {key} row of {files[0]}{extra}: {exc}",
                                *knobs)]
    if not lengths:
        return []
    results = []
    if kwargs:
        first = table.column(key).to_pylist()[0]
        if _ids(tok, first, generation, kwargs) == _ids(tok, first, generation, {}):
            # e.g. enable_thinking on a template that never reads it: the knob does nothing.
            results.append(Result.warn("chat template", f"CHAT_TEMPLATE_KWARGS {kwargs} does not change what the model's chat "
                                       f"template renders (a {key} row of {files[0]}): the template does not read these "
                                       "arguments", "CHAT_TEMPLATE_KWARGS"))
        else:
            results.append(Result.ok("chat template", f"rendered with CHAT_TEMPLATE_KWARGS {kwargs}, as verl's dataset does"))
    lengths.sort()
    over = sum(1 for n in lengths if n > limit)
    p99 = lengths[min(len(lengths) - 1, int(0.99 * len(lengths)))]
    suggest = 1 << (p99 - 1).bit_length() if p99 > 0 else p99  # next power of two keeps batches aligned
    sampled = f"{len(lengths)} sampled rows" if len(lengths) < ctx.get("train_files_rows", 0) else f"all {len(lengths)} rows"
    what = "conversations" if plan.trainer == "sft" else "prompts"
    verb = "are cut by verl's SFT dataset" if plan.trainer == "sft" else "are cut from the left without a word by verl"
    if over:
        pct = 100.0 * over / len(lengths)
        status = Result.fail if pct > 1.0 else Result.warn
        return results + [status("prompt lengths", f"{over} of {sampled} ({pct:.1f}%) {what} exceed {knob}={limit} tokens and "
                                 f"{verb}; longest {lengths[-1]}, 99th percentile {p99}: set {knob}={suggest} to keep 99%", knob)]
    return results + [Result.ok("prompt lengths", f"{sampled}: longest {lengths[-1]} tokens <= {knob}={limit} "
                                f"(99th percentile {p99})")]
