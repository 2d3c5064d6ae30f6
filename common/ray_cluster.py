"""The Ray cluster as the launcher sees it: its job API, its token, its nodes and GPUs.

    common/ray_cluster.sh check                         # runs `python -m common.ray_cluster check`
    .venv/bin/python -m common.ray_cluster check [--address HEAD_IP:6379] [--output-dir DIR]

Offers:
- wants_cluster(env): True when the launch goes to a Ray cluster (NNODES > 1 or RAY_ADDRESS set).
- job_api_address(env): the http(s) address of the cluster's job API, checked.
- find_token(env) -> Token | None: Ray's token and where it came from (repr hides the value);
  hide(text, token) replaces it by ***.
- cluster_nodes(address, token) -> list[NodeInfo]: alive nodes with their GPU and CPU counts.
- check_resources(nodes, n_gpus_per_node, nnodes): raises ConfigError when the cluster is too small.
- gpu_detector(env): the `detect` function make_plan uses (N_GPUS_PER_NODE=auto reads the cluster).
- check_cluster(address, output_dir): every node's Python environment, project path and shared
  storage compared with this machine's (the `check` command).
The token is sent as an HTTP header and is never printed, logged or written to the run folder.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from common.gpus import detect_gpus
from common.knobs import ConfigError, Knob, parse_value

REPO_ROOT = Path(__file__).resolve().parents[1]
# `ray start --head` serves the dashboard (and its job API) on 8265; GCS listens on 6379.
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
GCS_PORT = 6379
# Ray 2.60's default token file (ray/_private/authentication/authentication_token_setup.py).
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
# Set on the submitting machine, these reach the job too (they change where models come from or
HTTP_TIMEOUT_S = 15


# ---------------------------------------------------------------------------------------------
# address and token


def wants_cluster(env: dict[str, str]) -> bool:
    """True when the launch goes to a Ray cluster: NNODES > 1 or RAY_ADDRESS set."""
    if (env.get("RAY_ADDRESS") or "").strip():
        return True
    nnodes = parse_value(Knob("NNODES", "int", (), lo=1), env.get("NNODES") or "1")
    return nnodes > 1


def job_api_address(env: dict[str, str]) -> str:
    """The job API (dashboard) address from RAY_ADDRESS, with a scheme; rejects GCS/client addresses."""
    raw = (env.get("RAY_ADDRESS") or "").strip() or DEFAULT_ADDRESS
    fix = "set RAY_ADDRESS=http://HEAD_IP:8265 (the dashboard address that `ray job submit` uses)"
    if raw == "auto" or raw.startswith("ray://"):
        raise ConfigError(f"RAY_ADDRESS={raw!r} is a Ray driver/client address; the launcher submits jobs: {fix}")
    url = raw if "://" in raw else f"http://{raw}"
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ConfigError(f"RAY_ADDRESS={raw!r} is not an http(s)://HOST:PORT address: {fix}")
    try:
        port = parsed.port
    except ValueError:
        raise ConfigError(f"RAY_ADDRESS={raw!r} has a bad port: {fix}") from None
    if port == GCS_PORT:
        raise ConfigError(f"RAY_ADDRESS={raw!r} is the GCS port (the one `ray start --address` takes): {fix}")
    if port is None:
        url = f"{parsed.scheme}://{parsed.hostname}:8265{parsed.path}"
    return url.rstrip("/")


@dataclass(frozen=True)
class Token:
    """Ray's authentication token; repr and str never show the value."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"Token(source={self.source!r})"

    __str__ = __repr__

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


def find_token(env: dict[str, str]) -> Token | None:
    """Ray's token, looked up where Ray 2.60 looks: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    value = (env.get("RAY_AUTH_TOKEN") or "").strip()
    if value:
        return Token(value, "RAY_AUTH_TOKEN")
    named = (env.get("RAY_AUTH_TOKEN_PATH") or "").strip()
    if named:
        path = Path(os.path.expanduser(named))
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"RAY_AUTH_TOKEN_PATH={named}: cannot read the token file ({exc.strerror})") from None
        if not value:
            raise ConfigError(f"RAY_AUTH_TOKEN_PATH={named}: the token file is empty")
        return Token(value, f"RAY_AUTH_TOKEN_PATH ({path})")
    home = env.get("HOME")
    path = Path(home) / ".ray" / "auth_token" if home else DEFAULT_TOKEN_FILE.expanduser()
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return Token(value, str(path))
    return None


def hide(text: str, token: Token | None) -> str:
    """text with the token replaced by ***."""
    return text.replace(token.value, "***") if token else text


# ---------------------------------------------------------------------------------------------
# cluster resources


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    ip: str
    gpus: float
    cpus: float
    is_head: bool


def _http_get(address: str, path: str, token: Token | None) -> dict:
    import requests

    try:
        response = requests.get(address + path, headers=token.headers if token else {}, timeout=HTTP_TIMEOUT_S)
    except requests.RequestException as exc:
        raise ConfigError(
            f"no Ray dashboard answers at RAY_ADDRESS={address} ({type(exc).__name__}).\n"
            "  Start a cluster with `common/ray_cluster.sh head` (on the head node), then set\n"
            "  RAY_ADDRESS=http://HEAD_IP:8265, or run train.sh on the head node itself."
        ) from None
    _raise_for_auth(response.status_code, address, token)
    if response.status_code != 200:
        raise ConfigError(f"the Ray dashboard at {address} answered {response.status_code} to {path}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise ConfigError(f"the Ray dashboard at {address} answered {path} with something that is not JSON") from None


def _raise_for_auth(status: int, address: str, token: Token | None) -> None:
    if status == 401:
        raise ConfigError(
            f"the Ray cluster at {address} uses token authentication and no token was found.\n"
            "  Copy the head node's ~/.ray/auth_token to this machine (same path), or set\n"
            "  RAY_AUTH_TOKEN_PATH=/path/to/token_file or RAY_AUTH_TOKEN (see docs/multinode.md)."
        )
    if status == 403:
        raise ConfigError(
            f"the Ray cluster at {address} rejected the token from {token.source if token else '?'}.\n"
            "  Use the head node's token: its ~/.ray/auth_token, or the RAY_AUTH_TOKEN it was started with."
        )


def cluster_nodes(address: str, token: Token | None) -> list[NodeInfo]:
    """Alive nodes of the cluster with their GPU and CPU counts (the dashboard's state API)."""
    # One request lists every node: the state API answers /api/v0/nodes with resources_total.
    reply = _http_get(address, "/api/v0/nodes?limit=10000&detail=false", token)
    try:
        rows = reply["data"]["result"]["result"]
    except (KeyError, TypeError):
        raise ConfigError(f"the Ray dashboard at {address} answered /api/v0/nodes in an unknown format") from None
    nodes = []
    for row in rows:
        if row.get("state") != "ALIVE":
            continue
        resources = row.get("resources_total") or {}
        nodes.append(
            NodeInfo(
                node_id=str(row.get("node_id", "")),
                ip=str(row.get("node_ip", "?")),
                gpus=float(resources.get("GPU", 0)),
                cpus=float(resources.get("CPU", 0)),
                is_head=bool(row.get("is_head_node")),
            )
        )
    return nodes


def describe(nodes: list[NodeInfo]) -> str:
    total = sum(n.gpus for n in nodes)
    with_gpus = [n for n in nodes if n.gpus > 0]
    per_node = ", ".join(f"{n.ip}{' (head)' if n.is_head else ''}: {n.gpus:g}" for n in nodes) or "none"
    return f"{len(nodes)} alive node(s), {total:g} GPU(s), {len(with_gpus)} node(s) with GPUs (GPUs per node: {per_node})"


def check_resources(nodes: list[NodeInfo], n_gpus_per_node: int, nnodes: int) -> str:
    """A one-line summary when the cluster can hold the run; ConfigError with the numbers otherwise.

    verl builds its resource pool as [N_GPUS_PER_NODE] * NNODES, one placement group per node, so
    it needs NNODES nodes that each have N_GPUS_PER_NODE GPUs, not only that many GPUs in total.
    """
    need = n_gpus_per_node * nnodes
    total = sum(n.gpus for n in nodes)
    with_gpus = [n for n in nodes if n.gpus > 0]
    big_enough = [n for n in nodes if n.gpus >= n_gpus_per_node]
    asked = f"this run asks for NNODES={nnodes} x N_GPUS_PER_NODE={n_gpus_per_node} = {need} GPU(s)"
    have = describe(nodes)
    if total < need:
        raise ConfigError(
            f"the Ray cluster has fewer GPUs than the run needs: {have}; {asked}.\n"
            "  Add nodes (common/ray_cluster.sh worker HEAD_IP:6379 on each), or lower NNODES / N_GPUS_PER_NODE."
        )
    if len(with_gpus) < nnodes:
        raise ConfigError(
            f"the Ray cluster has fewer nodes with GPUs ({len(with_gpus)}) than NNODES={nnodes}: {have}; {asked}.\n"
            "  Start the missing workers (common/ray_cluster.sh worker HEAD_IP:6379), or set NNODES="
            f"{len(with_gpus)}."
        )
    if len(big_enough) < nnodes:
        raise ConfigError(
            f"only {len(big_enough)} node(s) have N_GPUS_PER_NODE={n_gpus_per_node} GPUs, NNODES={nnodes} are needed: "
            f"{have}; {asked}.\n  Lower N_GPUS_PER_NODE to the smallest node's GPU count."
        )
    return f"cluster check passed: {have}; {asked}"


def gpu_detector(env: dict[str, str]):
    """make_plan's `detect`: local nvidia-smi, or in cluster mode the GPUs of the smallest GPU node.

    A cluster that cannot be reached reports 0 GPUs here (N_GPUS_PER_NODE=auto then checks the
    config with 1); the submit step asks again and says what is wrong.
    """
    if not wants_cluster(env):
        return detect_gpus

    def detect() -> tuple[int, str]:
        try:
            address = job_api_address(env)
            nodes = cluster_nodes(address, find_token(env))
        except ConfigError as exc:
            return 0, f"Ray cluster not reached: {str(exc).splitlines()[0]}"
        gpus = [int(n.gpus) for n in nodes if n.gpus > 0]
        if not gpus:
            return 0, f"Ray cluster at {address} has no GPUs"
        return min(gpus), f"Ray cluster at {address}: smallest GPU node has {min(gpus)} GPU(s)"

    return detect


# ---------------------------------------------------------------------------------------------
# `common/ray_cluster.sh check`: same environment and shared storage on every node


def _node_report(marker: str | None) -> dict:
    """What one node sees: its Python, package versions, the project and the shared run folder."""
    import hashlib
    import importlib.metadata as md
    import platform
    import socket

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "missing"

    requirements = REPO_ROOT / "requirements.txt"
    report = {
        "host": socket.gethostname(),
        "python_env": sys.prefix,  # not sys.executable: python and python3 name the same env
        "python_version": platform.python_version(),
        "verl": version("verl"),
        "torch": version("torch"),
        "ray": version("ray"),
        "vllm": version("vllm"),
        "project": str(REPO_ROOT) if REPO_ROOT.is_dir() else "missing",
        "requirements_sha256": hashlib.sha256(requirements.read_bytes()).hexdigest()[:16] if requirements.is_file() else "missing",
    }
    if marker:
        try:
            report["shared_storage"] = "ok" if Path(marker).read_text() == Path(marker).name else "different content"
        except OSError as exc:
            report["shared_storage"] = f"cannot read {marker} ({exc.strerror})"
    return report


def check_cluster(address: str, output_dir: Path) -> int:
    """Run _node_report on every alive node (one pinned Ray task each) and compare with this node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    marker = None
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        marker_path = output_dir / f".ray_cluster_check-{secrets.token_hex(4)}"
        marker_path.write_text(marker_path.name)
        marker = str(marker_path)
    except OSError as exc:
        print(f"cannot write a marker in OUTPUT_DIR={output_dir} ({exc.strerror}): shared storage not checked", file=sys.stderr)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        here = _node_report(marker)
        remote = ray.remote(num_cpus=0)(_node_report)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        futures = {
            n["NodeManagerAddress"]: remote.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(marker)
            for n in nodes
        }
        reports = {ip: ray.get(f, timeout=120) for ip, f in futures.items()}
    finally:
        if marker:
            Path(marker).unlink(missing_ok=True)
        if ray.is_initialized():
            ray.shutdown()
    keys = [k for k in here if k != "host"]
    problems = 0
    print(f"{'node':18} " + " ".join(f"{k:>14}" for k in ("gpus",)) + "  differences from this machine")
    gpus = {n["NodeManagerAddress"]: n.get("Resources", {}).get("GPU", 0) for n in nodes}
    for ip, report in sorted(reports.items()):
        diffs = [f"{k}={report[k]} (here {here[k]})" for k in keys if report.get(k) != here.get(k)]
        if report.get("shared_storage", "ok") != "ok":
            diffs.append(f"shared storage: {report['shared_storage']}")
        problems += bool(diffs)
        print(f"{ip:18} {gpus.get(ip, 0):>14g}  {'; '.join(diffs) if diffs else 'same'}")
    print("this machine: " + ", ".join(f"{k}={here[k]}" for k in keys if k != "shared_storage"))
    if problems:
        print(f"{problems} node(s) differ: install the same environment at the same path (./setup_env.sh), put the"
              f" project and OUTPUT_DIR on shared storage (docs/multinode.md)", file=sys.stderr)
        return 1
    print(f"all {len(reports)} node(s) match this machine" + (" and see OUTPUT_DIR" if marker else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    """python -m common.ray_cluster check [--address HEAD_IP:6379] [--output-dir DIR]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m common.ray_cluster", description=main.__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    check = sub.add_parser("check", help="compare every node's Python environment, project path and shared storage")
    check.add_argument("--address", default=os.environ.get("RAY_GCS_ADDRESS", "auto"), help="GCS address (default: this node's cluster)")
    check.add_argument("--output-dir", default=os.environ.get("OUTPUT_DIR") or str(REPO_ROOT / "outputs"), help="the run folders' root")
    args = parser.parse_args(argv)
    try:
        return check_cluster(args.address, Path(args.output_dir).expanduser().resolve())
    except (ConnectionError, RuntimeError) as exc:
        print(f"cannot reach the Ray cluster at {args.address}: {exc}\n  start it with common/ray_cluster.sh head", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
