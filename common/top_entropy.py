"""TOP_ENTROPY_QUANTILE: the policy gradient only on the highest-entropy response tokens, added to
verl 0.9.1 without forking it ("Beyond the 80/20 Rule", Wang et al., 2025, arXiv 2506.01939).

    TOP_ENTROPY_QUANTILE=0.2 ./dapo/train.sh      # the paper's DAPO recipe: top 20% of tokens by entropy
    .venv/bin/python -m pytest tests/common/test_top_entropy.py -q

TOP_ENTROPY_QUANTILE=q is the share of response tokens that get the policy gradient: those whose
entropy is at least the threshold tau, the ceil(q x N)-th largest entropy of the N response tokens
of the whole step batch over all data-parallel ranks (the (1 - q) quantile). 1.0 keeps every token:
off, exactly verl's own loss. The three Hydra overrides that turn it on (`overrides(q)`):

    actor_rollout_ref.model.external_lib=common.top_entropy
    actor_rollout_ref.actor.policy_loss._target_=common.top_entropy.TopEntropyPolicyLossConfig
    +actor_rollout_ref.actor.policy_loss.top_entropy_quantile=0.2

How it fits into verl 0.9.1 (each worker imports this file through `model.external_lib`, in
HFModelConfig.__post_init__, before ActorRolloutRefWorker.init_model binds the actor's loss):
1. The entropies: the V1 trainer's log-prob pass (trainer/ppo/v1/trainer_base.py,
   `_compute_old_log_prob`) always computes each response token's entropy under the rollout policy
   and stores it with the batch as `entropy`; update_actor receives it with every sample. No extra
   forward pass is run.
2. The threshold: `TrainingWorker.train_mini_batch` (workers/engine_workers.py) receives the step
   batch of one data-parallel rank before any mini-batch is split off (the whole step's batch in
   verl's default sync trainer; one local update's batch in its separate-async mode). Its wrapper
   here finds tau over all ranks (`entropy_threshold`, exact) and stores it in the batch as a
   non-tensor value, which verl copies into every mini-batch and micro-batch.
3. The mask: `ppo_loss` (workers/utils/losses.py, bound by init_model as
   `partial(ppo_loss, config=actor_config)`) is wrapped to build the keep mask of its micro-batch
   (entropy >= tau) and to report `actor/top_entropy_threshold` and `actor/top_entropy_kept_share`.
   The policy loss registered as "top_entropy" (`register_policy_loss`) then calls the method's own
   loss (vanilla, gspo, clip_cov, kl_cov, ...) with the log-probabilities of the dropped tokens
   detached: every value (loss, clip fractions, GSPO's sequence ratio) is the base loss's, the kept
   tokens get exactly the base loss's gradient and the dropped ones none. The averaging still runs
   over all response tokens, as in the paper's objective. The KL and entropy-bonus terms of ppo_loss
   are not masked.

Every link fails loudly rather than training without the mask: the import checks the verl functions
it wraps (`check_verl_hooks`), a step batch without `entropy`, a micro-batch without tau, a policy
loss called without a mask and a ppo_loss that never called the "top_entropy" loss each raise an
error naming TOP_ENTROPY_QUANTILE.

Offers:
- KNOB, LOSS_MODE, CONFIG_TARGET, THRESHOLD_KEY, QUANTILE_PATH and the metric names.
- overrides(q) -> list[str]: the Hydra overrides for TOP_ENTROPY_QUANTILE=q ([] for 1.0).
- summary(q) -> str: the line a dry run prints.
- config_problems(cfg) -> list[str]: settings of a composed config that cannot carry the mask.
- TopEntropyPolicyLossConfig: verl's PolicyLossConfig plus `top_entropy_quantile` (checked 0 < q <= 1).
- kept_count(share, total), entropy_threshold(values, share, group) -> (tau, kept, total): the exact
  threshold over all ranks of a process group (bisection on the float bit patterns).
- step_threshold(data, share, group), keep_mask(data, threshold): the same on verl's TensorDicts.
- compute_policy_loss_top_entropy: the registered "top_entropy" policy loss.
- ppo_loss / train_mini_batch: the wrappers installed into verl.workers.engine_workers.
- check_verl_hooks(), install(): the verl 0.9.1 hook points, checked; the wrappers, installed (at import).
"""

from __future__ import annotations

import functools
import inspect
import math
import threading
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist
import verl
from verl.workers.config import PolicyLossConfig

KNOB = "TOP_ENTROPY_QUANTILE"
LOSS_MODE = "top_entropy"
CONFIG_TARGET = f"{__name__}.TopEntropyPolicyLossConfig"
QUANTILE_PATH = "actor_rollout_ref.actor.policy_loss.top_entropy_quantile"
# Non-tensor key of the step batch that carries tau to every micro-batch.
THRESHOLD_KEY = "top_entropy_threshold"
THRESHOLD_METRIC = "actor/top_entropy_threshold"
KEPT_SHARE_METRIC = "actor/top_entropy_kept_share"

_ENGINE_WORKERS = "verl/workers/engine_workers.py"
_LOSSES = "verl/workers/utils/losses.py"
_CORE_ALGOS = "verl/trainer/ppo/core_algos.py"
_TRAINER = "verl/trainer/ppo/v1/trainer_base.py"


def _error(where: str, what: str) -> RuntimeError:
    return RuntimeError(
        f"{KNOB} < 1 cannot be applied: {where}: {what} (installed verl {verl.__version__}; this "
        f"extension is written for verl 0.9.1's hook points). Training would run without the "
        f"high-entropy token mask, so it stops here. Set {KNOB}=1.0 to train without the mask, or "
        f"install verl 0.9.1."
    )


# --------------------------------------------------------------------------- launcher side


def overrides(quantile: float) -> list[str]:
    """Hydra overrides for TOP_ENTROPY_QUANTILE=quantile; none for 1.0 (verl's stock loss)."""
    TopEntropyPolicyLossConfig._check_quantile(quantile)
    if quantile == 1.0:
        return []
    return [
        f"actor_rollout_ref.model.external_lib={__name__}",
        f"actor_rollout_ref.actor.policy_loss._target_={CONFIG_TARGET}",
        f"+{QUANTILE_PATH}={quantile!r}",
    ]


def summary(quantile: float) -> str:
    """The line a dry run prints for TOP_ENTROPY_QUANTILE=quantile."""
    TopEntropyPolicyLossConfig._check_quantile(quantile)
    if quantile == 1.0:
        return f"{KNOB}=1.0: policy gradient on every response token (off)"
    return (
        f"{KNOB}={quantile}: policy gradient only on the {quantile * 100:g}% highest-entropy response tokens "
        f"(threshold over the step's batch on all GPUs; {__name__}, arXiv 2506.01939)"
    )


def config_problems(cfg) -> list[str]:
    """Settings of a composed verl config (DictConfig) under which the mask cannot be applied."""
    policy_loss = cfg.actor_rollout_ref.actor.policy_loss
    quantile = policy_loss.get("top_entropy_quantile", 1.0)
    if policy_loss.get("_target_") != CONFIG_TARGET or quantile == 1.0:
        return []
    problems = []
    if not cfg.trainer.get("use_v1", True):
        problems.append(
            f"{KNOB}={quantile} needs verl's V1 trainer (trainer.use_v1=true): the legacy trainer's "
            f"workers never call the hooks in {__name__}"
        )
    rollout_correction = cfg.algorithm.get("rollout_correction") or {}
    if rollout_correction.get("bypass_mode", False):
        problems.append(
            f"{KNOB}={quantile} needs the log-prob pass that measures each token's entropy, and "
            f"algorithm.rollout_correction.bypass_mode=true skips it ({_TRAINER}, _compute_old_log_prob)"
        )
    distillation = cfg.get("distillation") or {}
    if distillation.get("enabled", False):
        problems.append(
            f"{KNOB}={quantile} masks verl's ppo_loss; distillation.enabled=true trains with "
            f"distillation_ppo_loss instead"
        )
    return problems


@dataclass
class TopEntropyPolicyLossConfig(PolicyLossConfig):
    """verl's PolicyLossConfig plus the share of tokens kept.

    With top_entropy_quantile < 1 the configured loss_mode becomes base_loss_mode and loss_mode
    becomes "top_entropy", the registered loss that applies the mask around the base loss.
    """

    top_entropy_quantile: float = 1.0
    base_loss_mode: Optional[str] = None

    @staticmethod
    def _check_quantile(quantile: Any) -> None:
        valid = isinstance(quantile, (int, float)) and not isinstance(quantile, bool) and 0 < quantile <= 1
        if not valid:
            raise ValueError(
                f"{KNOB}={quantile!r} ({QUANTILE_PATH}): the share of response tokens that get the "
                f"policy gradient must be a number in (0, 1]: 0.2 keeps the 20% highest-entropy "
                f"tokens (the paper's setting), 1.0 keeps every token (off)"
            )

    def __post_init__(self):
        self._check_quantile(self.top_entropy_quantile)
        base = self.base_loss_mode if self.loss_mode == LOSS_MODE else self.loss_mode
        if base in (None, LOSS_MODE):
            raise ValueError(
                f"{KNOB}: policy_loss.loss_mode={LOSS_MODE!r} needs policy_loss.base_loss_mode, the "
                f"loss it masks (vanilla, gspo, clip_cov, ...); set loss_mode to that loss instead"
            )
        from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY

        if base not in POLICY_LOSS_REGISTRY:
            raise ValueError(
                f"{KNOB}: policy_loss.loss_mode={base!r} is not a registered verl policy loss "
                f"({_CORE_ALGOS}); known: {sorted(k for k in POLICY_LOSS_REGISTRY if k != LOSS_MODE)}"
            )
        # verl's configs freeze their fields after __init__; this one rewrites its own two fields once.
        if self.top_entropy_quantile == 1.0:
            object.__setattr__(self, "loss_mode", base)
            object.__setattr__(self, "base_loss_mode", None)
        else:
            object.__setattr__(self, "loss_mode", LOSS_MODE)
            object.__setattr__(self, "base_loss_mode", base)


def _active_config(policy_loss) -> Optional[TopEntropyPolicyLossConfig]:
    if isinstance(policy_loss, TopEntropyPolicyLossConfig) and policy_loss.top_entropy_quantile < 1.0:
        return policy_loss
    return None


# --------------------------------------------------------------------------- exact threshold


def kept_count(share: float, total: int) -> int:
    """Tokens kept of `total`: ceil(share x total), at least one.

    share x total is rounded to 6 decimals first: 0.7 x 10 is 7.000000000000001 in floating point,
    which must keep 7 tokens, not 8 (float64 is exact to ~1e-16 x total, far below 1e-6 for any
    batch under 10^9 tokens).
    """
    if total <= 0:
        return 0
    return max(1, math.ceil(round(share * total, 6)))


def _order_keys(values: torch.Tensor) -> torch.Tensor:
    """int64 keys ordered like the float values: the IEEE bit pattern, negatives mirrored."""
    if values.dtype == torch.float64:
        bits = values.view(torch.int64)
        magnitude = bits & 0x7FFFFFFFFFFFFFFF
    else:
        bits = values.view(torch.int32).to(torch.int64)
        magnitude = bits & 0x7FFFFFFF
    return torch.where(bits >= 0, bits, -magnitude)


def _key_value(key: int, dtype: torch.dtype) -> float:
    int_dtype = torch.int64 if dtype == torch.float64 else torch.int32
    value = torch.tensor([abs(key)], dtype=int_dtype).view(dtype).item()
    return -value if key < 0 else value


def _collective_device(group) -> torch.device:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_backend(group) == "gloo":
        return torch.device("cpu")
    from verl.utils.device import get_device_id, get_device_name

    return torch.device(get_device_name(), get_device_id())


def _all_reduce(tensor: torch.Tensor, op, group) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=op, group=group)
    return tensor


def entropy_threshold(values: torch.Tensor, share: float, group=None) -> tuple[float, int, int]:
    """The ceil(share x N)-th largest value of the union of every rank's `values`, exactly.

    Every rank of `group` calls this with its own 1-D tensor (sizes may differ, one may be empty)
    and gets the same (threshold, kept, total): kept = values >= threshold over all ranks (ties at
    the threshold are all kept), total = N. Outside a process group it is the local answer.

    Exact, with O(1) communication: the values become integers ordered like the floats (their bit
    patterns), and a bisection over that integer range finds the largest t with
    count(key >= t) >= k, which is the k-th largest key itself; each of its at most 33 rounds
    (65 for float64) all-reduces one count. bf16/fp16 values are compared as float32 (exact).
    """
    TopEntropyPolicyLossConfig._check_quantile(share)
    values = values.detach().reshape(-1)
    if values.dtype != torch.float64:
        values = values.float()
    device = _collective_device(group)
    values = values.to(device)
    keys = _order_keys(values)
    sum_op, max_op = dist.ReduceOp.SUM, dist.ReduceOp.MAX

    counts = torch.tensor([values.numel(), int((~torch.isfinite(values)).sum())], device=device)
    total, non_finite = (int(x) for x in _all_reduce(counts, sum_op, group).tolist())
    if non_finite:
        # Raised on every rank together (the count is global), so no rank waits in a collective.
        raise ValueError(f"{KNOB}: {non_finite} of {total} response-token entropies are not finite")
    if total == 0:
        return float("-inf"), 0, 0
    k = kept_count(share, total)

    # One MAX reduction gives both ends: max(key) and -min(key). An empty rank sends the int64 minimum.
    floor = torch.iinfo(torch.int64).min
    ends = torch.tensor(
        [keys.max().item(), -keys.min().item()] if keys.numel() else [floor, floor], dtype=torch.int64, device=device
    )
    high, neg_low = _all_reduce(ends, max_op, group).tolist()
    low = -neg_low
    # Invariant: count(key >= low) >= k; the answer lies in [low, high]. Each round reads every local
    # key once (a compare and a sum): 28 rounds over 4 million keys took 0.54 s on one busy CPU core
    # of the development machine; with NCCL the keys sit on the GPU.
    while low < high:
        mid = (low + high + 1) // 2
        count = _all_reduce((keys >= mid).sum().reshape(1), sum_op, group).item()
        if count >= k:
            low = mid
        else:
            high = mid - 1
    kept = _all_reduce((keys >= low).sum().reshape(1), sum_op, group).item()
    return _key_value(low, values.dtype), int(kept), total


# --------------------------------------------------------------------------- verl TensorDicts


def _padded(data, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, response mask) of `key`, padded like ppo_loss pads old_log_probs and advantages."""
    padded = data.select(key, "response_mask").to_padded_tensor()
    return padded[key], padded["response_mask"].to(torch.bool)


def step_threshold(data, share: float, group=None) -> tuple[float, int, int]:
    """entropy_threshold over the response tokens of one rank's step batch (a verl TensorDict)."""
    if "entropy" not in data.keys() or "response_mask" not in data.keys():
        raise RuntimeError(
            f"{KNOB} < 1 cannot be applied: the actor's step batch has no per-token `entropy` "
            f"(fields: {sorted(data.keys())}). verl 0.9.1's V1 trainer stores it in the log-prob pass "
            f"({_TRAINER}, _compute_old_log_prob); algorithm.rollout_correction.bypass_mode=true skips "
            f"that pass. Turn bypass mode off or set {KNOB}=1.0."
        )
    entropy, mask = _padded(data, "entropy")
    return entropy_threshold(entropy[mask], share, group)


def keep_mask(data, threshold: float) -> torch.Tensor:
    """(batch, response length) bool: response tokens whose entropy is >= threshold."""
    entropy, mask = _padded(data, "entropy")
    return (entropy >= threshold) & mask


# --------------------------------------------------------------------------- the hooks

# The keep mask of the micro-batch ppo_loss is computing, handed to the registered policy loss.
_pending = threading.local()
_ORIGINALS: dict[str, Any] = {}


def compute_policy_loss_top_entropy(
    old_log_prob: torch.Tensor,
    log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    config=None,
    rollout_is_weights: Optional[torch.Tensor] = None,
):
    """The base loss (config.policy_loss.base_loss_mode) with the dropped tokens' log-probs detached."""
    from verl.trainer.ppo.core_algos import get_policy_loss_fn

    keep = getattr(_pending, "mask", None)
    if keep is None:
        raise _error(
            f"{_CORE_ALGOS} policy loss {LOSS_MODE!r}",
            f"called without a keep mask: the ppo_loss wrapper of {__name__} did not run before it",
        )
    if keep.shape != log_prob.shape:
        raise _error(
            f"{_LOSSES}::ppo_loss",
            f"the keep mask {tuple(keep.shape)} does not line up with log_prob {tuple(log_prob.shape)}",
        )
    _pending.used = True
    base_fn = get_policy_loss_fn(config.policy_loss.base_loss_mode)
    # Values unchanged, gradient only through the kept tokens: d(loss)/d(log_prob_t) is the base
    # loss's own partial derivative for a kept token t, and 0 for a dropped one.
    masked_log_prob = torch.where(keep.to(log_prob.device), log_prob, log_prob.detach())
    return base_fn(
        old_log_prob=old_log_prob,
        log_prob=masked_log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=loss_agg_mode,
        config=config,
        rollout_is_weights=rollout_is_weights,
    )


def _mask_metrics(keep: torch.Tensor, threshold: float, data) -> dict:
    from verl.utils import tensordict_utils as tu
    from verl.utils.metric import AggregationType, Metric

    kept = keep.sum().item()
    batch_num_tokens = tu.get_non_tensor_data(data=data, key="batch_num_tokens", default=None)
    if batch_num_tokens:
        # Like ppo_loss's pg_loss: each micro-batch's part of the mini-batch share, summed over
        # micro-batches and averaged over ranks (x dp_size) by verl = kept / tokens of the mini-batch.
        dp_size = tu.get_non_tensor_data(data=data, key="dp_size", default=1)
        share = Metric(AggregationType.SUM, kept / batch_num_tokens * dp_size)
    else:
        tokens = _padded(data, "entropy")[1].sum().item()
        share = Metric(AggregationType.MEAN, kept / max(tokens, 1))
    return {THRESHOLD_METRIC: Metric(AggregationType.MEAN, threshold), KEPT_SHARE_METRIC: share}


def ppo_loss(config, model_output, data, dp_group=None):
    """verl's ppo_loss, with the keep mask of this micro-batch handed to the "top_entropy" loss."""
    original = _ORIGINALS["ppo_loss"]
    if _active_config(config.policy_loss) is None:
        return original(config=config, model_output=model_output, data=data, dp_group=dp_group)
    from verl.utils import tensordict_utils as tu

    threshold = tu.get_non_tensor_data(data=data, key=THRESHOLD_KEY, default=None)
    if threshold is None:
        raise _error(
            f"{_ENGINE_WORKERS}::TrainingWorker.train_mini_batch",
            f"the micro-batch reached ppo_loss without {THRESHOLD_KEY!r}: the step-batch threshold was "
            f"not computed before the update",
        )
    keep = keep_mask(data, threshold)
    _pending.mask, _pending.used = keep, False
    try:
        loss, metrics = original(config=config, model_output=model_output, data=data, dp_group=dp_group)
        used = _pending.used
    finally:
        _pending.mask, _pending.used = None, False
    if not used:
        raise _error(
            f"{_LOSSES}::ppo_loss",
            f"it did not call the registered policy loss {LOSS_MODE!r} (policy_loss.loss_mode)",
        )
    metrics.update(_mask_metrics(keep, threshold, data))
    return loss, metrics


def train_mini_batch(self, data):
    """verl's TrainingWorker.train_mini_batch, after the step-batch threshold is stored in `data`."""
    original = _ORIGINALS["train_mini_batch"]
    loss_fn = getattr(self, "loss_fn", None)
    actor_config = getattr(loss_fn, "keywords", {}).get("config")
    policy_loss = _active_config(getattr(actor_config, "policy_loss", None))
    if policy_loss is None:
        return original(self, data=data)
    if getattr(loss_fn, "func", None) is not ppo_loss:
        raise _error(
            f"{_ENGINE_WORKERS}::ActorRolloutRefWorker.init_model",
            f"the actor's loss is {getattr(loss_fn, 'func', loss_fn)!r}, not verl's ppo_loss wrapped by "
            f"{__name__} (distillation on, or verl binds the loss differently)",
        )
    from verl.utils import tensordict_utils as tu

    threshold, _, _ = step_threshold(data, policy_loss.top_entropy_quantile, self.engine.get_data_parallel_group())
    tu.assign_non_tensor(data, **{THRESHOLD_KEY: threshold})
    return original(self, data=data)


def _params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def check_verl_hooks() -> None:
    """Raise a RuntimeError naming the verl file/function and the knob if a hook point has moved."""
    import verl.trainer.ppo.core_algos as core_algos
    import verl.workers.engine_workers as engine_workers
    import verl.workers.utils.losses as losses

    for name in ("register_policy_loss", "get_policy_loss_fn", "POLICY_LOSS_REGISTRY"):
        if not hasattr(core_algos, name):
            raise _error(f"{_CORE_ALGOS}::{name}", "not found")
    vanilla = core_algos.POLICY_LOSS_REGISTRY.get("vanilla")
    expected_loss = ["old_log_prob", "log_prob", "advantages", "response_mask", "loss_agg_mode", "config",
                     "rollout_is_weights"]  # fmt: skip
    if vanilla is None or _params(vanilla) != expected_loss:
        raise _error(f"{_CORE_ALGOS}::compute_policy_loss_vanilla", f"expected parameters {expected_loss}")

    worker = getattr(engine_workers, "TrainingWorker", None)
    train = getattr(worker, "train_mini_batch", None)
    if train is None or _params(train) != ["self", "data"]:
        raise _error(f"{_ENGINE_WORKERS}::TrainingWorker.train_mini_batch", "missing, or not (self, data)")
    bound = getattr(engine_workers, "ppo_loss", None)
    if bound is None or getattr(losses, "ppo_loss", None) is None:
        raise _error(f"{_ENGINE_WORKERS} / {_LOSSES}::ppo_loss", "not found")
    if _params(losses.ppo_loss) != ["config", "model_output", "data", "dp_group"]:
        raise _error(f"{_LOSSES}::ppo_loss", "expected parameters (config, model_output, data, dp_group)")
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine.base import BaseEngine

    if not hasattr(BaseEngine, "get_data_parallel_group"):
        raise _error("verl/workers/engine/base.py::BaseEngine.get_data_parallel_group", "not found")
    for name in ("assign_non_tensor", "get_non_tensor_data"):
        if not hasattr(tu, name):
            raise _error(f"verl/utils/tensordict_utils.py::{name}", "not found")
    init_model = getattr(getattr(engine_workers, "ActorRolloutRefWorker", None), "init_model", None)
    try:
        init_source = inspect.getsource(init_model)
    except (TypeError, OSError):
        init_source = ""
    if "partial(ppo_loss, config=actor_config)" not in init_source:
        raise _error(
            f"{_ENGINE_WORKERS}::ActorRolloutRefWorker.init_model",
            "it no longer binds the actor loss as partial(ppo_loss, config=actor_config)",
        )


def install() -> None:
    """Check the hook points, then register the loss and wrap ppo_loss and train_mini_batch once."""
    check_verl_hooks()
    import verl.workers.engine_workers as engine_workers
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss

    if POLICY_LOSS_REGISTRY.get(LOSS_MODE) is not compute_policy_loss_top_entropy:
        register_policy_loss(LOSS_MODE)(compute_policy_loss_top_entropy)
    if engine_workers.ppo_loss is not ppo_loss:
        _ORIGINALS["ppo_loss"] = engine_workers.ppo_loss
        engine_workers.ppo_loss = ppo_loss
    worker = engine_workers.TrainingWorker
    original = worker.__dict__["train_mini_batch"]
    if not getattr(original, "_top_entropy_hook", False):
        _ORIGINALS["train_mini_batch"] = original

        # functools.wraps keeps verl's @register dispatch attributes, which Ray's worker group reads.
        @functools.wraps(original)
        def wrapper(self, data):
            return train_mini_batch(self, data)

        wrapper._top_entropy_hook = True
        worker.train_mini_batch = wrapper


install()
