"""The `ips` client commands: create, get, list, cancel, watch. They talk to the REST API only,
through `ips_client`, at IPS_URL with the optional IPS_TOKEN. Exit codes: cli/exit_codes.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer
from ips_client import (
    TASKS_PATH,
    Forbidden,
    IPSClient,
    IPSError,
    ServiceUnavailable,
    TaskStatus,
    Unauthorized,
    task_path,
)
from ips_client._core import list_params
from ips_client.models import ImagePullPolicy, Pacing, Strategy, TaintEffect
from rich.console import Console
from rich.markup import escape

from cli.exit_codes import Exit
from cli.render import err_console, render_list, render_task
from cli.watch import follow


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


# --------------------------------------------------------------------------------------------
# Options shared by every command
# --------------------------------------------------------------------------------------------

UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="IPS_URL",
        show_envvar=True,
        show_default=False,
        help="IPS API base URL (default http://localhost:8080).",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="IPS_TOKEN",
        show_envvar=True,
        show_default=False,
        help="Bearer token for the API. Prefer the env var: a flag shows in `ps`.",
    ),
]
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=100, help="Page size.")]
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="text for people, json for the raw API body.")
]
IntervalOpt = Annotated[
    float,
    typer.Option("--interval", min=1.0, help="Seconds between refreshes (at least 1)."),
]
GiveUpOpt = Annotated[
    float,
    typer.Option(
        "--give-up-after",
        min=0.0,
        help="Keep watching through an API outage for this many seconds, then exit 5.",
    ),
]


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Every API or connection error becomes one line on stderr and an exit code."""
    try:
        yield
    except ServiceUnavailable as err:  # 429 too: retry later
        _fail(str(err), Exit.API_UNAVAILABLE)
    except Forbidden as err:  # a role or the operator's policy: a token change may not help
        _fail(str(err), Exit.API_ERROR)
    except Unauthorized as err:
        _fail(f"{err} — set IPS_TOKEN to a token the API accepts", Exit.API_ERROR)
    except IPSError as err:
        _fail(str(err), Exit.API_ERROR)
    except ValueError as err:  # a malformed IPS_URL
        _fail(str(err), Exit.API_ERROR)
    except BrokenPipeError:
        # `ips list | head -1`: the reader has gone; leave quietly, as `cat` does.
        with contextlib.suppress(OSError, ValueError):  # no real stdout (tests)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(Exit.BROKEN_PIPE) from None


def _fail(message: str, code: Exit) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _client(url: str | None, token: str | None) -> IPSClient:
    return IPSClient(url, token)


@contextlib.contextmanager
def api_client(url: str | None, token: str | None) -> Iterator[IPSClient]:
    """Every command's client: opened and used under api_errors(), closed at the end."""
    with api_errors(), _client(url, token) as client:
        yield client


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# Parsing of flag values
# --------------------------------------------------------------------------------------------


def parse_selector(values: list[str]) -> dict[str, str]:
    """`key=value`, repeatable or comma-separated (as kubectl -l). Label rules are the API's."""
    out: dict[str, str] = {}
    for raw in values:
        for item in filter(None, (part.strip() for part in raw.split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise typer.BadParameter(
                    f"{item!r}: expected key=value, e.g. workload=compute", param_hint="--selector"
                )
            out[key.strip()] = value.strip()
    return out


def parse_toleration(raw: str) -> dict[str, Any]:
    """kubectl's taint syntax: `key=value:Effect` (Equal), `key:Effect` or `key` (Exists)."""
    body, sep, effect = raw.rpartition(":") if ":" in raw else (raw, "", "")
    out: dict[str, Any] = {}
    if sep:
        try:
            out["effect"] = TaintEffect(effect).value
        except ValueError:
            allowed = ", ".join(known.value for known in TaintEffect)
            raise typer.BadParameter(
                f"{raw!r}: effect must be one of {allowed}", param_hint="--toleration"
            ) from None
    key, eq, value = body.partition("=")
    if not key:
        raise typer.BadParameter(
            f"{raw!r}: expected key=value:Effect, key:Effect or key", param_hint="--toleration"
        )
    out["key"] = key
    if eq:
        out.update(operator="Equal", value=value)
    else:
        out["operator"] = "Exists"
    return out


def task_fields(
    image: list[str], batch_size: int, selector: list[str] | None, toleration: list[str] | None
) -> dict[str, Any]:
    """The task keyword fields every create command builds from its flags (ips create and
    ips schedule create)."""
    return {
        "images": image,
        "batch_size": batch_size,
        "node_selector": parse_selector(selector or []),
        "tolerations": [parse_toleration(raw) for raw in toleration or []],
    }


def follow_option(value: str) -> dict[str, int]:
    """`--follow 3600` -> {"duration_seconds": 3600}; `--follow forever` -> {} (the API checks
    the range and answers a 400 naming follow.durationSeconds)."""
    if value.strip().lower() == "forever":
        return {}
    try:
        return {"duration_seconds": int(value)}
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: a number of seconds, or 'forever'", param_hint="--follow"
        ) from None


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def create(
    image: Annotated[
        list[str],
        typer.Option("--image", "-i", help="Image to pull; repeat for several (1-50)."),
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Nodes per batch (1-100).")],
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector", "-l", help="Node label key=value; repeat or comma-separate. All nodes."
        ),
    ] = None,
    node: Annotated[
        list[str] | None,
        typer.Option("--node", help="Only this node; repeat for several."),
    ] = None,
    pull_secret: Annotated[
        list[str] | None,
        typer.Option("--pull-secret", help="imagePullSecret name for private registries."),
    ] = None,
    toleration: Annotated[
        list[str] | None,
        typer.Option(
            "--toleration",
            help="Tolerate a taint: key=value:Effect, key:Effect or key. Repeatable.",
        ),
    ] = None,
    timeout: Annotated[
        int, typer.Option("--timeout", help="Per-node deadline in seconds (30-7200).")
    ] = 600,
    strategy: Annotated[
        Strategy, typer.Option("--strategy", help="batch: wait per batch; rolling: a window.")
    ] = Strategy.BATCH,
    pull_policy: Annotated[
        ImagePullPolicy, typer.Option("--pull-policy", help="Always re-pulls even warm nodes.")
    ] = ImagePullPolicy.IF_NOT_PRESENT,
    max_failure_ratio: Annotated[
        float,
        typer.Option("--max-failure-ratio", help="Fail the task above this failed-node ratio."),
    ] = 1.0,
    pin_digests: Annotated[
        bool,
        typer.Option(
            "--pin-digests/--no-pin-digests",
            help="Pull name@sha256:... as the registry resolved it (default), or the tags.",
        ),
    ] = True,
    pacing: Annotated[
        Pacing,
        typer.Option(
            "--pacing",
            help="adaptive: a registry's 429 halves the Jobs in flight (default); "
            "fixed: always --batch-size in flight (429'd pods just retry).",
        ),
    ] = Pacing.ADAPTIVE,
    follow_for: Annotated[
        str | None,
        typer.Option(
            "--follow",
            metavar="SECONDS|forever",
            help="After the first sweep, keep prewarming nodes that join or become eligible: "
            "for SECONDS (10-604800), or 'forever' (until cancelled).",
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the task to its end (as ips watch).")
    ] = False,
    output: OutputOpt = Output.TEXT,
    interval: IntervalOpt = 1.0,
    give_up_after: GiveUpOpt = 300.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Start a prewarm task and print its ID (with --watch, follow it: exit codes as watch)."""
    fields: dict[str, Any] = {
        **task_fields(image, batch_size, selector, toleration),
        "image_pull_secrets": pull_secret or [],
        "timeout_seconds": timeout,
        "strategy": strategy,
        "image_pull_policy": pull_policy,
        "max_failure_ratio": max_failure_ratio,
    }
    if node:
        fields["node_names"] = node
    if not pin_digests:  # sent only when off: an API from before it rejects unknown fields
        fields["pin_digests"] = False
    if pacing != Pacing.ADAPTIVE:  # likewise sent only when not the default
        fields["pacing"] = pacing
    if follow_for is not None:
        fields["follow"] = follow_option(follow_for)
    with api_client(url, token) as client:
        created = client.create(**fields)
        if output == Output.JSON:
            _print_json(created.model_dump(mode="json", by_alias=True))
        else:
            sys.stdout.write(created.task_id + "\n")
            sys.stdout.flush()
            if not watch and sys.stdout.isatty():  # a person, not `TASK=$(ips create ...)`
                err_console.print(f"[dim]follow it: ips watch {created.task_id}[/]")
        if watch:
            code = follow(client, created.task_id, interval=interval, give_up_after=give_up_after)
            raise typer.Exit(code)


def get(
    task_id: Annotated[str, typer.Argument(help="The task ID (task-...).")],
    output: OutputOpt = Output.TEXT,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show a task: status, progress, counts, failed and skipped nodes."""
    with api_client(url, token) as client:
        if output == Output.JSON:
            _print_json(client.request("GET", task_path(task_id)))
            return
        render_task(client.get(task_id), Console(highlight=False))


def list_tasks(
    status: Annotated[
        TaskStatus | None, typer.Option("--status", "-s", help="Only tasks in this status.")
    ] = None,
    limit: LimitOpt = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Tasks to skip.")] = 0,
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Only the runs of this schedule.")
    ] = None,
    output: OutputOpt = Output.TEXT,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List tasks, newest first."""
    with api_client(url, token) as client:
        if output == Output.JSON:
            params = list_params(status, limit, offset, schedule)
            _print_json(client.request("GET", TASKS_PATH, params=params))
            return
        page = client.list(status=status, limit=limit, offset=offset, schedule_id=schedule)
        render_list(page, status, offset)


def cancel(
    task_id: Annotated[str, typer.Argument(help="The task ID (task-...).")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Cancel a task: running Jobs are cleaned up and it ends `cancelled`."""
    with api_client(url, token) as client:
        result = client.cancel(task_id)
        sys.stdout.write(f"{result.task_id} {result.status}: {result.message}\n")


def watch(
    task_id: Annotated[str, typer.Argument(help="The task ID (task-...).")],
    interval: IntervalOpt = 1.0,
    give_up_after: GiveUpOpt = 300.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Follow a task live. Exit 0 completed, 1 completed with failed nodes, 2 failed,
    3 cancelled. Ctrl-C stops watching; it never cancels the task."""
    with api_client(url, token) as client:
        code = follow(client, task_id, interval=interval, give_up_after=give_up_after)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `ips` app."""
    app.command(rich_help_panel="Client")(create)
    app.command(rich_help_panel="Client")(get)
    app.command("list", rich_help_panel="Client")(list_tasks)
    app.command(rich_help_panel="Client")(cancel)
    app.command(rich_help_panel="Client")(watch)
