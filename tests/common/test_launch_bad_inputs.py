"""The launcher against careless and hostile input: each case a clear error naming the knob, exit 2,
nothing written; and the words a newcomer reads (help, typos, dry-run summary, progress).

    .venv/bin/python -m pytest tests/common/test_launch_bad_inputs.py -q

In-process cases build the plan, compose and run the preflight like a launch (~0.5 s each); the
train.sh cases run the real script (bash, common/block.sh, the launcher) in a subprocess.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time

import pandas as pd
import pytest

from common import launch, preflight, run_folder
from common.knobs import ConfigError
from tests.launch_helpers import REPO_ROOT, dry_run, grpo_block, resolved_config

METHODS = ("grpo", "ppo", "dapo", "gspo", "sft")


@pytest.fixture(scope="module")
def grpo_env(tiny_model_dir, tmp_path_factory):
    return grpo_block(tiny_model_dir, tmp_path_factory.mktemp("bad_inputs_out"), EXPERIMENT_NAME="exp")


def checks(env: dict, args=(), method="grpo", gpus=0):
    plan = launch.make_plan(REPO_ROOT / method, env, list(args), detect=lambda: (gpus, "test"))
    cfg = launch.compose_config(plan)
    return plan, cfg, preflight.run_checks(plan, cfg, env=env, dry_run=True, gpus_found=gpus)


def failed(results, check):
    return [r for r in results if r.failed and r.check == check]


# ---------------------------------------------------------------------------------------------
# values that never reach bash arithmetic, verl or a file


@pytest.mark.parametrize("method, knob", [("grpo", "TRAIN_BATCH_SIZE"), ("dapo", "MAX_RESPONSE_LENGTH"),
                                          ("sft", "MAX_LENGTH"), ("ppo", "TRAIN_BATCH_SIZE"), ("gspo", "TRAIN_BATCH_SIZE")])
def test_knob_values_are_never_run_as_code(tmp_path, method, knob):
    # why: bash evaluates a value inside $(( )) as an expression: an array index runs $(...)
    marker = tmp_path / "pwned"
    result = dry_run(method, env={knob: f"BASH_VERSINFO[$(touch {marker})0]", "OUTPUT_DIR": str(tmp_path / "o")})
    assert result.returncode == 2
    assert not marker.exists()
    assert f"{knob}='BASH_VERSINFO" in result.stderr and "not a whole number" in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_word_where_a_number_belongs(tmp_path):
    # why: TRAIN_BATCH_SIZE=abc used to end in bash's "abc: unbound variable"
    result = dry_run("grpo", env={"TRAIN_BATCH_SIZE": "abc", "OUTPUT_DIR": str(tmp_path)})
    assert result.returncode == 2 and "TRAIN_BATCH_SIZE='abc' is not a whole number" in result.stderr
    assert "unbound variable" not in result.stderr


@pytest.mark.parametrize(
    "changes, knob, words",
    [
        ({"MAX_RESPONSE_LENGTH": "-5"}, "MAX_RESPONSE_LENGTH", ">= 1"),  # why: a negative length
        ({"MAX_RESPONSE_LENGTH": "0"}, "MAX_RESPONSE_LENGTH", ">= 1"),  # why: nothing to generate
        ({"ROLLOUT_N": "0"}, "ROLLOUT_N", ">= 1"),  # why: no responses, no group
        ({"ACTOR_LR": "0"}, "ACTOR_LR", "> 0"),  # why: a zero learning rate trains nothing
        ({"GPU_MEM_UTIL": "1.5"}, "GPU_MEM_UTIL", "<= 1"),  # why: a share above the whole GPU
        ({"SAVE_FREQ": "0"}, "SAVE_FREQ", "-1 for off"),  # why: verl computes step % save_freq
        ({"TEMPERATURE": "nan"}, "TEMPERATURE", "finite"),  # why: NaN passes every < and > test
        ({"SEED": "99999999999"}, "SEED", "<= 4294967295"),  # why: numpy seeds are 32-bit
        ({"ENTROPY_MODE": "clip_cov", "CLIP_COV_RATIO": "0"}, "CLIP_COV_RATIO", "> 0"),  # why: clip_cov would cut no token
    ],
)
def test_out_of_range_numbers(grpo_env, changes, knob, words):
    with pytest.raises(ConfigError) as info:
        checks({**grpo_env, **changes})
    assert knob in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    "name, words",
    [
        ("${oc.env:HOME}", "plain folder name"),  # why: OmegaConf would interpolate it: checkpoints outside the run
        ("a" * 300, "at most 120"),  # why: an OSError traceback deep in verl otherwise
        ("../escape", "plain folder name"),  # why: a run folder outside OUTPUT_DIR
        ("has space", "plain folder name"),
    ],
)
def test_experiment_names_that_would_move_or_break_the_run_folder(grpo_env, name, words):
    with pytest.raises(ConfigError, match="EXPERIMENT_NAME") as info:
        checks({**grpo_env, "EXPERIMENT_NAME": name})
    assert words in str(info.value)


def test_interpolation_in_a_knob_value_stays_text(grpo_env):
    # why: ${...} in any value must never be resolved by OmegaConf (a path, a run name)
    _, cfg, _ = checks({**grpo_env, "WANDB_RUN_NAME": "run-${oc.env:HOME}"})
    assert cfg.trainer.experiment_name == "run-${oc.env:HOME}"


@pytest.mark.parametrize("changes, knob", [({"KL_STOP_THRESHOLD": "abc"}, "KL_STOP_THRESHOLD"),
                                           ({"CALLBACKS_FILE": "/nonexistent/hooks.py"}, "CALLBACKS_FILE"),
                                           ({"STOP_ON_NAN": "sometimes"}, "STOP_ON_NAN")])
def test_callback_knobs_fail_the_dry_run_before_anything_is_written(tmp_path, changes, knob):
    # why: they used to pass the dry run and fail after the run folder existed (run.json with exit_code null)
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), **changes})
    assert result.returncode == 2 and knob in result.stderr and "config error" in result.stderr
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# data that looks fine until verl reads it


@pytest.fixture(scope="module")
def corrupt_parquet(tmp_path_factory):
    """The bundled train file rewritten with zstd, then bytes flipped inside a data page."""
    d = tmp_path_factory.mktemp("corrupt")
    good = d / "good.parquet"
    pd.read_parquet(REPO_ROOT / "grpo" / "data" / "train.parquet").to_parquet(good, compression="zstd", row_group_size=500)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeroes inside a compressed page: the footer still reads
    bad = d / "bad.parquet"
    bad.write_bytes(bytes(data))
    return bad


def test_a_corrupt_page_is_a_failure_not_a_warning(grpo_env, corrupt_parquet):
    import pyarrow.parquet as pq

    pq.ParquetFile(corrupt_parquet)  # the footer is fine: only reading the pages finds the damage
    _, _, results = checks({**grpo_env, "TRAIN_DATA": str(corrupt_parquet)})
    bad = failed(results, "data")
    assert bad and "row group" in bad[0].detail and "TRAIN_DATA" in bad[0].knobs, preflight.format_table(results)


def test_a_check_that_crashes_fails(grpo_env, monkeypatch):
    from common.checks import data

    monkeypatch.setattr(data, "_unreadable_page", lambda meta: 1 / 0)
    monkeypatch.setattr(preflight, "data_checks", data.data_checks)
    _, _, results = checks(grpo_env)
    assert any(r.failed and "crashed" in r.detail and "ZeroDivisionError" in r.detail for r in results)


def test_own_train_data_with_bundled_validation_is_warned(grpo_env, tmp_path):
    own = tmp_path / "mine.parquet"
    pd.read_parquet(REPO_ROOT / "grpo" / "data" / "train.parquet").head(64).to_parquet(own)
    _, _, results = checks({**grpo_env, "TRAIN_DATA": str(own)})
    assert any(r.status == "warn" and r.check == "data" and "VAL_DATA" in r.knobs for r in results)
    _, _, results = checks(grpo_env)  # the bundled pair: no such warning
    assert not any(r.check == "data" and "VAL_DATA" in r.knobs for r in results)


# ---------------------------------------------------------------------------------------------
# one run folder, one launch at a time


def test_a_second_live_launch_is_refused_naming_the_first(grpo_env):
    plan1, cfg, _ = checks(grpo_env)
    plan2 = launch.make_plan(REPO_ROOT / "grpo", grpo_env, [], detect=lambda: (0, "test"))
    assert plan1.launch_id != plan2.launch_id  # ids no longer collide within a second
    with run_folder.launch_lock(plan1):
        with pytest.raises(ConfigError) as info:
            with run_folder.launch_lock(plan2):
                pass
        assert f"pid {os.getpid()}" in str(info.value) and "EXPERIMENT_NAME" in str(info.value)
        # A dry run sees it too.
        results = preflight.run_checks(plan2, cfg, env=grpo_env, dry_run=True, gpus_found=0)
        assert failed(results, "output folder")
    with run_folder.launch_lock(plan2):  # released with the first launch
        pass


def test_a_resume_from_another_model_is_refused(grpo_env, tmp_path):
    env = {**grpo_env, "OUTPUT_DIR": str(tmp_path)}
    plan, cfg, _ = checks(env)
    (plan.run_dir / "checkpoints" / "global_step_2").mkdir(parents=True)
    (plan.run_dir / "run.json").write_text(json.dumps({"model": "/models/another", "launches": []}))
    results = preflight.run_checks(plan, cfg, env=env, dry_run=True, gpus_found=0)
    assert failed(results, "output folder") and "/models/another" in failed(results, "output folder")[0].detail
    _, _, results = checks({**env, "RESUME_MODE": "disable"})
    assert not failed(results, "output folder")


# ---------------------------------------------------------------------------------------------
# secrets


def test_credentials_in_urls_and_secret_variables_stay_out_of_the_dry_run(tmp_path):
    env = {"OUTPUT_DIR": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMIK7MDENGbPxRfiCY",
           "JUDGE_BASE_URL": "https://judge-user:judge-pass-9@judge.example.com/v1"}
    result = dry_run("grpo", env=env, args=("+reward.custom_reward_function.reward_kwargs.base_url="
                                            "https://judge-user:judge-pass-9@judge.example.com/v1",))
    assert result.returncode == 0, result.stderr
    config_file = next(tmp_path.glob("*/dry_run.yaml"))
    for text in (result.stdout, result.stderr, config_file.read_text()):
        assert "judge-pass-9" not in text and "wJalrXUtnFEMIK7MDENGbPxRfiCY" not in text
    assert resolved_config(result.stdout).reward.custom_reward_function.reward_kwargs.base_url == "https://***@judge.example.com/v1"


# ---------------------------------------------------------------------------------------------
# what a newcomer reads


def test_a_trailing_slash_in_model_path_still_names_the_run(tiny_model_dir, tmp_path):
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), "MODEL_PATH": f"{tiny_model_dir}/"})
    assert result.returncode == 0, result.stderr
    assert f"# run folder: {tmp_path / ('grpo-' + tiny_model_dir.name)}" in result.stdout


def test_dry_run_summary_help_typos_and_progress(tmp_path):
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), "ROLOUT_N": "8", "ACTOR_LR": "2e-6"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 120, len(lines)  # the preflight and the command, not 1,160 lines of config
    assert "composing the config with verl" in result.stderr  # no 10 s of silence
    assert "did you mean ROLLOUT_N?" in result.stdout  # a typo is named, with the knob it meant
    assert any(line.startswith("ACTOR_LR=2e-6") and "(default: 1e-6)" in line for line in lines)
    assert lines[-2].startswith("# preflight PASS")  # the verdict where the eye lands
    full = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), "DRY_RUN": "full"})
    assert "# ---- resolved config (verl's own composition) ----" in full.stdout and len(full.stdout.splitlines()) > 500


def test_help_lists_the_block_with_values_and_comments():
    result = dry_run("grpo", env={"ROLLOUT_N": "8"}, args=("--help",))
    assert result.returncode == 0, result.stderr
    assert "ROLLOUT_N=8   [default '5']" in result.stdout
    assert "Responses per prompt" in result.stdout and "TRAIN_BATCH_SIZE=32" in result.stdout
    assert "./grpo/train.sh trainer.total_epochs=1" in result.stdout
    assert "LexerNoViableAltException" not in result.stdout + result.stderr


def test_an_unknown_override_gets_the_key_it_meant(grpo_env):
    with pytest.raises(ConfigError) as info:
        checks(grpo_env, args=("trainer.total_epoch=1",))
    assert "did you mean trainer.total_epochs?" in str(info.value)
    plan, _, _ = checks(grpo_env, args=("+trainer.total_epoch=1",))
    assert any("did you mean trainer.total_epochs?" in note for note in plan.model_notes)


def test_too_many_gpus_speaks_with_one_voice_naming_the_knob(tmp_path):
    # why: verl printed "All configuration checks passed successfully!", then three errors ending "Try 5"
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path), "N_GPUS_PER_NODE": "8"})
    assert result.returncode == 2
    assert "All configuration checks passed" not in result.stdout + result.stderr
    assert result.stderr.count("[batch sizes]") == 1
    assert "MICRO_BATCH_SIZE_PER_GPU=5" in result.stderr


def test_a_batch_below_the_micro_batch_gets_a_consistent_set(grpo_env):
    # why: TRAIN_BATCH_SIZE=4 with the default micro batch of 8 used to fail on the next knob, one at a time
    _, _, results = checks({**grpo_env, "TRAIN_BATCH_SIZE": "4", "PPO_MINI_BATCH_SIZE": "2"})
    rows = failed(results, "batch sizes")
    assert len(rows) == 1 and "A consistent set" in rows[0].detail and "MICRO_BATCH_SIZE_PER_GPU=5" in rows[0].detail
    assert rows[0].knobs[0] == "MICRO_BATCH_SIZE_PER_GPU"


def test_no_gpu_message_gives_the_command_from_where_you_are(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    env.update(OUTPUT_DIR=str(tmp_path))
    result = subprocess.run(["./train.sh"], cwd=REPO_ROOT / "grpo", env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 1 and "DRY_RUN=1 ./train.sh" in result.stderr


class _Hub(http.server.BaseHTTPRequestHandler):
    """The hub's /api/models/<id>: one model exists, everything else is 404."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/api/models/Org/Real-Model"):
            body = json.dumps({"id": "Org/Real-Model", "modelId": "Org/Real-Model", "usedStorage": 988000000}).encode()
            self.send_response(200)
        else:
            body = json.dumps({"error": "Repository not found"}).encode()
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub.constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_hub_id_with_a_typo_fails_when_the_hub_answers(grpo_env, hub, tmp_path):
    env = {**grpo_env, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub, "HF_HOME": str(tmp_path)}
    started = time.monotonic()
    _, _, results = checks({**env, "MODEL_PATH": "Org/Real-Modle"})
    assert failed(results, "model") and "no model 'Org/Real-Modle'" in failed(results, "model")[0].detail
    _, _, results = checks({**env, "MODEL_PATH": "Org/Real-Model"})
    assert [r.status for r in results if r.check == "model"] == ["ok"]
    _, _, results = checks({**grpo_env, "MODEL_PATH": "Org/Real-Modle", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert [r.status for r in results if r.check == "model"] == ["skipped"]  # offline: said, not guessed
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------------------------------------
# audit of the launcher's inputs: numbers bash or Python read otherwise, several errors at once,
# pass-through overrides, paths that cannot be read, the help's secrets


@pytest.mark.parametrize("value, words", [("010", "TRAIN_BATCH_SIZE=10"), ("08", "TRAIN_BATCH_SIZE=8"),
                                          ("99999999999999999999", "too large")])
def test_numbers_bash_arithmetic_reads_otherwise(tmp_path, value, words):
    # why: 010 is octal 8 in $(( )) (PPO_MINI_BATCH_SIZE became 4), 08 ended in bash's "value too great for base"
    result = dry_run("grpo", env={"TRAIN_BATCH_SIZE": value, "OUTPUT_DIR": str(tmp_path / "o")})
    assert result.returncode == 2 and f"TRAIN_BATCH_SIZE='{value}'" in result.stderr and words in result.stderr
    assert "value too great" not in result.stderr and not (tmp_path / "o").exists()


def test_every_number_bash_cannot_use_is_named(tmp_path):
    # why: block.sh stopped at the first one
    result = dry_run("dapo", env={"TRAIN_BATCH_SIZE": "abc", "MAX_RESPONSE_LENGTH": "x", "OUTPUT_DIR": str(tmp_path / "o")})
    assert result.returncode == 2
    assert "TRAIN_BATCH_SIZE='abc'" in result.stderr and "MAX_RESPONSE_LENGTH='x'" in result.stderr


@pytest.mark.parametrize("changes, words", [
    ({"ROLLOUT_N": "８"}, "ROLLOUT_N='８' is not a whole number"),  # why: Python's int() read it as 8
    ({"ACTOR_LR": "１e-6"}, "ACTOR_LR='１e-6' is not a number"),
    ({"ROLLOUT_N": "99999999999999999999"}, "ROLLOUT_N=99999999999999999999 is too large"),  # why: it passed
    ({"MAX_PROMPT_LENGTH": "99999999999999999999"}, "MAX_PROMPT_LENGTH"),  # why: a memory failure naming other knobs
])
def test_unicode_digits_and_numbers_past_64_bits(grpo_env, changes, words):
    with pytest.raises(ConfigError) as info:
        checks({**grpo_env, **changes})
    assert words in str(info.value)


def test_every_wrong_knob_is_named_at_once(tmp_path):
    # why: the first wrong value stopped the launch; fixing it only revealed the next
    env = {"ROLLOUT_N": "0", "ACTOR_LR": "-1", "TOTAL_EPOCHS": "abc", "USE_KL_LOSS": "maybe", "N_GPUS_PER_NODE": "x",
           "EXPERIMENT_NAME": "../x", "USE_WANDB": "perhaps", "OUTPUT_DIR": str(tmp_path / "o")}
    result = dry_run("grpo", env=env)
    assert result.returncode == 2 and "7 config-block values need fixing" in result.stderr
    for knob in ("ROLLOUT_N", "ACTOR_LR", "TOTAL_EPOCHS", "USE_KL_LOSS", "N_GPUS_PER_NODE", "EXPERIMENT_NAME", "USE_WANDB"):
        assert f"{knob}=" in result.stderr, knob
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("changes, knob", [({"GPU_MEMORY_GB": "abc"}, "GPU_MEMORY_GB"),  # why: "the check itself crashed"
                                           ({"GPU_MEMORY_GB": "-5"}, "GPU_MEMORY_GB"),  # why: a memory failure of -4.7 GiB
                                           ({"KL_STOP_THRESHOLD": "-1"}, "KL_STOP_THRESHOLD"),  # why: silently off
                                           ({"KL_STOP_STEPS": "0"}, "KL_STOP_STEPS")])
def test_launcher_numbers_are_checked_like_knobs(grpo_env, changes, knob):
    with pytest.raises(ConfigError) as info:
        checks({**grpo_env, **changes})
    message = str(info.value)
    assert message.startswith(f"{knob}=") and ("out of range" in message or "not a number" in message)


def test_the_default_run_name_of_a_model_folder_with_spaces(tiny_model_dir, grpo_env, tmp_path):
    # why: a valid MODEL_PATH with a space failed on EXPERIMENT_NAME, a knob the user never set
    model = tmp_path / "my model"
    model.symlink_to(tiny_model_dir, target_is_directory=True)
    env = {**grpo_env, "MODEL_PATH": str(model), "EXPERIMENT_NAME": "grpo-my model"}  # what the block derives
    plan, _, _ = checks(env)
    assert plan.run_dir.name == "grpo-my-model" and any("made a plain folder name" in n for n in plan.model_notes)
    with pytest.raises(ConfigError, match="EXPERIMENT_NAME"):  # a name the user wrote is still refused
        checks({**env, "EXPERIMENT_NAME": "my run"})


def test_paths_that_cannot_be_read_are_named(grpo_env, tmp_path):
    # why: a name too long (like an unreadable folder) was an OSError traceback from MODEL_PATH and
    # "the check itself crashed" from TRAIN_DATA; a folder given as TRAIN_DATA "does not exist"
    with pytest.raises(ConfigError, match="MODEL_PATH=.*cannot be read"):
        checks({**grpo_env, "MODEL_PATH": "/tmp/" + "m" * 300})
    _, _, results = checks({**grpo_env, "TRAIN_DATA": "/tmp/" + "d" * 300 + ".parquet", "VAL_DATA": str(tmp_path)})
    rows = {r.knobs[0]: r.detail for r in failed(results, "data")}
    assert "cannot be read" in rows["TRAIN_DATA"] and "is a folder, not a file" in rows["VAL_DATA"]


def test_an_empty_reward_file_names_the_path_knob(grpo_env, tmp_path):
    empty = tmp_path / "reward.py"
    empty.write_text("")
    _, _, results = checks({**grpo_env, "REWARD_FUNC_PATH": str(empty)})
    assert failed(results, "reward") and "REWARD_FUNC_PATH" in failed(results, "reward")[0].knobs


@pytest.mark.parametrize("method, arg, words", [
    ("grpo", "trainer.total_epochs=abc", "TOTAL_EPOCHS"),  # why: Hydra took it; verl would fail minutes in
    ("grpo", "actor_rollout_ref.actor.optim.lr=-1", "> 0"),  # why: bypassed ACTOR_LR's range
    ("grpo", "actor_rollout_ref.rollout.n=0", ">= 1"),  # why: the error said to change ROLLOUT_N in train.sh
    ("grpo", "trainer.val_before_train=maybe", "not a boolean"),
    ("grpo", "trainer.balance_batch=3", "is a boolean (true or false) in verl's config"),  # no knob: verl's own type
    ("sft", "trainer.total_epochs=abc", "not a whole number"),
])
def test_pass_through_overrides_get_the_knobs_checks(grpo_env, method, arg, words):
    env = grpo_env if method == "grpo" else {"OUTPUT_DIR": grpo_env["OUTPUT_DIR"]}
    with pytest.raises(ConfigError) as info:
        checks(env, args=(arg,), method=method)
    assert arg in str(info.value) and words in str(info.value)
    checks(grpo_env, args=("trainer.total_epochs=3", "actor_rollout_ref.actor.optim.lr=2e-6", "trainer.val_before_train=false"))


def test_arguments_that_are_not_overrides(tmp_path, grpo_env):
    # why: Hydra's LexerNoViableAltException for a mistyped --help; a knob after the script is no verl key
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path / "o")}, args=("--helpp",))
    assert result.returncode == 2 and "'--helpp': not an option or a key=value override" in result.stderr
    assert "LexerNoViableAltException" not in result.stderr and not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="ROLLOUT_N is a knob of the config block: set it before the script"):
        checks(grpo_env, args=("ROLLOUT_N=8",))


def test_help_hides_credentials_in_knob_values():
    # why: --help printed MODEL_PATH=https://user:pa55@host/m as given
    result = dry_run("grpo", env={"MODEL_PATH": "https://user:pa55@host/m"}, args=("--help",))
    assert result.returncode == 0 and "pa55" not in result.stdout and "MODEL_PATH=https://***@host/m" in result.stdout


def test_the_gpu_split_is_named_with_verls_batch_error(grpo_env):
    # why: N_GPUS_PER_NODE=3 with ROLLOUT_TP=2 named only the batch sizes; the TP error came after fixing them
    plan = launch.make_plan(REPO_ROOT / "grpo", {**grpo_env, "N_GPUS_PER_NODE": "3", "ROLLOUT_TP": "2"}, [],
                            detect=lambda: (0, "test"))
    with pytest.raises(ConfigError) as info:
        launch.check_config(plan, launch.compose_config(plan))
    assert "real_train_batch_size" in str(info.value) and "ROLLOUT_TP, N_GPUS_PER_NODE" in str(info.value)
