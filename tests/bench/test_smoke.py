"""The benchmarks still run: `python -m bench.run_all --small` (100 nodes, seconds long).

Only proves the scripts work end to end and write well-formed results; the figures themselves
are measured by `make bench`, never asserted here (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run_all import END, START, results_table, update_readmes

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_bench_small_run_writes_wellformed_results(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--small", "--no-readme", "--results-dir", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    makespan = json.loads((out / "makespan.json").read_text())
    small = makespan["fixedSmall"]
    assert small["status"] == "completed"
    assert small["progress"]["completedNodes"] == small["nodes"] == 100
    assert small["makespanOverIdeal"] > 0 and small["k8sRequestsPerNode"] > 0
    assert small["historyEvents"] > 0 and small["maxEventsPerRun"] <= small["historyEvents"]
    assert small["samples"][-1][1] == 100  # the curve ends with every node done
    for key in ("lognormalBatch", "lognormalRolling"):
        run = makespan[key]
        assert run["status"] == "completed" and run["progress"]["completedNodes"] == 100
        assert run["pullsSeen"] == 100  # every pull's duration was read from kubesim's events
        assert run["makespanOverLowerBound"] > 0
    assert makespan["workerPeakRssMiB"] > 0

    slow = json.loads((out / "slow-pulls.json").read_text())
    assert slow["status"] == "completed" and slow["progress"]["completedNodes"] == slow["nodes"]
    assert slow["pullsSeen"] == slow["nodes"] == 20
    assert slow["workerEnv"]["ENGINE_TIME_SCALE"] == "10"
    assert slow["k8sRequestsPerNode"] > 0 and slow["makespanOverLowerBound"] > 0

    baseline = json.loads((out / "baseline.json").read_text())
    assert baseline["naive"]["nodes"] == 100 and baseline["naive"]["failed"] == 0
    assert baseline["naive"]["k8sRequests"] > 100  # one create per node, plus the polls
    assert baseline["requestsRatio"] > 0 and baseline["makespanRatio"] > 0

    api = json.loads((out / "api-load.json").read_text())
    assert api["read"]["get"]["requests"] > 0 and api["read"]["list"]["requests"] > 0
    assert api["read"]["errors"] == {}
    assert api["create"]["created"] > 0

    fol = json.loads((out / "follow.json").read_text())
    lat, day = fol["latency"], fol["day"]
    assert lat["status"] == day["status"] == "completed"
    assert lat["joined"] == lat["warmed"] == 3  # every joined node got its image
    assert lat["readyToPresentSeconds"]["p50"] >= fol["options"]["pull_seconds"]
    sweep = lat["duringSweep"]  # joined while the first sweep ran: warmed after it
    assert sweep["joined"] == sweep["warmed"] == 1
    assert sweep["followingToPullStartSeconds"]["p50"] is not None
    assert day["joined"] == day["warmed"] == 10 and day["historyEvents"] > 0
    assert day["k8sRequestsPerJoinedNode"] > 0 and day["rssSamples"]
    assert day["pulledTwice"] == 0  # each joined node warmed once
    assert day["followUnits"] >= 1 and day["maxFollowUnitInputBytes"] > 0
    assert day["maxContinueAsNewInputBytes"] >= 0

    # `make install` installs the bench extra, so the plots are drawn and checked here too.
    pngs = {p.name for p in out.glob("*.png")}
    assert {
        "makespan-fixedSmall.png",
        "makespan-lognormal.png",
        "baseline.png",
        "slow-pulls.png",
        "follow.png",
    } <= pngs
    assert all((out / name).stat().st_size > 10_000 for name in pngs)  # drawn, not empty

    table = results_table(out)
    assert "| Makespan / ideal, batch, fixed pull, 1,000 nodes / 100 |" in table
    assert "| Follow, simulated day: Kubernetes requests per joined node | ≤ 2 |" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold\n{END}\n\nafter\n")
    assert update_readmes(table, [readme]) == [readme]
    text = readme.read_text()
    assert "old" not in text and table in text and text.endswith("after\n")
