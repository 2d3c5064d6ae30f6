"""The launcher's Ray submit path, against a real Ray head started on 127.0.0.1 by this module.

    .venv/bin/python -m pytest tests/common/test_ray_submit.py -q

The head runs with token authentication on (RAY_AUTH_MODE=token, token in a temporary file) and
declares 2 logical GPUs (`--num-gpus=2` on a CPU machine: Ray counts them, nothing uses CUDA), so
the launcher's GPU check runs for real and a job asking for 1 GPU per node passes it. The jobs run
a tiny Hydra app (TRAINER_MODULE) in place of verl's trainer; it logs through verl's Tracking file
logger. FORCE=1 is set for launches because this machine has neither a GPU nor vLLM, which the
local preflight would otherwise refuse before the cluster is even asked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from common import ray_cluster, ray_submit
from common.knobs import ConfigError
from common.ray_cluster import NodeInfo, check_resources, find_token, job_api_address
from tests.launch_helpers import REPO_ROOT

RAY_CLI = Path(sys.executable).with_name("ray")

SLOW_TRAINER = '''
import os, sys, time, hydra
from verl.utils.tracking import Tracking

@hydra.main(config_path=None, config_name=None, version_base=None)
def main(cfg):
    steps = int(os.environ.get("FAKE_STEPS", "3"))
    tracker = Tracking(cfg.trainer.project_name, cfg.trainer.experiment_name, default_backend=list(cfg.trainer.logger))
    for step in range(1, steps + 1):
        tracker.log({"critic/score/mean": step / 10, "actor/pg_loss": 0.1}, step=step)
        sys.stdout.flush()
        time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
    print("fake trainer finished", flush=True)
    tracker.finish()

if __name__ == "__main__":
    main()
'''


# ---------------------------------------------------------------------------------------------
# pure functions: no cluster


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://10.0.0.1:8265", "http://10.0.0.1:8265"),  # why: what `ray job submit` takes
        ("10.0.0.1:8265", "http://10.0.0.1:8265"),  # why: no scheme means http, as in Ray's SDK
        ("head-node", "http://head-node:8265"),  # why: no port means the dashboard's default
        ("https://ray.example.org:443/", "https://ray.example.org:443"),  # why: behind a TLS proxy
        ("", "http://127.0.0.1:8265"),  # why: NNODES>1 without RAY_ADDRESS: the head on this machine
    ],
)
def test_job_api_address(raw, expected):
    assert job_api_address({"RAY_ADDRESS": raw}) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "10.0.0.1:6379",  # why: the GCS port, what `ray start --address` takes, not the job API
        "ray://10.0.0.1:10001",  # why: a Ray Client address cannot submit jobs
        "auto",  # why: ray.init's "join the local cluster", meaningless for the job API
        "http://host:notaport",  # why: a typo in the port
    ],
)
def test_bad_addresses_name_ray_address(raw):
    with pytest.raises(ConfigError, match="RAY_ADDRESS") as info:
        job_api_address({"RAY_ADDRESS": raw})
    assert "8265" in str(info.value)  # says what to write instead


def test_cluster_mode_switch():
    assert not ray_cluster.wants_cluster({"NNODES": "1"})
    assert ray_cluster.wants_cluster({"NNODES": "2"})
    assert ray_cluster.wants_cluster({"RAY_ADDRESS": "http://h:8265"})
    with pytest.raises(ConfigError, match="NNODES"):
        ray_cluster.wants_cluster({"NNODES": "two"})


def test_token_lookup_order_and_errors(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("home-token-value\n")
    named = tmp_path / "named_token"
    named.write_text("named-token-value")
    # Ray's own order: the variable, then the named file, then ~/.ray/auth_token.
    assert find_token({"HOME": str(home), "RAY_AUTH_TOKEN": "env-token-value", "RAY_AUTH_TOKEN_PATH": str(named)}).value == "env-token-value"
    assert find_token({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(named)}).value == "named-token-value"
    token = find_token({"HOME": str(home)})
    assert token.value == "home-token-value" and token.source.endswith(".ray/auth_token")
    assert "home-token-value" not in repr(token) + str(token)
    assert find_token({"HOME": str(tmp_path / "nobody")}) is None
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH=.*cannot read"):
        find_token({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="RAY_AUTH_TOKEN_PATH=.*empty"):
        find_token({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "empty")})


def _nodes(*gpus):
    return [NodeInfo(f"n{i}", f"10.0.0.{i}", float(g), 8.0, i == 0) for i, g in enumerate(gpus)]


@pytest.mark.parametrize(
    ("gpus", "per_node", "nnodes", "refusal"),
    [
        ((8, 8), 8, 2, None),  # why: exactly what verl's resource pool [8, 8] needs
        ((8, 8, 0), 8, 2, None),  # why: a CPU-only head does not count against NNODES
        ((8,), 8, 2, "fewer GPUs than the run needs"),  # why: 8 < 2 x 8
        ((0, 0), 1, 1, "fewer GPUs than the run needs"),  # why: a CPU-only cluster
        ((16, 0), 8, 2, "fewer nodes with GPUs (1) than NNODES=2"),  # why: 16 GPUs on one node cannot host 2 nodes' workers
        ((8, 4, 4), 8, 2, "only 1 node(s) have N_GPUS_PER_NODE=8"),  # why: enough GPUs in total, not per node
    ],
)
def test_check_resources(gpus, per_node, nnodes, refusal):
    if refusal is None:
        assert "cluster check passed" in check_resources(_nodes(*gpus), per_node, nnodes)
        return
    with pytest.raises(ConfigError) as info:
        check_resources(_nodes(*gpus), per_node, nnodes)
    message = str(info.value)
    assert refusal in message
    # The numbers: what the cluster has and what the block asks for.
    assert f"NNODES={nnodes} x N_GPUS_PER_NODE={per_node} = {nnodes * per_node}"  in message
    assert f"{sum(gpus):g} GPU(s)" in message


def test_secrets_are_never_forwarded_to_the_job(tmp_path):
    from common import launch

    env = {"OUTPUT_DIR": str(tmp_path), "RAY_ENV_VARS": "WANDB_API_KEY", "WANDB_API_KEY": "k" * 12, "ROLLOUT_ENGINE": "vllm"}
    plan = launch.make_plan(REPO_ROOT / "grpo", env, [], detect=lambda: (1, "test"))
    with pytest.raises(ConfigError, match="WANDB_API_KEY looks like a secret"):
        ray_submit.job_request(plan, env)
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE, which is not set"):
        ray_submit.job_request(plan, {**env, "RAY_ENV_VARS": "NOT_SET_ANYWHERE"})
    request = ray_submit.job_request(plan, {**env, "RAY_ENV_VARS": "MY_FLAG", "MY_FLAG": "1", "HF_HUB_OFFLINE": "1"})
    env_vars = request["runtime_env"]["env_vars"]
    assert env_vars["MY_FLAG"] == "1" and env_vars["HF_HUB_OFFLINE"] == "1"
    assert env_vars["VERL_FILE_LOGGER_PATH"] == str(plan.metrics_file)
    assert "WANDB_API_KEY" not in env_vars
    assert request["runtime_env"]["working_dir"] == str(REPO_ROOT)
    assert request["entrypoint"].split()[1:3] == ["-m", "verl.trainer.main_ppo"]


# ---------------------------------------------------------------------------------------------
# a real Ray head on 127.0.0.1


def _free_ports(count: int) -> list[int]:
    # Ray gives workers ports 10002-19999 and takes 10001 and 52365 by default: ask the kernel
    # for ephemeral ports (32768+) so a second cluster on this machine does not collide.
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def cluster():
    """A Ray head with token auth and 2 logical GPUs; stopped by terminating its own `ray start --block`."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    token = f"test-token-{secrets.token_hex(12)}"
    token_file = temp / "auth_token"
    token_file.write_text(token)
    gcs, dashboard, agent, client = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file), RAY_USAGE_STATS_ENABLED="0")
    log = open(temp / "head.log", "wb")
    head = subprocess.Popen(
        [
            str(RAY_CLI), "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address=127.0.0.1", f"--port={gcs}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--include-dashboard=true",
            f"--dashboard-agent-listen-port={agent}", f"--ray-client-server-port={client}",
            "--num-cpus=2", "--num-gpus=2", "--object-store-memory=200000000", f"--temp-dir={temp / 'ray'}",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert head.poll() is None, (temp / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not come up in 90 s"
            try:
                nodes = requests.get(f"{address}/api/v0/nodes", headers={"Authorization": f"Bearer {token}"}, timeout=2)
                if nodes.status_code == 200 and nodes.json()["data"]["result"]["result"]:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        yield {"address": address, "gcs": f"127.0.0.1:{gcs}", "token": token, "token_file": token_file, "temp": temp}
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` takes down every process it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _launch(method: str, env: dict[str, str], timeout: int = 240):
    """`<method>/train.sh` with a clean environment plus env; returns the CompletedProcess."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_", "RAY_"))}
    full.update(env)
    return subprocess.run([str(REPO_ROOT / method / "train.sh")], env=full, capture_output=True, text=True, timeout=timeout)


def _block(tmp_path, cluster, **extra) -> dict[str, str]:
    (tmp_path / "fake_trainer.py").write_text(SLOW_TRAINER)
    return {
        "RAY_ADDRESS": cluster["address"],
        "RAY_AUTH_TOKEN_PATH": str(cluster["token_file"]),
        "HOME": str(tmp_path / "home"),  # no ~/.ray/auth_token of the user gets in the way
        "TRAINER_MODULE": "fake_trainer",
        "PYTHONPATH": str(tmp_path),
        "OUTPUT_DIR": str(tmp_path / "outputs"),
        "EXPERIMENT_NAME": "exp",
        "N_GPUS_PER_NODE": "1",
        "FORCE": "1",
        **extra,
    }


def test_cluster_nodes_reads_the_real_head(cluster):
    token = find_token({"RAY_AUTH_TOKEN_PATH": str(cluster["token_file"])})
    nodes = ray_cluster.cluster_nodes(cluster["address"], token)
    assert [(n.gpus, n.cpus, n.is_head) for n in nodes] == [(2.0, 2.0, True)]
    assert "cluster check passed" in check_resources(nodes, 2, 1)


def test_token_auth_is_required_and_checked(cluster):
    with pytest.raises(ConfigError, match="uses token authentication and no token was found") as missing:
        ray_cluster.cluster_nodes(cluster["address"], None)
    assert "RAY_AUTH_TOKEN_PATH" in str(missing.value)
    wrong = ray_cluster.Token("not-the-token", "RAY_AUTH_TOKEN")
    with pytest.raises(ConfigError, match="rejected the token from RAY_AUTH_TOKEN"):
        ray_cluster.cluster_nodes(cluster["address"], wrong)


def test_nothing_listening_says_how_to_start_a_cluster():
    (port,) = _free_ports(1)
    with pytest.raises(ConfigError, match="no Ray dashboard answers") as info:
        ray_cluster.cluster_nodes(f"http://127.0.0.1:{port}", None)
    assert "common/ray_cluster.sh head" in str(info.value)


def test_launcher_refuses_more_gpus_than_the_cluster_has(cluster, tmp_path):
    result = _launch("grpo", _block(tmp_path, cluster, N_GPUS_PER_NODE="1", NNODES="2"))
    assert result.returncode == 1, result.stdout + result.stderr
    # 2 GPUs in total would do, but they sit on one node and NNODES=2 asks for two.
    assert "fewer nodes with GPUs (1) than NNODES=2" in result.stderr
    assert "NNODES=2 x N_GPUS_PER_NODE=1 = 2 GPU(s)" in result.stderr and "(head): 2" in result.stderr
    assert not (tmp_path / "outputs").exists()  # refused before anything was written
    assert cluster["token"] not in result.stdout + result.stderr


def test_dry_run_prints_the_submit_command_without_the_token(cluster, tmp_path):
    block = _block(tmp_path, cluster, DRY_RUN="1", NNODES="2", FORCE="0")
    del block["RAY_AUTH_TOKEN_PATH"]
    block["RAY_AUTH_TOKEN"] = cluster["token"]
    result = _launch("grpo", block)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert cluster["token"] not in out + result.stderr
    assert "RAY_AUTH_MODE=token" in out and "token: Ray reads it from RAY_AUTH_TOKEN" in out
    command = out[out.index("# ---- command ----") :]
    assert f"{RAY_CLI} \\\n    job \\\n    submit" in command
    assert f"--address={cluster['address']}" in command and f"--working-dir={REPO_ROOT}" in command
    runtime = json.loads(next(line for line in command.split("'") if line.startswith("--runtime-env-json="))[19:])
    assert runtime["env_vars"]["VERL_FILE_LOGGER_PATH"].startswith(str(tmp_path / "outputs" / "exp" / "metrics"))
    assert "fake_trainer" in command and "trainer.nnodes=2" in command
    # A dry run writes only the resolved config it checked.
    assert [p.name for p in (tmp_path / "outputs" / "exp").iterdir()] == ["dry_run.yaml"]


def test_cluster_check_compares_every_node_with_this_one(cluster, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_TOKEN_PATH=str(cluster["token_file"]), HOME=str(tmp_path))
    result = subprocess.run(
        [str(REPO_ROOT / "common" / "ray_cluster.sh"), "check", "--address", cluster["gcs"], "--output-dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # One node (the head), same Python and project as this process, and it read the shared marker.
    assert "all 1 node(s) match this machine and see OUTPUT_DIR" in result.stdout
    assert f"python_env={sys.prefix}" in result.stdout and f"project={REPO_ROOT}" in result.stdout
    assert list((tmp_path / "out").iterdir()) == []  # the marker is removed again
    assert cluster["token"] not in result.stdout + result.stderr


@pytest.mark.slow
def test_real_job_runs_and_its_logs_land_in_the_run_folder(cluster, tmp_path):
    result = _launch("grpo", _block(tmp_path, cluster, RAY_ENV_VARS="FAKE_STEPS", FAKE_STEPS="4"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "outputs" / "exp"
    meta = json.loads((run_dir / "run.json").read_text())
    launch_entry = meta["launches"][-1]
    assert launch_entry["exit_code"] == 0 and launch_entry["ray_status"] == "SUCCEEDED"
    job_id = launch_entry["ray_job_id"]
    log = (run_dir / "train.log").read_text()
    assert f"ray job {job_id} at {cluster['address']}" in log
    assert "step:4" in log and "fake trainer finished" in log  # the job's own output, streamed
    assert "step:4" in result.stdout  # and on the console
    # verl's file logger ran inside the job and wrote where the launcher said.
    metrics = run_dir / launch_entry["metrics_file"]
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 3, 4]
    for text in (result.stdout, result.stderr, log, json.dumps(meta), (run_dir / "config.yaml").read_text()):
        assert cluster["token"] not in text
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster["address"], headers={"Authorization": f"Bearer {cluster['token']}"})
    assert client.get_job_status(job_id).value == "SUCCEEDED"
    assert client.get_job_info(job_id).metadata["run_dir"] == str(run_dir)


@pytest.mark.slow
def test_ctrl_c_stops_the_job(cluster, tmp_path):
    block = _block(tmp_path, cluster, RAY_ENV_VARS="FAKE_STEPS,FAKE_SLEEP", FAKE_STEPS="100", FAKE_SLEEP="1")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WANDB_", "RAY_"))}
    # Ctrl-C's SIGINT must not arrive ignored: a suite started in the background (`cmd &`) passes
    # SIGINT on as ignored; a terminal's process has the default.
    launcher = subprocess.Popen(
        [str(REPO_ROOT / "grpo" / "train.sh")], env={**full, **block}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    log = tmp_path / "outputs" / "exp" / "train.log"
    deadline = time.monotonic() + 150
    while not (log.exists() and "step:2" in log.read_text()):
        assert launcher.poll() is None, launcher.stdout.read()
        assert time.monotonic() < deadline, "the job never reached step 2"
        time.sleep(0.5)
    launcher.send_signal(signal.SIGINT)  # what Ctrl-C sends
    output, _ = launcher.communicate(timeout=90)
    assert launcher.returncode == 130, output[-3000:]
    meta = json.loads((tmp_path / "outputs" / "exp" / "run.json").read_text())
    entry = meta["launches"][-1]
    assert entry["ray_status"] == "STOPPED" and entry["exit_code"] == 130
    assert "Ctrl-C: stopping ray job" in log.read_text()
    assert "step:100" not in log.read_text()
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster["address"], headers={"Authorization": f"Bearer {cluster['token']}"})
    assert client.get_job_status(entry["ray_job_id"]).value == "STOPPED"
