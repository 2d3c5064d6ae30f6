"""--model_path on real verl FSDP checkpoints: resolution, one-time merge, cache reuse, LoRA.

    .venv/bin/python -m pytest tests/common/test_test_model_checkpoint.py -q

The checkpoints are written by verl's own FSDPCheckpointManager around a torch FSDP2
(fully_shard) model on a gloo process group, world size 1, on CPU: the same files a training
run writes. Building them runs in a subprocess (a process group per test run would leak into
other tests):

    python -m tests.common.test_test_model_checkpoint OUT_DIR [--lora]
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from common.evaluation.checkpoint import (
    CheckpointError,
    find_run_dir,
    merged_folder_problem,
    resolve_model,
    run_chat_template_kwargs,
)
from common.test_model import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def build_checkpoints(out: Path, lora: bool) -> None:
    """Experiment folder with global_step_1 and global_step_2 (weights differ), tracker -> 2."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000), RANK="0",
                      WORLD_SIZE="1", LOCAL_RANK="0")
    import torch.distributed as dist
    from omegaconf import OmegaConf
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.tiny_model import build_tiny_model
    from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager

    base = build_tiny_model(out / "base_model")
    dist.init_process_group("gloo", rank=0, world_size=1)
    mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("fsdp",))
    model = AutoModelForCausalLM.from_pretrained(base)
    layers = model.model.layers
    if lora:
        import peft

        model = peft.get_peft_model(
            model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        )
        torch.manual_seed(1)
        for name, p in model.named_parameters():
            if "lora_B" in name:  # peft starts B at 0 (a no-op adapter); make the adapter matter
                p.data.normal_(0, 0.5)
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    contents = ["model", "optimizer", "extra"]
    manager = FSDPCheckpointManager(
        model=model, optimizer=optim, lr_scheduler=None, processing_class=AutoTokenizer.from_pretrained(base),
        checkpoint_config=OmegaConf.create({"save_contents": contents, "load_contents": contents}),
    )
    exp = out / "experiment"
    for step in (1, 2):
        manager.save_checkpoint(str(exp / f"global_step_{step}" / "actor"), global_step=step)
        with torch.no_grad():  # one fake "training step" so step 2 differs from step 1
            for p in model.parameters():
                p.add_(0.01)
    # The trainer (not the manager) writes the tracker: trainer/ppo/ray_trainer.py
    (exp / "latest_checkpointed_iteration.txt").write_text("2")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("ckpt"), lora=False)


def _build(out: Path, lora: bool) -> Path:
    args = [sys.executable, "-m", "tests.common.test_test_model_checkpoint", str(out)] + (["--lora"] if lora else [])
    proc = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "experiment"


def _sharded_weights(actor: Path) -> dict[str, torch.Tensor]:
    state = torch.load(actor / "model_world_size_1_rank_0.pt", map_location="cpu", weights_only=False)
    return {k: (v.to_local() if hasattr(v, "to_local") else v).float() for k, v in state.items()}


def test_experiment_folder_merges_latest_step_once(experiment, monkeypatch):
    first = resolve_model(str(experiment))
    actor = experiment / "global_step_2" / "actor"
    assert first.merged_now and Path(first.hf_path) == actor / "huggingface_merged"
    assert first.label == "experiment/global_step_2"
    merged = load_file(Path(first.hf_path) / "model.safetensors")
    source = _sharded_weights(actor)
    key = "model.layers.0.self_attn.q_proj.weight"
    # verl's merger stores bf16: equal to the step-2 shard up to bf16 rounding (8 bits of mantissa)
    torch.testing.assert_close(merged[key].float(), source[key], atol=1e-2, rtol=1e-2)
    step1 = _sharded_weights(experiment / "global_step_1" / "actor")
    assert not torch.allclose(merged[key].float(), step1[key], atol=1e-3)  # the latest step, not step 1
    assert not list(actor.glob(".huggingface_merged.tmp-*"))
    mtime = (Path(first.hf_path) / "model.safetensors").stat().st_mtime_ns

    # Second time: the cache is reused, the merger is not even constructed.
    def boom(*a, **k):
        raise AssertionError("merged again")

    monkeypatch.setattr("verl.model_merger.fsdp_model_merger.FSDPModelMerger.merge_and_save", boom)
    for path in (experiment, experiment / "global_step_2", actor):  # every accepted spelling
        again = resolve_model(str(path))
        assert not again.merged_now and again.hf_path == first.hf_path
    assert (Path(first.hf_path) / "model.safetensors").stat().st_mtime_ns == mtime


def test_interrupted_merge_is_not_reused(experiment, monkeypatch):
    actor = experiment / "global_step_1" / "actor"

    def interrupted(self):
        Path(self.config.target_dir, "config.json").write_text("{}")  # a half-written folder
        raise KeyboardInterrupt

    monkeypatch.setattr("verl.model_merger.fsdp_model_merger.FSDPModelMerger.merge_and_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(str(actor.parent))
    assert not (actor / "huggingface_merged").exists()
    assert not list(actor.glob(".huggingface_merged.tmp-*"))  # the temp folder is cleaned up
    monkeypatch.undo()
    assert resolve_model(str(actor.parent)).merged_now  # the next run merges for real


def _truncate(folder: Path) -> None:
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)  # a copy or a disk that ran out half way


def _garbage_header(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 10**12) + data[8:])


def _missing_shard(folder: Path) -> None:
    # a sharded save whose second shard never arrived
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors",
                                            "model.norm.weight": "model-00001-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _cut(name: str):
    def corrupt(folder: Path) -> None:
        text = (folder / name).read_text()
        (folder / name).write_text(text[: len(text) // 2])

    return corrupt


CORRUPTIONS = [
    ("truncated weights", _truncate, "model.safetensors is truncated"),
    ("garbage header", _garbage_header, "model.safetensors has a broken header"),
    ("missing shard", _missing_shard, "shard model-00002-of-00002.safetensors named by"),
    ("no config", lambda f: (f / "config.json").unlink(), "config.json is missing"),
    ("cut config", _cut("config.json"), "config.json is not valid JSON"),
    ("no tokenizer", lambda f: (f / "tokenizer.json").unlink(), "tokenizer file tokenizer.json is missing"),
    ("cut tokenizer", _cut("tokenizer.json"), "tokenizer file tokenizer.json is cut"),
    ("no weights", lambda f: (f / "model.safetensors").unlink(), "no weights"),
]


@pytest.mark.parametrize("name,corrupt,problem", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_unusable_merged_cache_is_merged_again(experiment, caplog, name, corrupt, problem):
    actor = experiment / "global_step_2" / "actor"
    cache = Path(resolve_model(str(actor)).hf_path)  # merged (now or by an earlier test)
    good = (cache / "model.safetensors").read_bytes()
    corrupt(cache)
    assert problem in merged_folder_problem(cache, actor / "huggingface")
    again = resolve_model(str(experiment))
    assert again.merged_now and Path(again.hf_path) == cache
    assert problem in caplog.text and "merging the checkpoint again" in caplog.text
    assert merged_folder_problem(cache, actor / "huggingface") is None
    merged, reference = load_file(cache / "model.safetensors"), load_file_bytes(good)
    assert merged.keys() == reference.keys() and all(torch.equal(merged[k], reference[k]) for k in merged)
    assert not [p.name for p in actor.iterdir() if p.name.startswith(".huggingface_merged")]  # no temp, no old


def load_file_bytes(data: bytes) -> dict:
    from safetensors.torch import load

    return load(data)


def test_interrupted_remerge_keeps_the_old_folder_whole(experiment, monkeypatch):
    actor = experiment / "global_step_1" / "actor"
    cache = Path(resolve_model(str(actor)).hf_path)
    (cache / "config.json").unlink()
    before = sorted(p.name for p in cache.iterdir())

    def interrupted(self):
        Path(self.config.target_dir, "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr("verl.model_merger.fsdp_model_merger.FSDPModelMerger.merge_and_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        resolve_model(str(actor))
    assert sorted(p.name for p in cache.iterdir()) == before  # neither swapped nor half deleted
    assert not [p.name for p in actor.iterdir() if p.name.startswith(".huggingface_merged.")]
    monkeypatch.undo()
    assert resolve_model(str(actor)).merged_now and merged_folder_problem(cache, actor / "huggingface") is None


def test_the_cache_folder_itself_is_checked_and_test_sh_runs(experiment, tmp_path):
    actor = experiment / "global_step_2" / "actor"
    cache = Path(resolve_model(str(actor)).hf_path)
    _truncate(cache)  # what used to end in a SafetensorError traceback
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"prompt": "1 + 1 =", "ground_truth": "2"}]))
    out = tmp_path / "r.json"
    rc = main(["--model_path", str(cache), "--batch", "--input_file", str(data), "--output_file", str(out),
               "--max_new_tokens", "4", "-q"])
    assert rc == 0 and json.loads(out.read_text())["models"][0]["resolved_path"] == str(cache)
    assert merged_folder_problem(cache, actor / "huggingface") is None


def test_a_broken_model_folder_is_one_line_not_a_traceback(tiny_model_dir, tmp_path, capsys):
    broken = tmp_path / "broken_model"
    shutil.copytree(tiny_model_dir, broken)
    _truncate(broken)  # a user's own folder: not ours to repair, but the error must be readable
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"prompt": "1 + 1 =", "ground_truth": "2"}]))
    rc = main(["--model_path", str(broken), "--batch", "--input_file", str(data), "--output_file",
               str(tmp_path / "r.json"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: cannot load the model from {broken}:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "config,expected",
    [
        ("data:\n  apply_chat_template_kwargs:\n    enable_thinking: false\n", {"enable_thinking": False}),  # why: Qwen3
        ("data:\n  apply_chat_template_kwargs: {}\n", {}),  # why: verl's default
        ("data:\n  apply_chat_template_kwargs: null\n", {}),  # why: null is no arguments
        ("data:\n  train_files: x\n", {}),  # why: an older config without the key
        ("trainer:\n  total_epochs: 1\n", {}),  # why: no data section (not an RL config)
    ],
)
def test_run_chat_template_kwargs(tmp_path, config, expected):
    (tmp_path / "config.yaml").write_text(config)
    assert run_chat_template_kwargs(tmp_path) == expected


@pytest.mark.parametrize(
    "config,fragment",
    [
        ("data: [unclosed\n", "cannot read it"),  # why: a hand-edited, broken file
        ("data:\n  apply_chat_template_kwargs: [1, 2]\n", "is list, expected a mapping"),  # why: wrong type
    ],
)
def test_run_chat_template_kwargs_errors_name_the_file_and_the_fix(tmp_path, config, fragment):
    (tmp_path / "config.yaml").write_text(config)
    with pytest.raises(CheckpointError) as err:
        run_chat_template_kwargs(tmp_path)
    assert str(tmp_path / "config.yaml") in str(err.value) and fragment in str(err.value)
    assert "--chat_template_kwargs" in str(err.value)


def test_find_run_dir_from_anything_inside_a_run(tmp_path):
    run = tmp_path / "outputs" / "grpo-x"
    deep = run / "checkpoints" / "global_step_5" / "actor" / "huggingface_merged"
    deep.mkdir(parents=True)
    (run / "config.yaml").write_text("data: {}\n")
    (run / "run.json").write_text("{}")
    for path in (run, run / "checkpoints", deep):
        assert find_run_dir(path) == run.resolve()
    assert find_run_dir(tmp_path / "outputs") is None  # above the run: not inside one
    lone = tmp_path / "method"  # a config.yaml alone (e.g. grpo/config.yaml) is not a run folder
    lone.mkdir()
    (lone / "config.yaml").write_text("data: {}\n")
    assert find_run_dir(lone) is None


def test_run_folder_resolution_carries_the_run_dir(experiment, tmp_path):
    run = tmp_path / "grpo-tiny"
    shutil.copytree(experiment, run / "checkpoints", ignore=shutil.ignore_patterns("huggingface_merged", ".*"))
    (run / "config.yaml").write_text("data:\n  apply_chat_template_kwargs:\n    enable_thinking: false\n")
    (run / "run.json").write_text("{}")
    resolved = resolve_model(str(run))
    assert resolved.run_dir == str(run.resolve()) and resolved.label == "checkpoints/global_step_2"
    assert run_chat_template_kwargs(Path(resolved.run_dir)) == {"enable_thinking": False}


def test_batch_on_checkpoint_and_base_side_by_side(experiment, tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"prompt": f"{i} + 1 =", "ground_truth": str(i + 1)} for i in range(3)]))
    out = tmp_path / "cmp.json"
    base = experiment.parent / "base_model"
    rc = main(["--model_path", str(base), "--model_path", str(experiment), "--batch", "--input_file", str(data),
               "--output_file", str(out), "--max_new_tokens", "6", "-q"])
    assert rc == 0
    payload = json.loads(out.read_text())
    assert [s["model"] for s in payload["models"]] == ["base_model", "experiment/global_step_2"]
    assert payload["models"][1]["resolved_path"].endswith("global_step_2/actor/huggingface_merged")
    assert payload["results"][3]["model"] == "experiment/global_step_2"
    assert "[experiment/global_step_2] response" in payload["compare"][0]


def test_lora_checkpoint_is_folded_into_the_base(tmp_path_factory):
    experiment = _build(tmp_path_factory.mktemp("lora"), lora=True)
    resolved = resolve_model(str(experiment))
    folder = Path(resolved.hf_path)
    assert (folder / "lora_adapter" / "adapter_config.json").is_file()  # verl's merger output, kept
    meta = json.loads((experiment / "global_step_2" / "actor" / "lora_train_meta.json").read_text())
    shard = _sharded_weights(experiment / "global_step_2" / "actor")
    prefix = "base_model.model.model.layers.0.self_attn.q_proj."
    base_w, a, b = (shard[prefix + s] for s in ("base_layer.weight", "lora_A.default.weight", "lora_B.default.weight"))
    expected = base_w + (meta["lora_alpha"] / meta["r"]) * b @ a  # the LoRA update, scale alpha / r = 2
    merged = load_file(folder / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"].float()
    # bf16 storage on both sides of the fold: compare at bf16 precision
    torch.testing.assert_close(merged, expected, atol=3e-2, rtol=3e-2)
    assert not torch.allclose(merged, base_w, atol=1e-2)  # the adapter really changed the weights


@pytest.mark.parametrize(
    "layout,fragment",
    [
        ("nothing", "no such file or folder"),  # why: typo in --model_path
        ("empty_dir", "neither a Hugging Face model folder"),  # why: a folder with no model in it
        ("bad_tracker", "expected a step number"),  # why: tracker file corrupted
        ("tracker_gone_step", "points at step 7"),  # why: the step folder was deleted
        ("step_without_shards", "no FSDP model shards found"),  # why: optimizer-only or partial copy
        ("two_experiments", "holds several experiments"),  # why: ambiguous parent folder
    ],
)
def test_bad_checkpoint_paths(tmp_path, layout, fragment):
    root = tmp_path / "exp"
    if layout != "nothing":
        root.mkdir()
    if layout == "bad_tracker":
        (root / "latest_checkpointed_iteration.txt").write_text("latest")
    if layout == "tracker_gone_step":
        (root / "latest_checkpointed_iteration.txt").write_text("7")
    if layout == "step_without_shards":
        (root / "global_step_3" / "actor").mkdir(parents=True)
    if layout == "two_experiments":
        for name in ("a", "b"):
            (root / "checkpoints" / name / "global_step_1").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=fragment):
        resolve_model(str(root) if layout != "nothing" else str(tmp_path / "./missing_dir"))


def test_hub_id_is_passed_through():
    resolved = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")  # nothing is downloaded here
    assert resolved.hf_path == "Qwen/Qwen2.5-0.5B-Instruct" and resolved.label == "Qwen2.5-0.5B-Instruct"
    assert not resolved.merged_now and resolved.checkpoint_dir is None


if __name__ == "__main__":
    build_checkpoints(Path(sys.argv[1]), lora="--lora" in sys.argv)
