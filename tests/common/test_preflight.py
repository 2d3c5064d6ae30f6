"""Preflight: one broken config block or data file per check, each failing with its own message.

    .venv/bin/python -m pytest tests/common/test_preflight.py -q

Most cases run in-process (launch.make_plan + compose_config + preflight.run_checks: ~0.3 s each);
a few go through the real grpo/train.sh with DRY_RUN=1 to cover the launcher's wiring (--json, FORCE=1).
The tiny Qwen2 fixture (4 heads, 2 KV heads, 2,048 positions) stands in for MODEL_PATH.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from common import launch, preflight
from tests.launch_helpers import REPO_ROOT, dry_run, grpo_block


@pytest.fixture(scope="module")
def grpo_env(tiny_model_dir, tmp_path_factory):
    return grpo_block(tiny_model_dir, tmp_path_factory.mktemp("pf_out"), GPU_MEM_UTIL="0.5",
                      REWARD_FUNC_NAME="compute_score")


def run(method: str, env: dict, args=(), gpus: int = 0):
    plan = launch.make_plan(REPO_ROOT / method, env, list(args), detect=lambda: (gpus, "test"))
    cfg = launch.compose_config(plan)
    return preflight.run_checks(plan, cfg, env=env, dry_run=True, gpus_found=gpus)


def failures(results):
    return [r for r in results if r.failed]


def test_working_grpo_block_passes(grpo_env):
    results = run("grpo", grpo_env)
    assert not failures(results), preflight.format_table(results)
    by = {r.check: r for r in results}
    # The tiny model is local: lengths, prompt lengths and memory were really checked, not skipped.
    assert by["lengths"].status == "ok" and by["prompt lengths"].status == "ok" and by["memory"].status == "ok"
    assert "compute_score" in by["reward"].detail and "ms per call" in by["reward"].detail


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_data")
    good = pd.read_parquet(REPO_ROOT / "grpo" / "data" / "train.parquet")
    good.head(10).to_parquet(d / "ten_rows.parquet")
    good.drop(columns=["reward_model"]).to_parquet(d / "no_reward_model.parquet")
    good.assign(data_source="my/unknown_set").head(64).to_parquet(d / "unknown_source.parquet")
    long = good.head(64).copy()
    long["prompt"] = [[{"role": "user", "content": "word " * 400}]] * 64
    long.to_parquet(d / "long_prompts.parquet")
    (d / "not_parquet.parquet").write_text("id,prompt\n1,hi\n")
    (d / "bad_reward.py").write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None):\n"
                                     "    return {'score': 1.0} if ground_truth in solution_str else {'score': 0.0, 'x': 1}\n")
    (d / "wrong_sig.py").write_text("def compute_score(text):\n    return 1.0\n")
    (d / "broken_import.py").write_text("import not_a_module_anywhere\n")
    (d / "returns_str.py").write_text("def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):\n"
                                      "    return 'ok'\n")
    (d / "raises_for_source.py").write_text(
        "def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw):\n"
        "    raise NotImplementedError(f'no scorer for {data_source}')\n")
    return d


# (case id, env changes, extra Hydra args, check that must fail, words its detail must contain, knob named)
CASES = [
    # why: 16 x 5 = 80 sequences over 3 GPUs is not an integer per rank (verl asserts it in train_mini_batch)
    ("mini_x_n_vs_dp", {"N_GPUS_PER_NODE": "3", "ROLLOUT_TP": "1"}, (), "batch sizes", "data-parallel", "PPO_MINI_BATCH_SIZE"),
    # why: 80 sequences per GPU per update are not a multiple of a micro batch of 7
    ("micro_vs_per_rank", {"MICRO_BATCH_SIZE_PER_GPU": "7"}, (), "batch sizes", "not a multiple", "MICRO_BATCH_SIZE_PER_GPU"),
    # why: only the rollout's log-prob pass micro batch is off (160 % 3); verl asserts in prepare_micro_batches
    ("logprob_micro", {}, ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=3",), "batch sizes",
     "rollout log-prob pass", "MICRO_BATCH_SIZE_PER_GPU"),
    # why: verl's engine worker asserts actor.use_dynamic_bsz == rollout.log_prob_use_dynamic_bsz
    ("dynamic_bsz_mismatch", {}, ("actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true",), "batch sizes", "differ", "USE_DYNAMIC_BSZ"),
    # why: a 1,000-token budget cannot hold one 512 + 1024 sequence
    ("token_budget", {"USE_DYNAMIC_BSZ": "true", "MAX_TOKENS_PER_GPU": "1000"}, (), "batch sizes", "cannot hold",
     "MAX_TOKENS_PER_GPU"),
    # why: verl's default TP 2 on one GPU gives zero rollout engines
    ("tp_over_gpus", {"ROLLOUT_TP": "2"}, (), "parallel sizes", "zero engines", "ROLLOUT_TP"),
    # why: the tiny model has 4 heads; TP 3 on 3 GPUs divides the GPUs but not the heads
    ("tp_vs_heads", {"N_GPUS_PER_NODE": "3", "ROLLOUT_TP": "3", "PPO_MINI_BATCH_SIZE": "12", "TRAIN_BATCH_SIZE": "24",
                     "MICRO_BATCH_SIZE_PER_GPU": "4"}, (), "parallel sizes", "attention heads", "ROLLOUT_TP"),
    # why: Ulysses SP 4 does not divide... 4 heads yes, but 2 KV heads x 2 = 4 is fine; 3 divides neither
    ("sp_vs_heads", {"N_GPUS_PER_NODE": "3", "SP_SIZE": "3", "ROLLOUT_TP": "1", "MICRO_BATCH_SIZE_PER_GPU": "5"}, (),
     "parallel sizes", "SP_SIZE=3", "SP_SIZE"),
    # why: 1,500 + 1,024 tokens exceed the tiny model's 2,048 positions
    ("length_vs_positions", {"MAX_PROMPT_LENGTH": "1500"}, (), "lengths", "max_position_embeddings", "MAX_PROMPT_LENGTH"),
    # why: a missing train file
    ("missing_train", {"TRAIN_DATA": "/nonexistent/train.parquet"}, (), "data", "does not exist", "TRAIN_DATA"),
    # why: a CSV renamed .parquet
    ("not_parquet", {"TRAIN_DATA": "{bad}/not_parquet.parquet"}, (), "data", "not a readable parquet", "TRAIN_DATA"),
    # why: verl needs reward_model.ground_truth
    ("missing_column", {"TRAIN_DATA": "{bad}/no_reward_model.parquet"}, (), "data", "reward_model", "TRAIN_DATA"),
    # why: 10 rows < 32 prompts per step: zero steps per epoch, ZeroDivisionError after validation
    ("too_few_rows", {"TRAIN_DATA": "{bad}/ten_rows.parquet"}, (), "data", "fewer than TRAIN_BATCH_SIZE", "TRAIN_DATA"),
    # why: verl's default scorer raises NotImplementedError for an unknown data_source
    ("unknown_source_default", {"TRAIN_DATA": "{bad}/unknown_source.parquet", "REWARD_FUNC_PATH": ""}, (),
     "reward", "my/unknown_set", "REWARD_FUNC_PATH"),
    # why: the custom function raises NotImplementedError for the data_source
    ("custom_cannot_score", {"REWARD_FUNC_PATH": "{bad}/raises_for_source.py"}, (), "reward", "cannot score",
     "REWARD_FUNC_PATH"),
    # why: 400-word prompts exceed 512 tokens and verl would cut them silently
    ("prompts_too_long", {"TRAIN_DATA": "{bad}/long_prompts.parquet"}, (), "prompt lengths", "to keep 99%",
     "MAX_PROMPT_LENGTH"),
    # why: reward file that does not import
    ("reward_import", {"REWARD_FUNC_PATH": "{bad}/broken_import.py"}, (), "reward", "ModuleNotFoundError", "REWARD_FUNC_PATH"),
    # why: a name the file does not define
    ("reward_name", {"REWARD_FUNC_NAME": "score_it"}, (), "reward", "no function 'score_it'", "REWARD_FUNC_NAME"),
    # why: not verl's signature
    ("reward_signature", {"REWARD_FUNC_PATH": "{bad}/wrong_sig.py"}, (), "reward", "verl's arguments", "REWARD_FUNC_NAME"),
    # why: dict keys differ between rows: verl takes the keys from the first sample
    ("reward_keys", {"REWARD_FUNC_PATH": "{bad}/bad_reward.py"}, (), "reward", "different keys", "REWARD_FUNC_PATH"),
    # why: a string is neither a float nor a dict with score
    ("reward_type", {"REWARD_FUNC_PATH": "{bad}/returns_str.py"}, (), "reward", "returned str", "REWARD_FUNC_PATH"),
    # why: wandb online without a key fails only after the models load
    ("wandb_no_key", {"USE_WANDB": "true", "WANDB_MODE": "online"}, (), "loggers", "WANDB_API_KEY", "USE_WANDB"),
    # why: a logger name verl's Tracking does not know
    ("unknown_logger", {}, ("trainer.logger=[console,neptune]",), "loggers", "neptune", "USE_WANDB"),
    # why: the run folder's parent is a file
    ("unwritable_output", {"OUTPUT_DIR": "{bad}/not_parquet.parquet"}, (), "output folder", "cannot be created", "OUTPUT_DIR"),
    # why: RAY_ADDRESS pointing at nothing
    ("dead_ray", {"RAY_ADDRESS": "http://127.0.0.1:1"}, (), "ray", "does not answer", "RAY_ADDRESS"),
    # why: a 7B-sized rollout share on a 10 GB GPU does not fit next to the training states
    ("memory", {"GPU_MEMORY_GB": "0.2", "GPU_MEM_UTIL": "0.9"}, (), "memory", "try:", "GPU_MEM_UTIL"),
    # why: RLOO's leave-one-out baseline needs a group; verl would run it as REINFORCE without a baseline
    ("rloo_without_group", {"ALGORITHM": "rloo", "ROLLOUT_N": "1"}, (), "algorithm", "there is no group", "ROLLOUT_N"),
    # why: a loss name verl has not registered raises only when the first batch is trained
    ("unknown_policy_loss", {"POLICY_LOSS": "top_entropy_typo"}, (), "algorithm", "not a registered policy loss",
     "POLICY_LOSS"),
    # why: without the engine's log-probs the V1 trainer skips the correction without a word
    ("correction_without_logprobs", {"ROLLOUT_CORRECTION": "token"}, ("actor_rollout_ref.rollout.calculate_log_probs=false",),
     "rollout correction", "skip the correction", "ROLLOUT_CORRECTION"),
    # why: verl raises ValueError("Invalid rollout_is") at the first step
    ("rollout_is_unknown", {}, ("algorithm.rollout_correction.rollout_is=geometric",), "rollout correction",
     "verl accepts token, sequence or null", "ROLLOUT_CORRECTION"),
    # why: a best checkpoint needs checkpoints
    ("keep_best_without_saves", {"KEEP_BEST_METRIC": "val_acc", "SAVE_FREQ": "-1"}, (), "best checkpoint", "saves none",
     "SAVE_FREQ"),
    # why: and validation scores
    ("keep_best_without_validation", {"KEEP_BEST_METRIC": "val_acc", "TEST_FREQ": "-1"}, (), "best checkpoint",
     "needs validation scores", "TEST_FREQ"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_broken_block_fails_with_its_own_message(case, grpo_env, bad_files):
    _, changes, args, check, words, knob = case
    env = {**grpo_env, **{k: v.replace("{bad}", str(bad_files)) for k, v in changes.items()}}
    env = {k: v for k, v in env.items() if v != ""}
    results = run("grpo", env, args)
    failed = failures(results)
    mine = [r for r in failed if r.check == check]
    assert mine, f"expected a failed '{check}' check:\n{preflight.format_table(results)}"
    assert any(words in r.detail for r in mine), [r.detail for r in mine]
    message = preflight.failure_message(results, "grpo")
    assert knob in message or knob in " ".join(r.detail for r in mine)


@pytest.mark.parametrize(
    "arg, moved",
    [
        # why: 0.9.x reads reward.custom_reward_function; the top-level key is silently ignored
        ("custom_reward_function.path=/x/r.py", "reward.custom_reward_function.path"),
        # why: the reward manager moved under reward.reward_manager.name
        ("reward_model.reward_manager=dapo", "reward.reward_manager.name"),
        # why: reward kwargs moved to reward.reward_kwargs
        ("+reward_model.reward_kwargs.max_resp_len=512", "reward.reward_kwargs"),
    ],
)
def test_legacy_reward_keys_say_where_they_moved(arg, moved, grpo_env):
    results = run("grpo", grpo_env, (arg,))
    legacy = [r for r in failures(results) if r.check == "legacy keys"]
    assert legacy and moved in legacy[0].detail and arg in legacy[0].detail


def test_unchecked_is_reported_as_skipped_not_passed(grpo_env):
    # A hub id that is neither on disk nor in the HF cache: lengths and prompt lengths are skipped.
    results = run("grpo", {**grpo_env, "MODEL_PATH": "nobody/not-a-model"})
    by = {r.check: r.status for r in results}
    assert by["lengths"] == "skipped" and by["prompt lengths"] == "skipped" and by["memory"] == "skipped"


def test_critic_micro_batch_for_ppo(grpo_env):
    # PPO (GAE) adds the critic's update and value passes: 160 sequences per step, critic micro 3.
    results = run("grpo", grpo_env, ("algorithm.adv_estimator=gae", "critic.ppo_micro_batch_size_per_gpu=3",
                                      "critic.ppo_mini_batch_size=16"))
    assert any(r.failed and "critic" in r.detail for r in results), preflight.format_table(results)


def test_gpu_count_and_engine_on_a_real_launch(grpo_env):
    plan = launch.make_plan(REPO_ROOT / "grpo", {**grpo_env, "N_GPUS_PER_NODE": "4", "ROLLOUT_TP": "1"}, [],
                            detect=lambda: (2, "test"))
    cfg = launch.compose_config(plan)
    results = preflight.run_checks(plan, cfg, env=grpo_env, dry_run=False, gpus_found=2)
    gpus = [r for r in results if r.check == "GPUs"][0]
    assert gpus.failed and "shows 2" in gpus.detail
    # Not a dry run, GPUs present: a missing rollout engine is a failure, not a warning.
    assert any(r.failed and r.check == "versions" and "vllm" in r.detail for r in results)


def test_sft_messages_column_and_conversation_length(tiny_model_dir, tmp_path):
    if not (REPO_ROOT / "sft" / "config.yaml").is_file():
        pytest.skip("sft/ method folder not written yet")  # the SFT method is added separately
    grpo_parquet = REPO_ROOT / "grpo" / "data" / "train.parquet"
    env = {"MODEL_PATH": str(tiny_model_dir), "TRAIN_DATA": str(grpo_parquet), "VAL_DATA": "data/val.parquet",
           "N_GPUS_PER_NODE": "1", "OUTPUT_DIR": str(tmp_path), "TRAIN_BATCH_SIZE": "8", "MICRO_BATCH_SIZE_PER_GPU": "2",
           "MAX_LENGTH": "16"}
    results = run("sft", env)
    assert any(r.failed and "messages" in r.detail for r in results), preflight.format_table(results)
    results = run("sft", {**env, "TRAIN_DATA": "data/train.parquet"})
    long = [r for r in results if r.check == "prompt lengths"]
    assert long and long[0].failed and "MAX_LENGTH" in long[0].detail


# ---- through the real train.sh


@pytest.mark.slow
def test_train_sh_reports_table_and_json(tiny_model_dir, tmp_path):
    env = {"OUTPUT_DIR": str(tmp_path), "MODEL_PATH": str(tiny_model_dir)}
    text = dry_run("grpo", env=env)
    assert text.returncode == 0, text.stderr
    assert "# ---- preflight ----" in text.stdout and "PASS:" in text.stdout
    js = dry_run("grpo", env=env, args=("--json",))
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)  # stdout is one JSON document and nothing else
    assert doc["verdict"] == "pass" and {c["check"] for c in doc["checks"]} >= {"batch sizes", "reward", "memory"}


@pytest.mark.slow
def test_train_sh_failure_then_force(tiny_model_dir, tmp_path):
    env = {"OUTPUT_DIR": str(tmp_path), "MODEL_PATH": str(tiny_model_dir), "MAX_PROMPT_LENGTH": "1500"}
    bad = dry_run("grpo", env=env)
    assert bad.returncode == 2 and "MAX_PROMPT_LENGTH" in bad.stderr and "max_position_embeddings" in bad.stderr
    js = dry_run("grpo", env=env, args=("--json",))
    assert js.returncode == 2 and json.loads(js.stdout)["verdict"] == "fail"
    forced = dry_run("grpo", env={**env, "FORCE": "1"})
    assert forced.returncode == 0 and "FORCE=1 overrides failed checks" in forced.stderr
    assert "FORCED:" in forced.stdout


@pytest.mark.parametrize(
    ("changes", "words", "knob"),
    [
        # why: verl's dapo reward manager asserts a positive buffer only when its workers start
        ({"OVERLONG_BUFFER_LEN": "0"}, "must be positive", "OVERLONG_BUFFER_LEN"),
        # why: a buffer longer than the response limit (verl asserts max_resp_len >= len)
        ({"OVERLONG_BUFFER_LEN": "2000"}, "longer than the response limit", "OVERLONG_BUFFER_LEN"),
    ],
)
def test_dapo_overlong_buffer(changes, words, knob, grpo_env):
    results = run("dapo", {**grpo_env, "ROLLOUT_N": "8", "REWARD_FUNC_PATH": "../common/reward_functions.py", **changes}, ())
    mine = [r for r in failures(results) if r.check == "overlong shaping"]
    assert mine and words in mine[0].detail and knob in mine[0].knobs


def test_dapo_overlong_buffer_default_passes(grpo_env):
    results = run("dapo", {**grpo_env, "ROLLOUT_N": "8", "REWARD_FUNC_PATH": "../common/reward_functions.py"}, ())
    (row,) = [r for r in results if r.check == "overlong shaping"]
    assert row.status == "ok" and "tokens 769-1024" in row.detail


def test_api_judge_that_does_not_answer_is_a_warning_not_a_call(grpo_env, monkeypatch):
    # A port nothing listens on: the judge is not called (its retries would take minutes), just reported.
    monkeypatch.setenv("JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    results = run("ppo", {**grpo_env, "ROLLOUT_N": "1", "USE_API_REWARD": "true", "PPO_MINI_BATCH_SIZE": "8"}, ())
    (row,) = [r for r in results if r.check == "reward"]
    assert row.status == "warn" and "does not answer" in row.detail and "127.0.0.1:9" in row.detail


def test_colocated_reward_model_counts_in_memory(grpo_env):
    env = {**grpo_env, "ROLLOUT_N": "1", "PPO_MINI_BATCH_SIZE": "8", "USE_REWARD_MODEL": "true",
           "REWARD_MODEL_PATH": grpo_env["MODEL_PATH"]}
    by = {r.check: r for r in run("ppo", env, ())}
    assert "reward model" in by["memory"].detail
    assert by["reward"].status == "ok" and "reward model" in by["reward"].detail


# ---- warnings of the presets, the best checkpoint and the chat template


@pytest.mark.parametrize(
    ("changes", "check", "words", "knob"),
    [
        # why: the bundled data's data_source is openai/gsm8k, so verl logs val-core/openai/gsm8k/acc/mean@1
        ({"KEEP_BEST_METRIC": "val-core/gsm8k/acc/mean@1"}, "best checkpoint", "val-core/openai/gsm8k/acc/mean@1",
         "KEEP_BEST_METRIC"),
        # why: saves every 15 and scores every 10 steps meet only every 30 steps
        ({"KEEP_BEST_METRIC": "val_acc", "SAVE_FREQ": "15", "TEST_FREQ": "10"}, "best checkpoint", "multiples of 30",
         "SAVE_FREQ"),
        # why: verl's SAPO loss aggregates seq-mean-token-mean whatever LOSS_AGG_MODE says
        ({"ALGORITHM": "sapo", "LOSS_AGG_MODE": "token-mean"}, "algorithm", "whatever LOSS_AGG_MODE=token-mean says",
         "LOSS_AGG_MODE"),
    ],
)
def test_warnings_name_the_knob(changes, check, words, knob, grpo_env):
    results = run("grpo", {**grpo_env, "SAVE_FREQ": "20", "TEST_FREQ": "10", **changes})
    mine = [r for r in results if r.check == check and r.status == "warn"]
    assert mine and words in mine[0].detail and knob in mine[0].knobs, preflight.format_table(results)
    assert not failures(results), preflight.format_table(results)


def test_presets_and_best_checkpoint_pass_on_the_default_block(grpo_env):
    env = {**grpo_env, "SAVE_FREQ": "20", "TEST_FREQ": "10", "ALGORITHM": "dr_grpo", "ROLLOUT_CORRECTION": "sequence",
           "KEEP_BEST_METRIC": "val_acc"}
    by = {r.check: r for r in run("grpo", env)}
    assert by["algorithm"].status == "ok" and "seq-mean-token-sum-norm" in by["algorithm"].detail
    assert by["rollout correction"].status == "ok" and "rollout_corr/kl" in by["rollout correction"].detail
    assert by["best checkpoint"].status == "ok" and "EXPORT_CHECKPOINT=best" in by["best checkpoint"].detail


# A Qwen3-style template: enable_thinking=false adds an empty think block after the generation prompt.
THINKING_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif %}"
)


@pytest.fixture(scope="module")
def thinking_model(tiny_model_dir, tmp_path_factory):
    import shutil

    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("thinking") / "model"
    shutil.copytree(tiny_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = THINKING_TEMPLATE
    tok.save_pretrained(out)
    return out


def _prompt_lengths(model_dir, parquet, **kwargs) -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = pd.read_parquet(parquet)["prompt"]
    return [len(tok.apply_chat_template(list(p), add_generation_prompt=True, tokenize=True, return_dict=False, **kwargs))
            for p in rows]


def test_prompt_lengths_are_measured_with_chat_template_kwargs(grpo_env, thinking_model):
    val = REPO_ROOT / "grpo" / "data" / "val.parquet"
    plain = max(_prompt_lengths(thinking_model, val))
    thinking_off = _prompt_lengths(thinking_model, val, enable_thinking=False)
    assert max(thinking_off) > plain  # the template reads the argument
    env = {**grpo_env, "MODEL_PATH": str(thinking_model), "TRAIN_DATA": str(val), "MAX_PROMPT_LENGTH": str(plain)}
    without = {r.check: r for r in run("grpo", env)}
    assert without["prompt lengths"].status == "ok" and "chat template" not in without
    kwargs = {**env, "CHAT_TEMPLATE_KWARGS": '{"enable_thinking": false}'}
    results = {r.check: r for r in run("grpo", kwargs)}
    assert results["chat template"].status == "ok"
    # With the think block, the prompts longer than the limit that fitted them all are counted.
    over = sum(n > plain for n in thinking_off)
    assert 0 < over < 200 and results["prompt lengths"].failed
    assert results["prompt lengths"].detail.startswith(f"{over} of all 200 rows")


def test_chat_template_kwargs_the_template_ignores_are_a_warning(grpo_env):
    results = {r.check: r for r in run("grpo", {**grpo_env, "CHAT_TEMPLATE_KWARGS": '{"enable_thinking": false}'})}
    row = results["chat template"]
    assert row.status == "warn" and "does not change" in row.detail and row.knobs == ["CHAT_TEMPLATE_KWARGS"]


@pytest.mark.slow
def test_the_preflight_counts_what_verls_dataset_filters(grpo_env, thinking_model, tmp_path):
    """verl's own RLHFDataset, given the same template arguments, drops exactly the prompts the preflight counts."""
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from verl.utils.dataset.rl_dataset import RLHFDataset

    val = REPO_ROOT / "grpo" / "data" / "val.parquet"
    limit = max(_prompt_lengths(thinking_model, val)) + 3  # between the plain and the thinking-off lengths
    env = {**grpo_env, "MODEL_PATH": str(thinking_model), "TRAIN_DATA": str(val), "MAX_PROMPT_LENGTH": str(limit),
           "CHAT_TEMPLATE_KWARGS": '{"enable_thinking": false}'}
    row = {r.check: r for r in run("grpo", env)}["prompt lengths"]
    over = int(row.detail.split(" of ")[0]) if row.status != "ok" else 0
    assert 0 < over < 200, row.detail
    config = OmegaConf.create({"max_prompt_length": limit, "filter_overlong_prompts": True, "cache_dir": str(tmp_path),
                               "apply_chat_template_kwargs": {"enable_thinking": False}, "prompt_key": "prompt"})
    dataset = RLHFDataset(str(val), AutoTokenizer.from_pretrained(thinking_model), config)
    assert 200 - len(dataset) == over
