"""`ips schedule create|list|get|pause|resume|trigger|delete`: recurring prewarms on Temporal
Schedules, through the REST API (`ips_client`). Each run is an ordinary task:
`ips list --schedule <ID>` lists them, `ips watch <task ID>` follows one.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from ips_client import IPSClient, ScheduleView
from ips_client.schedule_models import Overlap
from ips_client.schedules import SCHEDULES_PATH, schedule_path
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.tasks import (
    LimitOpt,
    Output,
    OutputOpt,
    TokenOpt,
    UrlOpt,
    _print_json,
    api_client,
    task_fields,
)

app = typer.Typer(
    name="schedule",
    help="Recurring prewarms (Temporal Schedules); each run is an ordinary task.",
    no_args_is_help=True,
)

IdArg = Annotated[str, typer.Argument(help="The schedule ID (sched-...).")]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Why (shown in Temporal's UI).")]


def _when(time: str | None) -> str:
    return time or "-"


def render_schedule(view: ScheduleView, console: Console) -> None:
    when = f"cron {view.cron!r}" if view.cron else f"every {view.every}"
    state = "[yellow]paused[/]" if view.paused else "[green]active[/]"
    console.print(f"[bold]{escape(view.schedule_id)}[/]  {state}  {escape(when)}")
    console.print(
        f"timezone {escape(view.timezone)}  jitter {view.jitter or '-'}  "
        f"overlap {view.overlap.value}"
    )
    if view.note:
        console.print(f"note: {escape(view.note)}")
    task = view.task
    where = ",".join(f"{k}={v}" for k, v in task.node_selector.items()) or "all nodes"
    console.print(
        f"task: {escape(', '.join(task.images))} on {escape(where)}, batches of {task.batch_size}"
    )
    console.print(
        "next runs: " + (", ".join(f"{t:%Y-%m-%d %H:%M:%SZ}" for t in view.next_runs) or "-")
    )
    table = Table("TASK", "STATUS", "CREATED", title=f"last runs ({view.total_runs} in all)")
    for run in view.last_runs:
        table.add_row(run.task_id, run.status.value, f"{run.created_at:%Y-%m-%d %H:%M:%SZ}")
    console.print(table)


def create(
    image: Annotated[
        list[str], typer.Option("--image", "-i", help="Image to pull; repeat for several.")
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Nodes per batch.")],
    cron: Annotated[
        str | None, typer.Option("--cron", help="Cron expression, e.g. '0 */6 * * *'.")
    ] = None,
    every: Annotated[
        str | None, typer.Option("--every", help="Interval, e.g. 15m, 6h, 1h30m.")
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone.")] = "UTC",
    jitter: Annotated[
        str | None, typer.Option("--jitter", help="Random delay per run, up to e.g. 2m.")
    ] = None,
    overlap: Annotated[
        Overlap, typer.Option("--overlap", help="When a run is due while one still runs.")
    ] = Overlap.SKIP,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    selector: Annotated[
        list[str] | None, typer.Option("--selector", "-l", help="Node label key=value.")
    ] = None,
    toleration: Annotated[
        list[str] | None, typer.Option("--toleration", help="key=value:Effect, key:Effect, key.")
    ] = None,
    note: NoteOpt = None,
    output: OutputOpt = Output.TEXT,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a schedule and print its ID."""
    fields: dict[str, Any] = {
        **task_fields(image, batch_size, selector, toleration),
        "timezone": timezone,
        "overlap": overlap,
        "paused": paused,
    }
    for key, value in (("cron", cron), ("every", every), ("jitter", jitter), ("note", note)):
        if value is not None:
            fields[key] = value
    with api_client(url, token) as client:
        created = client.create_schedule(**fields)
        if output == Output.JSON:
            _print_json(created.model_dump(mode="json", by_alias=True))
            return
        sys.stdout.write(created.schedule_id + "\n")


def list_schedules(
    limit: LimitOpt = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Schedules to skip.")] = 0,
    output: OutputOpt = Output.TEXT,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List schedules, newest first."""
    with api_client(url, token) as client:
        if output == Output.JSON:
            params = {"limit": limit, "offset": offset}
            _print_json(client.request("GET", SCHEDULES_PATH, params=params))
            return
        page = client.list_schedules(limit=limit, offset=offset)
    table = Table("SCHEDULE", "STATE", "WHEN", "IMAGES", "NEXT RUN")
    for s in page.schedules:
        when = f"cron {s.cron}" if s.cron else f"every {s.every}"
        table.add_row(
            s.schedule_id,
            "paused" if s.paused else "active",
            f"{when} ({s.timezone})",
            ", ".join(s.images),
            _when(f"{s.next_run:%Y-%m-%d %H:%M:%SZ}" if s.next_run else None),
        )
    Console(highlight=False).print(table)
    sys.stdout.write(f"{len(page.schedules)} of {page.total} schedule(s)\n")


def _show(client: IPSClient, view: ScheduleView, output: Output) -> None:
    if output == Output.JSON:
        _print_json(client.request("GET", schedule_path(view.schedule_id)))
    else:
        render_schedule(view, Console(highlight=False))


def get(schedule_id: IdArg, output: OutputOpt = Output.TEXT, url: UrlOpt = None,
        token: TokenOpt = None) -> None:  # fmt: skip
    """Show a schedule: its spec, the next 5 runs and the last runs with their tasks."""
    with api_client(url, token) as client:
        _show(client, client.get_schedule(schedule_id), output)


def pause(schedule_id: IdArg, note: NoteOpt = None, url: UrlOpt = None,
          token: TokenOpt = None) -> None:  # fmt: skip
    """Pause a schedule (no run starts until resumed)."""
    with api_client(url, token) as client:
        client.pause_schedule(schedule_id, note)
        sys.stdout.write(f"{schedule_id} paused\n")


def resume(schedule_id: IdArg, note: NoteOpt = None, url: UrlOpt = None,
           token: TokenOpt = None) -> None:  # fmt: skip
    """Resume a paused schedule."""
    with api_client(url, token) as client:
        client.resume_schedule(schedule_id, note)
        sys.stdout.write(f"{schedule_id} resumed\n")


def trigger(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Run a schedule now; the run shows in `ips list --schedule <ID>`."""
    with api_client(url, token) as client:
        client.trigger_schedule(schedule_id)
        sys.stdout.write(f"{schedule_id}: run requested (ips list --schedule {schedule_id})\n")


def delete(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a schedule; its runs still going are cancelled."""
    with api_client(url, token) as client:
        result = client.delete_schedule(schedule_id)
        sys.stdout.write(f"{schedule_id}: {result.message}\n")


app.command()(create)
app.command("list")(list_schedules)
app.command()(get)
app.command()(pause)
app.command()(resume)
app.command()(trigger)
app.command()(delete)


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="schedule", rich_help_panel="Client")
