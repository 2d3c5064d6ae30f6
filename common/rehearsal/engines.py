"""verl's training engines for the rehearsal, built in this process the way verl's trainer builds them.

    host = build_rl(cfg)            # after device.use_cpu() and inside device.process_group()
    host._compute_old_log_prob(batch) ...   # verl's own stage methods, on in-process workers

Offers:
- Local(worker): a worker used in-process where verl holds a Ray worker group: the same methods;
  a method verl registers as non-blocking (blocking=False) returns an object whose .get() gives
  the result, as a Ray future would.
- MicroBatchRecorder: wraps a loss function and records each micro-batch it is called on (rows,
  tokens): the micro-batch size and token budget the engine really used.
- Host: the trainer object the rehearsal drives. Its stage methods ARE verl's: the DataProto stage
  methods of verl/trainer/ppo/ray_trainer.py (RayPPOTrainer: _get_gen_batch, _compute_old_log_prob,
  _compute_ref_log_prob, _compute_values, _update_actor, _update_critic) and the V1 trainer's
  replay-buffer construction (verl/trainer/ppo/v1/trainer_base.py: _build_replay_buffer,
  _resolve_filter_groups_metric). The V1 trainer's own stage methods move data through
  TransferQueue, which runs as Ray actors; the RayPPOTrainer ones call the same worker methods on
  the same engines with the batch in hand.
- trainable_snapshot(engine, count) / changed_since(engine, snapshot): copies of a few trainable
  tensors (first, middle, last) before the step, and how many differ after it.
- build_rl(cfg) -> Host: ActorRolloutRefWorker(role="actor") for the policy; role="ref" for the
  reference model when a KL term needs it and LoRA does not carry it (ref_in_actor); the critic as
  TrainingWorker(value_model) from the critic config exactly as trainer_base.py "define critic
  class" does. A launch builds the actor with role "actor_rollout_ref", which also starts the
  rollout server in-process (vLLM/SGLang): the one part a CPU cannot run.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field


class _Done:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class Local:
    """An in-process worker with a worker group's calling conventions."""

    def __init__(self, worker):
        self.worker = worker

    def __getattr__(self, name):
        from verl.single_controller.base.decorator import MAGIC_ATTR

        method = getattr(self.worker, name)
        attrs = getattr(method, MAGIC_ATTR, None)
        if not attrs or attrs.get("blocking", True):
            return method

        def call(*args, **kwargs):
            return _Done(method(*args, **kwargs))

        return call


@dataclass
class MicroBatchRecorder:
    """A loss function wrapper that records (rows, tokens) of every micro-batch the engine trains on."""

    loss_fn: object
    calls: list[tuple[int, int]] = field(default_factory=list)
    configs: list = field(default_factory=list)

    def __call__(self, *args, **kwargs):
        data = kwargs.get("data")  # verl calls loss_function(model_output=..., data=..., dp_group=...)
        rows = int(data.batch_size[0]) if data is not None and data.batch_size else 0
        ids = data.get("input_ids", None) if data is not None else None
        tokens = int(ids.offsets()[-1]) if ids is not None and getattr(ids, "is_nested", False) else -1
        self.calls.append((rows, tokens))
        return self.loss_fn(*args, **kwargs)

    @property
    def config(self):
        """The config the wrapped loss was bound with (functools.partial(ppo_loss, config=...))."""
        return getattr(self.loss_fn, "keywords", {}).get("config")


def _borrowed_methods():
    from verl.trainer.ppo.ray_trainer import RayPPOTrainer
    from verl.trainer.ppo.v1.trainer_base import PPOTrainer

    names_v0 = ("_get_gen_batch", "_compute_old_log_prob", "_compute_ref_log_prob", "_compute_values",
                "_update_actor", "_update_critic")
    names_v1 = ("_build_replay_buffer", "_resolve_filter_groups_metric")
    methods = {name: getattr(RayPPOTrainer, name) for name in names_v0}
    methods.update({name: getattr(PPOTrainer, name) for name in names_v1})
    return methods


class Host:
    """Holds what verl's trainer holds (config, worker groups, flags); verl's methods are attached."""

    def __init__(self, cfg):
        from verl.trainer.ppo.utils import need_critic, need_reference_policy

        self.config = cfg
        self.use_critic = need_critic(cfg)
        self.use_reference_policy = need_reference_policy(cfg)
        lora_rank = cfg.actor_rollout_ref.model.get("lora", {}).get("rank", 0)
        if lora_rank <= 0:
            lora_rank = cfg.actor_rollout_ref.model.get("lora_rank", 0)
        # trainer_base.py _setup: with LoRA the reference policy is the actor with its adapter off.
        self.ref_in_actor = lora_rank > 0 or cfg.actor_rollout_ref.model.get("lora_adapter_path") is not None
        self.distillation_config = None
        self.trainer_mode = cfg.trainer.v1.trainer_mode
        self.actor_rollout_wg = self.ref_policy_wg = self.critic_wg = None
        self.actor_recorder = self.critic_recorder = None
        self.build_seconds: dict[str, float] = {}
        self.notes: list[str] = []

    # The replay buffer's refill callback: the rehearsal reports dropped groups instead of refilling.
    def _add_prompts_to_generate(self, num_prompts: int) -> int:
        return num_prompts

    @property
    def actor(self):
        return self.actor_rollout_wg.worker.actor

    @property
    def ref(self):
        if self.ref_in_actor or self.ref_policy_wg is None:
            return None
        return self.ref_policy_wg.worker.ref

    @property
    def critic(self):
        return self.critic_wg.worker if self.critic_wg is not None else None


for _name, _method in _borrowed_methods().items():
    setattr(Host, _name, _method)


# verl 0.9.1 loads the critic with attn_implementation="flash_attention_2" written into the call
# (verl/utils/model.py:649 and :674, load_valuehead_model), whatever the critic's
# override_config says: without flash-attn (every CPU; a GPU without it) the critic cannot load.
CRITIC_ATTENTION_NOTE = ("critic attention: verl 0.9.1 hard-codes flash_attention_2 when it loads the critic "
                         "(verl/utils/model.py:649, load_valuehead_model); the rehearsal passes the configured {impl} "
                         "to that one call, the rest of the critic is verl's")


@contextlib.contextmanager
def critic_attention(impl: str):
    """While verl loads the critic, let its from_pretrained call take `impl` instead of the hard-coded
    flash_attention_2 (transformers.AutoModelForTokenClassification is what load_valuehead_model imports)."""
    import transformers

    real = transformers.AutoModelForTokenClassification
    if impl == "flash_attention_2":
        yield
        return

    class ConfiguredAttention:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            if kwargs.get("attn_implementation") == "flash_attention_2":
                kwargs["attn_implementation"] = impl
            return real.from_pretrained(*args, **kwargs)

    transformers.AutoModelForTokenClassification = ConfiguredAttention
    try:
        yield
    finally:
        transformers.AutoModelForTokenClassification = real


def _timed(host: Host, what: str, build):
    start = time.monotonic()
    value = build()
    host.build_seconds[what] = time.monotonic() - start
    return value


def build_rl(cfg) -> Host:
    """The actor (+ reference) and critic engines for cfg, as verl's V1 trainer builds them."""
    from functools import partial

    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config import CriticConfig
    from verl.workers.engine_workers import ActorRolloutRefWorker, TrainingWorker, TrainingWorkerConfig
    from verl.workers.utils.losses import value_loss

    host = Host(cfg)
    # 1. actor (trainer_base.py _setup step 6: init_model builds the engine and binds ppo_loss).
    actor = ActorRolloutRefWorker(cfg.actor_rollout_ref, role="actor")
    _timed(host, "actor", actor.init_model)
    host.actor_recorder = MicroBatchRecorder(actor.actor.loss_fn)
    actor.actor.set_loss_fn(host.actor_recorder)
    host.actor_rollout_wg = Local(actor)
    # 2. reference model, when a KL term needs one and LoRA does not provide it.
    if host.use_reference_policy and not host.ref_in_actor:
        ref = ActorRolloutRefWorker(cfg.actor_rollout_ref, role="ref")
        _timed(host, "reference", ref.init_model)
        host.ref_policy_wg = Local(ref)
    elif host.ref_in_actor:
        host.ref_policy_wg = host.actor_rollout_wg
    # 3. critic: trainer_base.py _setup, "define critic class" and step 5.
    if host.use_critic:
        critic_cfg: CriticConfig = omega_conf_to_dataclass(cfg.critic)
        critic_cfg.engine.infer_max_token_len_per_gpu = critic_cfg.ppo_infer_max_token_len_per_gpu
        critic_cfg.engine.max_token_len_per_gpu = critic_cfg.ppo_infer_max_token_len_per_gpu
        worker_cfg = TrainingWorkerConfig(
            model_type="value_model",
            model_config=critic_cfg.model,
            engine_config=critic_cfg.engine,
            optimizer_config=critic_cfg.optim,
            checkpoint_config=critic_cfg.checkpoint,
            profiler_config=None,
        )
        critic = TrainingWorker(config=worker_cfg)
        impl = (cfg.critic.model.get("override_config") or {}).get("attn_implementation", "flash_attention_2")
        with critic_attention(impl):
            _timed(host, "critic", critic.reset)
        if impl != "flash_attention_2":
            host.notes.append(CRITIC_ATTENTION_NOTE.format(impl=impl))
        host.critic_recorder = MicroBatchRecorder(partial(value_loss, config=critic_cfg))
        critic.set_loss_fn(host.critic_recorder)
        host.critic_wg = Local(critic)
    return host


def _full(tensor):
    return (tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor).detach().float().clone()


def trainable_snapshot(engine, count: int = 4) -> dict:
    """{name: fp32 copy} of `count` trainable parameters spread over the model."""
    named = [(name, p) for name, p in engine.module.named_parameters() if p.requires_grad]
    if not named:
        return {}
    picks = sorted({round(i * (len(named) - 1) / max(1, count - 1)) for i in range(count)})
    return {named[i][0]: _full(named[i][1]) for i in picks}


def changed_since(engine, snapshot: dict) -> tuple[int, int, float]:
    """(tensors changed, tensors compared, largest absolute change)."""
    params = dict(engine.module.named_parameters())
    changed, largest = 0, 0.0
    for name, before in snapshot.items():
        delta = float((_full(params[name]) - before).abs().max())
        largest = max(largest, delta)
        changed += delta > 0
    return changed, len(snapshot), largest
