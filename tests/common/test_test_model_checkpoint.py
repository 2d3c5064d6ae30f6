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
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from common.evaluation.checkpoint import CheckpointError, resolve_model
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


def test_batch_on_checkpoint_and_base_side_by_side(experiment, tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"prompt": f"{i} + 1 =", "ground_truth": str(i + 1)} for i in range(3)]))
    out = tmp_path / "cmp.json"
    base = experiment.parent / "base_model"
    rc = main(["--model_path", str(base), "--model_path", str(experiment), "--batch", "--input_file", str(data),
               "--output_file", str(out), "--max_new_tokens", "6", "-q"])
    assert rc == 0
    payload = json.loads(out.read_text())
    assert [s["model"] for s in payload["summary"]] == ["base_model", "experiment/global_step_2"]
    assert payload["summary"][1]["resolved_path"].endswith("global_step_2/actor/huggingface_merged")
    assert "[experiment/global_step_2] response" in payload["results"][0]


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
