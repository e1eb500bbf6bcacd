"""The `ips` command: server components (dev, api, worker, sim) and client commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from common.settings import load_settings

app = typer.Typer(
    name="ips",
    help="Image Prewarm Service: pre-pull container images onto Kubernetes nodes, in batches.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def dev(
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            envvar="KUBECONFIG",
            help="Use this real cluster instead of the embedded simulated one (kubesim).",
        ),
    ] = None,
    nodes: Annotated[int, typer.Option(help="Nodes in the embedded simulated cluster.")] = 50,
    state_dir: Annotated[
        Path, typer.Option(help="Where Temporal's SQLite file and the kubeconfig live.")
    ] = Path(".ips"),
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port.")] = 8233,
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every component to answer.")
    ] = 60.0,
) -> None:
    """Run the whole stack locally: Temporal dev server, kubesim, worker and API.

    Reuses a Temporal server already answering on TEMPORAL_ADDRESS. State persists in
    --state-dir, so a restart keeps old tasks. Ctrl-C or SIGTERM stops every child.
    """
    from cli.dev import run_dev

    raise typer.Exit(
        run_dev(
            kubeconfig=kubeconfig,
            nodes=nodes,
            state_dir=state_dir,
            ui_port=ui_port,
            startup_timeout=startup_timeout,
        )
    )


@app.command()
def api() -> None:
    """Run the REST API in the foreground (SERVER_PORT); it only talks to Temporal."""
    load_settings()  # fail fast, naming the bad variable, before importing anything heavy
    from api.main import serve

    serve()


@app.command()
def worker() -> None:
    """Run the Temporal worker in the foreground; the only component that talks to Kubernetes."""
    load_settings()
    from worker.main import run

    run()


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def sim(ctx: typer.Context) -> None:
    """Run kubesim, the simulated Kubernetes cluster, in the foreground (`ips sim --help`)."""
    from kubesim.cli import main as sim_main

    raise typer.Exit(sim_main(list(ctx.args)))


from cli.client_commands import register_client_commands  # noqa: E402

register_client_commands(app)

if __name__ == "__main__":  # pragma: no cover
    app()
