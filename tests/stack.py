"""A real IPS stack for end-to-end tests: `ips sim`, `ips worker` and `ips api` as processes.

The worker and the API run as subprocesses, configured only through the environment, exactly as
in production: their logs (JSON lines) and their /metrics are theirs alone, so a test can read
every log line they wrote and count metric deltas no other test moves. Temporal is the session
dev server (`dev_address`); each stack has its own task queue, so other areas' workers never
pick up its tasks and the API lists only its tasks.

    with run_stack(dev_address, tmp_path, scenario=..., token="t0k3n") as stack:
        with stack.client() as ips: ...
        stack.metrics("worker")["ips_nodes_processed_total"]

Import it as `from tests.stack import run_stack` (tests/ is a package tree that mirrors the code).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from google.protobuf.duration_pb2 import Duration
from ips_client import IPSClient
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.waiting import async_wait_until, wait_until

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
# Env vars of the outer shell that must not leak into a stack's processes.
_SCRUB = ("IPS_TOKEN", "IPS_URL", "IPS_API_TOKENS", "IPS_API_TOKENS_FILE", "KUBECONFIG",
          "TEMPORAL_ADDRESS", "TEMPORAL_TASK_QUEUE", "SERVER_PORT", "METRICS_PORT",
          "TEMPORAL_METRICS_PORT", "LOG_FORMAT", "IPS_LOG_FORMAT", "LOG_LEVEL", "IPS_AUTH",
          "SERVER_HOST", "IPS_MAX_RUNNING_TASKS")  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse_metrics(text: str) -> Samples:
    """{sample name: {sorted label pairs: value}} from a Prometheus exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a labelled counter appears on first increment)."""
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 25.0) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def terminate(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill: no clean-up at all."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    url: str
    token: str | None
    queue: str
    kubeconfig: Path
    metrics_urls: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)
    worker_env: dict[str, str] = field(default_factory=dict)
    work_dir: Path = ROOT

    def start_worker(self) -> Proc:
        """Start `ips worker` (a stack made with `with_worker=False`); waits for its metrics."""
        proc = _spawn("worker", ["worker"], self.worker_env, self.work_dir)
        self.procs["worker"] = proc
        _wait_http(proc, self.metrics_urls["worker"], time.monotonic() + START_TIMEOUT)
        return proc

    def client(self, token: str | None = None, **kwargs: Any) -> IPSClient:
        """A client of this stack's API, with its token unless another is given."""
        return IPSClient(self.url, token or self.token, **kwargs)

    def cli_env(self, **overrides: str) -> dict[str, str]:
        """The environment of an `ips` client command aimed at this stack."""
        env = base_env(IPS_URL=self.url, COLUMNS="120")
        if self.token:
            env["IPS_TOKEN"] = self.token
        env.update(overrides)
        return env

    def ips(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        """Run `ips <args>` as a user would (not a TTY), aimed at this stack."""
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=self.cli_env(**env),
        )

    def metrics_text(self, which: str) -> str:
        """The raw exposition of `api`, `worker` or `temporal` (the worker's SDK metrics)."""
        response = httpx.get(self.metrics_urls[which], timeout=10)
        response.raise_for_status()
        return response.text

    def metrics(self, which: str) -> Samples:
        return parse_metrics(self.metrics_text(which))

    def logs(self, which: str) -> str:
        return self.procs[which].log_text()

    @property
    def sim_url(self) -> str:
        """kubesim's base URL (its /kubesim/ control and stats endpoints live there)."""
        for line in self.kubeconfig.read_text().splitlines():
            if line.strip().startswith("server:"):
                return line.split("server:", 1)[1].strip().strip("'\"")
        raise RuntimeError(f"no server in {self.kubeconfig}")

    def respawn(self, which: str, as_name: str | None = None, **env: str) -> Proc:
        """Start `which` again with the same arguments and environment (after a kill or a
        stop), or a second copy under `as_name` (a second worker: pass METRICS_PORT and
        TEMPORAL_METRICS_PORT); waits until it serves HTTP again."""
        old = self.procs[which]
        name = as_name or which
        merged = {**old.env, **env}
        proc = _spawn(name, old.args, merged, old.log_path.parent, append=True)
        self.procs[name] = proc
        deadline = time.monotonic() + START_TIMEOUT
        if old.args[0] == "api":
            _wait_http(proc, f"http://127.0.0.1:{merged['SERVER_PORT']}/readyz", deadline)
        elif old.args[0] == "worker" and merged.get("METRICS_PORT", "0") != "0":
            _wait_http(proc, f"http://127.0.0.1:{merged['METRICS_PORT']}/metrics", deadline)
        return proc

    def json_logs(self, which: str) -> list[dict[str, Any]]:
        """Every log line of a component, each parsed as JSON (raises on a non-JSON line)."""
        out = []
        for line in self.logs(which).splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as err:
                    raise AssertionError(f"{which} wrote a non-JSON log line: {line!r}") from err
        return out


def stop_all(procs: list[Proc], timeout: float = 15.0) -> None:
    """SIGTERM to all at once, then SIGKILL whatever has not exited within `timeout`."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(5)


def _spawn(
    name: str, args: list[str], env: dict[str, str], log_dir: Path, *, append: bool = False
) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab" if append else "wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log_path, list(args), dict(env))


def _wait_http(proc: Proc, url: str, deadline: float) -> None:
    def answered() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_text()}")
        return httpx.get(url, timeout=2).is_success

    wait_until(
        answered,
        max(0.0, deadline - time.monotonic()),
        interval=0.2,
        message=lambda: f"{proc.name} did not answer {url}:\n{proc.log_text()[-3000:]}",
        ignore=(httpx.HTTPError,),
    )


def _wait_file(proc: Proc, path: Path, deadline: float) -> None:
    def written() -> bool:
        if path.exists():
            return True
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_text()}")
        return False

    wait_until(
        written,
        max(0.0, deadline - time.monotonic()),
        interval=0.1,
        message=lambda: f"{proc.name} wrote no {path.name}:\n{proc.log_text()[-3000:]}",
    )


@contextlib.contextmanager
def run_stack(
    temporal_address: str,
    work_dir: Path,
    *,
    scenario: dict[str, Any] | None = None,
    time_scale: float = 20.0,
    token: str | None = None,
    log_level: str = "INFO",
    extra_env: dict[str, str] | None = None,
    with_worker: bool = True,
) -> Iterator[Stack]:
    """`ips sim`, `ips worker` and `ips api` as subprocesses; all stopped on exit. With
    `with_worker=False` the worker starts only on `stack.start_worker()` (a first deploy)."""
    scenario = scenario if scenario is not None else KNOWN_SCENARIO
    work_dir.mkdir(parents=True, exist_ok=True)
    scenario_path = work_dir / "scenario.json"
    scenario_path.write_text(json.dumps(scenario))
    kubeconfig = work_dir / "kubeconfig"
    nodes = sum(int(g["count"]) for g in scenario["nodeGroups"])
    queue = f"ips-stack-{uuid.uuid4().hex[:10]}"
    api_port, metrics_port, sdk_port = free_port(), free_port(), free_port()
    common = {
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": queue,
        "KUBECONFIG": str(kubeconfig),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": log_level,
        **(extra_env or {}),
    }
    worker_env = base_env(
        **common, METRICS_PORT=str(metrics_port), TEMPORAL_METRICS_PORT=str(sdk_port)
    )
    api_env = base_env(**common, SERVER_PORT=str(api_port), METRICS_PORT="0")
    api_env.setdefault("IPS_MAX_RUNNING_TASKS", "0")
    if token:
        api_env["IPS_API_TOKENS"] = f"other-token-{uuid.uuid4().hex[:8]},{token}"
    else:
        api_env["IPS_AUTH"] = "none"
    stack = Stack(
        url=f"http://127.0.0.1:{api_port}",
        token=token,
        queue=queue,
        kubeconfig=kubeconfig,
        metrics_urls={
            "api": f"http://127.0.0.1:{api_port}/metrics",
            "worker": f"http://127.0.0.1:{metrics_port}/metrics",
            "temporal": f"http://127.0.0.1:{sdk_port}/metrics",
        },
        worker_env=worker_env,
        work_dir=work_dir,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        sim_args = [
            *("sim", "--nodes", str(nodes), "--scenario", str(scenario_path)),
            *("--time-scale", f"{time_scale:g}", "--kubeconfig-out", str(kubeconfig)),
        ]
        stack.procs["sim"] = _spawn("sim", sim_args, base_env(), work_dir)
        stack.procs["api"] = _spawn("api", ["api"], api_env, work_dir)
        _wait_file(stack.procs["sim"], kubeconfig, deadline)
        if with_worker:
            stack.procs["worker"] = _spawn("worker", ["worker"], worker_env, work_dir)
        _wait_http(stack.procs["api"], f"{stack.url}/readyz", deadline)
        if with_worker:
            _wait_http(stack.procs["worker"], stack.metrics_urls["worker"], deadline)
        yield stack
    finally:
        stop_all(list(stack.procs.values()))


async def fresh_namespace(client: Client) -> str:
    """A new namespace on the dev server, with no custom search attribute."""
    name = f"ips-first-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )

    async def known() -> bool:  # the registry learns of a new namespace within moments
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
        return True

    await async_wait_until(
        known, 30, interval=0.2, message=f"namespace {name} never appeared", ignore=(RPCError,)
    )
    return name


@contextlib.contextmanager
def run_api_without_temporal(work_dir: Path) -> Iterator[str]:
    """An `ips api` whose Temporal is unreachable: its task routes answer 503."""
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = base_env(
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        SERVER_PORT=str(port),
        LOG_FORMAT="json",
        IPS_AUTH="none",
    )
    proc = _spawn("api-no-temporal", ["api"], env, work_dir)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(proc, f"{url}/healthz", time.monotonic() + START_TIMEOUT)
        yield url
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------
# A scenario whose outcome is known node by node
# --------------------------------------------------------------------------------------------

NOT_FOUND_IMAGE = "registry.example.com/ips-test/not-found:1"
WARM_IMAGE = "nginx:latest"

# A task of [WARM_IMAGE, NOT_FOUND_IMAGE] on `pool=obs` ends, node by node, as KNOWN_OUTCOME:
# "warm" nodes hold both images; "fresh" nodes hold neither (the not-found image fails them);
# "half" nodes hold the not-found image (a deleted tag still cached), so they only pull nginx;
# the cordoned node is skipped. `pool=slow` pulls slowly (2 MB/s), for watching a task live:
# any image nobody holds takes ~25 simulated seconds a node there. `pool=other` is never chosen.
KNOWN_OUTCOME = {"completed": 2, "failed": 2, "warm": 3, "skipped": 1}
KNOWN_SCENARIO: dict[str, Any] = {
    "defaults": {"pullOverheadSeconds": 0.2, "pullJitter": 0.0, "containerRunSeconds": 0.2},
    "nodeGroups": [
        {
            "name": "warm",
            "count": 3,
            "labels": {"pool": "obs", "workload": "compute"},
            "images": [{"name": WARM_IMAGE}, {"name": NOT_FOUND_IMAGE}],
        },
        {"name": "fresh", "count": 2, "labels": {"pool": "obs", "workload": "compute"}},
        {
            "name": "half",
            "count": 2,
            "labels": {"pool": "obs", "workload": "compute"},
            "images": [{"name": NOT_FOUND_IMAGE}],
        },
        {"name": "cordon", "count": 1, "labels": {"pool": "obs"}, "cordoned": 1},
        {
            "name": "slow",
            "count": 6,
            "labels": {"pool": "slow"},
            "pullBandwidth": "2MB/s",
            "images": [{"name": NOT_FOUND_IMAGE, "count": 4}],
        },
        {"name": "other", "count": 2, "labels": {"pool": "other"}},
    ],
    "images": [
        {"name": WARM_IMAGE, "size": "20MiB"},
        {"name": NOT_FOUND_IMAGE, "notFound": True},
    ],
}


def fresh_image(tag: str = "") -> str:
    """An image no node holds yet, so every task that uses it really pulls."""
    return f"registry.example.com/ips-e2e/{uuid.uuid4().hex[:12]}:{tag or '1'}"
