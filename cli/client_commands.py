"""The client commands (create, get, list, cancel, watch) when `ips_client` is installed, and
stand-ins that say how to install it when it is not.

`ips_client` is its own distribution (client/python) and an optional extra of `ips`
(`ips[client]`): a plain `pip install .` gives working `ips api`, `ips worker`, `ips sim` and
`ips dev`, and `ips create` then explains what to install instead of crashing `ips` at import.
The container image installs both wheels, so every command works there (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable

import typer

CLIENT_COMMANDS = ("create", "get", "list", "cancel", "watch", "schedule")
# `command not found` in shells: not one of the client's documented exit codes (docs/cli.md).
EXIT_CLIENT_MISSING = 127
INSTALL_HINT = (
    "the client commands need the ips-client distribution, which is not installed. Install it "
    "from this repository, e.g. pip install ./client/python, or both together: "
    "pip install ./client/python '.[client]' (docs/deploy.md)"
)


def client_available() -> bool:
    try:
        import ips_client  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name != "ips_client":
            raise
        return False
    return True


def _stand_in(name: str) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        typer.echo(f"ips {name}: {INSTALL_HINT}", err=True)
        raise typer.Exit(EXIT_CLIENT_MISSING)

    command.__doc__ = f"(not installed) {name}: needs the ips-client distribution."
    return command


def register_client_commands(app: typer.Typer) -> None:
    """The real client commands, or a stand-in for each that names what to install."""
    if client_available():
        from cli import schedules, tasks

        tasks.register(app)
        schedules.register(app)
        return
    for name in CLIENT_COMMANDS:
        app.command(
            name,
            rich_help_panel="Client",
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            add_help_option=False,
        )(_stand_in(name))
