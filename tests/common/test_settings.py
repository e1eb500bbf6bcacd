"""Settings: the seed's names and defaults, and start-up failures that name the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.auth import load_auth
from common.settings import Settings, load_settings, secret_fields

pytestmark = pytest.mark.unit


def test_seed_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SERVER_PORT", "K8S_NAMESPACE", "WORKER_IMAGE", "TEMPORAL_ADDRESS", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.server_port == 8080
    assert s.k8s_namespace == "default"
    assert s.temporal_address == "localhost:7233"
    assert s.temporal_namespace == "default"
    assert s.temporal_task_queue == "ips-prewarm"
    # Issue 4 overrides the seed's busybox:latest: the helper binary must be static (musl).
    assert "musl" in s.worker_image


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_PORT", "9999")
    monkeypatch.setenv("K8S_NAMESPACE", "prewarm")
    monkeypatch.setenv("WORKER_IMAGE", "busybox:1.36-musl")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("IPS_API_TOKENS", "a, b,,c")
    monkeypatch.setenv("SERVER_HOST", "0.0.0.0")
    s = Settings()
    assert (s.server_port, s.k8s_namespace, s.worker_image) == (
        9999,
        "prewarm",
        "busybox:1.36-musl",
    )
    assert s.log_level == "DEBUG"
    assert s.server_host == "0.0.0.0"
    assert [tok for tok, _ in load_auth(s).tokens] == [b"a", b"b", b"c"]


def test_tokens_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# ops team\nt1\n\n  t2  \n")
    assert [tok for tok, _ in load_auth(Settings(ips_api_tokens_file=f)).tokens] == [b"t1", b"t2"]


def test_api_listens_on_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVER_HOST", raising=False)
    monkeypatch.delenv("METRICS_HOST", raising=False)
    assert Settings().server_host == Settings().metrics_host == "127.0.0.1"


def test_policy_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPS_ALLOWED_REGISTRIES", "registry.example.com/team, docker.io/library")
    monkeypatch.setenv("IPS_ALLOWED_PULL_SECRETS", '["regcred"]')
    s = Settings()
    assert s.ips_allowed_registries == ["registry.example.com/team", "docker.io/library"]
    assert s.ips_allowed_pull_secrets == ["regcred"]
    # Closed by default.
    assert not (s.ips_allow_always_pull or s.ips_allow_keyless_tolerations)
    assert not s.ips_allow_control_plane and s.ips_max_running_tasks > 0


SECRET_MARKER = "s3cret-marker-7f3a"


def test_every_secret_setting_is_known() -> None:
    assert {"ips_api_tokens", "temporal_api_key"} <= secret_fields()


@pytest.mark.parametrize("field", sorted(secret_fields()))
def test_a_bad_setting_never_prints_a_secret(
    field: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 14: a whole-model error used to print the full input dict, secrets included."""
    monkeypatch.setenv(field.upper(), SECRET_MARKER)
    monkeypatch.setenv("TEMPORAL_TLS_CERT", "/etc/ips/tls.crt")  # without its key
    monkeypatch.delenv("TEMPORAL_TLS_KEY", raising=False)
    with pytest.raises(SystemExit):
        load_settings()
    err = capsys.readouterr().err
    assert "TEMPORAL_TLS_CERT" in err and SECRET_MARKER not in err, err
    with pytest.raises(ValidationError) as exc:
        Settings()
    assert SECRET_MARKER not in str(exc.value) and SECRET_MARKER not in repr(exc.value)
    # A field-level error on the secret itself names it, without its value.
    monkeypatch.delenv("TEMPORAL_TLS_CERT")
    with pytest.raises(SystemExit):
        load_settings(**{field: 73518911})
    err = capsys.readouterr().err
    assert field.upper() in err and "73518911" not in err, err


def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVER_PORT", "eighty")
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert exc.value.code == 2
    assert "SERVER_PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("var", "value"), [("K8S_QPS", "-1"), ("LOG_LEVEL", "loud"), ("SERVER_PORT", "70000")]
)
def test_ips_refuses_to_start_on_bad_config(var: str, value: str) -> None:
    env = {"PATH": str(Path(sys.executable).parent), var: value}
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert var in out.stderr
    assert "Traceback" not in out.stderr
