"""The environment around the run: legacy keys verl ignores, loggers, the output folder, installed
versions, GPUs and Ray.

Offers:
- legacy_key_checks(plan, cfg, ctx): reward keys verl 0.9.1 accepts and silently ignores.
- logger_checks(plan, cfg, ctx): verl's logger backends; wandb online without a key.
- output_checks(plan, cfg, ctx): the run folder can be created, is not in use by another launch, and
  a resume continues from the same model (nothing is created here).
- knob_name_checks(plan, cfg, ctx): variables that look like knobs but are none (ROLOUT_N).
- callbacks_checks(plan, cfg, ctx): the callbacks' knobs parse and CALLBACKS_FILE imports.
- version_checks(plan, cfg, ctx): verl, torch, transformers and the rollout engine against the pins.
- gpu_checks(plan, cfg, ctx), ray_checks(plan, cfg, ctx): GPUs visible, a Ray cluster to join or submit to.
- reachable_url(url): does something answer at url's host and port (2 s).
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from common.checks.result import Result
from common.ray_cluster import job_api_address, wants_cluster


# The pins of the GPU stack (verl 0.9.1's vllm/sglang extras) and of the CPU development build.
GPU_PINS = {"torch": "2.11.0", "vllm": "0.24.0", "sglang": "0.5.12", "transformers": "5.9.0"}
CPU_TORCH = "2.13.0"
VERL_VERSION = "0.9.1"

# Where verl 0.9.1 reads what the legacy top-level keys used to set (trainer/config/legacy_reward_impl.yaml).
LEGACY_MOVES = {
    "custom_reward_function.path": "reward.custom_reward_function.path (REWARD_FUNC_PATH)",
    "custom_reward_function.name": "reward.custom_reward_function.name (REWARD_FUNC_NAME)",
    "reward_model.reward_manager": "reward.reward_manager.name (REWARD_MANAGER)",
    "reward_model.reward_kwargs": "reward.reward_kwargs (+reward.reward_kwargs.KEY=...)",
    "reward_model.num_workers": "reward.num_workers (REWARD_WORKERS)",
    "reward_model.enable": "reward.reward_model.enable",
    "reward_model.model": "reward.reward_model.model_path (REWARD_MODEL_PATH)",
    "reward_model.rollout": "reward.reward_model.rollout",
}


def _set_leaves(node, prefix: str):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig):
        for key in node.keys():
            if OmegaConf.is_missing(node, key):
                continue
            yield from _set_leaves(node[key], f"{prefix}.{key}")
    elif isinstance(node, ListConfig):
        if len(node):
            yield prefix, node
    elif node is not None:
        yield prefix, node


def legacy_key_checks(plan, cfg, ctx) -> list[Result]:
    if plan.trainer == "sft":
        return []
    from omegaconf import OmegaConf

    results = []
    for root in ("custom_reward_function", "reward_model"):
        node = OmegaConf.select(cfg, root)
        if node is None:
            continue
        for key, value in _set_leaves(node, root):
            if key.endswith(("._target_",)):
                continue
            moved = next((new for old, new in LEGACY_MOVES.items() if key == old or key.startswith(old + ".")),
                         "the reward.* section (see verl/trainer/config/reward/reward.yaml)")
            arg = [a for a in plan.extra_args if a.lstrip("+~").split("=", 1)[0].startswith(root)]
            where = f" (set by the argument {' '.join(arg)})" if arg else ""
            results.append(Result.fail("legacy keys", f"{key}={value} is ignored by verl 0.9.1's main_ppo{where}: it moved to {moved}"))
    return results or [Result.ok("legacy keys", "no legacy reward keys set")]


def logger_checks(plan, cfg, ctx) -> list[Result]:
    from verl.utils.tracking import Tracking

    env = {**ctx.get("env", {}), **plan.env}
    loggers = [str(x) for x in (cfg.trainer.logger if not isinstance(cfg.trainer.logger, str) else [cfg.trainer.logger])]
    results = []
    unknown = [x for x in loggers if x not in Tracking.supported_backend]
    if unknown:
        results.append(Result.fail("loggers", f"trainer.logger {unknown} not in verl's backends {Tracking.supported_backend}",
                             "USE_WANDB", "USE_TENSORBOARD"))
    if "wandb" in loggers and (env.get("WANDB_MODE") or "online").lower() == "online" and not _wandb_key(env):
        results.append(Result.fail("loggers", "wandb runs online (WANDB_MODE=online or unset) but there is no WANDB_API_KEY and no "
                             "api.wandb.ai entry in ~/.netrc: wandb would fail after the models load. Export "
                             "WANDB_API_KEY, run `wandb login`, or set WANDB_MODE=offline", "USE_WANDB", "WANDB_API_KEY"))
    return results or [Result.ok("loggers", ", ".join(loggers))]


def _wandb_key(env) -> bool:
    if env.get("WANDB_API_KEY"):
        return True
    netrc = Path(env.get("NETRC") or Path(env.get("HOME") or Path.home()) / ".netrc")
    try:
        import netrc as _netrc

        return _netrc.netrc(str(netrc)).authenticators("api.wandb.ai") is not None
    except (OSError, _netrc.NetrcParseError):
        return False


def output_checks(plan, cfg, ctx) -> list[Result]:
    """The run folder can be created, no other launch holds it, and a resume continues the same model
    (nothing is created here)."""
    from common import run_folder

    target = Path(plan.run_dir)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return [Result.fail("output folder", f"{probe} is a file, so {target} cannot be created", "OUTPUT_DIR")]
    if not os.access(probe, os.W_OK | os.X_OK):
        return [Result.fail("output folder", f"{probe} is not writable, so {target} cannot be created", "OUTPUT_DIR")]
    results = []
    holder = run_folder.lock_holder(target)
    if holder is not None:
        results.append(Result.fail("output folder", f"{target} is in use by {run_folder.holder_text(holder)}: two launches "
                                   "of one run would write the same checkpoints; wait for it, stop it, or set "
                                   "EXPERIMENT_NAME for a separate run", "EXPERIMENT_NAME"))
    recorded, current = run_folder.recorded_model(target), run_folder.model_of(cfg)
    resume = str(cfg.trainer.get("resume_mode", "auto"))
    has_checkpoints = any((target / "checkpoints").glob("global_step_*")) if (target / "checkpoints").is_dir() else False
    if recorded and current and recorded != current and resume != "disable" and has_checkpoints:
        results.append(Result.fail("output folder", f"{target} holds checkpoints trained from MODEL_PATH={recorded}, and a "
                                   f"relaunch resumes them by name, but MODEL_PATH is now {current}. Set EXPERIMENT_NAME "
                                   "for a new run (or RESUME_MODE=disable to start over in this folder)",
                                   "EXPERIMENT_NAME", "MODEL_PATH", "RESUME_MODE"))
    if results:
        return results
    free_gb = shutil.disk_usage(probe).free / 1e9
    resumes = f"; resumes from its checkpoints (RESUME_MODE={resume})" if has_checkpoints and resume != "disable" else ""
    detail = f"{target} (writable, {free_gb:.0f} GB free{resumes})"
    if free_gb < 10:
        return [Result.warn("output folder", detail + ": under 10 GB free; checkpoints may not fit", "OUTPUT_DIR")]
    return [Result.ok("output folder", detail)]


def knob_name_checks(plan, cfg, ctx) -> list[Result]:
    """Variables that look like knobs but are none (a typo), or that only the other trainer reads:
    nothing reads them, so the run would go ahead with the default and no word."""
    from common import block
    from common.knobs import known_names, other_trainer_knobs

    env = ctx.get("env", {})
    block_names = {k.name for k in block.read_block(plan.method_dir)}
    known = known_names(plan.trainer) | block_names
    other = other_trainer_knobs(plan.trainer) - known
    words = []
    for name, close in block.misspelled_knobs(env, known | other):
        if name in other:
            continue
        words.append(f"{name} is not a knob (did you mean {close}?)")
    for name in sorted(other & set(env)):
        if (env.get(name) or "").strip():
            kind = "SFT" if plan.trainer == "rl" else "RL"
            words.append(f"{name} is a knob of the {kind} methods, not read by {plan.method}")
    if words:
        return [Result.warn("knob names", "; ".join(words) + ": nothing reads these variables, so their values have no "
                            f"effect (`./{plan.method}/train.sh --help` lists the knobs)")]
    return [Result.ok("knob names", "no unknown knob-like variables in the environment")]


def callbacks_checks(plan, cfg, ctx) -> list[Result]:
    """The training callbacks' knobs parse and CALLBACKS_FILE imports, before anything is written."""
    from common.callbacks import Settings, load_user_hooks
    from common.knobs import ConfigError

    env = ctx.get("env", {})
    try:
        settings = Settings.from_env(env)
        hooks = load_user_hooks(settings.callbacks_file)
    except ConfigError as exc:
        knob = str(exc).split("=", 1)[0].split(":", 1)[0].strip()
        return [Result.fail("callbacks", str(exc), knob)]
    parts = [f"STOP_ON_NAN={str(settings.stop_on_nan).lower()}",
             f"KL stop {'off' if settings.kl_stop_threshold <= 0 else f'> {settings.kl_stop_threshold:g} for {settings.kl_stop_steps} steps'}"]
    if hooks:
        parts.append(f"{settings.callbacks_file}: {', '.join(sorted(hooks))}")
    return [Result.ok("callbacks", "; ".join(parts))]


# ---------------------------------------------------------------------------------------------
# environment: versions, GPUs, Ray


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def version_checks(plan, cfg, ctx) -> list[Result]:
    dry = ctx.get("dry_run", True)
    gpus = ctx.get("gpus_found", 0)
    results = []
    verl = _version("verl")
    if verl != VERL_VERSION:
        results.append(Result.fail("versions", f"verl {verl} installed; this project is written against verl {VERL_VERSION}: "
                             "run ./setup_env.sh"))
    torch = (_version("torch") or "").split("+")[0]
    found = [f"verl {verl}", f"torch {torch}"]
    if torch != GPU_PINS["torch"] and not (gpus == 0 and torch == CPU_TORCH):
        results.append(Result.warn("versions", f"torch {torch} installed; the GPU stack pins {GPU_PINS['torch']} "
                             f"(CPU machines: {CPU_TORCH}); run ./setup_env.sh"))
    tf = _version("transformers")
    found.append(f"transformers {tf}")
    if tf != GPU_PINS["transformers"]:
        results.append(Result.warn("versions", f"transformers {tf} installed; requirements.txt pins {GPU_PINS['transformers']}"))
    if plan.trainer == "rl":
        engine = str(cfg.actor_rollout_ref.rollout.name)
        have = _version(engine)
        found.append(f"{engine} {have}")
        if have is None:
            msg = f"ROLLOUT_ENGINE={engine} but {engine} is not installed"
            if dry or gpus == 0 or _cluster(ctx):
                results.append(Result.warn("versions", msg + " (expected on a CPU-only machine; needed to train)", "ROLLOUT_ENGINE"))
            else:
                results.append(Result.fail("versions", msg + ": run ./setup_env.sh on the GPU machine", "ROLLOUT_ENGINE"))
        elif engine in GPU_PINS and have != GPU_PINS[engine]:
            results.append(Result.warn("versions", f"{engine} {have} installed; verl {VERL_VERSION} pins {GPU_PINS[engine]}", "ROLLOUT_ENGINE"))
    return results or [Result.ok("versions", ", ".join(found))]


def _cluster(ctx) -> bool:
    return wants_cluster(ctx.get("env", os.environ))


def gpu_checks(plan, cfg, ctx) -> list[Result]:
    if _cluster(ctx):
        return [Result.skip("GPUs", "submitted to a Ray cluster: its GPUs are checked against the block at submit time")]
    found = ctx.get("gpus_found", 0)
    wanted = int(plan.n_gpus_per_node)
    if found == 0:
        # A real launch without a GPU is refused by the launcher itself (exit 1, with how to dry-run).
        return [Result.warn("GPUs", f"no NVIDIA GPU visible here; checked as N_GPUS_PER_NODE={wanted} x NNODES={plan.nnodes}",
                       "N_GPUS_PER_NODE")]
    if found < wanted:
        return [Result.fail("GPUs", f"N_GPUS_PER_NODE={wanted} but this node shows {found} (CUDA_VISIBLE_DEVICES narrows the count); "
                      "Ray would wait forever for the missing GPUs", "N_GPUS_PER_NODE")]
    return [Result.ok("GPUs", f"{wanted} of {found} visible GPU(s) x {plan.nnodes} node(s)")]


def reachable_url(url: str, timeout: float = 2.0) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _reachable(address: str, timeout: float = 2.0) -> bool:
    host, _, port = address.replace("ray://", "").replace("http://", "").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def ray_checks(plan, cfg, ctx) -> list[Result]:
    env = ctx.get("env", os.environ)
    if _cluster(ctx):
        try:
            address = job_api_address(env)
        except Exception as exc:  # a GCS or ray:// address where the job API is wanted
            return [Result.fail("ray", str(exc), "RAY_ADDRESS")]
        if not reachable_url(address):
            return [Result.fail("ray", f"the Ray job API at {address} does not answer: start the cluster "
                          "(common/ray_cluster.sh head) or fix RAY_ADDRESS", "RAY_ADDRESS")]
        return [Result.ok("ray", f"submits to the Ray cluster at {address}")]
    # ray.init() with no address joins the cluster recorded here by `ray start` if its GCS is alive.
    current = Path(env.get("RAY_TMPDIR") or "/tmp/ray") / "ray_current_cluster"
    if current.is_file():
        recorded = current.read_text().strip()
        if recorded and _reachable(recorded, 0.5):
            return [Result.warn("ray", f"a Ray cluster is running on this machine ({recorded}, from {current}): verl will join it "
                          "with whatever GPUs it was started with. Run `ray stop` if it is left over from another run")]
    return [Result.ok("ray", "no running Ray cluster found; verl starts its own")]
