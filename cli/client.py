"""The `ips` client commands: create, get, list, cancel, watch. They talk to the REST API only,
through `ips_client`, at IPS_URL with the optional IPS_TOKEN.

Exit codes (docs/cli.md): `watch` and `create --watch` end 0 when the task completed with no
failed node, 1 when it completed with failed nodes, 2 when it failed, 3 when it was cancelled.
Every command ends 4 when the API refused the request (400, 401, 404, 409), 5 when the API was
unavailable or unreachable, 130 when interrupted, 141 when stdout's reader went away.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any

import typer
from ips_client import (
    TASKS_PATH,
    Forbidden,
    IPSClient,
    IPSError,
    ServiceUnavailable,
    TaskList,
    TaskStatus,
    TaskView,
    Unauthorized,
    task_path,
)
from ips_client.models import FailedNodeDetail, ImagePullPolicy, Strategy, TaintEffect
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text


class Exit(IntEnum):
    OK = 0
    COMPLETED_WITH_FAILURES = 1
    TASK_FAILED = 2
    TASK_CANCELLED = 3
    API_ERROR = 4
    API_UNAVAILABLE = 5
    INTERRUPTED = 130
    BROKEN_PIPE = 141


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


STATUS_STYLE = {
    TaskStatus.PENDING: "yellow",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "magenta",
}
# Off a TTY an unchanged task still gets a line this often, so a CI log shows the watch is alive.
PLAIN_HEARTBEAT_SECONDS = 30.0
# A task pending this long has not been picked up by any worker: say so.
PENDING_HINT_SECONDS = 30.0

err_console = Console(stderr=True, highlight=False)

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


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# Parsing of flag values
# --------------------------------------------------------------------------------------------


def parse_selector(values: list[str]) -> dict[str, str]:
    """`key=value`, repeatable or comma-separated (as kubectl -l). Label rules are the API's."""
    out: dict[str, str] = {}
    for raw in values:
        for item in filter(None, (p.strip() for p in raw.split(","))):
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
            allowed = ", ".join(e.value for e in TaintEffect)
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


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------


def done_nodes(view: TaskView) -> int:
    """Nodes with an outcome, as the API's percentage counts them."""
    p = view.progress
    return p.completed_nodes + p.failed_nodes + p.already_warm_nodes


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fmt_time(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if dt else "—"


def elapsed(view: TaskView) -> float | None:
    if view.started_at is None:
        return None
    end = view.finished_at or datetime.now(UTC)
    return max(0.0, (end - view.started_at).total_seconds())


def exit_code_for(view: TaskView) -> Exit:
    if view.status == TaskStatus.COMPLETED:
        return Exit.COMPLETED_WITH_FAILURES if view.progress.failed_nodes else Exit.OK
    if view.status == TaskStatus.FAILED:
        return Exit.TASK_FAILED
    return Exit.TASK_CANCELLED


@dataclass
class RateEstimator:
    """Nodes per second over the last `window` seconds of observations, and the ETA from it."""

    window: float = 60.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, done: int) -> None:
        self.samples.append((at, done))
        # Keep one sample at or before the window's start, so the rate spans the whole window.
        while len(self.samples) > 2 and self.samples[1][0] <= at - self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        if t1 <= t0 or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta(self, remaining: int) -> float | None:
        if remaining <= 0:
            return 0.0
        rate = self.rate()
        return None if rate is None else remaining / rate


def failure_key(f: FailedNodeDetail) -> tuple[str, str | None, str]:
    return (f.node_name, f.image, f.reason.value)


def failure_line(f: FailedNodeDetail) -> str:
    image = f" {f.image}" if f.image else ""
    message = f": {f.message}" if f.message else ""
    return f"failed node {f.node_name}{image} {f.reason.value}{message}"


def counts_text(view: TaskView) -> str:
    p = view.progress
    return (
        f"completed {p.completed_nodes}  failed {p.failed_nodes}  skipped {p.skipped_nodes}  "
        f"already warm {p.already_warm_nodes}"
    )


def progress_text(view: TaskView, eta: float | None, show_eta: bool = True) -> str:
    p = view.progress
    eta_part = "" if view.status.is_final or not show_eta else f"  ETA {fmt_duration(eta)}"
    return f"{p.percentage:5.1f}%  {done_nodes(view)}/{p.total_nodes} nodes{eta_part}"


def progress_bar(console: Console, view: TaskView, width: int) -> RenderableType:
    """Rich's bar on a colour terminal; `[####----]` where colour is off or NO_COLOR is set
    (Rich's bar is drawn in colour alone: without it, done and to-do look the same)."""
    total, done = max(view.progress.total_nodes, 1), done_nodes(view)
    if console.color_system is not None and not console.no_color:
        return ProgressBar(total=total, completed=done, width=width)
    filled = min(width - 2, round((width - 2) * done / total))
    return Text("[" + "#" * filled + "-" * (width - 2 - filled) + "]")


def batch_text(view: TaskView) -> str:
    return f"batch {view.progress.current_batch}/{view.progress.total_batches}"


def final_text(view: TaskView) -> str:
    p = view.progress
    words = {
        TaskStatus.COMPLETED: "completed",
        TaskStatus.FAILED: "FAILED",
        TaskStatus.CANCELLED: "cancelled",
    }
    text = (
        f"task {view.task_id} {words.get(view.status, view.status.value)}: "
        f"{done_nodes(view)}/{p.total_nodes} nodes, {p.completed_nodes} completed, "
        f"{p.failed_nodes} failed, {p.skipped_nodes} skipped, "
        f"{p.already_warm_nodes} already warm, in {fmt_duration(elapsed(view))}"
    )
    if view.message:
        text += f" — {view.message}"
    return text


def status_text(status: TaskStatus) -> Text:
    return Text(status.value, style=f"bold {STATUS_STYLE.get(status, '')}")


def by_reason(view: TaskView) -> str:
    counts = Counter(f.reason.value for f in view.failed_node_details)
    return "  ".join(f"{reason} {n}" for reason, n in counts.most_common())


def failed_table(failures: list[FailedNodeDetail], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", expand=False, title_style="bold red")
    for col in ("NODE", "IMAGE", "REASON", "MESSAGE", "TIME"):
        table.add_column(col, overflow="fold" if col == "MESSAGE" else "ellipsis")
    for f in failures:
        table.add_row(f.node_name, f.image or "—", f.reason.value, f.message, fmt_time(f.timestamp))
    return table


# --------------------------------------------------------------------------------------------
# watch: a live view on a terminal, plain lines elsewhere
# --------------------------------------------------------------------------------------------


class LiveView:
    """Rich Live, redrawn once per poll (never more than once a second: auto refresh is off)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, auto_refresh=False, redirect_stderr=False)
        self.outage: str | None = None
        self.last: tuple[TaskView, float | None, float | None, str | None] | None = None

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def new_failures(self, failures: list[FailedNodeDetail]) -> None:
        # Printed above the live region, so every failed node stays in the scrollback.
        # One line each, cut to the terminal's width: `ips get` has the full messages.
        for f in failures:
            self.console.print(
                Text(failure_line(f), style="red"), no_wrap=True, overflow="ellipsis", crop=True
            )

    def unavailable(self, message: str) -> None:
        self.outage = message
        if self.last is None:
            self.live.update(Text(message, style="bold yellow"), refresh=True)
        else:
            self.live.update(self.render(*self.last), refresh=True)

    def update(
        self, view: TaskView, eta: float | None, rate: float | None, note: str | None = None
    ) -> None:
        self.outage = None
        self.last = (view, eta, rate, note)
        self.live.update(self.render(view, eta, rate, note), refresh=True)

    def render(
        self, view: TaskView, eta: float | None, rate: float | None, note: str | None = None
    ) -> RenderableType:
        head = Text.assemble(
            ("task ", "dim"),
            (view.task_id, "bold"),
            "  ",
            status_text(view.status),
            ("  " + ", ".join(view.images), "dim"),
        )
        head.no_wrap, head.overflow = True, "ellipsis"
        bar = Table.grid(padding=(0, 2))
        bar.add_row(progress_bar(self.console, view, 50), progress_text(view, eta))
        speed = f"  {rate:.2f} nodes/s" if rate else ""
        line = f"{batch_text(view)}  {counts_text(view)}  elapsed {fmt_duration(elapsed(view))}"
        parts: list[RenderableType] = [head, bar, Text(line + speed)]
        if view.failed_node_details:
            # Each failed node was printed above as it appeared; here, the tally by reason.
            parts.append(Text(f"failures by reason: {by_reason(view)}", style="red"))
        for warning in (note, self.outage):
            if warning:
                parts.append(Text(warning, style="bold yellow"))
        return Group(*parts)

    def finish(self, view: TaskView) -> None:
        style = STATUS_STYLE.get(view.status, "")
        self.console.print(Text(final_text(view), style=f"bold {style}"), soft_wrap=True)


class PlainView:
    """Off a TTY: one line per change (at most one per poll), no escape codes."""

    def __init__(self) -> None:
        self.last_state: tuple[object, ...] | None = None
        self.last_line_at = 0.0
        self.in_outage = False
        self.last_note: str | None = None

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    @staticmethod
    def emit(line: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%SZ")
        sys.stdout.write(f"{stamp} {line}\n")
        sys.stdout.flush()

    def new_failures(self, failures: list[FailedNodeDetail]) -> None:
        for f in failures:
            self.emit(failure_line(f))

    def unavailable(self, message: str) -> None:
        if not self.in_outage:
            self.emit(message)
        self.in_outage = True

    def update(
        self, view: TaskView, eta: float | None, rate: float | None, note: str | None = None
    ) -> None:
        self.in_outage = False
        if note and not self.last_note:
            self.emit(note)  # once, not once a poll
        self.last_note = note
        p = view.progress
        state = (view.status, done_nodes(view), p.skipped_nodes, p.current_batch, p.total_batches)
        now = time.monotonic()
        if state == self.last_state and now - self.last_line_at < PLAIN_HEARTBEAT_SECONDS:
            return
        self.last_state, self.last_line_at = state, now
        self.emit(
            f"{view.task_id} {view.status.value}  {progress_text(view, eta).strip()}  "
            f"{batch_text(view)}  {counts_text(view)}"
        )

    def finish(self, view: TaskView) -> None:
        self.emit(final_text(view))


def follow(
    client: IPSClient,
    task_id: str,
    *,
    interval: float,
    give_up_after: float,
    console: Console | None = None,
) -> Exit:
    """Poll the task to its end, drawing it; Ctrl-C stops watching and leaves the task alone."""
    console = console or Console(highlight=False)
    tty = console.is_terminal and not console.is_dumb_terminal
    view_cls = LiveView(console) if tty else PlainView()
    estimator = RateEstimator()
    seen: set[tuple[str, str | None, str]] = set()
    down_since: float | None = None
    pending_since: float | None = None
    view: TaskView | None = None
    try:
        with view_cls as out:
            while True:
                polled_at = time.monotonic()
                try:
                    view = client.get(task_id)
                except ServiceUnavailable as err:
                    down_since = down_since or polled_at
                    if polled_at - down_since >= give_up_after:
                        raise
                    out.unavailable(
                        f"API unavailable for {fmt_duration(polled_at - down_since)}, "
                        f"retrying: {err}"
                    )
                else:
                    down_since = None
                    fresh = [f for f in view.failed_node_details if failure_key(f) not in seen]
                    seen.update(failure_key(f) for f in fresh)
                    if fresh:
                        out.new_failures(sorted(fresh, key=lambda f: f.timestamp))
                    estimator.add(polled_at, done_nodes(view))
                    total = view.progress.total_nodes
                    # Before the node listing there is nothing to estimate.
                    eta = estimator.eta(total - done_nodes(view)) if total else None
                    note = None
                    if view.status == TaskStatus.PENDING:
                        pending_since = pending_since or polled_at
                        if polled_at - pending_since >= PENDING_HINT_SECONDS:
                            note = (
                                f"still pending after {fmt_duration(polled_at - pending_since)}:"
                                " no worker has started it (is `ips worker` running, on the"
                                " API's TEMPORAL_TASK_QUEUE?)"
                            )
                    out.update(view, eta, estimator.rate(), note)
                    if view.status.is_final:
                        break
                time.sleep(max(0.0, interval - (time.monotonic() - polled_at)))
    except KeyboardInterrupt:
        err_console.print(
            f"stopped watching; task {task_id} keeps running (resume: ips watch {task_id})"
        )
        return Exit.INTERRUPTED
    assert view is not None
    out.finish(view)
    return exit_code_for(view)


# --------------------------------------------------------------------------------------------
# get / list rendering
# --------------------------------------------------------------------------------------------


def render_task(view: TaskView, console: Console) -> None:
    p = view.progress
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("Task", view.task_id)
    info.add_row("Status", status_text(view.status))
    if view.message:
        info.add_row("Message", view.message)
    info.add_row("Images", "\n".join(view.images))
    selector = ",".join(f"{k}={v}" for k, v in view.node_selector.items()) or "(all nodes)"
    info.add_row("Selector", selector)
    if view.node_names:
        info.add_row("Nodes", f"{len(view.node_names)} named")
    info.add_row(
        "Spec",
        f"batch size {view.batch_size}, strategy {view.strategy.value}, "
        f"timeout {view.timeout_seconds}s, pull policy {view.image_pull_policy.value}, "
        f"max failure ratio {view.max_failure_ratio:g}",
    )
    info.add_row("Created", fmt_time(view.created_at))
    info.add_row("Started", fmt_time(view.started_at))
    info.add_row("Finished", fmt_time(view.finished_at))
    info.add_row("Elapsed", fmt_duration(elapsed(view)))
    bar = Table.grid(padding=(0, 2))
    bar.add_row(progress_bar(console, view, 40), progress_text(view, None, show_eta=False))
    info.add_row("Progress", bar)
    info.add_row("Batch", f"{p.current_batch}/{p.total_batches}")
    info.add_row("Nodes", counts_text(view))
    if view.failed_node_details:
        info.add_row("Failures", Text(by_reason(view), style="red"))
    console.print(info)
    if view.failed_node_details:
        console.print()
        console.print(failed_table(view.failed_node_details, f"Failed nodes ({p.failed_nodes})"))
    if view.skipped_node_details:
        skipped = Table(
            title=f"Skipped nodes ({p.skipped_nodes})", title_justify="left", title_style="bold"
        )
        for col in ("NODE", "REASON", "MESSAGE"):
            skipped.add_column(col, overflow="fold" if col == "MESSAGE" else "ellipsis")
        for s in view.skipped_node_details:
            skipped.add_row(s.node_name, s.reason.value, s.message)
        console.print()
        console.print(skipped)


def _age(dt: datetime) -> str:
    secs = max(0.0, (datetime.now(UTC) - dt).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit}"
    return f"{int(secs)}s"


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
        "images": image,
        "batch_size": batch_size,
        "node_selector": parse_selector(selector or []),
        "image_pull_secrets": pull_secret or [],
        "tolerations": [parse_toleration(t) for t in toleration or []],
        "timeout_seconds": timeout,
        "strategy": strategy,
        "image_pull_policy": pull_policy,
        "max_failure_ratio": max_failure_ratio,
    }
    if node:
        fields["node_names"] = node
    with api_errors(), _client(url, token) as client:
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
    with api_errors(), _client(url, token) as client:
        if output == Output.JSON:
            _print_json(client.request("GET", task_path(task_id)))
            return
        render_task(client.get(task_id), Console(highlight=False))


def list_tasks(
    status: Annotated[
        TaskStatus | None, typer.Option("--status", "-s", help="Only tasks in this status.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Page size.")] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Tasks to skip.")] = 0,
    output: OutputOpt = Output.TEXT,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """List tasks, newest first."""
    with api_errors(), _client(url, token) as client:
        if output == Output.JSON:
            params: dict[str, Any] = {"limit": limit, "offset": offset}
            if status is not None:
                params["status"] = status.value
            _print_json(client.request("GET", TASKS_PATH, params=params))
            return
        page = client.list(status=status, limit=limit, offset=offset)
        render_list(page, status, offset)


LIST_COLUMNS = ("TASK ID", "STATUS", "IMAGES", "NODES", "PROGRESS", "AGE")


def render_list(page: TaskList, status: TaskStatus | None, offset: int) -> None:
    console = Console(highlight=False)
    if not page.tasks:
        which = f" {status.value}" if status else ""
        console.print(f"no{which} tasks" + (f" at offset {offset}" if offset else ""))
        return
    rows = [
        (
            t.task_id,
            status_text(t.status),
            ", ".join(t.images[:2]) + (f" +{len(t.images) - 2}" if len(t.images) > 2 else ""),
            f"{t.progress.completed_nodes}/{t.progress.total_nodes}",
            f"{t.progress.percentage:.1f}%",
            _age(t.created_at),
        )
        for t in page.tasks
    ]
    console_width = console.width
    widths = [max(len(c), *(len(str(r[i])) for r in rows)) for i, c in enumerate(LIST_COLUMNS)]
    # Only IMAGES gives way on a narrow terminal; an ID, a status or a count is never cut.
    room = console_width - sum(w for i, w in enumerate(widths) if i != 2) - 2 * 5
    table = Table(box=None, pad_edge=False)
    for i, col in enumerate(LIST_COLUMNS):
        table.add_column(
            col,
            justify="right" if col in ("NODES", "PROGRESS") else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=max(10, min(room, widths[i])) if i == 2 else widths[i],
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    last = page.offset + len(page.tasks)
    footer = f"{page.offset + 1}-{last} of {page.total} tasks"
    if last < page.total:
        footer += f" (next page: --offset {last})"
    console.print(Text(footer, style="dim"))


def cancel(
    task_id: Annotated[str, typer.Argument(help="The task ID (task-...).")],
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Cancel a task: running Jobs are cleaned up and it ends `cancelled`."""
    with api_errors(), _client(url, token) as client:
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
    with api_errors(), _client(url, token) as client:
        code = follow(client, task_id, interval=interval, give_up_after=give_up_after)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the client commands to the `ips` app."""
    app.command(rich_help_panel="Client")(create)
    app.command(rich_help_panel="Client")(get)
    app.command("list", rich_help_panel="Client")(list_tasks)
    app.command(rich_help_panel="Client")(cancel)
    app.command(rich_help_panel="Client")(watch)
