"""REHEARSAL=1 for every method, through the real train.sh config blocks, on the tiny test model.

    .venv/bin/python -m pytest tests/rehearsal/test_rehearsal.py -q

Eight rehearsals (the five methods, GRPO with LoRA, PPO with a reward model, and a deliberately
broken knob mapping) run in two runner processes in parallel, each importing verl once
(tests/rehearsal/runner.py); the tests then read what each wrote: its console log, its
<run>/rehearsal/summary.json, checkpoint, merged model and test.sh report.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VARIED_REWARD = str(Path(__file__).with_name("varied_reward.py"))
METHODS = ("grpo", "ppo", "dapo", "gspo", "sft")
PASSING = ("grpo", "ppo", "dapo", "gspo", "sft", "grpo_lora", "ppo_reward_model")
SECRET = "sk-rehearsal-5e1f-never-printed"


def _rl(**env) -> dict:
    # 2 prompts x 2 responses of 16 tokens, 2 sequences per micro-batch: two micro-batches per update.
    base = dict(TRAIN_BATCH_SIZE="2", ROLLOUT_N="2", MAX_PROMPT_LENGTH="256", MAX_RESPONSE_LENGTH="16",
                PPO_MINI_BATCH_SIZE="2", MICRO_BATCH_SIZE_PER_GPU="2")
    return {**base, **env}


def _cases(model: Path, reward_model: Path) -> list[list[dict]]:
    a = [
        # why: GRPO with a KL loss (reference model), the shrink path, and SEED/entropy knobs
        {"name": "grpo", "method": "grpo", "env": _rl(REHEARSAL_MODEL="tiny", SEED="7", ENTROPY_COEFF="0.001",
                                                      REWARD_FUNC_PATH=VARIED_REWARD)},
        # why: DAPO's filter, overlong shaping and dynamic batching (a token budget instead of micro-batches)
        {"name": "dapo", "method": "dapo", "env": _rl(REWARD_FUNC_PATH=VARIED_REWARD, USE_DYNAMIC_BSZ="true",
                                                      MAX_TOKENS_PER_GPU="512")},
        # why: SFT through verl's own SFTTrainer; no warm-up so the first step moves the weights
        # (verl's SFT trainer prints its whole config: a secret in it must come out masked)
        {"name": "sft", "method": "sft", "env": dict(TRAIN_BATCH_SIZE="4", MAX_LENGTH="512", USE_DYNAMIC_BSZ="false",
                                                     MICRO_BATCH_SIZE_PER_GPU="2", LR_WARMUP_RATIO="0",
                                                     JUDGE_API_KEY=SECRET, WANDB_PROJECT=SECRET)},
        # why: a knob mapped to the wrong path must fail the knob table, naming it
        {"name": "broken", "method": "grpo", "break_knob": "ACTOR_LR",
         "env": _rl(ACTOR_LR="3e-6", USE_KL_LOSS="false", REHEARSAL_EVAL_ROWS="0")},
    ]
    b = [
        # why: PPO's critic (GAE) and the KL penalty in the reward
        {"name": "ppo", "method": "ppo", "env": _rl(USE_KL_IN_REWARD="true")},
        # why: GSPO's sequence-level loss, overlong shaping on a method whose YAML lacks it; the reward
        # knobs that travel as reward_kwargs (STRICT_BOXED, REWARD_TIMEOUT_S) reach verl's reward manager
        {"name": "gspo", "method": "gspo", "env": _rl(REWARD_FUNC_PATH=VARIED_REWARD, OVERLONG_SHAPING="true",
                                                      STRICT_BOXED="true", REWARD_TIMEOUT_S="20")},
        # why: LoRA adapters, the reference model as the actor without its adapter
        {"name": "grpo_lora", "method": "grpo", "env": _rl(USE_LORA="true", LORA_RANK="8", LORA_ALPHA="16",
                                                           ACTOR_LR="3e-5", REWARD_FUNC_PATH=VARIED_REWARD)},
        # why: a reward model scored through verl's reward loop
        {"name": "ppo_reward_model", "method": "ppo",
         "env": _rl(USE_REWARD_MODEL="true", REWARD_MODEL_PATH=str(reward_model))},
    ]
    for group in (a, b):
        for case in group:
            case["env"].update(MODEL_PATH=str(model), REHEARSAL="1", EXPERIMENT_NAME=case["name"],
                               REHEARSAL_EVAL_ROWS=case["env"].get("REHEARSAL_EVAL_ROWS", "2"))
    return [a, b]


@pytest.fixture(scope="module")
def rehearsals(tmp_path_factory, tiny_model_dir):
    """{case name: (exit code, log text, summary dict, rehearsal folder)} for all eight rehearsals."""
    from common.rehearsal.tiny import build_like

    work = tmp_path_factory.mktemp("rehearsals")
    reward_model = build_like(str(tiny_model_dir), work / "reward_model", full=True, reward=True)
    groups = _cases(tiny_model_dir, reward_model)
    procs = []
    for i, group in enumerate(groups):
        for case in group:
            case["env"]["OUTPUT_DIR"] = str(work / "outputs")
        spec = work / f"cases_{i}.json"
        spec.write_text(json.dumps(group))
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.rehearsal.runner", str(spec), str(work / "logs")],
                                      cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for proc in procs:
        output, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, output.decode()[-3000:]
    results = {}
    for group in groups:
        for case in group:
            name = case["name"]
            folder = work / "outputs" / name / "rehearsal"
            summary_path = folder / "summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
            log = (work / "logs" / f"{name}.log").read_text()
            results[name] = (int((work / "logs" / f"{name}.rc").read_text()), log, summary, folder)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", PASSING)
def test_rehearsal_trains_one_step_and_every_knob_arrives(rehearsals, name):
    code, log, summary, _ = rehearsals[name]
    assert code == 0, log[-4000:]
    assert summary["exit_code"] == 0
    bad = [row for row in summary["knob_table"] if not row["ok"]]
    assert not bad and len(summary["knob_table"]) >= 10
    assert "knob table: all" in log
    # The optimizer step moved the weights (sampled trainable tensors before and after).
    assert summary["parameters"]["changed"] >= 1, summary["parameters"]


@pytest.mark.slow
def test_reward_kwargs_reach_verls_reward_manager(rehearsals):
    _, _, summary, _ = rehearsals["gspo"]
    rows = {row["knob"]: row for row in summary["knob_table"] if row["knob"] in ("STRICT_BOXED", "REWARD_TIMEOUT_S")}
    assert rows["STRICT_BOXED"]["observed"] is True and rows["STRICT_BOXED"]["ok"]
    assert rows["REWARD_TIMEOUT_S"]["observed"] == 20 and rows["REWARD_TIMEOUT_S"]["ok"]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "keys"), [
    ("grpo", ["actor/pg_loss", "actor/kl_loss", "actor/grad_norm", "critic/score/mean", "response_length/mean"]),
    ("ppo", ["actor/pg_loss", "critic/vf_loss", "critic/grad_norm", "critic/values/mean", "actor/reward_kl_penalty"]),
    ("dapo", ["actor/pg_loss", "actor/pg_clipfrac", "critic/advantages/mean"]),
    ("gspo", ["actor/pg_loss", "actor/grad_norm"]),
    ("grpo_lora", ["actor/pg_loss", "actor/grad_norm"]),
    ("ppo_reward_model", ["critic/vf_loss", "critic/score/mean"]),
    ("sft", ["train/loss", "train/grad_norm", "train/lr"]),
])
def test_metrics_carry_verls_names_and_are_finite(rehearsals, name, keys):
    _, log, summary, _ = rehearsals[name]
    # verl's console format, one line per step (tqdm's bar may share the line's start with it)
    step_lines = [line[line.index("step:1 - "):] for line in log.splitlines() if "step:1 - " in line]
    assert step_lines, "verl's console line missing"
    metrics = {k: v for m in summary["metrics"] for k, v in m.items()}
    for key in keys:
        assert key in metrics and math.isfinite(metrics[key]), key
        assert f"{key}:" in "\n".join(step_lines)


@pytest.mark.slow
@pytest.mark.parametrize("name", PASSING)
def test_checkpoint_in_verls_layout_and_merged_model_loads(rehearsals, name):
    from transformers import AutoModelForCausalLM

    _, _, summary, folder = rehearsals[name]
    step = folder / "checkpoints" / "global_step_1"
    assert (folder / "checkpoints" / "latest_checkpointed_iteration.txt").read_text().strip() == "1"
    actor = step if name == "sft" else step / "actor"
    for part in ("model_world_size_1_rank_0.pt", "optim_world_size_1_rank_0.pt", "fsdp_config.json",
                 "huggingface/config.json"):
        assert (actor / part).is_file(), part
    if name.startswith("ppo"):
        assert (step / "critic" / "model_world_size_1_rank_0.pt").is_file()
    if name != "sft":
        assert (step / "data.pt").is_file()
    merged = Path(summary["merged_model"])
    assert merged == actor / "huggingface_merged"
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert model.config.num_hidden_layers >= 1
    report = json.loads(Path(summary["eval_report"]).read_text())
    assert report["summary"][0]["prompts"] == 2


@pytest.mark.slow
def test_broken_knob_mapping_is_caught_naming_the_knob(rehearsals):
    code, log, summary, _ = rehearsals["broken"]
    assert code == 1
    bad = [row for row in summary["knob_table"] if not row["ok"]]
    assert {row["knob"] for row in bad} == {"ACTOR_LR"}
    assert bad[0]["expected"] == pytest.approx(3e-6) and bad[0]["observed"] == pytest.approx(1e-6)
    assert "knob(s) that did not reach verl's engines: ACTOR_LR" in log


@pytest.mark.slow
def test_rehearsal_says_what_it_changed_for_the_cpu(rehearsals):
    _, log, summary, _ = rehearsals["grpo"]
    changes = "\n".join(summary["changes"])
    assert "stands in for vLLM/SGLang" in changes  # the one stand-in, named
    assert "fsdp -> fsdp2" in changes and "REHEARSAL_MODEL=tiny" in changes
    assert "[rehearsal] changed for the CPU:" in log
    _, _, ppo, _ = rehearsals["ppo"]
    assert any("verl/utils/model.py:649" in change for change in ppo["changes"])  # the critic's hard-coded attention


@pytest.mark.slow
def test_dapo_groups_filtered_by_verls_replay_buffer(rehearsals):
    _, log, summary, _ = rehearsals["dapo"]
    assert summary["dapo"]["groups"] == 2 and 0 <= summary["dapo"]["kept"] <= 2
    assert "DAPO group filter (verl's ReplayBuffer" in log
    dynamic = [r for r in summary["knob_table"] if r["knob"] == "MAX_TOKENS_PER_GPU" and r["how"] == "<="]
    assert dynamic and dynamic[0]["observed"] <= 512


@pytest.mark.slow
def test_lora_adapter_and_reward_model(rehearsals):
    _, _, lora, _ = rehearsals["grpo_lora"]
    rows = {(r["knob"], r["where"]): r for r in lora["knob_table"]}
    assert rows[("LORA_RANK", "actor adapter rank (USE_LORA)")]["observed"] == 8
    assert any(k == "LORA_TARGET_MODULES" and "q_proj" in r["observed"] for (k, _), r in rows.items())
    _, log, rm, _ = rehearsals["ppo_reward_model"]
    assert rm["reward_model_scored"] == 4  # 2 prompts x 2 responses, each scored by the reward model
    assert "answers vLLM's /classify" in log


@pytest.mark.slow
def test_secrets_never_reach_the_console_or_the_summary(rehearsals):
    _, log, _, folder = rehearsals["sft"]
    assert SECRET not in log and SECRET not in (folder / "summary.json").read_text()
    assert "project_name': '***'" in log  # verl printed the config; the secret value came out masked


@pytest.mark.slow
def test_optimizer_steps_per_training_step(rehearsals):
    _, _, summary, _ = rehearsals["ppo"]
    rows = [r for r in summary["knob_table"] if r["knob"] == "PPO_MINI_BATCH_SIZE"]
    # 2 prompts / mini-batches of 2 = one optimizer step each for the actor and the critic
    assert [(r["expected"], r["observed"]) for r in rows] == [(1, 1), (1, 1)]
