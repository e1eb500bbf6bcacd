"""The TLS / API-key settings documented in docs/deploy.md build the client config they promise."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import TLSConfig
from temporalio.testing import WorkflowEnvironment

from common.settings import Settings
from common.temporal import connect, tls_config

pytestmark = pytest.mark.unit

CERT = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"
CA = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    paths = {"cert": tmp_path / "tls.crt", "key": tmp_path / "tls.key", "ca": tmp_path / "ca.crt"}
    paths["cert"].write_bytes(CERT)
    paths["key"].write_bytes(KEY)
    paths["ca"].write_bytes(CA)
    return paths


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_plaintext_by_default() -> None:
    assert tls_config(Settings()) is False


def test_mtls_overlay_env(pem: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The env the temporal-mtls overlay sets: cert, key, CA and a server name override."""
    monkeypatch.setenv("TEMPORAL_TLS_CERT", str(pem["cert"]))
    monkeypatch.setenv("TEMPORAL_TLS_KEY", str(pem["key"]))
    monkeypatch.setenv("TEMPORAL_TLS_CA", str(pem["ca"]))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    cfg = tls_config(Settings())
    assert isinstance(cfg, TLSConfig)
    assert (cfg.client_cert, cfg.client_private_key, cfg.server_root_ca_cert) == (CERT, KEY, CA)
    assert cfg.domain == "temporal.internal"


def test_cloud_mtls_uses_system_roots(pem: dict[str, Path]) -> None:
    cfg = tls_config(Settings(temporal_tls_cert=pem["cert"], temporal_tls_key=pem["key"]))
    assert isinstance(cfg, TLSConfig)
    assert cfg.server_root_ca_cert is None
    assert cfg.client_cert == CERT


def test_api_key_turns_tls_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_API_KEY", "secret")
    assert tls_config(Settings()) is True


def test_server_tls_with_public_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    assert tls_config(Settings()) is True


def test_tls_false_wins_for_api_key_behind_plaintext_proxy() -> None:
    assert tls_config(Settings(temporal_api_key="k", temporal_tls=False)) is False


def test_cert_without_key_is_rejected(pem: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"):
        Settings(temporal_tls_cert=pem["cert"])


def test_tls_false_with_cert_is_rejected(pem: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="TEMPORAL_TLS=false"):
        Settings(temporal_tls_cert=pem["cert"], temporal_tls_key=pem["key"], temporal_tls=False)


def test_missing_file_names_the_variable(tmp_path: Path, pem: dict[str, Path]) -> None:
    s = Settings(temporal_tls_ca=tmp_path / "absent.crt")
    with pytest.raises(ValueError, match=r"TEMPORAL_TLS_CA=.*absent\.crt: cannot read"):
        tls_config(s)


@pytest.mark.integration
async def test_connect_sends_the_api_key(dev_env: WorkflowEnvironment, dev_address: str) -> None:
    """The dev server ignores the key, so a plaintext connection shows the wiring end to end."""
    client = await connect(
        Settings(temporal_address=dev_address, temporal_api_key="k-123", temporal_tls=False)
    )
    assert client.api_key == "k-123"
    assert await client.service_client.check_health()
