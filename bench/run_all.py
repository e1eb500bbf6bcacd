"""`make bench`: every benchmark on one Temporal dev server, then the results table.

Runs bench.makespan (makespan vs ideal, cost per node), bench.slow_pulls (200 nodes, pulls of
60-300 s, the engine's timers scaled too), bench.baseline (the naive loop),
bench.api_load (the API under load) and bench.follow (nodes joining a follow-mode task), each
writing bench/results/<name>.json and its plots, then
rewrites the table between `<!-- bench:start -->` and `<!-- bench:end -->` in README.md and
bench/README.md. Benchmarks never assert: a missed target shows as "missed" in the table.

    .venv/bin/python -m bench.run_all [--small] [--results-dir DIR] [--no-readme] [--table-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import api_load, baseline, follow, makespan, slow_pulls
from bench.harness import RESULTS_DIR, ROOT, TemporalServer

START, END = "<!-- bench:start -->", "<!-- bench:end -->"
READMES = [ROOT / "README.md", ROOT / "bench" / "README.md"]


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# (figure, results file, JSON path, target text, check, unit)
Row = tuple[str, str, str, str, Callable[[float], bool] | None, str]
ROWS: list[Row] = [
    ("Makespan / ideal, batch, fixed pull, 1,000 nodes / 100", "makespan",
     "fixedSmall.makespanOverIdeal", "≤ 1.10", lambda v: v <= 1.10, "ratio"),
    ("Makespan / ideal, batch, fixed pull, 5,000 nodes / 100", "makespan",
     "fixedLarge.makespanOverIdeal", "≤ 1.10", lambda v: v <= 1.10, "ratio"),
    ("Overhead per batch, 1,000 nodes / 100, against a 3 s pull (wall)", "makespan",
     "fixedSmall.overheadPerBatchSeconds", "-", None, " s"),
    ("Overhead per batch, 5,000 nodes / 100, against a 3 s pull (wall)", "makespan",
     "fixedLarge.overheadPerBatchSeconds", "-", None, " s"),
    ("Log-normal pulls: batch makespan / lower bound", "makespan",
     "lognormalBatch.makespanOverLowerBound", "-", None, "ratio"),
    ("Log-normal pulls: rolling makespan / lower bound", "makespan",
     "lognormalRolling.makespanOverLowerBound", "-", None, "ratio"),
    ("Rolling faster than batch (log-normal)", "makespan", "rollingFasterThanBatch",
     "≥ 25 %", lambda v: v >= 0.25, "%"),
    ("Kubernetes requests per node (5,000 nodes)", "makespan",
     "fixedLarge.k8sRequestsPerNode", "≤ 1.5", lambda v: v <= 1.5, ""),
    ("Temporal history events per node (5,000 nodes)", "makespan",
     "fixedLarge.historyEventsPerNode", "≤ 0.2", lambda v: v <= 0.2, ""),
    ("Max history events in one run (5,000 nodes)", "makespan",
     "fixedLarge.maxEventsPerRun", "≤ 10,000", lambda v: v <= 10000, ""),
    ("Slow pulls (200 nodes, 60-300 s): Kubernetes requests per node", "slow-pulls",
     "k8sRequestsPerNode", "≤ 1.5", lambda v: v <= 1.5, ""),
    ("Slow pulls: rolling makespan / lower bound", "slow-pulls", "makespanOverLowerBound", "-",
     None, "ratio"),
    ("Worker peak RSS (5,000 nodes)", "makespan", "workerPeakRssMiB", "≤ 300 MB",
     lambda v: v * 1.048576 <= 300, " MiB"),
    ("GET /tasks/{id} p50: 20 clients at 1 req/s each, 10 tasks running", "api-load",
     "read.get.p50ms", "-", None, " ms"),
    ("GET /tasks/{id} p99: 20 clients at 1 req/s each", "api-load", "read.get.p99ms",
     "≤ 50 ms", lambda v: v <= 50, " ms"),
    ("GET /tasks?limit=100 p99: 20 clients at 1 req/s each", "api-load", "read.list.p99ms",
     "≤ 150 ms", lambda v: v <= 150, " ms"),
    ("GET /tasks/{id} p99: 20 clients, no pause (saturated)", "api-load",
     "readSaturated.get.p99ms", "≤ 50 ms", lambda v: v <= 50, " ms"),
    ("GET /tasks?limit=100 p99: saturated", "api-load", "readSaturated.list.p99ms",
     "≤ 150 ms", lambda v: v <= 150, " ms"),
    ("Reads per second, saturated (get + list)", "api-load", "readSaturated.perSecond", "-",
     None, "/s"),
    ("Task creation throughput", "api-load", "create.perSecond", "≥ 30/s",
     lambda v: v >= 30, "/s"),
    ("Follow: Ready to image present p50 (time scale 1, 20 s pull)", "follow",
     "latency.readyToPresentSeconds.p50", "-", None, " s"),
    ("Follow: overhead past the pull, p99 (batching and startup taint included)", "follow",
     "latency.overheadSeconds.p99", "≤ 5 s", lambda v: v <= 5, " s"),
    ("Follow: joined during the first sweep, phase `following` to its pull's start, p99",
     "follow", "latency.duringSweep.followingToPullStartSeconds.p99", "-", None, " s"),
    ("Follow, simulated day: Kubernetes requests per joined node", "follow",
     "day.k8sRequestsPerJoinedNode", "≤ 2", lambda v: v <= 2, ""),
    ("Follow, simulated day: history events per joined node", "follow",
     "day.historyEventsPerJoinedNode", "-", None, ""),
    ("Follow, simulated day: most history events in one run", "follow",
     "day.maxEventsPerRun", "≤ 10,000", lambda v: v <= 10000, ""),
    ("Follow, simulated day: worker RSS growth, 2nd to 4th quarter", "follow",
     "day.workerRss.growthMiB", "flat (≤ 10 MiB)", lambda v: v <= 10, " MiB"),
    ("IPS / naive: Kubernetes requests (1,000 nodes)", "baseline", "requestsRatio", "-", None,
     "ratio"),
    ("IPS / naive: makespan (1,000 nodes)", "baseline", "makespanRatio", "-", None, "ratio"),
]  # fmt: skip


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "not measured"
    if unit == "%":
        return f"{100 * float(value):.0f} %"
    if unit == "ratio":
        return f"{float(value):.3f}"
    if isinstance(value, float) and abs(value) < 100:
        return f"{value:.3g}{unit}"
    return f"{value:,.0f}{unit}"


def results_table(results_dir: Path) -> str:
    loaded: dict[str, dict[str, Any]] = {}
    for name in {r[1] for r in ROWS}:
        path = results_dir / f"{name}.json"
        loaded[name] = json.loads(path.read_text()) if path.exists() else {}
    lines = ["| Figure | Target | Measured | |", "|---|---|---|---|"]
    for figure, name, key, target, check, unit in ROWS:
        value = _get(loaded[name], key)
        verdict = ""
        if check is not None and value is not None:
            verdict = "met" if check(float(value)) else "**missed**"
        lines.append(f"| {figure} | {target} | {_fmt(value, unit)} | {verdict} |")
    stamps = sorted({f"{d.get('generatedAt')} @ {d.get('commit')}" for d in loaded.values() if d})
    load = next((d["machine"].get("loadAverage") for d in loaded.values() if d), None)
    lines.append("")
    lines.append(
        f"Measured by `make bench` ({', '.join(stamps) or 'no results yet'}) on "
        f"{os.cpu_count()} cores"
        + (f", load average {load}" if load else "")
        + ". Details: bench/README.md; raw numbers: bench/results/*.json."
    )
    return "\n".join(lines)


def update_readmes(table: str, readmes: list[Path] = READMES) -> list[Path]:
    """Replace the text between the markers; files without both markers are left alone."""
    changed = []
    for path in readmes:
        if not path.exists():
            continue
        text = path.read_text()
        if START not in text or END not in text:
            print(f"  {path.relative_to(ROOT)} has no {START} ... {END} markers: not updated")
            continue
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        path.write_text(f"{head}{START}\n{table}\n{END}{tail}")
        changed.append(path)
    return changed


async def run(small: bool, results_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="ips-bench-") as tmp:
        work = Path(tmp)
        server = TemporalServer(work / "temporal")
        server.start()
        try:
            for title, bench in (
                ("makespan and cost per node", lambda: makespan.bench(
                    makespan.Options(small), server, work / "makespan", results_dir)),
                ("slow pulls", lambda: slow_pulls.bench(
                    slow_pulls.Options(small), server, work / "slow-pulls", results_dir)),
                ("naive baseline", lambda: baseline.bench(
                    makespan.Options(small), server, work / "baseline", results_dir)),
                ("API under load", lambda: api_load.bench(
                    api_load.Options(small), server, work / "api", results_dir)),
                ("follow mode: nodes joining", lambda: follow.bench(
                    follow.Options(small), server, work / "follow", results_dir)),
            ):  # fmt: skip
                t0 = time.monotonic()
                print(f"== {title}", flush=True)
                await bench()
                print(f"   ({time.monotonic() - t0:.0f}s)", flush=True)
        finally:
            server.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="the smoke-test sizes (seconds long)")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README tables")
    p.add_argument(
        "--table-only", action="store_true", help="only rebuild the table from existing results"
    )
    args = p.parse_args()
    t0 = time.monotonic()
    if not args.table_only:
        asyncio.run(run(args.small, args.results_dir))
    table = results_table(args.results_dir)
    print(table)
    if not args.no_readme:
        for path in update_readmes(table):
            print(f"  table written to {path.relative_to(ROOT)}")
    print(f"make bench: {time.monotonic() - t0:.0f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
