"""Datasets by name: the Hugging Face hub (through the `datasets` cache) or a local copy.

    python -m common.data_utils rl --hf_dataset openai/gsm8k --split train grpo/data/gsm8k_train.parquet
    ./test.sh --model_path PATH --benchmark gsm8k          # also math500, aime24

Offers:
- load_by_name(name, config=None, split="train") -> datasets.Dataset, looked up in this order:
  1. `name` is a local folder: one written by `save_to_disk` (a Dataset, or a DatasetDict whose
     `split` is taken), or a folder of parquet/JSON/CSV files `datasets` can load;
  2. $LOCAL_DATASETS_DIR/<name>[/<config>]: the same, under a shared folder that mirrors hub ids
     (for clusters without internet);
  3. `datasets.load_dataset(name, config, split=split)`: the hub, or its cache
     ($HF_DATASETS_CACHE) when offline (HF_HUB_OFFLINE=1) or the hub is unreachable (a
     3-second connection probe decides, so an uncached name fails at once instead of retrying).
  Anything missing is one HubDataError line: the name, that the hub is not reachable (or the
  dataset, config or split does not exist), and how to use a local copy.
- HubSource(name, config=None, split="train"): a dataset by name as a record source for
  common.data_utils.json_to_parquet / sft_to_parquet (`name`, `records(progress, desc)`).
- KNOWN_DATASETS / known_dataset(name): hub ids this project knows, with their config, default
  split, the data_utils preset that reads their rows and the data_source the scorer dispatches on.
- BENCHMARKS: gsm8k, math500, aime24 -> Benchmark (hub id, config, split, fields, data_source,
  instruction); benchmark_rows(name) -> [{id, prompt, ground_truth, data_source}] (the batch
  evaluator's row shape); load_benchmark(name, limit=None) -> [common.evaluation.inputs.EvalRow].

Field names of the standard sets (their dataset cards on the hub):
- openai/gsm8k, config "main", splits train/test: question, answer ("... #### 72").
- HuggingFaceH4/MATH-500, split test: problem, solution, answer, subject, level, unique_id.
- HuggingFaceH4/aime_2024, split train (30 problems of AIME 2024 I and II): id, problem,
  solution, answer, url, year.

Nothing here downloads at import; `datasets` is imported on first use.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.data_io import DataError
from common.math_formats import GSM8K_INSTRUCTION, MATH_INSTRUCTION, extract_hash_answer

# The shared folder of local copies, laid out like hub ids: $LOCAL_DATASETS_DIR/openai/gsm8k.
LOCAL_DIR_ENV = "LOCAL_DATASETS_DIR"
# Rows per Arrow batch when streaming a dataset: the same row-group size data_utils writes.
READ_BATCH = 1024


class HubDataError(DataError, ValueError):
    """A dataset by name cannot be loaded; the message names it and says how to get it."""


@dataclass(frozen=True)
class KnownDataset:
    """A hub dataset this project knows: where its rows are and how data_utils reads them."""

    config: str | None
    split: str
    preset: str
    data_source: str


KNOWN_DATASETS = {
    "openai/gsm8k": KnownDataset("main", "train", "gsm8k", "openai/gsm8k"),
    "HuggingFaceH4/MATH-500": KnownDataset(None, "test", "math", "HuggingFaceH4/MATH-500"),
    "HuggingFaceH4/aime_2024": KnownDataset(None, "train", "math", "aime24"),
}


def known_dataset(name: str) -> KnownDataset | None:
    """The KNOWN_DATASETS entry for a hub id (case-insensitive), else None."""
    for key, value in KNOWN_DATASETS.items():
        if key.lower() == name.lower():
            return value
    return None


@dataclass(frozen=True)
class Benchmark:
    """A standard test set: where it lives, which fields hold the question and the answer, and
    the data_source and instruction that make common.reward_functions score it correctly."""

    hub_id: str
    config: str | None
    split: str
    question_field: str
    answer_field: str
    # "hash": the answer is GSM8K's worked solution ending in "#### N"; "plain": the answer itself.
    answer_kind: str
    data_source: str
    instruction: str
    id_field: str | None


BENCHMARKS = {
    "gsm8k": Benchmark("openai/gsm8k", "main", "test", "question", "answer", "hash", "openai/gsm8k",
                       GSM8K_INSTRUCTION, None),
    "math500": Benchmark("HuggingFaceH4/MATH-500", None, "test", "problem", "answer", "plain",
                         "HuggingFaceH4/MATH-500", MATH_INSTRUCTION, "unique_id"),
    "aime24": Benchmark("HuggingFaceH4/aime_2024", None, "train", "problem", "answer", "plain", "aime24",
                        MATH_INSTRUCTION, "id"),
}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _label(name: str, config: str | None, split: str) -> str:
    return f"{name}" + (f" (config {config})" if config else "") + f" split {split!r}"


def _pick_split(data: Any, name: str, split: str, where: Path) -> Any:
    """The requested split of a DatasetDict loaded from disk; a single Dataset is used as is."""
    from datasets import DatasetDict

    if not isinstance(data, DatasetDict):
        return data
    if split not in data:
        raise HubDataError(
            f"{name}: the local copy {where} has no split {split!r} (it has: {', '.join(data)}); pass --split"
        )
    return data[split]


def _load_local(folder: Path, name: str, split: str) -> Any:
    """A save_to_disk folder, or a folder of data files `datasets` can read."""
    import datasets

    try:
        if (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file():
            return _pick_split(datasets.load_from_disk(str(folder)), name, split, folder)
        return datasets.load_dataset(str(folder), split=split)
    except HubDataError:
        raise
    except (ValueError, FileNotFoundError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HubDataError(f"{name}: cannot read the local copy {folder} ({first})") from None


def _local_copy(name: str, config: str | None) -> Path | None:
    """The folder holding a local copy of `name`: the path itself, or under $LOCAL_DATASETS_DIR."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise HubDataError(f"{name} is a file: pass it as INPUT (not --hf_dataset), or give a dataset folder")
    root = os.environ.get(LOCAL_DIR_ENV)
    if root:
        base = Path(root).expanduser() / name
        for folder in ([base / config] if config else []) + [base]:
            if folder.is_dir():
                return folder
    return None


def _offline() -> bool:
    import datasets.config

    return bool(datasets.config.HF_HUB_OFFLINE)


# How long the reachability probe waits for the hub; a hub that cannot be reached is not asked
# (huggingface_hub retries each request 5 times with backoff, ~25 s before the cache is tried).
HUB_PROBE_TIMEOUT_S = 3.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _hub_unreachable() -> bool:
    """True when the hub's host ($HF_ENDPOINT) cannot be connected to within HUB_PROBE_TIMEOUT_S;
    False behind a proxy (only the proxy can tell)."""
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return False
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except (OSError, UnicodeError):
        return True
    return False


@contextlib.contextmanager
def _offline_mode(on: bool) -> Iterator[None]:
    """HF_HUB_OFFLINE for this call only: `datasets` then reads its cache without asking the hub."""
    import datasets.config
    from huggingface_hub import constants

    old = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    if on:
        datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = old


def _unreachable(name: str, config: str | None, split: str) -> HubDataError:
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if _offline() else "the Hugging Face hub is not reachable"
    import datasets.config

    cfg = f", {config!r}" if config else ""
    root = os.environ.get(LOCAL_DIR_ENV)
    mirror = f", no copy in ${LOCAL_DIR_ENV}/{name}" if root else ""
    return HubDataError(
        f"{_label(name, config, split)}: not in the datasets cache ({datasets.config.HF_DATASETS_CACHE}){mirror} "
        f"and {why}. "
        f"Load it once on a machine with internet (python -c \"import datasets; datasets.load_dataset('{name}'{cfg})\") "
        f"and copy the cache, or save a local copy with .save_to_disk(\"$LOCAL_DATASETS_DIR/{name}\") and set "
        f"{LOCAL_DIR_ENV}, or pass the copy's folder as the name"
    )


def load_by_name(name: str, config: str | None = None, split: str = "train") -> Any:
    """A datasets.Dataset by hub id or local folder (see the module docstring for the order)."""
    if not name or not name.strip():
        raise HubDataError("--hf_dataset: empty name; give a hub id such as openai/gsm8k or a local folder")
    try:
        import datasets
        from datasets.exceptions import DatasetNotFoundError
    except ImportError:
        raise HubDataError(f"{name}: reading datasets by name needs the `datasets` package (pip install datasets)") from None

    local = _local_copy(name, config)
    if local is not None:
        return _load_local(local, name, split)
    try:
        with _offline_mode(not _offline() and _hub_unreachable()):
            return datasets.load_dataset(name, config, split=split)
    except ConnectionError:
        raise _unreachable(name, config, split) from None
    except DatasetNotFoundError as e:
        first = str(e).strip().splitlines()[0]
        raise HubDataError(
            f"{name}: {first} Check the name (owner/dataset, as on huggingface.co/datasets); for a gated set "
            "log in with `hf auth login`"
        ) from None
    except FileNotFoundError:
        # Offline and not cached; or a relative name that is neither a folder nor a hub id.
        raise _unreachable(name, config, split) from None
    except ValueError as e:
        text = " ".join(str(e).split())
        if "Unknown split" in text or "Bad split" in text:
            raise HubDataError(f"{_label(name, config, split)}: no such split ({text}); pass --split") from None
        if "onfig" in text:
            raise HubDataError(f"{name}: {text[:300]}; pass --hf_config") from None
        if "Couldn't find cache" in text:
            raise _unreachable(name, config, split) from None
        raise HubDataError(f"{_label(name, config, split)}: {text[:300]}") from None


class HubSource:
    """A dataset by name as a record source for data_utils: `name` and `records(progress, desc)`.

    The dataset is loaded (or found in the cache) at construction, so a missing dataset is an
    error before anything else happens. Rows are streamed from its Arrow table in batches.
    """

    def __init__(self, name: str, config: str | None = None, split: str = "train"):
        self.dataset = load_by_name(name, config, split)
        self.name = _label(name, config, split)

    def __len__(self) -> int:
        return len(self.dataset)

    def records(self, progress: bool = False, desc: str = "read") -> Iterator[tuple[str, Any]]:
        arrow = self.dataset.with_format("arrow")
        i = 0
        with tqdm(total=len(self.dataset), desc=desc, disable=not progress, unit="row") as bar:
            for table in arrow.iter(batch_size=READ_BATCH):
                rows = table.to_pylist()
                for rec in rows:
                    i += 1
                    yield f"row {i}", rec
                bar.update(len(rows))


# --------------------------------------------------------------------------------------------
# Benchmarks for ./test.sh --benchmark
# --------------------------------------------------------------------------------------------


def benchmark_rows(name: str, limit: int | None = None) -> list[dict]:
    """The benchmark's rows as {id, prompt, ground_truth, data_source}: the prompt is the question
    followed by the instruction its scorer needs ("#### N" for gsm8k, \\boxed{} for math)."""
    if name not in BENCHMARKS:
        raise HubDataError(f"--benchmark {name!r}: use one of {', '.join(BENCHMARKS)}")
    bench = BENCHMARKS[name]
    source = HubSource(bench.hub_id, bench.config, bench.split)
    rows = []
    for where, rec in source.records():
        if limit is not None and len(rows) >= limit:
            break
        missing = [f for f in (bench.question_field, bench.answer_field) if rec.get(f) in (None, "")]
        if missing:
            raise HubDataError(
                f"{source.name}: {where} has no {missing[0]!r} (fields: {sorted(rec)[:10]}); "
                f"the copy is not {bench.hub_id} as published"
            )
        answer = rec[bench.answer_field]
        truth = extract_hash_answer(answer) if bench.answer_kind == "hash" else str(answer).strip()
        if not truth:
            raise HubDataError(f"{source.name}: {where}: no final answer in {bench.answer_field!r} ({str(answer)[-60:]!r})")
        raw_id = rec.get(bench.id_field) if bench.id_field else None
        rows.append({
            "id": f"{name}-{raw_id if raw_id is not None else f'{len(rows):04d}'}",
            "prompt": f"{str(rec[bench.question_field]).strip()} {bench.instruction}",
            "ground_truth": truth,
            "data_source": bench.data_source,
        })
    if not rows:
        raise HubDataError(f"{source.name}: no rows")
    return rows


def load_benchmark(name: str, limit: int | None = None) -> list[Any]:
    """benchmark_rows as the batch evaluator's EvalRow objects (common.evaluation.inputs)."""
    from common.evaluation.inputs import EvalRow

    return [
        EvalRow(id=r["id"], messages=[{"role": "user", "content": r["prompt"]}], ground_truth=r["ground_truth"],
                data_source=r["data_source"], extra_info={"benchmark": name})
        for r in benchmark_rows(name, limit)
    ]
