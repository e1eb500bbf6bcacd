"""mypy fails a first-party import that does not resolve (pyproject.toml [tool.mypy]).

A global `ignore_missing_imports` once let a renamed first-party module pass the lint
unnoticed; only third-party modules with no types are exempt now, per module.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_first_party_module_fails_mypy_and_an_untyped_third_party_one_does_not(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.py"
    good.write_text("import common.imageref\nimport docker_image.reference\n")
    bad = tmp_path / "bad.py"
    bad.write_text("import common.nonexistent\nimport activities.renamed_away\n")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", str(good), str(bad)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    errors = [line for line in out.stdout.splitlines() if ": error: " in line]
    assert out.returncode == 1, out.stdout + out.stderr
    assert [line.split(":")[:2] for line in errors] == [[str(bad), "1"], [str(bad), "2"]], errors
    assert '"common.nonexistent"' in errors[0]
    assert '"activities.renamed_away"' in errors[1]
