"""Run a train.sh on an existing Ray cluster: the launcher's submit path.

    NNODES=2 RAY_ADDRESS=http://HEAD_IP:8265 ./grpo/train.sh            # submit, stream logs, Ctrl-C stops
    DRY_RUN=1 NNODES=2 RAY_ADDRESS=http://HEAD_IP:8265 ./grpo/train.sh  # print the `ray job submit` command

common/launch.py hands a launch over to this module when NNODES > 1 or RAY_ADDRESS is set. It
1. finds the cluster's job API and Ray's authentication token (common/ray_cluster.py);
2. asks the dashboard for the alive nodes and their GPUs and refuses, with the numbers, a run that
   needs more GPUs or more GPU nodes than the cluster has (verl places N_GPUS_PER_NODE workers on
   each of NNODES nodes, so it needs NNODES nodes with at least N_GPUS_PER_NODE GPUs each);
3. submits the trainer command as a Ray job with the project as working directory and the run's
   environment (VERL_FILE_LOGGER_PATH, PYTHONPATH, ...) as runtime_env env_vars;
4. streams the job's logs into <run>/train.log and the console, records the job id in run.json,
   and stops the job (JobSubmissionClient.stop_job) on Ctrl-C.
The token is never printed, logged or written to the run folder.

The run folder (OUTPUT_DIR) and the project must sit at the same path on every node (shared
storage, see docs/multinode.md): the job writes metrics and checkpoints where this machine reads.

Offers:
- job_request(plan, env): entrypoint, runtime_env and submission id of the job.
- submit_command(plan, env, token): the equivalent `ray job submit ...` command line (no token).
- submit(plan, cfg, notes, env, dry_run, report): what common.launch.main runs in cluster mode.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import re
import secrets
import shlex
import sys
import time
from pathlib import Path

from common import run_folder
from common.knobs import ConfigError
from common.printout import dry_run_text
from common.ray_cluster import Token, check_resources, cluster_nodes, find_token, hide, job_api_address
from common.redaction import is_secret_name, redact

REPO_ROOT = Path(__file__).resolve().parents[1]
# Set on the submitting machine, these reach the job too (they change where models come from or
# which network interface NCCL/Gloo use). Secrets are never sent: see _forwarded_env.
FORWARDED_ENV = (
    "HF_HOME",
    "HF_ENDPOINT",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "NCCL_SOCKET_IFNAME",
    "GLOO_SOCKET_IFNAME",
    "NCCL_IB_DISABLE",
    "NCCL_DEBUG",
)
# Job states after which nothing more happens (ray.job_submission.JobStatus).
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
# Seconds to wait for a stopped job to end: Ray sends SIGTERM, then SIGKILL after
# RAY_JOB_STOP_WAIT_TIME_S (3 s by default); verl needs a few more to take its workers down.
STOP_WAIT_S = 60


# ---------------------------------------------------------------------------------------------
# the job


def _forwarded_env(plan, env: dict[str, str]) -> dict[str, str]:
    """runtime_env env_vars: the plan's env plus FORWARDED_ENV and RAY_ENV_VARS names, never secrets."""
    out = dict(plan.env)
    names = list(FORWARDED_ENV)
    extra = [name.strip() for name in (env.get("RAY_ENV_VARS") or "").split(",") if name.strip()]
    for name in extra:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"RAY_ENV_VARS: {name!r} is not an environment variable name (use NAME1,NAME2)")
        if is_secret_name(name):
            raise ConfigError(
                f"RAY_ENV_VARS: {name} looks like a secret; Ray shows a job's env_vars to anyone who can open its\n"
                f"  dashboard. Export {name} on every node before `common/ray_cluster.sh head|worker` instead:\n"
                "  jobs inherit the environment Ray was started with."
            )
        if name not in env:
            raise ConfigError(f"RAY_ENV_VARS names {name}, which is not set in this environment")
        names.append(name)
    for name in names:
        if name in env and name not in out:
            out[name] = env[name]
    return out


def _entry_args(plan) -> list[str]:
    """The trainer command run by the job's driver on the cluster.

    verl's RL trainer is already a Ray program; SFT switches from torchrun (one process group per
    machine) to verl.trainer.sft_trainer_ray, which places its workers on NNODES nodes through Ray.
    """
    if plan.trainer == "sft":
        module = "verl.trainer.sft_trainer_ray" if plan.entry_module == "verl.trainer.sft_trainer" else plan.entry_module
        args = ["--config-path", str(plan.method_dir), "--config-name", plan.config_name, *plan.all_overrides]
        return [sys.executable, "-m", module, *args]
    return list(plan.command)


def job_request(plan, env: dict[str, str]) -> dict:
    """Arguments of JobSubmissionClient.submit_job for this plan."""
    submission_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"{plan.run_dir.name}-{plan.launch_id}-{secrets.token_hex(2)}")
    excludes = [".git", ".venv", "outputs"]
    try:
        # A run folder inside the project must not travel with the working directory.
        excludes.append(str(plan.run_dir.parent.relative_to(REPO_ROOT)))
    except ValueError:
        pass
    return {
        "entrypoint": shlex.join(_entry_args(plan)),
        "submission_id": submission_id,
        "runtime_env": {
            "working_dir": str(REPO_ROOT),
            "excludes": sorted(set(excludes)),
            "env_vars": _forwarded_env(plan, env),
        },
        "metadata": {"method": plan.method, "experiment": plan.run_dir.name, "run_dir": str(plan.run_dir)},
    }


def submit_command(plan, env: dict[str, str], token: Token | None) -> str:
    """The `ray job submit` command that does what submit() does (the token stays in its file/env)."""
    request = job_request(plan, env)
    runtime_env = {k: v for k, v in request["runtime_env"].items() if k != "working_dir"}
    ray_cli = Path(sys.executable).with_name("ray")
    # Ray's CLI sends its token only in token mode; it reads the token from the same place we did.
    prefix = f"# token: Ray reads it from {token.source}\n" if token else ""
    words = [
        str(ray_cli) if ray_cli.exists() else "ray",
        "job",
        "submit",
        f"--address={job_api_address(env)}",
        f"--submission-id={request['submission_id']}",
        f"--working-dir={REPO_ROOT}",
        f"--metadata-json={json.dumps(request['metadata'])}",
        f"--runtime-env-json={json.dumps(runtime_env)}",
        "--",
        *shlex.split(request["entrypoint"]),
    ]
    env_prefix = "RAY_AUTH_MODE=token " if token else ""
    return prefix + env_prefix + " \\\n    ".join(shlex.quote(w) for w in words)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def submit(plan, cfg, notes: list[str], env: dict[str, str], dry_run: bool, report: str = "", printout: dict | None = None) -> int:
    """Cluster mode of common.launch.main: print (DRY_RUN) or submit, stream, record; exit code.
    printout: what the dry run adds to its text (common.printout.dry_run_text's keyword arguments)."""
    try:
        address = job_api_address(env)
        token = find_token(env)
        _forwarded_env(plan, env)
    except ConfigError as exc:
        print(f"[{plan.method}] config error: {redact(str(exc))}", file=sys.stderr)
        return 2

    def say(text: str, err: bool = False) -> None:
        print(redact(hide(text, token)), file=sys.stderr if err else sys.stdout, flush=True)

    if dry_run:
        command = ("# submitted to the Ray cluster through its job API; the same job from Ray's CLI:\n"
                   + submit_command(plan, env, token))
        extra = (f"# run folder: {plan.run_dir} (must be on storage every node shares)",
                 f"# Ray job API: {address}; token: {token.source if token else 'none found'}")
        say(dry_run_text(plan, cfg, notes, report, command, extra, **(printout or {})))
        say("# the cluster's resources are checked at submit time; DRY_RUN=1, nothing submitted")
        return 0

    try:
        nodes = cluster_nodes(address, token)
        summary = check_resources(nodes, plan.n_gpus_per_node, plan.nnodes)
    except ConfigError as exc:
        say(f"[{plan.method}] {exc}", err=True)
        return 1
    say(f"[{plan.method}] {summary}")
    if report:
        say(report)
    for note in notes:
        say(f"[{plan.method}] note: {note}")
    try:
        with run_folder.launch_lock(plan):
            return _submit_and_follow(plan, cfg, env, address, token, say)
    except ConfigError as exc:
        say(f"[{plan.method}] {exc}", err=True)
        return 1


def _client(address: str, token: Token | None):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers=token.headers if token else None)
    except Exception as exc:  # ConnectionError, AuthenticationError, RuntimeError from the SDK
        raise ConfigError(f"cannot reach the Ray job API at {address}: {hide(str(exc), token)}") from None


def _submit_and_follow(plan, cfg, env, address: str, token: Token | None, say) -> int:
    request = job_request(plan, env)
    client = _client(address, token)
    run_folder.prepare(plan)
    run_folder.write_config(plan, cfg, hide=lambda text: hide(text, token))
    try:
        job_id = client.submit_job(**request)
    except Exception as exc:
        raise ConfigError(f"the Ray cluster at {address} refused the job: {hide(str(exc), token)}") from None
    run_folder.update_run_json(plan, cfg, ray_job_id=job_id, ray_address=address, mode="ray")
    header = f"==== launch {_now()} ray job {job_id} at {address} method={plan.method} ====\n"
    code = 1
    with open(plan.run_dir / "train.log", "ab", buffering=0) as log:

        def emit(chunk: str) -> None:
            text = redact(hide(chunk, token))
            sys.stdout.write(text)
            sys.stdout.flush()
            log.write(text.encode())

        emit(header)
        seen = 0  # characters of the job's log already written
        stopped_by_us = False
        try:
            seen = _stream(client, job_id, emit)
        except KeyboardInterrupt:
            stopped_by_us = True
            emit(f"\n==== Ctrl-C: stopping ray job {job_id} ====\n")
            try:
                client.stop_job(job_id)
            except Exception as exc:
                emit(f"could not stop the job ({hide(str(exc), token)}); stop it with: ray job stop {job_id}\n")
        finally:
            status, code = _wait_final(client, job_id, stopped_by_us)
            try:
                full = client.get_job_logs(job_id)
            except Exception:
                full = ""
            # The stream can end before the last lines reach it (or never start): add the rest.
            if seen < len(full):
                emit(full[seen:])
            emit(f"==== ray job {job_id} {status} (exit code {code}) ====\n")
            run_folder.update_run_json(plan, cfg, ended=_now(), exit_code=code, ray_status=status)
    if code == 0 and not plan.metrics_file.exists():
        say(
            f"[{plan.method}] warning: the job succeeded but its metrics file {plan.metrics_file} is not visible here: "
            "is OUTPUT_DIR on storage that every node shares? (docs/multinode.md)",
            err=True,
        )
    return code


def _stream(client, job_id: str, emit) -> int:
    """Follow the job's log until it ends; returns how many characters were written."""
    seen = 0

    async def follow() -> None:
        nonlocal seen
        async for chunk in client.tail_job_logs(job_id):
            emit(chunk)
            seen += len(chunk)

    try:
        asyncio.run(follow())
    except (RuntimeError, OSError, asyncio.TimeoutError):
        # The websocket dropped: fall back to polling the whole log every 2 s.
        while True:
            try:
                full = client.get_job_logs(job_id)
                status = str(client.get_job_status(job_id).value)
            except Exception:
                time.sleep(2)
                continue
            if len(full) > seen:
                emit(full[seen:])
                seen = len(full)
            if status in TERMINAL:
                break
            time.sleep(2)
    return seen


def _wait_final(client, job_id: str, stopped_by_us: bool) -> tuple[str, int]:
    """(final status, exit code) once the job is in a terminal state, or after STOP_WAIT_S."""
    deadline = time.monotonic() + STOP_WAIT_S
    info = None
    while time.monotonic() < deadline:
        try:
            info = client.get_job_info(job_id)
        except Exception:
            info = None
        if info is not None and str(info.status.value) in TERMINAL:
            break
        time.sleep(1)
    if info is None:
        return "UNKNOWN", 1
    status = str(info.status.value)
    if status == "SUCCEEDED":
        return status, 0
    if status == "STOPPED" or stopped_by_us:
        return status, 130  # what a shell reports for a run ended by Ctrl-C
    exit_code = getattr(info, "driver_exit_code", None)
    return status, int(exit_code) if exit_code else 1
