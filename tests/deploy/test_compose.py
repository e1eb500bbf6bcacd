"""docker-compose.yml: it parses (`docker-compose config`), every service is health-checked,
IPS waits for a healthy Temporal, env names are Settings fields, ports match the docs, and no
separate step registers the search attributes (the API and the worker do it themselves).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType

from tests.waiting import wait_until

from .conftest import ROOT, settings_env_names, tool

COMPOSE = ROOT / "docker-compose.yml"
IPS_SERVICES = ("ips-api", "ips-worker", "kubesim")
TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


@pytest.mark.unit
@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose is not installed (apt-get install docker-compose; .ci/run does it)",
)
@pytest.mark.parametrize("profile", [None, "sim"])
def test_docker_compose_config_validates(profile: str | None) -> None:
    env = {**os.environ, "COMPOSE_PROFILES": profile or ""}
    res = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    rendered = yaml.safe_load(res.stdout)
    services = set(rendered["services"])
    assert {"postgresql", "temporal", "temporal-ui", "temporal-admin-tools"} <= services
    assert {"ips-api", "ips-worker"} <= services
    # docker-compose 1.29 renders profiled services too; the profile itself must be declared.
    assert "kubesim" not in services or rendered["services"]["kubesim"]["profiles"] == ["sim"]


@pytest.mark.unit
def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        check = svc.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name


@pytest.mark.unit
def test_dependencies_wait_for_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}"
            assert dep in services
    # The API and the worker register the search attributes themselves (either may start
    # first: tests/api/test_first_deploy.py), so they wait for a healthy Temporal only.
    assert set(services["ips-api"]["depends_on"]) == {"temporal"}
    assert set(services["ips-worker"]["depends_on"]) == {"temporal"}
    assert set(services["temporal-admin-tools"]["depends_on"]) == {"temporal"}
    assert set(services["temporal"]["depends_on"]) == {"postgresql"}
    assert services["kubesim"]["profiles"] == ["sim"]


@pytest.mark.unit
def test_ips_env_names_are_settings(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    for name in IPS_SERVICES:
        names = set(env_of(compose["services"][name]))
        assert names <= known, f"{name}: {names - known}"


@pytest.mark.unit
def test_ports_match_the_docs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    published = {
        name: {int(p.split(":")[-2]): int(p.split(":")[-1]) for p in svc.get("ports", [])}
        for name, svc in services.items()
    }
    assert published["ips-api"] == {8080: int(env_of(services["ips-api"])["SERVER_PORT"])}
    assert published["temporal-ui"] == {8233: 8233}
    assert env_of(services["temporal-ui"])["TEMPORAL_UI_PORT"] == "8233"
    assert published["temporal"] == {7233: 7233}
    worker_env = env_of(services["ips-worker"])
    assert published["ips-worker"] == {
        9090: int(worker_env["METRICS_PORT"]),
        9091: int(worker_env["TEMPORAL_METRICS_PORT"]),
    }
    docs = (ROOT / "docs/deploy.md").read_text()
    for url in ("http://localhost:8080", "http://localhost:8233", "localhost:7233"):
        assert url in docs, f"docs/deploy.md does not mention {url}"
    # The healthchecks probe the ports the services listen on.
    assert "localhost:8080/readyz" in " ".join(services["ips-api"]["healthcheck"]["test"])
    assert "localhost:9090/metrics" in " ".join(services["ips-worker"]["healthcheck"]["test"])


@pytest.mark.unit
def test_every_published_port_binds_loopback_only(compose: dict[str, Any]) -> None:
    """Issue 14: Temporal (no auth), the UI and the API were published on every interface."""
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    api = env_of(compose["services"]["ips-api"])
    assert api["SERVER_HOST"] == "0.0.0.0"  # inside its container, behind the loopback publish
    assert env_of(compose["services"]["ips-worker"])["METRICS_HOST"] == "0.0.0.0"
    assert api["IPS_AUTH"] == "${IPS_AUTH:-token}"  # closed unless IPS_AUTH=none is exported


def _volumes(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path} of a service's bind mounts."""
    out = {}
    for v in service.get("volumes", []):
        src, _, dst = re.sub(r":(ro|rw)$", "", v).rpartition(":")
        out[dst] = src
    return out


def _sim_arg(compose: dict[str, Any], flag: str) -> str:
    return next(a for a in compose["services"]["kubesim"]["command"] if a.startswith(f"{flag}="))[
        len(flag) + 1 :
    ]


@pytest.mark.unit
def test_kubeconfig_mounts_match_env(compose: dict[str, Any]) -> None:
    worker = compose["services"]["ips-worker"]
    default = re.fullmatch(r"\$\{IPS_KUBECONFIG:-(.+)\}", env_of(worker)["KUBECONFIG"])
    assert default is not None
    mounts = _volumes(worker)
    assert mounts[default.group(1)] == "${KUBECONFIG_HOST_PATH:-~/.kube/config}"
    assert all(v.endswith(":ro") for v in worker["volumes"]), "kubeconfigs are mounted read-only"
    # Profile sim: the worker reaches kubesim by its service name on the port it listens on.
    sim_path = "/etc/ips/kubesim.kubeconfig"
    host_file = ROOT / mounts[sim_path].removeprefix("./")
    kubeconfig = yaml.safe_load(host_file.read_text())
    port = _sim_arg(compose, "--port")
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"http://kubesim:{port}"
    assert compose["services"]["kubesim"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    docs = (ROOT / "docs/deploy.md").read_text()
    assert f"IPS_KUBECONFIG={sim_path} docker compose --profile sim up -d" in docs


@pytest.mark.integration
def test_kubesim_service_command_serves_the_compose_kubeconfig(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """Run the kubesim service's command as compose would (on a free port), then kubectl it
    through deploy/compose/kubesim-host.kubeconfig."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        a.replace("${KUBESIM_NODES:-50}", "7")
        .replace("--port=6443", f"--port={port}")
        .replace("--host=0.0.0.0", "--host=127.0.0.1")
        .replace("/tmp/", f"{tmp_path}/")
        for a in compose["services"]["kubesim"]["command"]
    ]
    host_kc = yaml.safe_load((ROOT / "deploy/compose/kubesim-host.kubeconfig").read_text())
    assert host_kc["clusters"][0]["cluster"]["server"] == "http://localhost:6443"
    host_kc["clusters"][0]["cluster"]["server"] = f"http://localhost:{port}"
    kc = tmp_path / "host.kubeconfig"
    kc.write_text(yaml.safe_dump(host_kc))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def started() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            return (tmp_path / "kubesim.kubeconfig").exists()

        wait_until(started, 30, interval=0.1, message="kubesim did not start")
        with urllib.request.urlopen(f"http://localhost:{port}/healthz", timeout=5) as resp:
            assert resp.status == HTTPStatus.OK
        out = subprocess.run(
            [tool("kubectl"), "--kubeconfig", str(kc), "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        assert len(out) == 7
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.unit
def test_no_separate_search_attribute_step(compose: dict[str, Any]) -> None:
    """No one-shot or script registers the attributes: a second list to keep in step with
    common.temporal.SearchAttr would only drift. The API's healthcheck (/readyz) is 503 while
    they are missing and cannot be added."""
    text = COMPOSE.read_text()
    assert "search-attribute create" not in text
    assert "IPS_SEARCH_ATTRIBUTES" not in text
    assert "/readyz" in " ".join(compose["services"]["ips-api"]["healthcheck"]["test"])


@pytest.mark.unit
def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", svc["image"])
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image} has no tag"
        assert not image.endswith(":latest"), name
