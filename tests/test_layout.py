"""The `ips` command's surface and the architecture contracts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def _ips(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200", "TERM": "dumb"},
    )


def test_help_lists_the_subcommands() -> None:
    out = _ips("--help")
    assert out.returncode == 0
    for cmd in ("dev", "api", "worker", "sim"):
        assert re.search(rf"^\W*{cmd}\s", out.stdout, re.M), f"{cmd} missing from ips --help"


def test_dev_help_documents_every_flag() -> None:
    out = _ips("dev", "--help")
    assert out.returncode == 0
    for flag in ("--kubeconfig", "--nodes", "--state-dir", "--ui-port", "--startup-timeout"):
        line = next((ln for ln in out.stdout.splitlines() if flag in ln), "")
        assert line, f"{flag} missing from ips dev --help"
        # Each flag carries a description, not just its name and type.
        assert len(re.sub(r"[│\s]", "", line.split(flag, 1)[1])) > 10, line


def test_import_contracts_hold() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "broken" in out.stdout and " 0 broken" in out.stdout


def test_layout() -> None:
    for d in ("workflows", "activities", "api", "worker", "deploy", "tests", "common", "kubesim",
              "cli", "bench"):  # fmt: skip
        assert (ROOT / d).is_dir(), d
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111
    assert not (ROOT / "shared").exists(), "`shared/` means ../shared here"
