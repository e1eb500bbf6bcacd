"""Settings: the seed's names and defaults, and start-up failures that name the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import Settings, load_settings

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
    s = Settings()
    assert (s.server_port, s.k8s_namespace, s.worker_image) == (
        9999,
        "prewarm",
        "busybox:1.36-musl",
    )
    assert s.log_level == "DEBUG"
    assert s.api_tokens() == ["a", "b", "c"]


def test_tokens_file(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# ops team\nt1\n\n  t2  \n")
    assert Settings(ips_api_tokens_file=f).api_tokens() == ["t1", "t2"]


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
