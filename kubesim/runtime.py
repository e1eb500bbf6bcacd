"""Start and stop one kubesim server on the running event loop; write its kubeconfig."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kubesim import registrypull
from kubesim.cluster import Cluster
from kubesim.scenario import Scenario, load_scenario
from kubesim.server import Api


def kubeconfig_dict(url: str, name: str = "kubesim") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": f"{name}-user", "user": {"token": "kubesim-dummy-token"}}],
        "contexts": [
            {
                "name": name,
                "context": {"cluster": name, "user": f"{name}-user", "namespace": "default"},
            }
        ],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(path: str | Path, url: str) -> Path:
    """Atomically (temp file + os.replace), so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(kubeconfig_dict(url), f, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


class SimServer:
    """One cluster plus its HTTP server, bound to the current event loop."""

    def __init__(
        self,
        scenario: str | Path | dict[str, Any] | Scenario | None = None,
        *,
        nodes: int | None = None,
        seed: int = 0,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.scenario = load_scenario(scenario)
        self.cluster = Cluster(self.scenario, seed=seed, time_scale=time_scale)
        self.api = Api(self.cluster, seed)
        self.nodes = nodes
        self.host, self.port = host, port
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        self.cluster.populate(self.nodes)
        self.runner = web.AppRunner(
            self.api.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, backlog=1024)
        await site.start()
        port = self.runner.addresses[0][1]
        self.port = port
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        self.cluster.store.close_watchers()
        for ps in list(self.cluster.pods.values()):
            if ps.task is not None:
                ps.task.cancel()
            for t in list(ps.tasks):
                t.cancel()
        await registrypull.close(self.cluster)
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await asyncio.sleep(0)
