"""The rendered environment is Settings: every ConfigMap key and env name is one Settings reads,
the ConfigMap loads as valid Settings, and each overlay yields the Temporal connection it names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import TLSConfig

from common.settings import Settings
from common.temporal import tls_config

from .conftest import PULL_NS, all_docs, containers, find, one, settings_env_names

pytestmark = pytest.mark.unit


def test_env_names_are_settings(
    base: list[dict[str, Any]], overlays: dict[str, list[dict[str, Any]]]
) -> None:
    known = settings_env_names()
    for label, docs in all_docs(base, overlays):
        (config,) = find(docs, "ConfigMap")
        assert set(config["data"]) <= known, f"{label}: {set(config['data']) - known}"
        for dep in find(docs, "Deployment"):
            for c in containers(dep):
                names = {e["name"] for e in c.get("env", [])}
                assert names <= known, f"{label}/{dep['metadata']['name']}: {names - known}"
                refs = {r["configMapRef"]["name"] for r in c.get("envFrom", [])}
                assert refs == {"ips-config"}


def test_configmap_is_valid_settings(
    base: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for key, value in one(base, "ConfigMap", "ips-config")["data"].items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.k8s_namespace == PULL_NS and s.server_port == 8080 and s.metrics_port == 9090
    assert tls_config(s) is False
    assert s.ips_allowed_registries == [] and s.ips_allowed_pull_secrets == []
    assert not s.ips_allow_always_pull and s.ips_max_running_tasks == 20
    # Loopback is the code's default; a pod must listen on its own interfaces to be reached.
    assert s.server_host == s.metrics_host == "0.0.0.0"


def test_mtls_overlay_builds_a_tls_client_config(
    overlays: dict[str, list[dict[str, Any]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overlay's paths sit under the Secret's mount, and yield a client-certificate TLS."""
    docs = overlays["temporal-mtls"]
    config = one(docs, "ConfigMap", "ips-config")["data"]
    for dep in find(docs, "Deployment"):
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        for var in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
            mount = os.path.dirname(config[var])
            assert mount in mounts, f"{dep['metadata']['name']}: {var} not under a mount"
            assert vols[mounts[mount]]["secret"]["secretName"] == "temporal-tls"
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for key, value in config.items():
        if value.startswith("/etc/temporal-tls/"):
            local = tmp_path / os.path.basename(value)
            local.write_text(f"pem for {key}\n")
            value = str(local)
        monkeypatch.setenv(key, value)
    cfg = tls_config(Settings())
    assert isinstance(cfg, TLSConfig)
    assert cfg.client_cert == b"pem for TEMPORAL_TLS_CERT\n"
    assert cfg.client_private_key == b"pem for TEMPORAL_TLS_KEY\n"


def test_api_key_overlay_reads_the_key_from_a_secret(
    overlays: dict[str, list[dict[str, Any]]],
) -> None:
    docs = overlays["temporal-api-key"]
    for dep in find(docs, "Deployment"):
        (c,) = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        ref = env["TEMPORAL_API_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "temporal-api-key", "key": "api-key"}
    assert tls_config(Settings(temporal_api_key="k")) is True
