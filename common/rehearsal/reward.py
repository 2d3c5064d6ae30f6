"""Rewards in the rehearsal: verl's RewardLoopWorker and reward managers, in this process.

    worker = reward_worker(cfg, router_address)
    handles = [LocalHandle(worker)]                       # what AgentLoopWorker awaits per response
    rm = score_colocated(worker, cfg, batch)              # a colocated reward model, after generation
    kept, counts = dapo_filter(cfg, batch, keys)          # DAPO's group filter on the generated batch

Offers:
- reward_worker(cfg, router_address=None): verl's RewardLoopWorker (experimental/reward_loop/
  reward_loop.py), which loads the configured reward manager (naive, dapo, ...) with the custom
  reward function, or scores with the reward model behind router_address. A launch runs
  reward.num_workers of them as Ray actors; the rehearsal runs one here.
- LocalHandle(worker): the actor handle AgentLoopWorker._compute_score calls
  (`await handle.compute_score.remote(data)`), answered in this process.
- score_colocated(worker, cfg, data, loop) -> DataProto: the colocated reward-model path of
  RewardLoopManager.compute_rm_score (one worker instead of num_workers Ray actors; the same
  reward manager class assembles rm_scores).
- dapo_filter(host, data, keys) -> (kept_uids, dropped, value_counts): which prompt groups verl's
  V1 ReplayBuffer would drop, decided by ReplayBuffer._dapo_filtered_keys itself (built by the
  trainer's own _build_replay_buffer). The buffer reads trajectories from TransferQueue; here a
  dict of this batch's rows answers those reads.
"""

from __future__ import annotations

import contextlib

import numpy as np


def reward_worker(cfg, router_address: str | None = None):
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker

    return RewardLoopWorker(cfg, reward_router_address=router_address)


def function_kwargs(worker) -> dict | None:
    """The reward_kwargs verl's reward manager passes to the reward function (verl's
    get_custom_reward_fn binds them: partial(_call_with_kwargs, fn, kwargs)); None without one."""
    fn = getattr(getattr(worker, "reward_manager", None), "compute_score", None)
    args = getattr(fn, "args", ())
    return dict(args[1]) if len(args) >= 2 and isinstance(args[1], dict) else None


class _RemoteMethod:
    def __init__(self, method):
        self.method = method

    def remote(self, *args, **kwargs):
        return self.method(*args, **kwargs)  # a coroutine: the caller awaits it as it awaits a Ray ref


class LocalHandle:
    """A Ray actor handle's `.method.remote(...)` calling syntax, served by an in-process worker."""

    def __init__(self, worker):
        self._worker = worker

    def __getattr__(self, name):
        return _RemoteMethod(getattr(self._worker, name))


def score_colocated(worker, cfg, data, loop):
    """RewardLoopManager.compute_rm_score with one in-process worker."""
    from tensordict import TensorDict

    from verl.protocol import DataProto
    from verl.trainer.ppo.reward import resolve_reward_manager_cls

    outputs = loop.run_until_complete(worker.compute_score_batch(data))
    scores = [item["reward_score"] for item in outputs]
    rm_scores = resolve_reward_manager_cls(cfg).assemble_rm_scores(data, scores)
    infos = [item.get("reward_extra_info", {}) for item in outputs]
    keys = list(infos[0].keys())
    non_tensor = {key: np.array([info[key] for info in infos]) for key in keys}
    return DataProto(batch=TensorDict({"rm_scores": rm_scores}, batch_size=len(data)), non_tensor_batch=non_tensor,
                     meta_info={"reward_extra_keys": keys})


class _BatchStore:
    """Answers ReplayBuffer's TransferQueue reads (kv_batch_get) from the rows of one DataProto."""

    def __init__(self, data, keys: list[str]):
        self.rows = {key: i for i, key in enumerate(keys)}
        self.data = data

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        fields = [select_fields] if isinstance(select_fields, str) else list(select_fields or [])
        out = {}
        for field in fields:
            if field == "rm_scores":
                out[field] = [self.data.batch["rm_scores"][self.rows[k]] for k in keys]
            elif field == "extra_fields":
                infos = self.data.meta_info.get("reward_extra_keys", [])
                out[field] = [{"reward_extra_info": {name: self.data.non_tensor_batch[name][self.rows[k]] for name in infos}}
                              for k in keys]
            else:
                raise KeyError(f"the rehearsal's batch store does not hold {field!r}")
        return out


def dapo_filter(host, data, keys: list[str]):
    """(kept uids, dropped uids, {shared value: groups}) by verl's ReplayBuffer._dapo_filtered_keys."""
    from verl.trainer.ppo.v1 import replay_buffer as rb

    buffer = host._build_replay_buffer()
    if buffer.filter_groups_metric is None:
        return None
    uids = {key.split("_")[0] for key in keys}
    buffer.finished_keys["train"] = set(uids)
    buffer.partitions["train"] = {key: {} for key in keys}
    store = _BatchStore(data, keys)
    with _replace(rb, "tq", store):
        dropped, counts = buffer._dapo_filtered_keys("train")
    return uids - dropped, dropped, dict(counts)


@contextlib.contextmanager
def _replace(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)
