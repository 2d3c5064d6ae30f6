"""The knob table: every knob's value inside the engines verl built, next to the config block's.

    rows = observe(plan, cfg, env, result)     # after the rehearsal's step
    code = report(rows, print)                 # 1 when any knob did not arrive, naming it

Offers:
- Row: one knob at one place (knob, where, config block value, engine value, how compared, ok).
- expected_value(knob, env, cfg, path): the config block's value: the environment's when the knob is
  set (typed as common/knobs.py types it), else the composed config's at the path verl reads; so a
  knob mapped to the wrong path shows up as a mismatch.
- observe(plan, cfg, env, result) -> list[Row]: reads the values from the objects verl built: the
  engines' configs (micro-batch size, token budget, dynamic batching), their optimizers (learning
  rate, weight decay), the loss functions' bound configs (clip ratios, loss mode and aggregation,
  KL type and coefficient, entropy coefficient, mini-batch shuffle seed), the recorded micro-batches
  each loss was called on, the PEFT config of the wrapped model (rank, alpha, targeted layers), each
  model's attention implementation and gradient checkpointing, the KL controller, the data
  sampler's seed, and the batch itself (prompts, responses per prompt).
- report(rows, out) -> exit code (0 all arrived, 1 a mismatch; the message names the knob).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.knobs import RL_KNOBS, SFT_KNOBS, ConfigError, Knob, parse_bool, parse_value


@dataclass
class Row:
    knob: str
    where: str
    expected: object
    observed: object
    how: str = "=="  # == (equal) or <= (observed at most expected)
    source: str = "default"  # env: set in the config block; default: the composed config's value

    @property
    def ok(self) -> bool:
        if self.how == "<=":
            return self.observed is not None and self.expected is not None and self.observed <= self.expected
        return _same(self.expected, self.observed)


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple, set, frozenset)) or isinstance(b, (list, tuple, set, frozenset)):
        return sorted(map(str, a or [])) == sorted(map(str, b or []))
    return a == b


def _knob(name: str, trainer: str) -> Knob | None:
    table = SFT_KNOBS if trainer == "sft" else RL_KNOBS
    return next((k for k in table if k.name == name), None)


def _select(cfg, path: str):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, path.lstrip("+~"))
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def expected_value(name: str, env: dict[str, str], cfg, path: str, trainer: str = "rl"):
    """(value, source): the environment's typed value when the knob is set, else the config's at path."""
    raw = env.get(name)
    knob = _knob(name, trainer)
    if raw is not None and raw.strip() and knob is not None:
        value = parse_value(knob, raw)
        if knob.kind == "raw":
            value = _raw_list(value)
        return value, "env"
    return _select(cfg, path), "default"


def _raw_list(text: str):
    """LORA_TARGET_MODULES: all-linear, or [q_proj,v_proj] as a list."""
    text = str(text).strip()
    if text.startswith("[") and text.endswith("]"):
        return [part.strip().strip("'\"") for part in text[1:-1].split(",") if part.strip()]
    return text


def _lr(engine):
    optimizer = getattr(engine, "optimizer", None)
    if optimizer is None:
        return None
    group = optimizer.param_groups[0]
    return float(group.get("initial_lr", group["lr"]))


def _unwrap(module):
    return getattr(module, "_fsdp_wrapped_module", module)


def _attn(engine) -> str | None:
    config = getattr(_unwrap(engine.module), "config", None)
    return getattr(config, "_attn_implementation", None)


def _checkpointing(engine) -> bool:
    module = _unwrap(engine.module)
    base = module.get_base_model() if hasattr(module, "get_base_model") else module
    return bool(getattr(base, "is_gradient_checkpointing", False))


def _lora(engine) -> dict:
    """{rank, alpha, targets} of the adapter verl wrapped the model with ({rank: 0} without one)."""
    import torch

    module = _unwrap(engine.module)
    peft_config = getattr(module, "peft_config", None)
    if not peft_config:
        return {"rank": 0}
    config = peft_config["default"]
    targets = sorted({name.rsplit(".", 1)[-1] for name, sub in module.named_modules() if hasattr(sub, "lora_A")})
    # Every linear layer but the output head, adapted or not (peft keeps the original as base_layer).
    linear = set(targets)
    for name, sub in module.get_base_model().named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(sub, torch.nn.Linear) and "lora_" not in name and leaf != "base_layer" \
                and leaf not in {"lm_head", "score", "v_head"}:
            linear.add(leaf)
    wrapped_or_plain = sorted(linear)
    return {"rank": int(config.r), "alpha": config.lora_alpha, "targets": targets, "all_linear": wrapped_or_plain}


def _lora_rows(rows, env, cfg, engine, model_key: str, trainer: str, where: str) -> None:
    lora = _lora(engine)
    if (env.get("USE_LORA") or "").strip():
        use = parse_bool("USE_LORA", env["USE_LORA"])
        rank = parse_value(Knob("LORA_RANK", "int", ()), env.get("LORA_RANK") or "32") if use else 0
        source = "env"
    else:
        rank, source = int(_select(cfg, f"{model_key}.lora_rank") or 0), "default"
    rows.append(Row("LORA_RANK", f"{where} adapter rank (USE_LORA)", rank, lora["rank"], source=source))
    if lora["rank"] or rank:
        alpha, source = expected_value("LORA_ALPHA", env, cfg, f"{model_key}.lora_alpha", trainer)
        rows.append(Row("LORA_ALPHA", f"{where} adapter alpha", alpha, lora.get("alpha"), source=source))
        targets, source = expected_value("LORA_TARGET_MODULES", env, cfg, f"{model_key}.target_modules", trainer)
        if targets == "all-linear":
            rows.append(Row("LORA_TARGET_MODULES", f"{where} adapted layers (all-linear: every linear layer but "
                            "the output head)", lora.get("all_linear"), lora.get("targets"), source=source))
        else:
            rows.append(Row("LORA_TARGET_MODULES", f"{where} adapted layers", targets, lora.get("targets"), source=source))


def _attention_row(rows, env, cfg, engine, model_key: str, where: str) -> None:
    override = _select(cfg, f"{model_key}.override_config") or {}
    expected = override.get("attn_implementation", "flash_attention_2")
    rows.append(Row("ATTN_IMPL", f"{where} attention", expected, _attn(engine),
                    source="env" if (env.get("ATTN_IMPL") or "").strip() else "default"))


def _engine_batch_rows(rows, env, cfg, engine, where: str, micro_path: str, tokens_path: str, dynamic_path: str,
                       infer: bool, trainer: str = "rl") -> None:
    ec = engine.engine_config
    micro_field = "infer_micro_batch_size_per_gpu" if infer else "micro_batch_size_per_gpu"
    tokens_field = "infer_max_token_len_per_gpu" if infer else "max_token_len_per_gpu"
    dynamic, source = expected_value("USE_DYNAMIC_BSZ", env, cfg, dynamic_path, trainer)
    rows.append(Row("USE_DYNAMIC_BSZ", f"{where}: dynamic batching", dynamic, ec.use_dynamic_bsz, source=source))
    micro, source = expected_value("MICRO_BATCH_SIZE_PER_GPU", env, cfg, micro_path, trainer)
    rows.append(Row("MICRO_BATCH_SIZE_PER_GPU", f"{where}: micro-batch", micro, getattr(ec, micro_field), source=source))
    tokens, source = expected_value("MAX_TOKENS_PER_GPU", env, cfg, tokens_path, trainer)
    rows.append(Row("MAX_TOKENS_PER_GPU", f"{where}: token budget", tokens, getattr(ec, tokens_field), source=source))


def _micro_batches_rows(rows, env, cfg, calls, where: str, micro_path: str, tokens_path: str, dynamic_path: str,
                        per_update: int, trainer: str = "rl") -> None:
    """What the engine really trained on: rows (fixed micro-batches) or tokens (dynamic) per loss call."""
    if not calls:
        return
    dynamic = _select(cfg, dynamic_path)
    if dynamic:
        budget, source = expected_value("MAX_TOKENS_PER_GPU", env, cfg, tokens_path, trainer)
        rows.append(Row("MAX_TOKENS_PER_GPU", f"{where}: tokens in the largest micro-batch trained", budget,
                        max(tokens for _, tokens in calls), "<=", source))
    else:
        micro, source = expected_value("MICRO_BATCH_SIZE_PER_GPU", env, cfg, micro_path, trainer)
        rows.append(Row("MICRO_BATCH_SIZE_PER_GPU", f"{where}: rows per micro-batch trained",
                        min(int(micro), per_update), max(r for r, _ in calls), source=source))


def _loss_rows(rows, env, cfg, loss_cfg) -> None:
    a = "actor_rollout_ref.actor"
    mode_knob = "ENTROPY_MODE" if (env.get("ENTROPY_MODE") or "").strip() else "POLICY_LOSS"
    specs = [
        ("CLIP_RATIO_LOW", f"{a}.clip_ratio_low", loss_cfg.clip_ratio_low),
        ("CLIP_RATIO_HIGH", f"{a}.clip_ratio_high", loss_cfg.clip_ratio_high),
        (mode_knob, f"{a}.policy_loss.loss_mode", loss_cfg.policy_loss.get("loss_mode", "vanilla")),
        ("LOSS_AGG_MODE", f"{a}.loss_agg_mode", loss_cfg.loss_agg_mode),
        ("USE_KL_LOSS", f"{a}.use_kl_loss", loss_cfg.use_kl_loss),
        ("ENTROPY_COEFF", f"{a}.entropy_coeff", loss_cfg.entropy_coeff),
        ("SEED", f"{a}.data_loader_seed", loss_cfg.data_loader_seed),
    ]
    if loss_cfg.use_kl_loss:
        specs += [("KL_LOSS_TYPE", f"{a}.kl_loss_type", loss_cfg.kl_loss_type),
                  ("KL_LOSS_COEF", f"{a}.kl_loss_coef", loss_cfg.kl_loss_coef)]
    for knob, path, observed in specs:
        expected, source = expected_value(knob, env, cfg, path)
        where = "actor loss: mini-batch shuffle seed" if knob == "SEED" else f"actor loss: {path.rsplit('.', 1)[-1]}"
        rows.append(Row(knob, where, expected, observed, source=source))


def _updates_rows(rows, env, cfg, result) -> None:
    """Optimizer steps per training step: TRAIN_BATCH_SIZE / PPO_MINI_BATCH_SIZE mini-batches x PPO_EPOCHS."""
    train, _ = expected_value("TRAIN_BATCH_SIZE", env, cfg, "data.train_batch_size")
    for who, path, observed in (("actor", "actor_rollout_ref.actor", result.actor_updates),
                                ("critic", "critic", result.critic_updates)):
        if observed is None:
            continue
        mini, mini_source = expected_value("PPO_MINI_BATCH_SIZE", env, cfg, f"{path}.ppo_mini_batch_size")
        epochs, epochs_source = expected_value("PPO_EPOCHS", env, cfg, f"{path}.ppo_epochs")
        source = "env" if "env" in (mini_source, epochs_source) else "default"
        rows.append(Row("PPO_MINI_BATCH_SIZE", f"{who}: optimizer steps per training step (x PPO_EPOCHS)",
                        int(train) // int(mini) * int(epochs), observed, source=source))


def _reward_rows(rows, env, cfg, kwargs: dict | None) -> None:
    """The reward knobs that travel as reward_kwargs, as verl's reward manager holds them."""
    if kwargs is None:
        return
    for knob, key, where in (("STRICT_BOXED", "strict_boxed", "reward function: strict_boxed"),
                             ("REWARD_TIMEOUT_S", "guard_timeout_s", "reward guard: seconds per call")):
        expected = _select(cfg, f"reward.custom_reward_function.reward_kwargs.{key}")
        if expected is not None:
            rows.append(Row(knob, where, expected, kwargs.get(key), source="env" if env.get(knob) else "default"))


def observe_rl(cfg, env, result) -> list[Row]:
    host = result.host
    arr, a, r = "actor_rollout_ref", "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    n = int(cfg.actor_rollout_ref.rollout.n)
    rows: list[Row] = []
    actor = host.actor.engine
    _engine_batch_rows(rows, env, cfg, actor, "actor update", f"{a}.ppo_micro_batch_size_per_gpu",
                       f"{a}.ppo_max_token_len_per_gpu", f"{a}.use_dynamic_bsz", infer=False)
    _engine_batch_rows(rows, env, cfg, actor, "actor log-probs", f"{r}.log_prob_micro_batch_size_per_gpu",
                       f"{r}.log_prob_max_token_len_per_gpu", f"{r}.log_prob_use_dynamic_bsz", infer=True)
    _micro_batches_rows(rows, env, cfg, host.actor_recorder.calls, "actor update", f"{a}.ppo_micro_batch_size_per_gpu",
                        f"{a}.ppo_max_token_len_per_gpu", f"{a}.use_dynamic_bsz",
                        int(cfg.actor_rollout_ref.actor.ppo_mini_batch_size) * n)
    lr, source = expected_value("ACTOR_LR", env, cfg, f"{a}.optim.lr")
    rows.append(Row("ACTOR_LR", "actor optimizer: learning rate", lr, _lr(actor), source=source))
    _loss_rows(rows, env, cfg, host.actor_recorder.config)
    _lora_rows(rows, env, cfg, actor, f"{arr}.model", "rl", "actor")
    _attention_row(rows, env, cfg, actor, f"{arr}.model", "actor")
    checkpointing, source = expected_value("GRADIENT_CHECKPOINTING", env, cfg, f"{arr}.model.enable_gradient_checkpointing")
    rows.append(Row("GRADIENT_CHECKPOINTING", "actor: gradient checkpointing", checkpointing, _checkpointing(actor),
                    source=source))
    if host.ref is not None:
        ref = host.ref.engine
        ref_path = f"{arr}.ref"
        _engine_batch_rows(rows, env, cfg, ref, "reference log-probs", f"{ref_path}.log_prob_micro_batch_size_per_gpu",
                           f"{ref_path}.log_prob_max_token_len_per_gpu", f"{ref_path}.log_prob_use_dynamic_bsz", infer=True)
        _attention_row(rows, env, cfg, ref, f"{arr}.model", "reference")
    if host.critic is not None:
        critic = host.critic.engine
        _engine_batch_rows(rows, env, cfg, critic, "critic update", "critic.ppo_micro_batch_size_per_gpu",
                           "critic.ppo_max_token_len_per_gpu", "critic.use_dynamic_bsz", infer=False)
        _engine_batch_rows(rows, env, cfg, critic, "critic values", "critic.forward_micro_batch_size_per_gpu",
                           "critic.ppo_max_token_len_per_gpu", "critic.use_dynamic_bsz", infer=True)
        _micro_batches_rows(rows, env, cfg, host.critic_recorder.calls, "critic update", "critic.ppo_micro_batch_size_per_gpu",
                            "critic.ppo_max_token_len_per_gpu", "critic.use_dynamic_bsz",
                            int(cfg.critic.ppo_mini_batch_size) * n)
        lr, source = expected_value("CRITIC_LR", env, cfg, "critic.optim.lr")
        rows.append(Row("CRITIC_LR", "critic optimizer: learning rate", lr, _lr(critic), source=source))
        seed, source = expected_value("SEED", env, cfg, "critic.data_loader_seed")
        rows.append(Row("SEED", "critic: mini-batch shuffle seed", seed, host.critic_recorder.config.data_loader_seed,
                        source=source))
        _attention_row(rows, env, cfg, critic, "critic.model", "critic")
    use_kl, source = expected_value("USE_KL_IN_REWARD", env, cfg, "algorithm.use_kl_in_reward")
    rows.append(Row("USE_KL_IN_REWARD", "KL penalty in the reward (a KL controller exists)", bool(use_kl),
                    result.kl_ctrl is not None, source=source))
    if result.kl_ctrl is not None:
        coef, source = expected_value("KL_COEF", env, cfg, "algorithm.kl_ctrl.kl_coef")
        rows.append(Row("KL_COEF", "KL controller: coefficient", coef, float(result.kl_ctrl.value), source=source))
    if cfg.data.get("shuffle", True) and result.sampler_seed is not None:
        seed, source = expected_value("SEED", env, cfg, "data.seed")
        if seed is not None:
            rows.append(Row("SEED", "train data sampler: seed", seed, result.sampler_seed, source=source))
    _reward_rows(rows, env, cfg, result.reward_kwargs)
    _updates_rows(rows, env, cfg, result)
    n_expected, source = expected_value("ROLLOUT_N", env, cfg, f"{r}.n")
    rows.append(Row("ROLLOUT_N", "batch: responses per prompt", n_expected, result.responses_per_prompt, source=source))
    batch, source = expected_value("TRAIN_BATCH_SIZE", env, cfg, "data.train_batch_size")
    rows.append(Row("TRAIN_BATCH_SIZE", "batch: prompts per step", batch, result.prompts, source=source))
    return rows


def observe_sft(cfg, env, result) -> list[Row]:
    engine = result.engine
    seen = result.batch_settings  # the non-tensor settings the engine received with the batch
    rows: list[Row] = []
    for knob, path, key in (("USE_DYNAMIC_BSZ", "data.use_dynamic_bsz", "use_dynamic_bsz"),
                            ("MICRO_BATCH_SIZE_PER_GPU", "data.micro_batch_size_per_gpu", "micro_batch_size_per_gpu"),
                            ("MAX_TOKENS_PER_GPU", "data.max_token_len_per_gpu", "max_token_len_per_gpu")):
        expected, source = expected_value(knob, env, cfg, path, "sft")
        rows.append(Row(knob, f"SFT step: {key}", expected, seen.get(key), source=source))
    _micro_batches_rows(rows, env, cfg, result.train_calls, "SFT step", "data.micro_batch_size_per_gpu",
                        "data.max_token_len_per_gpu", "data.use_dynamic_bsz", int(cfg.data.train_batch_size), "sft")
    lr, source = expected_value("LR", env, cfg, "optim.lr", "sft")
    rows.append(Row("LR", "optimizer: learning rate", lr, _lr(engine), source=source))
    decay, source = expected_value("WEIGHT_DECAY", env, cfg, "optim.weight_decay", "sft")
    rows.append(Row("WEIGHT_DECAY", "optimizer: weight decay", decay,
                    float(engine.optimizer.param_groups[0].get("weight_decay", 0.0)), source=source))
    batch, source = expected_value("TRAIN_BATCH_SIZE", env, cfg, "data.train_batch_size", "sft")
    rows.append(Row("TRAIN_BATCH_SIZE", "SFT step: conversations trained", batch, sum(r for r, _ in result.train_calls),
                    source=source))
    _lora_rows(rows, env, cfg, engine, "model", "sft", "model")
    _attention_row(rows, env, cfg, engine, "model", "model")
    checkpointing, source = expected_value("GRADIENT_CHECKPOINTING", env, cfg, "model.enable_gradient_checkpointing", "sft")
    rows.append(Row("GRADIENT_CHECKPOINTING", "model: gradient checkpointing", checkpointing, _checkpointing(engine),
                    source=source))
    return rows


def observe(plan, cfg, env, result) -> list[Row]:
    try:
        return observe_sft(cfg, env, result) if plan.trainer == "sft" else observe_rl(cfg, env, result)
    except ConfigError:
        raise
    except Exception as exc:  # a value that cannot be read is a knob that cannot be shown to arrive
        return [Row("(knob table)", f"could not read the engines: {type(exc).__name__}: {exc}", "readable", None)]


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def report(rows: list[Row], out) -> int:
    """Print the table; return 1 naming each knob whose engine value differs from the config block's."""
    if not rows:
        out("[rehearsal] knob table: nothing observed")
        return 1
    width_k = max(len(r.knob) for r in rows)
    width_w = max(len(r.where) for r in rows)
    out("[rehearsal] knob table: the config block's value (env: set there; default: the composed config's) next to "
        "the value inside the engine verl built")
    out(f"  {'knob':{width_k}}  {'where':{width_w}}  {'config block':>20}  {'':2}  {'in the engine':<20}  result")
    for r in rows:
        block = f"{_show(r.expected)} ({r.source})"
        out(f"  {r.knob:{width_k}}  {r.where:{width_w}}  {block:>20}  {r.how:2}  {_show(r.observed):<20}  "
            f"{'ok' if r.ok else 'MISMATCH'}")
    bad = [r for r in rows if not r.ok]
    if bad:
        names = ", ".join(dict.fromkeys(r.knob for r in bad))
        out(f"[rehearsal] knob(s) that did not reach verl's engines: {names}")
        for r in bad:
            out(f"  {r.knob}: {r.where}: the config block says {_show(r.expected)}, the engine has {_show(r.observed)}")
        return 1
    out(f"[rehearsal] knob table: all {len(rows)} values arrived")
    return 0
