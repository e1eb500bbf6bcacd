"""The registry benchmarks still run (`python -m bench.registry ... --small`, 100 nodes): they
write well-formed results. The figures are measured by the full runs, never asserted here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.activities.registry.regserver import missing_tools

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("what", ["typo", "pacing", "pacing-aggregate"])
def test_registry_bench_small_run_writes_wellformed_results(what: str, tmp_path: Path) -> None:
    if missing_tools():
        pytest.skip(f"needs {', '.join(missing_tools())} (installed by .ci/run)")
    command = what.split("-")[0]
    args = [sys.executable, "-m", "bench.registry", command, "--small", "--results-dir", tmp_path]
    if command == "pacing":
        args += ["--rounds", "1", "--limit-seconds", "5"]
    if what == "pacing-aggregate":
        # 5 requests/s (burst 5): under any load the fixed window asks for more within 5 s
        # than the bucket holds (at the bench's 30/s, a slow machine may never overshoot it).
        args += ["--case", "aggregate", "--rate", "5"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / f"registry-{what}-small.json").read_text())
    if what == "pacing-aggregate":
        assert [r["label"] for r in result["runs"]] == [
            "no 429",
            "total limit, AIMD window",
            "total limit, fixed window",
        ]
        assert all(r["status"] == "completed" and r["completed"] == 100 for r in result["runs"])
        assert result["limit"]["per"] == "total"
        assert result["runs"][2]["proxy"]["limit"]["rate"] == result["limit"]["rate"]
        assert result["failedNodesTotal"] == {r["label"]: 0 for r in result["runs"]}
        assert result["limit"]["rate"] == 5
        # 100 pulls at once ask more than the bucket's 5 tokens: the fixed window overshoots
        assert result["runs"][2]["proxy"]["limited"] > 0
        if importlib.util.find_spec("matplotlib"):  # the bench extra
            assert (tmp_path / "registry-pacing-aggregate-small.png").exists()
    elif what == "typo":
        assert result["allFailed"] and result["jobCreatesTotal"] == 0
        assert all("MANIFEST_UNKNOWN" in r["message"] for r in result["runs"])
    else:
        assert [r["label"] for r in result["runs"]] == [
            "no 429",
            "30% 429, AIMD window",
            "30% 429, fixed window",
        ]
        assert all(r["status"] == "completed" and r["completed"] == 100 for r in result["runs"])
        assert result["runs"][1]["proxy"]["limited"] > 0
