"""TOP_ENTROPY_QUANTILE (common/top_entropy.py) through verl 0.9.1's own pieces: the launcher's
composition of dapo/grpo/gspo with its overrides, verl's validate_config and config dataclasses,
HFModelConfig importing `external_lib`, verl's data path of an actor update (make_iterator,
prepare_micro_batches, ppo_loss, the registered policy losses, Metric aggregation) and a real
two-process gloo group for the threshold.

    .venv/bin/python -m pytest tests/common/test_top_entropy.py -q
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import textwrap
from fractions import Fraction
from functools import partial

import pytest
import torch
from hydra import compose, initialize_config_dir

import common.top_entropy as te
from tests.launch_helpers import REPO_ROOT, dry_run, printed_command, resolved_config

SHARE = 0.2  # the paper's DAPO setting: the 20% highest-entropy tokens


# --------------------------------------------------------------------------- helpers


def union_threshold(values: list[float], share: float) -> tuple[float, int]:
    """Independent reference: the ceil(share x N)-th largest value, and how many are >= it."""
    k = max(1, math.ceil(Fraction(str(share)) * len(values)))
    threshold = sorted(values, reverse=True)[k - 1]
    return threshold, sum(v >= threshold for v in values)


def _nested(tensors):
    return torch.nested.as_nested_tensor(tensors, layout=torch.jagged)


def step_batch(seed: int, size: int, gap: bool = False):
    """One rank's step batch in the layout verl 0.9.1's V1 trainer gives update_actor: jagged nested
    tensors per sample (prompts, responses, input_ids, response_mask, old_log_probs, advantages,
    and the log-prob pass's `entropy`). gap=True puts a 0 inside each response mask (a tool turn)."""
    from verl.utils import tensordict_utils as tu

    g = torch.Generator().manual_seed(seed)
    prompt_lens = torch.randint(2, 6, (size,), generator=g).tolist()
    response_lens = torch.randint(3, 10, (size,), generator=g).tolist()
    masks = []
    for n in response_lens:
        m = torch.ones(n, dtype=torch.int64)
        if gap:
            m[n // 2] = 0
        masks.append(m)
    fields = {
        "prompts": _nested([torch.randint(0, 100, (n,), generator=g) for n in prompt_lens]),
        "responses": _nested([torch.randint(0, 100, (n,), generator=g) for n in response_lens]),
        "input_ids": _nested([torch.randint(0, 100, (p + r,), generator=g)
                              for p, r in zip(prompt_lens, response_lens)]),  # fmt: skip
        "response_mask": _nested(masks),
        "old_log_probs": _nested([-torch.rand(n, generator=g) - 0.5 for n in response_lens]),
        "ref_log_prob": _nested([-torch.rand(n, generator=g) - 0.5 for n in response_lens]),
        # one advantage per response, as GRPO gives
        "advantages": _nested([torch.full((n,), float(torch.randn(1, generator=g))) for n in response_lens]),
        "entropy": _nested([torch.rand(n, generator=g) * 3 for n in response_lens]),
    }
    return tu.get_tensordict(fields)


# How far the current policy's log-probs sit from the old ones, cycled over the sequences: inside
# GSPO's clip range (3e-4), inside PPO's (0.2), and beyond both, so every loss has clipped and
# unclipped tokens.
SPREADS = (1e-5, 0.05, 0.6)


def log_probs_for(micro_batch, seed: int):
    """The actor's log-probs of a micro-batch as the FSDP engine returns them: one jagged tensor over
    prompt + response, from a leaf whose .grad is the per-token gradient."""
    seq_lens = micro_batch["input_ids"].offsets().diff()
    g = torch.Generator().manual_seed(seed)
    values = -torch.rand(int(seq_lens.sum()), generator=g) - 0.5
    old = micro_batch["old_log_probs"].unbind()
    response_lens = micro_batch["responses"].offsets().diff().tolist()
    for i, (end, n) in enumerate(zip(seq_lens.cumsum(0).tolist(), response_lens)):
        noise = torch.randn(n, generator=g) * SPREADS[i % len(SPREADS)]
        values[end - n - 1 : end - 1] = old[i] + noise
    leaf = values.requires_grad_(True)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), seq_lens.cumsum(0)])
    return torch.nested.nested_tensor_from_jagged(leaf, offsets), leaf


def micro_batches(data, mini_batch_size: int, dynamic: bool, dp_size: int = 1, batch_num_tokens=None, group=None):
    """verl's own split of an update: tu.make_iterator into mini-batches (train_mini_batch), then
    prepare_micro_batches (forward_backward_batch), with the non-tensor keys the engine adds."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine.utils import prepare_micro_batches

    out = []
    for mini in tu.make_iterator(data, mini_batch_size=mini_batch_size, epochs=1, seed=7,
                                 dataloader_kwargs={"shuffle": True}):  # fmt: skip
        tokens = batch_num_tokens or int(mini["response_mask"].values().sum())
        tu.assign_non_tensor(
            mini, use_dynamic_bsz=dynamic, max_token_len_per_gpu=40, micro_batch_size_per_gpu=2,
            dp_size=dp_size, batch_num_tokens=tokens, global_batch_size=mini_batch_size * dp_size,
        )  # fmt: skip
        mbs, _ = prepare_micro_batches(mini, dp_group=group, same_micro_num_in_dp=True)
        out.append(mbs)
    return out


def run_loss(loss_fn, mbs, seed: int, zero_advantages: bool = False):
    """Call a bound loss on each micro-batch like FSDPEngineWithLMHead.forward_step, then backward."""
    results = []
    for i, mb in enumerate(mbs):
        if zero_advantages:
            mb = mb.clone()
            mb["advantages"] = _nested([a * 0 for a in mb["advantages"].unbind()])
        log_probs, leaf = log_probs_for(mb, seed + i)
        loss, metrics = loss_fn(model_output={"log_probs": log_probs}, data=mb, dp_group=None)
        loss.backward()
        results.append((loss.detach(), leaf.grad, metrics))
    return results


def response_positions(mb) -> torch.Tensor:
    """Index of each response token's log-prob in the leaf (verl's one-token left shift)."""
    seq_ends = mb["input_ids"].offsets()[1:]
    response_lens = mb["responses"].offsets().diff()
    return torch.cat([torch.arange(e - r - 1, e - 1) for e, r in zip(seq_ends.tolist(), response_lens.tolist())])


def flat(mb, key: str) -> torch.Tensor:
    """A response-level field, every sample's tokens in a row, in the order of response_positions."""
    return torch.cat(list(mb[key].unbind()))


# --------------------------------------------------------------------------- config and launcher


def test_overrides_are_empty_when_off_and_three_keys_when_on():
    assert te.overrides(1.0) == []
    assert te.overrides(0.2) == [
        "actor_rollout_ref.model.external_lib=common.top_entropy",
        "actor_rollout_ref.actor.policy_loss._target_=common.top_entropy.TopEntropyPolicyLossConfig",
        "+actor_rollout_ref.actor.policy_loss.top_entropy_quantile=0.2",
    ]


def test_summary_line_for_the_dry_run():
    assert te.summary(1.0) == "TOP_ENTROPY_QUANTILE=1.0: policy gradient on every response token (off)"
    assert te.summary(0.2).startswith(
        "TOP_ENTROPY_QUANTILE=0.2: policy gradient only on the 20% highest-entropy response tokens"
    )


@pytest.mark.parametrize(
    "quantile",
    [
        0,  # why: nothing kept: no gradient at all
        -0.2,  # why: negative share
        1.5,  # why: more than every token
        float("nan"),  # why: NaN passes neither bound
        "0.2",  # why: a quoted Hydra value arrives as a string
        True,  # why: a boolean is not a share
    ],
)
def test_config_rejects_shares_outside_0_1(quantile):
    with pytest.raises(ValueError, match=r"TOP_ENTROPY_QUANTILE=.*\(0, 1\]"):
        te.TopEntropyPolicyLossConfig(loss_mode="vanilla", top_entropy_quantile=quantile)


@pytest.mark.parametrize(
    ("kwargs", "loss_mode", "base"),
    [
        # why: q < 1 routes the configured loss through the registered mask loss
        ({"loss_mode": "gspo", "top_entropy_quantile": 0.2}, "top_entropy", "gspo"),
        # why: q = 1 is verl's own loss, untouched
        ({"loss_mode": "clip_cov", "top_entropy_quantile": 1.0}, "clip_cov", None),
        # why: an int from Hydra (`=1`) is the same as 1.0
        ({"loss_mode": "vanilla", "top_entropy_quantile": 1}, "vanilla", None),
        # why: spelled out by hand: loss_mode=top_entropy with its base
        ({"loss_mode": "top_entropy", "base_loss_mode": "kl_cov", "top_entropy_quantile": 0.5},
         "top_entropy", "kl_cov"),  # fmt: skip
    ],
)
def test_config_routes_the_base_loss(kwargs, loss_mode, base):
    cfg = te.TopEntropyPolicyLossConfig(**kwargs)
    assert (cfg.loss_mode, cfg.base_loss_mode) == (loss_mode, base)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_mode": "no_such_loss", "top_entropy_quantile": 0.2}, "not a registered verl policy loss"),
        ({"loss_mode": "top_entropy", "top_entropy_quantile": 0.2}, "needs policy_loss.base_loss_mode"),
    ],
)
def test_config_rejects_a_missing_base_loss(kwargs, message):
    with pytest.raises(ValueError, match=message):
        te.TopEntropyPolicyLossConfig(**kwargs)


@pytest.mark.parametrize(
    ("share", "total", "kept"),
    [
        (0.2, 10, 2),  # why: exact product
        (0.7, 10, 7),  # why: 0.7 x 10 = 7.000000000000001 in floating point, still 7
        (0.2, 11, 3),  # why: 2.2 rounds up: at least the share is kept
        (0.001, 10, 1),  # why: never zero tokens
        (1.0, 5, 5),  # why: everything
        (0.2, 0, 0),  # why: no response tokens at all
    ],
)
def test_kept_count(share, total, kept):
    assert te.kept_count(share, total) == kept


# Launcher runs: (case, method, composition overrides the knob would add, expected base loss mode).
CASES = [
    ("dapo-vanilla", "dapo", [], "vanilla"),
    ("dapo-clip_cov", "dapo", ["actor_rollout_ref.actor.policy_loss.loss_mode=clip_cov"], "clip_cov"),
    ("dapo-kl_cov", "dapo", ["actor_rollout_ref.actor.policy_loss.loss_mode=kl_cov"], "kl_cov"),
    ("grpo", "grpo", [], "vanilla"),
    ("gspo", "gspo", [], "gspo"),
]


@pytest.fixture(scope="module")
def launches(tmp_path_factory):
    """method -> (dry-run stdout, printed command) of `TOP_ENTROPY_QUANTILE=0.2 DRY_RUN=1 <method>/train.sh`,
    the three run side by side; plus the same overrides given by hand with a share verl must refuse."""
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path_factory.mktemp("outputs")
    runs = [(m, m, {"TOP_ENTROPY_QUANTILE": str(SHARE)}, ()) for m in ("dapo", "grpo", "gspo")]
    runs.append(("refused", "gspo", {}, tuple(o.replace("=0.2", "=1.5") for o in te.overrides(SHARE))))
    runs.append(("refused_knob", "gspo", {"TOP_ENTROPY_QUANTILE": "1.5"}, ()))
    with ThreadPoolExecutor(len(runs)) as pool:
        done = pool.map(lambda r: dry_run(r[1], env={"OUTPUT_DIR": str(out), **r[2]}, args=r[3]), runs)
    results = {}
    for (name, _, _, _), result in zip(runs, done):
        if name.startswith("refused"):
            results[name] = result
            continue
        assert result.returncode == 0, f"{name}: {result.stderr[-3000:]}"
        results[name] = (result.stdout, printed_command(result.stdout))
    return results


def compose_case(launches, method: str, extra: list[str], top_entropy: bool = True):
    command = launches[method][1]
    args = command[command.index("--config-name") + 2 :]
    if not top_entropy:
        args = [a for a in args if a not in te.overrides(SHARE)]
    with initialize_config_dir(config_dir=str(REPO_ROOT / method), version_base=None):
        return compose("config", overrides=args + extra)


def actor_config(cfg):
    from verl.utils.config import omega_conf_to_dataclass

    return omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)


@pytest.mark.slow
@pytest.mark.parametrize(("case", "method", "extra", "base"), CASES, ids=[c[0] for c in CASES])
def test_launcher_composition_passes_verls_checks(launches, case, method, extra, base):
    from verl.trainer.ppo.utils import need_reference_policy
    from verl.utils.config import validate_config

    stdout, command = launches[method]
    # The dry run shows the knob: in the command, in its notes and in verl's resolved config.
    assert all(o in command for o in te.overrides(SHARE))
    assert f"# note: {te.summary(SHARE)}" in stdout and re.search(r"^top-entropy mask +ok ", stdout, re.M)
    shown = resolved_config(stdout).actor_rollout_ref
    assert shown.actor.policy_loss.top_entropy_quantile == SHARE
    assert shown.model.external_lib == "common.top_entropy"

    cfg = compose_case(launches, method, extra)
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=False)
    policy_loss = actor_config(cfg).policy_loss
    assert isinstance(policy_loss, te.TopEntropyPolicyLossConfig)
    assert (policy_loss.loss_mode, policy_loss.base_loss_mode, policy_loss.top_entropy_quantile) == (
        "top_entropy", base, SHARE,
    )  # fmt: skip
    assert te.config_problems(cfg) == []


@pytest.mark.slow
def test_launcher_refuses_a_share_above_one(launches):
    # Given by hand as an override, verl's own validate_config refuses it through the config class.
    result = launches["refused"]
    assert result.returncode != 0
    assert "TOP_ENTROPY_QUANTILE=1.5 (actor_rollout_ref.actor.policy_loss.top_entropy_quantile)" in (
        result.stdout + result.stderr
    )
    # As the knob, the launcher refuses it before composing anything.
    result = launches["refused_knob"]
    assert result.returncode == 2 and "TOP_ENTROPY_QUANTILE=1.5 is out of range: it must be > 0 and <= 1" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        # why: bypass mode skips the log-prob pass that measures the entropies
        (["algorithm.rollout_correction.bypass_mode=true"], "bypass_mode=true"),
        # why: distillation trains with its own loss, which the mask does not wrap
        (["distillation.enabled=true"], "distillation.enabled=true"),
        # why: the legacy trainer's workers never call the hooks
        (["trainer.use_v1=false"], "trainer.use_v1=true"),
    ],
)
def test_config_problems_name_what_cannot_carry_the_mask(launches, extra, problem):
    problems = te.config_problems(compose_case(launches, "dapo", extra))
    assert len(problems) == 1 and problem in problems[0] and "TOP_ENTROPY_QUANTILE" in problems[0]


@pytest.fixture(scope="module")
def fresh_worker(launches, tiny_model_dir):
    """A fresh interpreter that does what a worker does: verl's HFModelConfig imports external_lib
    (the GSPO launch, with the tiny model); then, as under a verl whose hook point moved, the
    import runs again without TrainingWorker.train_mini_batch."""
    command = launches["gspo"][1]
    args = command[command.index("--config-name") + 2 :] + [f"actor_rollout_ref.model.path={tiny_model_dir}"]
    script = textwrap.dedent(
        f"""
        import importlib, json
        from hydra import compose, initialize_config_dir
        import verl.workers.engine_workers as ew
        from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
        from verl.utils.config import omega_conf_to_dataclass
        seen = {{"registered_before": "top_entropy" in POLICY_LOSS_REGISTRY}}
        with initialize_config_dir(config_dir={str(REPO_ROOT / "gspo")!r}, version_base=None):
            cfg = compose("config", overrides={args!r})
        model = omega_conf_to_dataclass(cfg.actor_rollout_ref.model)
        seen.update(
            registered_after="top_entropy" in POLICY_LOSS_REGISTRY,
            external_lib=model.external_lib,
            ppo_loss=ew.ppo_loss.__module__,
            train_mini_batch_hooked=getattr(ew.TrainingWorker.train_mini_batch, "_top_entropy_hook", False),
        )
        print(json.dumps(seen), flush=True)
        del ew.TrainingWorker.train_mini_batch
        import common.top_entropy
        importlib.reload(common.top_entropy)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_hf_model_config_imports_external_lib_and_registers_the_loss(fresh_worker):
    """Nothing is registered until verl's HFModelConfig imports external_lib."""
    seen = json.loads(fresh_worker.stdout.strip().splitlines()[0])
    assert seen == {
        "registered_before": False,
        "registered_after": True,
        "external_lib": "common.top_entropy",
        "ppo_loss": "common.top_entropy",
        "train_mini_batch_hooked": True,
    }


@pytest.mark.slow
def test_import_fails_when_the_hook_point_is_gone(fresh_worker):
    """What the worker's HFModelConfig raises under a verl without the hook point."""
    assert fresh_worker.returncode != 0
    assert "RuntimeError: TOP_ENTROPY_QUANTILE < 1 cannot be applied" in fresh_worker.stderr
    assert "verl/workers/engine_workers.py::TrainingWorker.train_mini_batch" in fresh_worker.stderr


# --------------------------------------------------------------------------- the loss


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed-micro-batches", "dynamic-bsz"])
@pytest.mark.parametrize(("case", "method", "extra", "base"), CASES, ids=[c[0] for c in CASES])
def test_gradient_only_on_kept_tokens(launches, case, method, extra, base, dynamic):
    import verl.workers.engine_workers as ew
    import verl.workers.utils.losses as losses
    from verl.utils import tensordict_utils as tu
    from verl.utils.metric import Metric

    top = actor_config(compose_case(launches, method, extra))
    stock = actor_config(compose_case(launches, method, extra, top_entropy=False))
    assert stock.policy_loss.loss_mode == base
    data = step_batch(seed=3, size=8, gap=True)
    threshold, kept, total = te.step_threshold(data, SHARE)
    tu.assign_non_tensor(data, **{te.THRESHOLD_KEY: threshold})
    entropies = [e for e, m in zip(flat(data, "entropy"), flat(data, "response_mask")) if m]
    assert (threshold, kept) == union_threshold(entropies, SHARE)

    # Bound as ActorRolloutRefWorker.init_model binds them: ew.ppo_loss is the installed wrapper.
    masked_fn = partial(ew.ppo_loss, config=top)
    stock_fn = partial(losses.ppo_loss, config=stock)
    pushed_dropped = pushed_kept = 0
    for mbs in micro_batches(data, mini_batch_size=4, dynamic=dynamic):
        torch.manual_seed(0)  # clip_cov picks its tokens with torch.randperm
        masked = run_loss(masked_fn, mbs, seed=11)
        torch.manual_seed(0)
        reference = run_loss(stock_fn, mbs, seed=11)
        # With the KL loss on (GRPO), a dropped token still gets the KL term's gradient, and only it.
        kl_only = run_loss(stock_fn, mbs, seed=11, zero_advantages=True) if stock.use_kl_loss else None
        share_metric, kept_mini, tokens_mini = [], 0, 0
        for i, mb in enumerate(mbs):
            (loss, grad, metrics), (ref_loss, ref_grad, _) = masked[i], reference[i]
            assert torch.equal(loss, ref_loss)  # values are the base loss's
            pos = response_positions(mb)
            mask = flat(mb, "response_mask").bool()
            keep = (flat(mb, "entropy") >= threshold) & mask
            dropped = ~keep & mask
            torch.testing.assert_close(grad[pos][keep], ref_grad[pos][keep], rtol=0, atol=0)
            expected_dropped = kl_only[i][1][pos][dropped] if kl_only else torch.zeros(int(dropped.sum()))
            torch.testing.assert_close(grad[pos][dropped], expected_dropped, rtol=0, atol=0)
            assert metrics[te.THRESHOLD_METRIC].aggregate() == threshold
            share_metric.append(metrics[te.KEPT_SHARE_METRIC])
            kept_mini, tokens_mini = kept_mini + int(keep.sum()), tokens_mini + int(mask.sum())
            pushed_dropped += int((ref_grad[pos][dropped] != 0).sum())
            pushed_kept += int((grad[pos][keep] != 0).sum())
        # verl's aggregation of the micro-batch metrics (train_mini_batch: Metric.aggregate_dp over
        # ranks, here one) gives the kept share of the mini-batch.
        merged = Metric(share_metric[0].aggregation)
        for m in share_metric:
            merged.extend(m)
        assert Metric.aggregate_dp([merged]) == pytest.approx(kept_mini / tokens_mini)
    # The test can fail: the base loss does push on tokens the mask drops, and kept tokens move.
    assert pushed_dropped > 0 and pushed_kept > 0


@pytest.mark.slow
@pytest.mark.parametrize(("case", "method", "extra", "base"), CASES, ids=[c[0] for c in CASES])
def test_quantile_one_is_exactly_the_base_loss(launches, case, method, extra, base):
    import verl.workers.engine_workers as ew
    import verl.workers.utils.losses as losses

    one = compose_case(launches, method, extra + [f"{te.QUANTILE_PATH}=1.0"])
    off = actor_config(one)
    assert (off.policy_loss.loss_mode, off.policy_loss.top_entropy_quantile) == (base, 1.0)
    stock = actor_config(compose_case(launches, method, extra, top_entropy=False))
    # No threshold in the batch: with q = 1 nothing is computed or required.
    for mbs in micro_batches(step_batch(seed=5, size=8), mini_batch_size=8, dynamic=False):
        torch.manual_seed(0)
        got = run_loss(partial(ew.ppo_loss, config=off), mbs, seed=2)
        torch.manual_seed(0)
        want = run_loss(partial(losses.ppo_loss, config=stock), mbs, seed=2)
        for (loss, grad, metrics), (ref_loss, ref_grad, ref_metrics) in zip(got, want):
            assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)
            assert metrics.keys() == ref_metrics.keys()


# --------------------------------------------------------------------------- the threshold across ranks

# (case, rank-0 values, rank-1 values, share) for the gloo group; both ranks must get the threshold
# of the union, never their own.
GLOO_CASES = [
    # why: the ranks disagree: rank 0 alone would pick 0.3, rank 1 alone 4.0; the union gives 2.0
    ("ranks-disagree", [0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.5),
    # why: the paper's 20% on the same data: rank 0 alone would keep its 0.4
    ("paper-share", [0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.2),
    # why: ties at the threshold are all kept (4 tokens for a 25% share of 8)
    ("ties", [1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], 0.25),
    # why: one rank has no response tokens at all
    ("empty-rank", [], [0.5, 0.25, 2.0, 1.0, 3.0], 0.4),
    # why: entropies of exactly 0, -0.0 and rounding noise below 0 keep their order
    ("zeros-and-noise", [0.0, -0.0, -1e-7, 1e-30], [5e-8, -2e-7, 0.0, 3e-7], 0.5),
    # why: every token (q = 1) gives the smallest value
    ("keep-all", [0.3, 0.9], [0.1, 0.7, 0.2], 1.0),
    # why: one token kept of many
    ("one-token", [0.3, 0.9, 0.8], [0.1, 0.7, 0.2], 0.01),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gloo_rank(rank: int, port: int, out_dir: str, actor) -> None:
    """One rank of a 2-process gloo group: the GLOO_CASES and random tables through
    entropy_threshold, then one step of verl's loss path with dp_size 2."""
    import torch.distributed as dist

    import verl.workers.engine_workers as ew
    from verl.utils import tensordict_utils as tu

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results = {}
        for case, rank0, rank1, share in GLOO_CASES:
            mine = torch.tensor(rank0 if rank == 0 else rank1, dtype=torch.float32)
            results[case] = te.entropy_threshold(mine, share, group=dist.group.WORLD)
        for case, sizes, dtype, share in RANDOM_CASES:
            mine = random_values(case, rank, sizes, dtype)
            results[case] = te.entropy_threshold(mine, share, group=dist.group.WORLD)

        # Each rank's half of a step batch: the threshold over both, verl's micro-batching (fixed
        # size: its dynamic-batch path allocates on the GPU when given a group) and the installed
        # ppo_loss with dp_size 2; the kept-share metric values go back for aggregation.
        data = step_batch(seed=20 + rank, size=8, gap=rank == 1)
        threshold, kept, total = te.step_threshold(data, SHARE, group=dist.group.WORLD)
        tu.assign_non_tensor(data, **{te.THRESHOLD_KEY: threshold})
        tokens = torch.tensor([int(data["response_mask"].values().sum())])
        dist.all_reduce(tokens)
        shares = []
        split = micro_batches(data, 8, dynamic=False, dp_size=2, batch_num_tokens=int(tokens), group=dist.group.WORLD)
        for mbs in split:
            for _, _, metrics in run_loss(partial(ew.ppo_loss, config=actor), mbs, seed=rank):
                shares.extend(metrics[te.KEPT_SHARE_METRIC].values)
        mask = flat(data, "response_mask").bool()
        results["step"] = {
            "threshold": [threshold, kept, total],
            "entropies": flat(data, "entropy")[mask].tolist(),
            "shares": shares,
        }
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


# (case, (rank-0 size, rank-1 size), dtype, share): uneven random tables in every float width.
RANDOM_CASES = [
    ("random-f32", (3000, 1777), torch.float32, 0.2),
    ("random-bf16-ties", (10, 2500), torch.bfloat16, 0.05),  # why: bf16 has few values: many ties
    ("random-f64", (999, 1), torch.float64, 0.5),
]


def random_values(case: str, rank: int, sizes, dtype) -> torch.Tensor:
    seed = 2 * [c[0] for c in RANDOM_CASES].index(case) + rank  # str hashes differ between processes
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(sizes[rank], generator=g, dtype=torch.float64) * 4).to(dtype)


@pytest.fixture(scope="module")
def gloo_results(launches, tmp_path_factory):
    """What each rank of a real 2-process gloo group (torch.multiprocessing.spawn, CPU) computed."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("gloo")
    actor = actor_config(compose_case(launches, "dapo", []))
    mp.spawn(_gloo_rank, args=(_free_port(), str(out), actor), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize(("case", "rank0", "rank1", "share"), GLOO_CASES, ids=[c[0] for c in GLOO_CASES])
def test_threshold_is_the_quantile_of_the_union_of_ranks(gloo_results, case, rank0, rank1, share):
    want = union_threshold([float(torch.tensor(v)) for v in rank0 + rank1], share)
    for rank in (0, 1):
        threshold, kept, total = gloo_results[rank][case]
        assert (threshold, kept, total) == (*want, len(rank0) + len(rank1))


@pytest.mark.slow
def test_union_threshold_differs_from_each_ranks_own(gloo_results):
    _, rank0, rank1, share = GLOO_CASES[0]
    union = gloo_results[0]["ranks-disagree"][0]
    assert union == 2.0
    assert union != union_threshold(rank0, share)[0] == 0.3  # what rank 0 alone would use
    assert union != union_threshold(rank1, share)[0] == 4.0  # what rank 1 alone would use


@pytest.mark.slow
@pytest.mark.parametrize(("case", "sizes", "dtype", "share"), RANDOM_CASES, ids=[c[0] for c in RANDOM_CASES])
def test_random_tables_match_the_sorted_union(gloo_results, case, sizes, dtype, share):
    union = torch.cat([random_values(case, r, sizes, dtype) for r in (0, 1)]).double().tolist()
    want = union_threshold(union, share)
    assert gloo_results[0][case] == gloo_results[1][case] == [*want, len(union)]


@pytest.mark.slow
def test_step_over_two_ranks_masks_and_reports_the_global_share(gloo_results):
    from verl.utils.metric import AggregationType, Metric

    steps = [gloo_results[r]["step"] for r in (0, 1)]
    union = steps[0]["entropies"] + steps[1]["entropies"]
    threshold, kept = union_threshold(union, SHARE)
    assert steps[0]["threshold"] == steps[1]["threshold"] == [threshold, kept, len(union)]
    # train_mini_batch's aggregation: Metric.aggregate_dp over the ranks' micro-batch values.
    per_rank = [Metric(AggregationType.SUM) for _ in steps]
    for metric, step in zip(per_rank, steps):
        metric.extend(step["shares"])
    assert Metric.aggregate_dp(per_rank) == pytest.approx(kept / len(union))


# --------------------------------------------------------------------------- failing loudly


@pytest.fixture(scope="module")
def dapo_actor():
    """DAPO's actor config with TOP_ENTROPY_QUANTILE=0.2, composed straight from dapo/config.yaml."""
    sizes = [
        "hydra.searchpath=[pkg://verl.trainer.config]",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=2",
    ]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "dapo"), version_base=None):
        cfg = compose("config", overrides=[*sizes, *te.overrides(SHARE)])
    return actor_config(cfg)


def _engine_workers():
    import verl.workers.engine_workers as ew

    return ew


def _break_train_mini_batch(mp, ew, losses, core):
    mp.delattr(ew.TrainingWorker, "train_mini_batch")


def _change_train_mini_batch(mp, ew, losses, core):
    mp.setattr(ew.TrainingWorker, "train_mini_batch", lambda self, batch, epochs: None)


def _break_ppo_loss(mp, ew, losses, core):
    mp.delattr(ew, "ppo_loss")


def _change_ppo_loss(mp, ew, losses, core):
    mp.setattr(losses, "ppo_loss", lambda config, model_output, data: None)


def _change_init_model(mp, ew, losses, core):
    mp.setattr(ew.ActorRolloutRefWorker, "init_model", lambda self: None)


def _break_register_policy_loss(mp, ew, losses, core):
    mp.delattr(core, "register_policy_loss")


def _change_policy_loss_signature(mp, ew, losses, core):
    mp.setitem(core.POLICY_LOSS_REGISTRY, "vanilla", lambda old_log_prob, log_prob, advantages: None)


def _break_data_parallel_group(mp, ew, losses, core):
    from verl.workers.engine.base import BaseEngine

    mp.delattr(BaseEngine, "get_data_parallel_group")


# (case, what a verl upgrade changes, where the error must point)
HOOK_BREAKS = [
    ("train_mini_batch-gone", _break_train_mini_batch,
     "verl/workers/engine_workers.py::TrainingWorker.train_mini_batch"),
    ("train_mini_batch-signature", _change_train_mini_batch,
     "verl/workers/engine_workers.py::TrainingWorker.train_mini_batch"),
    ("ppo_loss-gone", _break_ppo_loss, "ppo_loss: not found"),
    ("ppo_loss-signature", _change_ppo_loss, "verl/workers/utils/losses.py::ppo_loss"),
    ("init_model-binds-differently", _change_init_model,
     "verl/workers/engine_workers.py::ActorRolloutRefWorker.init_model"),
    ("register_policy_loss-gone", _break_register_policy_loss, "verl/trainer/ppo/core_algos.py::register_policy_loss"),
    ("policy-loss-signature", _change_policy_loss_signature,
     "verl/trainer/ppo/core_algos.py::compute_policy_loss_vanilla"),
    ("data-parallel-group-gone", _break_data_parallel_group,
     "verl/workers/engine/base.py::BaseEngine.get_data_parallel_group"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "brk", "where"), HOOK_BREAKS, ids=[c[0] for c in HOOK_BREAKS])
def test_moved_hook_point_is_a_clear_error(monkeypatch, case, brk, where):
    import verl.trainer.ppo.core_algos as core
    import verl.workers.utils.losses as losses

    ew = _engine_workers()
    before = (ew.ppo_loss, ew.TrainingWorker.__dict__.get("train_mini_batch"))
    brk(monkeypatch, ew, losses, core)
    for call in (te.check_verl_hooks, te.install):
        with pytest.raises(RuntimeError) as err:
            call()
        assert where in str(err.value) and "TOP_ENTROPY_QUANTILE" in str(err.value)
    monkeypatch.undo()
    assert (ew.ppo_loss, ew.TrainingWorker.__dict__.get("train_mini_batch")) == before  # nothing half-installed


def test_hooks_are_installed_once_and_keep_verls_dispatch_attributes():
    ew = _engine_workers()
    from verl.single_controller.base.decorator import MAGIC_ATTR
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    te.install()  # a second import-time install changes nothing
    wrapper = ew.TrainingWorker.__dict__["train_mini_batch"]
    assert wrapper._top_entropy_hook and wrapper.__wrapped__ is te._ORIGINALS["train_mini_batch"]
    assert getattr(wrapper, MAGIC_ATTR) == getattr(te._ORIGINALS["train_mini_batch"], MAGIC_ATTR)
    assert ew.ppo_loss is te.ppo_loss and get_policy_loss_fn("top_entropy") is te.compute_policy_loss_top_entropy


def test_step_batch_without_entropy_stops_the_update():
    data = step_batch(seed=1, size=4)
    del data["entropy"]
    with pytest.raises(RuntimeError, match="no per-token `entropy`.*bypass_mode=true"):
        te.step_threshold(data, SHARE)


def test_non_finite_entropy_stops_the_update():
    with pytest.raises(ValueError, match="1 of 3 response-token entropies are not finite"):
        te.entropy_threshold(torch.tensor([0.5, float("nan"), 1.0]), SHARE)


def test_micro_batch_without_threshold_stops_the_update(dapo_actor):
    mbs = micro_batches(step_batch(seed=1, size=4), mini_batch_size=4, dynamic=False)[0]
    with pytest.raises(RuntimeError, match="without 'top_entropy_threshold'"):
        run_loss(partial(_engine_workers().ppo_loss, config=dapo_actor), mbs, seed=0)


def test_ppo_loss_that_bypasses_the_registered_loss_stops_the_update(dapo_actor, monkeypatch):
    import verl.workers.utils.losses as losses
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY
    from verl.utils import tensordict_utils as tu

    # A verl whose ppo_loss picks its policy loss some other way than policy_loss.loss_mode.
    monkeypatch.setattr(losses, "get_policy_loss_fn", lambda name: POLICY_LOSS_REGISTRY["vanilla"])
    data = step_batch(seed=1, size=4)
    tu.assign_non_tensor(data, **{te.THRESHOLD_KEY: te.step_threshold(data, SHARE)[0]})
    mbs = micro_batches(data, mini_batch_size=4, dynamic=False)[0]
    with pytest.raises(RuntimeError, match="did not call the registered policy loss 'top_entropy'"):
        run_loss(partial(_engine_workers().ppo_loss, config=dapo_actor), mbs, seed=0)


def test_registered_loss_without_a_mask_stops_the_update(dapo_actor):
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    x = torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="called without a keep mask"):
        get_policy_loss_fn("top_entropy")(x, x, x, x.bool(), "token-mean", dapo_actor)


def test_train_mini_batch_stores_the_step_threshold_before_verls_update(dapo_actor, monkeypatch):
    """The installed TrainingWorker.train_mini_batch, called as update_actor calls it (data=...):
    verl's own update then runs with the step threshold in the batch."""
    from types import SimpleNamespace

    seen = []
    monkeypatch.setitem(te._ORIGINALS, "train_mini_batch", lambda self, data: seen.append(data) or "verl's output")
    actor = SimpleNamespace(
        loss_fn=partial(_engine_workers().ppo_loss, config=dapo_actor),
        engine=SimpleNamespace(get_data_parallel_group=lambda: None),
    )
    data = step_batch(seed=4, size=6)
    assert _engine_workers().TrainingWorker.train_mini_batch(actor, data=data) == "verl's output"
    from verl.utils import tensordict_utils as tu

    assert tu.get_non_tensor_data(seen[0], te.THRESHOLD_KEY, None) == te.step_threshold(data, SHARE)[0]


def test_train_mini_batch_refuses_a_loss_it_cannot_mask(dapo_actor, monkeypatch):
    from types import SimpleNamespace

    from verl.trainer.distillation import distillation_ppo_loss

    monkeypatch.setitem(te._ORIGINALS, "train_mini_batch", lambda self, data: pytest.fail("updated without the mask"))
    actor = SimpleNamespace(loss_fn=partial(distillation_ppo_loss, config=dapo_actor, distillation_config=None))
    with pytest.raises(RuntimeError, match="distillation on"):
        _engine_workers().TrainingWorker.train_mini_batch(actor, data=step_batch(seed=4, size=6))


def test_other_workers_pass_through(monkeypatch):
    """The critic (value_loss) and q = 1 runs go straight to verl's own train_mini_batch."""
    from types import SimpleNamespace

    monkeypatch.setitem(te._ORIGINALS, "train_mini_batch", lambda self, data: "verl's output")
    critic = SimpleNamespace(loss_fn=partial(lambda config, **kw: None, config=SimpleNamespace()))
    assert _engine_workers().TrainingWorker.train_mini_batch(critic, data=None) == "verl's output"
