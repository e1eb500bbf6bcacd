"""A benchmark's result: bench/results/<name>.json with the run's date, commit and machine, a PNG
plot of progress over time when matplotlib is importable (the `bench` extra; `make test` does not
install it), and the figures the results state (percentiles, the ideal batch curve)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memoryGiB": round(psutil.virtual_memory().total / 1024**3, 1),
        # Other work on the machine skews every figure: the load when this result was written.
        "loadAverage": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(name: str, data: dict[str, Any], results_dir: Path | None = None) -> Path:
    """bench/results/<name>.json with the run's date, commit and machine."""
    out_dir = results_dir or RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    body = {
        "name": name,
        "generatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git_commit(),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def plot_progress(
    path: Path,
    title: str,
    series: dict[str, list[tuple[float, int]]],
    ideal: dict[str, list[tuple[float, int]]] | None = None,
    total: int | None = None,
    ylabel: str = "nodes done",
) -> Path | None:
    """Nodes done over time (one line per run) against the ideal curve(s); None without
    matplotlib (the JSON is the result; the plot is a view of it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  (matplotlib not installed: no plot {path.name}; `pip install -e '.[bench]'`)")
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for label, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="post", label=label, linewidth=1.6)
    for label, points in (ideal or {}).items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, linestyle="--", linewidth=1.2, label=label)
    if total:
        ax.axhline(total, color="grey", linewidth=0.6)
    ax.set_xlabel("seconds since the start (wall clock)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def ideal_batch_curve(nodes: int, batch: int, pull: float) -> list[tuple[float, int]]:
    """Batches of `batch` nodes, each done exactly `pull` seconds after the previous one."""
    points = [(0.0, 0)]
    done = 0
    k = 0
    while done < nodes:
        k += 1
        points.append((k * pull, done))
        done = min(nodes, done + batch)
        points.append((k * pull, done))
    return points


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
