"""`ips sim` as a process: prints URL and kubeconfig, starts 5,000 nodes fast, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.kubesim.conftest import KUBECTL
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    kc = tmp_path / "state" / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "sim", "--kubeconfig-out", str(kc), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, kc


def _wait_file(path: Path, proc: subprocess.Popen[str], timeout: float) -> float:
    t0 = time.monotonic()

    def written() -> bool:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        return path.exists()

    wait_until(written, timeout, interval=0.05, message="kubeconfig never appeared")
    return time.monotonic() - t0


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    return out


def test_ips_sim_5000_nodes(tmp_path: Path) -> None:
    proc, kc = _start(tmp_path, "--nodes", "5000", "--seed", "3")
    try:
        took = _wait_file(kc, proc, timeout=30)
        print(f"ips sim --nodes 5000: kubeconfig after {took:.2f}s")
        cfg = yaml.safe_load(kc.read_text())
        server = cfg["clusters"][0]["cluster"]["server"]
        assert server.startswith("http://127.0.0.1:") and cfg["users"][0]["user"]["token"]
        out = subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(kc), "get", "nodes", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert len(out.splitlines()) == 5000
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(kc)))
        assert len(api.list_node(label_selector="pool=gpu").items) == 600
    finally:
        out = _stop(proc)
    assert f"listening on {server}" in out and str(kc.resolve()) in out and "stopped" in out


def test_ips_sim_sigint_and_default_kubeconfig(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "sim", "--nodes", "3", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    second = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in first
    path = Path(second.split("kubeconfig ", 1)[1].strip())
    assert path.exists()
    _stop(proc, signal.SIGINT)
    assert not path.exists()  # a temporary kubeconfig goes with the process


def test_ips_sim_rejects_bad_arguments(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodeGroups: [{name: a, count: -2}]\n")
    r = subprocess.run(
        [sys.executable, "-m", "cli.main", "sim", "--scenario", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "count" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "cli.main", "sim", "--time-scale", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "--time-scale" in r.stderr
    assert os.environ.get("KUBECONFIG") != str(bad)
