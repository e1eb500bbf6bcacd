"""`ips sim`: run kubesim in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from kubesim.runtime import SimServer, write_kubeconfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ips sim",
        description="Run kubesim, a simulated Kubernetes cluster serving the real API over HTTP.",
    )
    p.add_argument(
        "--nodes",
        type=int,
        default=50,
        help="nodes, spread over the scenario's groups (default 50)",
    )
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: pick a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--kubeconfig-out",
        type=Path,
        default=None,
        help="write a kubeconfig here once listening (default: a temporary file)",
    )
    p.add_argument(
        "--scenario",
        type=Path,
        default=None,
        help="scenario file, YAML or JSON, or a built-in one by name: default, slow-pulls",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per real second (default 1; 100 makes a 100 s pull take 1 s)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for placement and jitter (default 0)")
    return p


async def _serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = SimServer(
        args.scenario,
        nodes=args.nodes,
        seed=args.seed,
        time_scale=args.time_scale,
        host=args.host,
        port=args.port,
    )
    url = await server.start()
    temp = args.kubeconfig_out is None
    path = args.kubeconfig_out or Path(tempfile.gettempdir()) / f"kubesim-{server.port}.kubeconfig"
    write_kubeconfig(path, url)
    print(
        f"kubesim: listening on {url} ({len(server.cluster.nodes)} nodes, time scale "
        f"{args.time_scale:g}, seed {args.seed})",
        flush=True,
    )
    print(f"kubesim: kubeconfig {path.resolve()}", flush=True)
    print(f"kubesim: try KUBECONFIG={path.resolve()} kubectl get nodes", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        if temp:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    print("kubesim: stopped", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.nodes < 0:
        print("ips sim: --nodes must be >= 0", file=sys.stderr)
        return 2
    if args.time_scale <= 0:
        print("ips sim: --time-scale must be > 0", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:  # a signal before the loop's handlers were installed
        return 0
    except (ValidationError, ValueError, OSError) as e:
        print(f"ips sim: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
