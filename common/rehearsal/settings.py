"""What the rehearsal changes in the launch config, and why: each change is printed.

    settings = Settings.from_env(env, plan.run_dir)
    cfg, changes = prepare(plan, cfg, settings)

Offers:
- Settings: the rehearsal's own knobs, read from the environment:
    REHEARSAL_STEPS  training steps to run (default 1)
    REHEARSAL_MODEL  full (default: MODEL_PATH itself) or tiny (a random model of MODEL_PATH's
                     architecture and tokenizer, shrunk; common/rehearsal/tiny.py)
    REHEARSAL_EVAL_ROWS  VAL_DATA rows test.sh scores the merged model on (default 4; 0 = skip)
    REHEARSAL_DEVICE cpu (default) or cuda: the same rehearsal on a GPU, with the launch's FSDP
                     strategy and attention untouched (tests/gpu/smoke.sh asserts its knob table)
  and the rehearsal folder, <run folder>/rehearsal/: checkpoints/, merged model, eval report,
  metrics.jsonl, rollout/ and tiny_model/ of this rehearsal, apart from a real run's files.
- prepare(plan, cfg, settings) -> (cfg, changes): a resolved copy of the launch config with only
  what a CPU forces and where the rehearsal writes changed; `changes` says what and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.knobs import ConfigError, parse_bool

REHEARSAL_KNOBS = {
    "REHEARSAL": "1: run one real training step of the launch config on the CPU (no GPU, no Ray, no rollout server)",
    "REHEARSAL_STEPS": "training steps the rehearsal runs (default 1)",
    "REHEARSAL_MODEL": "full (default): MODEL_PATH itself; tiny: a random shrunk model of MODEL_PATH's architecture",
    "REHEARSAL_EVAL_ROWS": "VAL_DATA rows test.sh scores the rehearsal's merged model on (default 4; 0 skips)",
    "REHEARSAL_DEVICE": "cpu (default) or cuda: run the rehearsal on a GPU (the GPU smoke test does)",
}
# Why FSDP1 cannot run here: verl wraps with sync_module_states=True
# (verl/workers/engine/fsdp/transformer_impl.py, _build_fsdp_module), which torch refuses for CPU
# parameters (torch/distributed/fsdp/_init_utils.py, _check_module_states_for_sync_module_states).
FSDP1_NOTE = ("strategy fsdp -> fsdp2: FSDP1 on the CPU fails in torch (sync_module_states=True, set by verl's "
              "_build_fsdp_module in workers/engine/fsdp/transformer_impl.py, needs GPU tensors); FSDP2 runs "
              "the same engine class")


@dataclass(frozen=True)
class Settings:
    steps: int
    model: str  # full | tiny
    eval_rows: int
    folder: Path
    device: str = "cpu"  # cpu | cuda

    @property
    def changed(self) -> str:
        """How the rehearsal's output labels what it changed in the launch config."""
        return "[rehearsal] changed for the CPU:" if self.device == "cpu" else "[rehearsal] changed for the rehearsal:"

    @classmethod
    def from_env(cls, env: dict[str, str], run_dir: Path) -> Settings:
        def integer(name: str, default: int, low: int) -> int:
            raw = (env.get(name) or str(default)).strip()
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not an integer") from None
            if value < low:
                raise ConfigError(f"{name}={value} must be at least {low}")
            return value

        model = (env.get("REHEARSAL_MODEL") or "full").strip().lower()
        if model not in {"full", "tiny"}:
            raise ConfigError(f"REHEARSAL_MODEL={model!r} is not one of: full, tiny")
        device = (env.get("REHEARSAL_DEVICE") or "cpu").strip().lower()
        if device not in {"cpu", "cuda"}:
            raise ConfigError(f"REHEARSAL_DEVICE={device!r} is not one of: cpu, cuda")
        return cls(integer("REHEARSAL_STEPS", 1, 1), model, integer("REHEARSAL_EVAL_ROWS", 4, 0), Path(run_dir) / "rehearsal",
                   device)


def wanted(env: dict[str, str]) -> bool:
    return parse_bool("REHEARSAL", env.get("REHEARSAL") or "0")


def _flash_attn_usable() -> bool:
    from common.attention import flash_attn_status

    return flash_attn_status()[0]


def _model_keys(trainer: str) -> list[str]:
    return ["model"] if trainer == "sft" else ["actor_rollout_ref.model", "critic.model"]


def _swap_models(cfg, plan, settings: Settings, changes: list[str]) -> None:
    """REHEARSAL_MODEL=tiny: random shrunk models of the configured architectures."""
    from omegaconf import OmegaConf

    from common.rehearsal.tiny import ModelNotLocal, build_like

    built: dict[str, str] = {}

    def tiny(path: str, reward: bool = False) -> str:
        key = (path, reward)
        if key not in built:
            name = "tiny_reward_model" if reward else f"tiny_model_{len(built)}"
            try:
                built[key] = str(build_like(path, settings.folder / name, reward=reward))
            except ModelNotLocal as exc:
                raise ConfigError(str(exc)) from None
            changes.append(f"model: REHEARSAL_MODEL=tiny: {path} -> {built[key]} (its architecture and tokenizer, "
                           "2 layers, random weights)")
        return built[key]

    for key in _model_keys(plan.trainer):
        node = OmegaConf.select(cfg, key)
        if node is not None and node.get("path"):
            node.path = tiny(str(node.path))
            for extra in ("tokenizer_path", "hf_config_path"):
                if node.get(extra):
                    node[extra] = tiny(str(node[extra]))
    if plan.trainer == "rl" and cfg.reward.reward_model.get("enable") and cfg.reward.reward_model.get("model_path"):
        cfg.reward.reward_model.model_path = tiny(str(cfg.reward.reward_model.model_path), reward=True)


def _require_local_models(cfg, plan) -> None:
    """REHEARSAL_MODEL=full loads MODEL_PATH (and a reward model) from disk: say so before verl tries the network."""
    from omegaconf import OmegaConf

    from common.rehearsal.tiny import ModelNotLocal, local_model_dir

    paths = [OmegaConf.select(cfg, f"{key}.path") for key in _model_keys(plan.trainer)]
    if plan.trainer == "rl" and cfg.reward.reward_model.get("enable"):
        paths.append(cfg.reward.reward_model.get("model_path"))
    for path in dict.fromkeys(p for p in paths if p):
        try:
            local_model_dir(str(path))
        except ModelNotLocal as exc:
            raise ConfigError(f"{exc}; or rehearse a random model of its architecture: REHEARSAL_MODEL=tiny "
                              "(needs its config.json and tokenizer on disk)") from None


def prepare(plan, cfg, settings: Settings):
    """A resolved copy of cfg for the CPU rehearsal, and the list of what changed and why."""
    from omegaconf import OmegaConf, open_dict

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    changes: list[str] = []
    folder = settings.folder
    with open_dict(cfg):
        # Where it writes: the rehearsal folder, never the run's own checkpoints.
        cfg.trainer.default_local_dir = str(folder / "checkpoints")
        cfg.trainer.logger = ["console", "file"]
        cfg.trainer.resume_mode = "disable"
        if plan.trainer == "rl":
            cfg.trainer.rollout_data_dir = str(folder / "rollout")
            cfg.trainer.validation_data_dir = str(folder / "validation")
        changes.append(f"outputs: {folder} (checkpoints, merged model, metrics, eval); resume off")
        if settings.model == "tiny":
            _swap_models(cfg, plan, settings, changes)
        else:
            _require_local_models(cfg, plan)
        if settings.device != "cpu":
            return cfg, changes
        if plan.trainer == "sft" and cfg.trainer.get("device") != "cpu":
            # verl's SFT trainer moves sequence lengths to trainer.device (auto_set_device sets npu the same way).
            changes.append(f"trainer.device: {cfg.trainer.get('device')} -> cpu")
            cfg.trainer.device = "cpu"
        # FSDP1 -> FSDP2 (the only change the CPU forces on the engines).
        strategies = [("engine", cfg.engine)] if plan.trainer == "sft" else [
            ("actor", cfg.actor_rollout_ref.actor), ("ref", cfg.actor_rollout_ref.ref), ("critic", cfg.critic)]
        swapped = [name for name, node in strategies if node.get("strategy") == "fsdp"]
        for name, node in strategies:
            if node.get("strategy") == "fsdp":
                node.strategy = "fsdp2"
        if plan.trainer == "rl" and cfg.critic.get("fsdp") is not None and cfg.critic.fsdp.get("strategy") == "fsdp":
            cfg.critic.fsdp.strategy = "fsdp2"
        if swapped:
            changes.append(f"{FSDP1_NOTE} ({', '.join(swapped)})")
        # flash_attention_2 needs a CUDA device: the CPU runs what ATTN_IMPL=sdpa would run.
        if not _flash_attn_usable():
            for key in _model_keys(plan.trainer):
                node = OmegaConf.select(cfg, key)
                if node is None:
                    continue
                override = node.get("override_config") or {}
                if override.get("attn_implementation", "flash_attention_2") == "flash_attention_2":
                    node.override_config = {**override, "attn_implementation": "sdpa"}
                    node.use_remove_padding = False
                    changes.append(f"attention: {key} flash_attention_2 -> sdpa with use_remove_padding=false "
                                   "(flash-attn needs a CUDA device; what ATTN_IMPL=sdpa runs)")
    return cfg, changes
