"""All five methods through their real train.sh: verl accepts each config, and each sets the keys
that define it at the paths verl 0.9.1 reads (it silently ignores legacy ones).

    .venv/bin/python -m pytest tests/test_methods.py -q
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from tests.launch_helpers import REPO_ROOT, dry_run, printed_command, resolved_config

METHODS = ("sft", "grpo", "ppo", "dapo", "gspo")
RL_METHODS = METHODS[1:]


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    """method -> (resolved config, printed command), from one DRY_RUN=1 each."""
    out = tmp_path_factory.mktemp("outputs")
    results = {}
    for method in METHODS:
        result = dry_run(method, env={"OUTPUT_DIR": str(out)})
        assert result.returncode == 0, f"{method}: {result.stderr}"
        results[method] = (resolved_config(result.stdout), printed_command(result.stdout))
    return results


@pytest.mark.parametrize("method", METHODS)
def test_printed_command_composes_and_passes_verl_checks(resolved, method):
    _, command = resolved[method]
    args = command[command.index("--config-name") + 2 :]
    with initialize_config_dir(config_dir=str(REPO_ROOT / method), version_base=None):
        cfg = compose("config", overrides=args)
    if method == "sft":
        from verl.utils.config import omega_conf_to_dataclass

        assert command[1:3] == ["-m", "torch.distributed.run"] and "verl.trainer.sft_trainer" in command
        for key in ("engine", "optim", "checkpoint"):
            omega_conf_to_dataclass(cfg[key])
    else:
        from verl.trainer.ppo.utils import need_reference_policy
        from verl.utils.config import validate_config

        assert command[1:3] == ["-m", "verl.trainer.main_ppo"]
        # The critic's own check needs the model's files; the actor, rollout and batch checks run.
        validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=False)


# (method, verl config path, expected value) — the keys that make each method what it is.
DEFINING_KEYS = [
    ("grpo", "algorithm.adv_estimator", "grpo"),
    ("grpo", "actor_rollout_ref.actor.use_kl_loss", True),
    ("grpo", "actor_rollout_ref.actor.kl_loss_type", "low_var_kl"),
    ("grpo", "actor_rollout_ref.rollout.n", 5),
    ("ppo", "algorithm.adv_estimator", "gae"),
    ("ppo", "actor_rollout_ref.rollout.n", 1),
    ("ppo", "critic.optim.lr", 1e-5),
    ("ppo", "critic.model.path", "Qwen/Qwen2.5-0.5B-Instruct"),  # not verl's placeholder path
    ("dapo", "algorithm.adv_estimator", "grpo"),
    ("dapo", "actor_rollout_ref.actor.clip_ratio_low", 0.2),
    ("dapo", "actor_rollout_ref.actor.clip_ratio_high", 0.28),
    ("dapo", "actor_rollout_ref.actor.loss_agg_mode", "token-mean"),
    ("dapo", "actor_rollout_ref.actor.use_kl_loss", False),
    ("dapo", "algorithm.use_kl_in_reward", False),
    ("dapo", "algorithm.filter_groups.enable", True),
    ("dapo", "algorithm.filter_groups.metric", "acc"),
    ("dapo", "reward.reward_manager.name", "dapo"),
    ("dapo", "reward.reward_kwargs.overlong_buffer_cfg.enable", True),
    ("dapo", "reward.reward_kwargs.overlong_buffer_cfg.len", 256),
    ("dapo", "reward.reward_kwargs.max_resp_len", 1024),
    ("gspo", "actor_rollout_ref.actor.policy_loss.loss_mode", "gspo"),
    ("gspo", "actor_rollout_ref.actor.clip_ratio_low", 3e-4),
    ("gspo", "actor_rollout_ref.actor.clip_ratio_high", 4e-4),
    ("gspo", "actor_rollout_ref.actor.loss_agg_mode", "seq-mean-token-mean"),
    ("gspo", "actor_rollout_ref.rollout.n", 8),
    ("sft", "data.messages_key", "messages"),
    ("sft", "trainer.save_freq", 30),
]


@pytest.mark.parametrize(("method", "path", "expected"), DEFINING_KEYS)
def test_method_defining_keys(resolved, method, path, expected):
    from omegaconf import OmegaConf

    cfg, _ = resolved[method]
    value = OmegaConf.select(cfg, path)
    assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected


@pytest.mark.parametrize("method", RL_METHODS)
def test_rl_reward_at_the_path_verl_reads(resolved, method):
    cfg, _ = resolved[method]
    # verl loads the reward guard, which calls the block's function (REWARD_FUNC_PATH) under a time limit.
    assert cfg.reward.custom_reward_function.path == str(REPO_ROOT / "common" / "reward_guard.py")
    target = cfg.reward.custom_reward_function.reward_kwargs.guard_target_path
    assert (REPO_ROOT / method / "reward_func.py").samefile(target) if method == "grpo" else Path(target).is_file()
    assert cfg.reward.custom_reward_function.reward_kwargs.guard_timeout_s == 30
    # The legacy top-level keys that main_ppo 0.9.1 ignores stay empty.
    assert cfg.custom_reward_function.path is None
    assert cfg.reward_model.reward_manager is None
    assert cfg.actor_rollout_ref.rollout.tensor_model_parallel_size == 1
    assert cfg.trainer.save_freq > 0 and list(cfg.trainer.logger) == ["console", "file"]


@pytest.mark.parametrize("method", RL_METHODS)
def test_reward_loads_through_verls_loader_and_scores(resolved, method):
    from verl.trainer.ppo.reward import get_custom_reward_fn

    cfg, _ = resolved[method]
    fn = get_custom_reward_fn(cfg)

    def call(*args, **kwargs):
        # The guard is async (verl's reward loop awaits coroutine functions, as here).
        out = fn(*args, **kwargs)
        return asyncio.run(out) if inspect.isawaitable(out) else out

    right = call("openai/gsm8k", "3 + 4 = 7 apples.\n#### 7", "7", extra_info={"index": 0})
    wrong = call("openai/gsm8k", "#### 8", "7", extra_info={"index": 1})
    assert right["score"] == 1.0 and wrong["score"] == 0.0
    assert list(right) == list(wrong) and right["reward_error"] == 0.0


@pytest.mark.parametrize(
    ("method", "env", "path", "expected"),
    [
        # why: every RL method switches engine with one variable
        ("grpo", {"ROLLOUT_ENGINE": "sglang"}, "actor_rollout_ref.rollout.name", "sglang"),
        ("dapo", {"ROLLOUT_ENGINE": "sglang"}, "actor_rollout_ref.rollout.name", "sglang"),
        # why: LoRA on in a method that is not the GRPO default
        ("gspo", {"USE_LORA": "true", "LORA_RANK": "64"}, "actor_rollout_ref.model.lora_rank", 64),
        ("sft", {"USE_LORA": "true", "LORA_RANK": "16", "LORA_TARGET_MODULES": "[q_proj,v_proj]"}, "model.lora_rank", 16),
        ("sft", {"LORA_TARGET_MODULES": "[q_proj,v_proj]"}, "model.target_modules", ["q_proj", "v_proj"]),
        # why: DAPO's entropy control swaps the policy loss, with the Entropy-Mechanism recipe's values
        ("dapo", {"ENTROPY_MODE": "clip_cov"}, "actor_rollout_ref.actor.policy_loss.loss_mode", "clip_cov"),
        ("dapo", {"ENTROPY_MODE": "kl_cov"}, "actor_rollout_ref.actor.policy_loss.ppo_kl_coef", 1.0),
        # why: an ALGORITHM preset through grpo/train.sh (its block leaves USE_KL_LOSS to the preset)
        ("grpo", {"ALGORITHM": "rloo"}, "algorithm.adv_estimator", "rloo"),
        ("grpo", {"ALGORITHM": "rloo"}, "actor_rollout_ref.actor.use_kl_loss", False),
        # why: rollout correction and chat template arguments reach verl from every RL block (and SFT's)
        ("gspo", {"ROLLOUT_CORRECTION": "sequence"}, "algorithm.rollout_correction.rollout_is", "sequence"),
        ("ppo", {"CHAT_TEMPLATE_KWARGS": '{"enable_thinking": false}'}, "data.apply_chat_template_kwargs",
         {"enable_thinking": False}),
        ("sft", {"CHAT_TEMPLATE_KWARGS": '{"enable_thinking": false}'}, "data.apply_chat_template_kwargs",
         {"enable_thinking": False}),
        ("dapo", {"DYNAMIC_SAMPLING": "false"}, "algorithm.filter_groups.enable", False),
        # why: the reward model variant inherits PPO and turns the function off
        ("ppo", {"USE_REWARD_MODEL": "true", "REWARD_MODEL_PATH": "org/rm"}, "reward.reward_model.enable", True),
        ("ppo", {"USE_REWARD_MODEL": "true", "REWARD_MODEL_PATH": "org/rm"}, "reward.custom_reward_function.path", None),
        ("ppo", {"USE_REWARD_MODEL": "true", "REWARD_MODEL_PATH": "org/rm"}, "reward.reward_model.model_path", "org/rm"),
        ("ppo", {"USE_REWARD_MODEL": "true", "REWARD_MODEL_PATH": "org/rm"}, "algorithm.adv_estimator", "gae"),
        # why: the API judge variant points the guard at api_reward.py, with room for the judge's queue
        ("ppo", {"USE_API_REWARD": "true"}, "reward.custom_reward_function.reward_kwargs.guard_target_path",
         str(REPO_ROOT / "ppo" / "api_reward.py")),
        ("ppo", {"USE_API_REWARD": "true"}, "reward.custom_reward_function.reward_kwargs.guard_timeout_s", 1800.0),
        # why: without the guard verl calls the function itself; STRICT_BOXED reaches the reward's kwargs
        ("grpo", {"REWARD_GUARD": "false"}, "reward.custom_reward_function.path", str(REPO_ROOT / "grpo" / "reward_func.py")),
        ("grpo", {"REWARD_TIMEOUT_S": "7"}, "reward.custom_reward_function.reward_kwargs.guard_timeout_s", 7.0),
        ("gspo", {"STRICT_BOXED": "true"}, "reward.custom_reward_function.reward_kwargs.strict_boxed", True),
    ],
)
def test_knobs_reach_verl(tmp_path, method, env, path, expected):
    from omegaconf import OmegaConf

    result = dry_run(method, env={"OUTPUT_DIR": str(tmp_path), **env})
    assert result.returncode == 0, result.stderr
    value = OmegaConf.select(resolved_config(result.stdout), path)
    assert (list(value) if OmegaConf.is_list(value) else value) == expected


def test_reward_model_without_path_is_refused(tmp_path):
    result = dry_run("ppo", env={"OUTPUT_DIR": str(tmp_path), "USE_REWARD_MODEL": "true"})
    assert result.returncode == 2 and "REWARD_MODEL_PATH" in result.stderr


def test_sft_checkpoint_folder_accepted_as_model_path(tmp_path):
    """An SFT run folder as MODEL_PATH: the launcher merges it with verl's merger and uses the export."""
    import shutil
    import subprocess
    import sys

    # A real verl FSDP checkpoint of the tiny model (verl's FSDPCheckpointManager on CPU/gloo) ...
    subprocess.run([sys.executable, "-m", "tests.common.test_test_model_checkpoint", str(tmp_path)],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    # ... laid out the way verl's SFT trainer saves: shards directly in global_step_N/.
    run_dir = tmp_path / "outputs" / "sft-tiny"
    checkpoints = run_dir / "checkpoints"
    shutil.copytree(tmp_path / "experiment", checkpoints)
    for step_dir in checkpoints.glob("global_step_*"):
        for item in (step_dir / "actor").iterdir():
            item.rename(step_dir / item.name)
        (step_dir / "actor").rmdir()
    result = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path / "o2"), "MODEL_PATH": str(run_dir)})
    assert result.returncode == 0, result.stderr
    model = resolved_config(result.stdout).actor_rollout_ref.model.path
    assert model.startswith(str(checkpoints / "global_step_2")) and model.endswith("huggingface_merged")
    assert "MODEL_PATH is a verl checkpoint" in result.stdout and "(merged now)" in result.stdout
    again = dry_run("grpo", env={"OUTPUT_DIR": str(tmp_path / "o2"), "MODEL_PATH": str(run_dir)})
    assert "(merged earlier, reused)" in again.stdout


# Lines a train.sh may hold besides knob assignments and comments: the shared preamble and launch.
_ALLOWED_LINES = {
    "#!/usr/bin/env bash",
    "set -euo pipefail",
    "set -a  # everything assigned below is exported to the shared launcher",
    'HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)',
    # Numbers used in the block's $(( )) are checked before it runs (a value is never run as code).
    'source "$HERE/../common/block.sh"',
    "set +a",
    'exec "$HERE/../common/launch.sh" "$HERE" "$@"',
}
_KNOB = re.compile(r"^[A-Z][A-Z0-9_]*=\$\{[A-Z][A-Z0-9_]*:-.*\}$")


@pytest.mark.parametrize("method", METHODS)
def test_train_sh_is_only_a_config_block(method):
    """No logic in a train.sh: the launcher holds it, so the five scripts cannot drift apart."""
    for number, line in enumerate((REPO_ROOT / method / "train.sh").read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or line in _ALLOWED_LINES:
            continue
        assert _KNOB.match(line), f"{method}/train.sh:{number} is not NAME=${{NAME:-default}}: {line}"
        name, default = line.split("=", 1)
        assert default.startswith("${" + name + ":-"), f"{method}/train.sh:{number}: {name} reads another variable"


@pytest.mark.parametrize("method", METHODS)
def test_every_knob_has_its_own_comment(method):
    """Each knob is read with the one-line explanation right above it."""
    lines = (REPO_ROOT / method / "train.sh").read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if _KNOB.match(line):
            above = lines[number - 2].strip()
            assert above.startswith("# ") and not above.startswith(("# ----", "# ====")), (
                f"{method}/train.sh:{number} {line.split('=', 1)[0]} has no comment of its own above it"
            )
