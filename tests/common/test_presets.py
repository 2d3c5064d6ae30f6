"""ALGORITHM, ENTROPY_MODE and ROLLOUT_CORRECTION presets: through verl's own composition and checks,
then through verl's own estimators, losses and rollout-correction code on tiny tensors.

    .venv/bin/python -m pytest tests/common/test_presets.py -q

Each preset's config is composed in-process exactly as a launch composes it (common.plan.make_plan +
verl_config.compose_config + check_config, which runs verl's validate_config and the actor,
rollout and algorithm dataclasses); the dataclasses it yields are what verl's workers would get.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from common import plan as plan_mod
from common import presets, verl_config
from common.knobs import ConfigError
from tests.launch_helpers import REPO_ROOT

BLOCK = {"ROLLOUT_ENGINE": "vllm", "ROLLOUT_TP": "1", "TRAIN_BATCH_SIZE": "32", "PPO_MINI_BATCH_SIZE": "16",
         "MICRO_BATCH_SIZE_PER_GPU": "8", "ROLLOUT_N": "4", "MAX_RESPONSE_LENGTH": "512"}
_CACHE: dict = {}


def composed(method: str, **env):
    """(plan, cfg, actor dataclass, algorithm dataclass) of a config block, verl's checks passed."""
    from verl.utils.config import omega_conf_to_dataclass

    key = (method, tuple(sorted(env.items())))
    if key not in _CACHE:
        plan = plan_mod.make_plan(REPO_ROOT / method, {**BLOCK, "OUTPUT_DIR": "/nonexistent-out", **env}, [],
                                  detect=lambda: (1, "test"))
        cfg = verl_config.compose_config(plan)
        verl_config.check_config(plan, cfg)
        _CACHE[key] = (plan, cfg, omega_conf_to_dataclass(cfg.actor_rollout_ref.actor), omega_conf_to_dataclass(cfg.algorithm))
    return _CACHE[key]


def _resolved(cfg, path: str):
    return OmegaConf.select(cfg, path)


ALL = [("grpo", "ALGORITHM", name) for name in presets.ALGORITHMS] + [
    ("dapo", "ENTROPY_MODE", name) for name in presets.ENTROPY_MODES]


@pytest.mark.parametrize(("method", "knob", "name"), ALL, ids=[f"{k}={n}" for _, k, n in ALL])
def test_every_preset_composes_passes_verl_checks_and_sets_its_keys(method, knob, name):
    plan, cfg, actor, algo = composed(method, **{knob: name})
    table = presets.ALGORITHMS if knob == "ALGORITHM" else presets.ENTROPY_MODES
    for setting in table[name].settings:
        expected = 512 if setting.raw else setting.value  # ${data.max_response_length} with MAX_RESPONSE_LENGTH=512
        value = _resolved(cfg, setting.path)
        assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected, setting.path
    # The dry run prints the preset, its paper and the keys it set.
    assert any(note.startswith(f"{knob}={name}:") and table[name].paper in note for note in plan.model_notes)
    # verl's dataclasses carry the preset: what the workers bind their loss and estimator to.
    assert actor.policy_loss.loss_mode == str(_resolved(cfg, "actor_rollout_ref.actor.policy_loss.loss_mode"))
    assert algo.adv_estimator == str(_resolved(cfg, "algorithm.adv_estimator"))


def test_dapo_keeps_its_own_techniques_under_an_entropy_mode():
    _, cfg, actor, algo = composed("dapo", ENTROPY_MODE="kl_cov")
    assert algo.filter_groups.enable and actor.loss_agg_mode == "token-mean" and not actor.use_kl_loss
    assert cfg.reward.reward_manager.name == "dapo"
    # vanilla sets nothing: DAPO's clip-higher from config.yaml stays.
    _, _, vanilla, _ = composed("dapo", ENTROPY_MODE="vanilla")
    assert (vanilla.clip_ratio_low, vanilla.clip_ratio_high, vanilla.policy_loss.loss_mode) == (0.2, 0.28, "vanilla")


# ---- the presets' behaviour, through verl's own estimators and losses


def _advantages(algo, scores: list[float], n: int, length: int = 3):
    """verl's estimator for algo on outcome rewards, called as ray_trainer.compute_advantage calls it."""
    from verl.trainer.ppo.core_algos import get_adv_estimator_fn

    rewards = torch.zeros(len(scores), length)
    rewards[:, -1] = torch.tensor(scores)  # verl puts the outcome reward on the last response token
    index = np.array([f"p{i // n}" for i in range(len(scores))], dtype=object)
    kwargs = {"token_level_rewards": rewards, "response_mask": torch.ones(len(scores), length), "index": index, "config": algo}
    if algo.adv_estimator == "grpo":
        kwargs["norm_adv_by_std_in_grpo"] = algo.norm_adv_by_std_in_grpo
    advantages, _ = get_adv_estimator_fn(algo.adv_estimator)(**kwargs)
    return advantages[:, 0]


SCORES = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # why: GRPO standardises inside the group: (r - 0.25) / std([1, 0, 0, 0])
        ("grpo", [(r - 0.25) / float(np.std([1, 0, 0, 0], ddof=1)) for r in SCORES[:4]]),
        # why: Dr. GRPO drops the std: r - group mean
        ("dr_grpo", [r - 0.25 for r in SCORES[:4]]),
        # why: RLOO's baseline is the mean of the other three: 1 - 0, 0 - 1/3
        ("rloo", [1.0, -1 / 3, -1 / 3, -1 / 3]),
    ],
)
def test_group_estimators_of_the_presets(name, expected):
    _, _, _, algo = composed("grpo", ALGORITHM=name)
    got = _advantages(algo, SCORES, n=4)[:4]
    assert torch.allclose(got, torch.tensor(expected, dtype=got.dtype), atol=1e-4)


def test_reinforce_pp_baseline_subtracts_the_group_mean_then_whitens_the_batch():
    _, _, _, algo = composed("grpo", ALGORITHM="reinforce_pp_baseline")
    got = _advantages(algo, SCORES, n=4)
    centred = torch.tensor([r - np.mean(SCORES[i // 4 * 4: i // 4 * 4 + 4]) for i, r in enumerate(SCORES)])
    # Whitened over every token of the batch: mean 0, std 1, same order as the group-centred rewards.
    assert abs(float(got.mean())) < 1e-5 and float(got.std()) == pytest.approx(1.0, rel=0.1)
    assert torch.equal(torch.argsort(got, stable=True), torch.argsort(centred.to(got.dtype), stable=True))


def _policy_loss(actor, log_ratio: list[list[float]], advantages: list[list[float]], mask=None, log_prob=None):
    """verl's policy loss of actor.policy_loss.loss_mode, as workers/utils/losses.py::ppo_loss calls it
    (global_batch_info filled the same way, for one data-parallel rank)."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    ratio = torch.tensor(log_ratio, dtype=torch.float64)
    old = torch.zeros_like(ratio) if log_prob is None else torch.tensor(log_prob, dtype=torch.float64) - ratio
    new = (old + ratio).clone().requires_grad_(True)
    mask = torch.ones_like(ratio) if mask is None else torch.tensor(mask, dtype=torch.float64)
    actor.global_batch_info.clear()
    actor.global_batch_info["loss_scale_factor"] = actor.loss_scale_factor
    loss, metrics = get_policy_loss_fn(actor.policy_loss.loss_mode)(
        old_log_prob=old, log_prob=new, advantages=torch.tensor(advantages, dtype=torch.float64), response_mask=mask,
        loss_agg_mode=actor.loss_agg_mode, config=actor, rollout_is_weights=None)
    loss.backward()
    return float(loss.detach()), new.grad, metrics


def test_dr_grpo_sums_tokens_over_a_constant_not_the_length():
    _, _, actor, _ = composed("grpo", ALGORITHM="dr_grpo")
    # Two responses with advantage 1: 2 and 4 tokens. seq-mean-token-sum-norm: -(2 + 4) / 2 sequences / 512.
    loss, _, _ = _policy_loss(actor, [[0.0] * 4, [0.0] * 4], [[1.0] * 4, [1.0] * 4], mask=[[1, 1, 0, 0], [1, 1, 1, 1]])
    assert loss == pytest.approx(-(2 + 4) / 2 / 512)
    # GRPO's token-mean gives every token the same weight instead: -6 / 6.
    _, _, grpo_actor, _ = composed("grpo", ALGORITHM="grpo")
    assert _policy_loss(grpo_actor, [[0.0] * 4] * 2, [[1.0] * 4] * 2, mask=[[1, 1, 0, 0], [1, 1, 1, 1]])[0] == pytest.approx(-1.0)


def test_cispo_keeps_the_gradient_of_tokens_ppo_clips():
    _, _, actor, _ = composed("grpo", ALGORITHM="cispo")
    # Ratio e^1 = 2.7 > 1 + 0.2 with a positive advantage: PPO's clip zeroes this token's gradient ...
    _, _, grpo_actor, _ = composed("grpo", ALGORITHM="grpo")
    _, grad_ppo, _ = _policy_loss(grpo_actor, [[1.0, 0.0]], [[1.0, 1.0]])
    assert grad_ppo[0, 0] == 0.0
    # ... CISPO keeps it, weighted by the clipped, stop-gradient ratio 1.2: d/dlogp = -1.2 x A / 2 tokens.
    _, grad, metrics = _policy_loss(actor, [[1.0, 0.0]], [[1.0, 1.0]], log_prob=[[-1.0, -1.0]])
    assert float(grad[0, 0]) == pytest.approx(-1.2 / 2) and metrics["actor/pg_clipfrac"] == pytest.approx(0.5)


def test_sapo_gates_the_ratio_smoothly_with_the_presets_temperatures():
    _, _, actor, _ = composed("grpo", ALGORITHM="sapo")
    assert (actor.tau_pos, actor.tau_neg) == (1.0, 1.05)
    log_ratio = math.log(1.5)
    loss, grad, _ = _policy_loss(actor, [[log_ratio], [log_ratio]], [[1.0], [-1.0]])

    def gate(r, tau):
        return 1 / (1 + math.exp(-tau * (r - 1))) * 4 / tau

    # seq-mean-token-mean over two one-token sequences: mean of -gate x A, tau_pos for A > 0, tau_neg for A < 0.
    assert loss == pytest.approx((-gate(1.5, 1.0) + gate(1.5, 1.05)) / 2)
    assert float(grad[0, 0]) != 0.0  # no hard clip: a ratio of 1.5 still moves


def test_gmpo_takes_the_geometric_mean_of_log_clipped_ratios():
    _, _, actor, _ = composed("grpo", ALGORITHM="gmpo")
    # One sequence: token log-ratios 0.6 (clipped to 0.4 for A > 0) and 0.0 -> ratio e^0.2.
    loss, _, metrics = _policy_loss(actor, [[0.6, 0.0]], [[1.0, 1.0]])
    assert loss == pytest.approx(-math.exp(0.2)) and metrics["actor/pg_clipfrac"] == pytest.approx(0.5)


def test_clip_cov_uses_the_recipes_wide_clip():
    _, _, actor, _ = composed("dapo", ENTROPY_MODE="clip_cov")
    # Every token at ratio 1.5 with A = 1 and no token's covariance in (1, 5): nothing is cut, and the
    # recipe's clip range [0, 2] leaves the ratio as is (DAPO's 1 + 0.28 would cap it at 1.28).
    loss, _, metrics = _policy_loss(actor, [[math.log(1.5)] * 4], [[1.0] * 4])
    assert loss == pytest.approx(-1.5) and metrics["actor/pg_clipfrac"] == 0.0
    _, _, dapo_actor, _ = composed("dapo", ENTROPY_MODE="vanilla")
    assert _policy_loss(dapo_actor, [[math.log(1.5)] * 4], [[1.0] * 4])[0] == pytest.approx(-1.28)


def test_kl_cov_penalises_the_top_covariance_token_with_the_recipes_weight():
    _, _, actor, _ = composed("dapo", ENTROPY_MODE="kl_cov")
    assert (actor.policy_loss.kl_cov_ratio, actor.policy_loss.ppo_kl_coef) == (0.002, 1.0)
    # 4 tokens: k = max(1, int(4 x 0.002)) = 1 token gets + 1.0 x |log ratio|; token 0 has the largest
    # (A - mean A)(log p - mean log p).
    ratios, adv, logp = [[0.1, 0.1, 0.1, 0.1]], [[2.0, 0.0, 0.0, 0.0]], [[-0.1, -3.0, -3.0, -3.0]]
    loss, _, _ = _policy_loss(actor, ratios, adv, log_prob=logp)
    plain = -2.0 * math.exp(0.1) / 4
    assert loss == pytest.approx(plain + 1.0 * 0.1 / 4)


# ---- ROLLOUT_CORRECTION


@pytest.mark.parametrize("mode", ["off", "token", "sequence"])
def test_rollout_correction_through_verls_helper(mode):
    from verl.protocol import DataProto
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_add_to_batch

    _, cfg, _, _ = composed("grpo", ROLLOUT_CORRECTION=mode)
    # verl's V1 trainer runs this helper whenever the rollout returned log-probs (true in every mode:
    # verl's own default for off) and rollout_correction is a dict (trainer/ppo/v1/trainer_base.py).
    assert cfg.actor_rollout_ref.rollout.calculate_log_probs is True
    # Two responses of 3 tokens: training (old) vs rollout log-probs; token 0 of response 0 is 3x likelier
    # under training than under the engine.
    old = torch.log(torch.tensor([[0.6, 0.5, 0.5], [0.5, 0.5, 0.5]]))
    rollout = torch.log(torch.tensor([[0.2, 0.5, 0.5], [0.5, 0.5, 0.4]]))
    batch = DataProto.from_dict(tensors={"old_log_probs": old, "rollout_log_probs": rollout,
                                         "response_mask": torch.ones(2, 3)})
    batch, metrics = compute_rollout_correction_and_add_to_batch(batch, cfg.algorithm.rollout_correction)
    # The mismatch metrics verl logs in every mode (rollout_corr_helper.compute_offpolicy_metrics).
    for key in ("kl", "k3_kl", "training_ppl", "rollout_ppl", "training_log_ppl", "rollout_log_ppl", "log_ppl_diff",
                "log_ppl_abs_diff", "log_ppl_diff_max", "log_ppl_diff_min", "ppl_ratio", "chi2_token", "chi2_seq"):
        assert f"rollout_corr/{key}" in metrics, key
    if mode != "off":  # the weights' own statistics (the names grpo/README.md lists)
        for key in ("mean", "std", "min", "max", "eff_sample_size", "ratio_fraction_high", "ratio_fraction_low",
                    "seq_mean", "seq_std", "seq_min", "seq_max", "seq_max_deviation", "seq_fraction_high", "seq_fraction_low"):
            assert f"rollout_corr/rollout_is_{key}" in metrics, key
    weights = batch.batch.get("rollout_is_weights")
    if mode == "off":
        assert weights is None and "rollout_corr/rollout_is_mean" not in metrics
    elif mode == "token":
        # 0.6 / 0.2 = 3 is truncated at the threshold 2.0; 0.5 / 0.4 = 1.25 is kept.
        assert float(weights[0, 0]) == pytest.approx(2.0) and float(weights[1, 2]) == pytest.approx(1.25)
        assert "rollout_corr/rollout_is_mean" in metrics
    else:
        # Sequence weights: the product over the response, truncated: 3 -> 2.0, 1.25 stays, on every token.
        assert torch.allclose(weights[0], torch.full((3,), 2.0)) and torch.allclose(weights[1], torch.full((3,), 1.25))


def test_rollout_correction_icepop_threshold_and_off():
    _, cfg, _, algo = composed("grpo", ROLLOUT_CORRECTION="token", ROLLOUT_CORRECTION_THRESHOLD="0.5_5.0")
    assert cfg.algorithm.rollout_correction.rollout_is_threshold == "0.5_5.0"
    assert algo.rollout_correction["rollout_is"] == "token"
    plan, off, _, _ = composed("grpo", ROLLOUT_CORRECTION="off")
    assert off.algorithm.rollout_correction.rollout_is is None
    assert not any(note.startswith("ROLLOUT_CORRECTION") for note in plan.model_notes)  # off sets nothing


# ---- precedence and errors


def test_a_knob_set_in_the_block_wins_over_the_preset_and_says_so():
    plan, cfg, actor, _ = composed("grpo", ALGORITHM="dr_grpo", USE_KL_LOSS="true", LOSS_AGG_MODE="token-mean")
    assert actor.use_kl_loss and actor.loss_agg_mode == "token-mean"
    assert any("USE_KL_LOSS=true overrides ALGORITHM=dr_grpo's actor_rollout_ref.actor.use_kl_loss=False" in n
               for n in plan.model_notes)
    # A pass-through argument wins over both.
    p = plan_mod.make_plan(REPO_ROOT / "grpo", {**BLOCK, "ALGORITHM": "dr_grpo", "USE_KL_LOSS": "true"},
                           ["actor_rollout_ref.actor.use_kl_loss=false"], detect=lambda: (1, "test"))
    assert verl_config.compose_config(p).actor_rollout_ref.actor.use_kl_loss is False


@pytest.mark.parametrize(
    ("env", "words"),
    [
        # why: a name that is not a preset lists the choices
        ({"ALGORITHM": "ppo2"}, "ALGORITHM='ppo2' is not one of: grpo, dr_grpo, rloo"),
        ({"ENTROPY_MODE": "entropy_bonus"}, "ENTROPY_MODE='entropy_bonus' is not one of: vanilla, clip_cov, kl_cov"),
        ({"ROLLOUT_CORRECTION": "tis"}, "ROLLOUT_CORRECTION='tis' is not one of: off, token, sequence"),
        # why: two presets choosing the policy loss
        ({"ALGORITHM": "cispo", "ENTROPY_MODE": "clip_cov"}, "ALGORITHM=cispo and ENTROPY_MODE=clip_cov both set"),
        # why: a threshold verl could not parse, or one for a mode without weights
        ({"ROLLOUT_CORRECTION": "token", "ROLLOUT_CORRECTION_THRESHOLD": "-1"}, "ROLLOUT_CORRECTION_THRESHOLD='-1'"),
        ({"ROLLOUT_CORRECTION": "token", "ROLLOUT_CORRECTION_THRESHOLD": "5_0.5"}, "0 <= LOWER < UPPER"),
        ({"ROLLOUT_CORRECTION": "off", "ROLLOUT_CORRECTION_THRESHOLD": "3"}, "applies to ROLLOUT_CORRECTION=token or sequence"),
    ],
)
def test_bad_preset_values_name_the_knob(env, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan_mod.make_plan(REPO_ROOT / "grpo", {**BLOCK, **env}, [], detect=lambda: (1, "test"))


def test_presets_are_refused_for_sft():
    with pytest.raises(ConfigError, match="ALGORITHM apply to the RL methods"):
        plan_mod.make_plan(REPO_ROOT / "sft", {"ALGORITHM": "rloo"}, [], detect=lambda: (1, "test"))
    # The values that choose nothing do not stop an SFT launch (an exported default, say).
    plan = plan_mod.make_plan(REPO_ROOT / "sft", {"ROLLOUT_CORRECTION": "off", "ENTROPY_MODE": "vanilla"}, [],
                              detect=lambda: (1, "test"))
    assert not any("policy_loss" in o or "rollout_correction" in o for o in plan.overrides)


def test_every_preset_cites_a_paper_and_a_source_for_every_value():
    every = list(presets.ALGORITHMS.values()) + list(presets.ENTROPY_MODES.values()) + [
        presets.rollout_correction(m) for m in presets.ROLLOUT_CORRECTION_MODES]
    for preset in every:
        assert preset.paper and preset.source, preset.name
        assert all(s.source for s in preset.settings), preset.name
    assert all("arXiv" in p.paper for p in list(presets.ALGORITHMS.values()) + list(presets.ENTROPY_MODES.values()))
