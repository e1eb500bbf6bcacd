"""How the client commands draw a task: the texts and bars `watch` shares with `get`, the
`get` view and the `list` table. Nothing here talks to the API."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from ips_client import TaskList, TaskStatus, TaskView
from ips_client.models import FailedNodeDetail, Pacing, TaskPhase
from rich.console import Console, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    TaskStatus.PENDING: "yellow",
    TaskStatus.RUNNING: "cyan",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.CANCELLED: "magenta",
}
LIST_COLUMNS = ("TASK ID", "STATUS", "IMAGES", "NODES", "PROGRESS", "AGE")

err_console = Console(stderr=True, highlight=False)


def done_nodes(view: TaskView) -> int:
    """Nodes with an outcome, as the API's percentage counts them."""
    progress = view.progress
    return progress.completed_nodes + progress.failed_nodes + progress.already_warm_nodes


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def fmt_time(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if dt else "—"


def elapsed(view: TaskView) -> float | None:
    if view.started_at is None:
        return None
    end = view.finished_at or datetime.now(UTC)
    return max(0.0, (end - view.started_at).total_seconds())


def failure_line(failure: FailedNodeDetail) -> str:
    image = f" {failure.image}" if failure.image else ""
    message = f": {failure.message}" if failure.message else ""
    return f"failed node {failure.node_name}{image} {failure.reason.value}{message}"


def counts_text(view: TaskView) -> str:
    progress = view.progress
    return (
        f"completed {progress.completed_nodes}  failed {progress.failed_nodes}  "
        f"skipped {progress.skipped_nodes}  already warm {progress.already_warm_nodes}"
    )


def following(view: TaskView) -> bool:
    return view.phase == TaskPhase.FOLLOWING


def phase_text(view: TaskView) -> str:
    """`following since 15:20:02Z, 7 nodes added` (follow mode), else the plain phase or ''."""
    if view.phase is None:
        return ""
    if view.phase == TaskPhase.FOLLOWING and view.following is not None:
        since = view.following.since.astimezone(UTC).strftime("%H:%M:%SZ")
        return f"following since {since}, {view.following.nodes_added} nodes added"
    return view.phase.value


def progress_text(view: TaskView, eta: float | None, show_eta: bool = True) -> str:
    progress = view.progress
    # While following there is no end to estimate: nodes keep joining.
    no_eta = view.status.is_final or not show_eta or following(view)
    eta_part = "" if no_eta else f"  ETA {fmt_duration(eta)}"
    return f"{progress.percentage:5.1f}%  {done_nodes(view)}/{progress.total_nodes} nodes{eta_part}"


def progress_bar(console: Console, view: TaskView, width: int) -> RenderableType:
    """Rich's bar on a colour terminal; `[####----]` where colour is off or NO_COLOR is set
    (Rich's bar is drawn in colour alone: without it, done and to-do look the same)."""
    total, done = max(view.progress.total_nodes, 1), done_nodes(view)
    if console.color_system is not None and not console.no_color:
        return ProgressBar(total=total, completed=done, width=width)
    filled = min(width - 2, round((width - 2) * done / total))
    return Text("[" + "#" * filled + "-" * (width - 2 - filled) + "]")


def batch_text(view: TaskView) -> str:
    text = f"batch {view.progress.current_batch}/{view.progress.total_batches}"
    window = window_text(view)
    return f"{text}  {window}" if window else text


def window_text(view: TaskView) -> str:
    """`window 4/10`: the Jobs kept in flight at most now (halved on a registry's 429s) over
    the task's limit, `window 10/10 fixed` with `pacing: fixed` (it never moves); empty for
    tasks from before the registry preflight."""
    window = view.progress.in_flight_window
    if window is None:
        return ""
    fixed = " fixed" if view.pacing == Pacing.FIXED else ""
    return f"window {window}/{view.batch_size}{fixed}"


def final_text(view: TaskView) -> str:
    progress = view.progress
    words = {
        TaskStatus.COMPLETED: "completed",
        TaskStatus.FAILED: "FAILED",
        TaskStatus.CANCELLED: "cancelled",
    }
    text = (
        f"task {view.task_id} {words.get(view.status, view.status.value)}: "
        f"{done_nodes(view)}/{progress.total_nodes} nodes, {progress.completed_nodes} completed, "
        f"{progress.failed_nodes} failed, {progress.skipped_nodes} skipped, "
        f"{progress.already_warm_nodes} already warm, in {fmt_duration(elapsed(view))}"
    )
    if view.following is not None:
        text += f", {view.following.nodes_added} joined while following"
    if view.message:
        text += f" — {view.message}"
    return text


def status_text(status: TaskStatus) -> Text:
    return Text(status.value, style=f"bold {STATUS_STYLE.get(status, '')}")


def by_reason(view: TaskView) -> str:
    counts = Counter(failure.reason.value for failure in view.failed_node_details)
    return "  ".join(f"{reason} {count}" for reason, count in counts.most_common())


def failed_table(failures: list[FailedNodeDetail], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", expand=False, title_style="bold red")
    for column in ("NODE", "IMAGE", "REASON", "MESSAGE", "TIME"):
        table.add_column(column, overflow="fold" if column == "MESSAGE" else "ellipsis")
    for failure in failures:
        table.add_row(
            failure.node_name,
            failure.image or "—",
            failure.reason.value,
            failure.message,
            fmt_time(failure.timestamp),
        )
    return table


def render_task(view: TaskView, console: Console) -> None:
    """`ips get`: the spec, the progress, and every failed and skipped node."""
    progress = view.progress
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("Task", view.task_id)
    info.add_row("Status", status_text(view.status))
    if view.phase is not None:
        info.add_row("Phase", phase_text(view))
    if view.message:
        info.add_row("Message", view.message)
    info.add_row("Images", "\n".join(view.images))
    selector = ",".join(f"{key}={value}" for key, value in view.node_selector.items())
    info.add_row("Selector", selector or "(all nodes)")
    if view.node_names:
        info.add_row("Nodes", f"{len(view.node_names)} named")
    info.add_row(
        "Spec",
        f"batch size {view.batch_size}, strategy {view.strategy.value}, "
        f"timeout {view.timeout_seconds}s, pull policy {view.image_pull_policy.value}, "
        f"max failure ratio {view.max_failure_ratio:g}, "
        f"pin digests {'on' if view.pin_digests else 'off'}, pacing {view.pacing.value}",
    )
    if view.resolved_images:
        info.add_row("Resolved", "\n".join(f"{r.image} {r.digest}" for r in view.resolved_images))
    for warning in view.warnings:
        info.add_row("Warning", Text(warning, style="yellow"))
    if view.follow is not None:
        seconds = view.follow.duration_seconds
        info.add_row("Follow", f"for {fmt_duration(seconds)}" if seconds else "until cancelled")
    if view.following is not None:
        info.add_row(
            "Following",
            f"since {fmt_time(view.following.since)}, {view.following.nodes_added} nodes added",
        )
    info.add_row("Created", fmt_time(view.created_at))
    info.add_row("Started", fmt_time(view.started_at))
    info.add_row("Finished", fmt_time(view.finished_at))
    info.add_row("Elapsed", fmt_duration(elapsed(view)))
    bar = Table.grid(padding=(0, 2))
    bar.add_row(progress_bar(console, view, 40), progress_text(view, None, show_eta=False))
    info.add_row("Progress", bar)
    window = window_text(view)
    info.add_row(
        "Batch",
        f"{progress.current_batch}/{progress.total_batches}" + (f"  {window}" if window else ""),
    )
    info.add_row("Nodes", counts_text(view))
    if view.failed_node_details:
        info.add_row("Failures", Text(by_reason(view), style="red"))
    console.print(info)
    if view.failed_node_details:
        console.print()
        title = f"Failed nodes ({progress.failed_nodes})"
        console.print(failed_table(view.failed_node_details, title))
    if view.skipped_node_details:
        skipped = Table(
            title=f"Skipped nodes ({progress.skipped_nodes})",
            title_justify="left",
            title_style="bold",
        )
        for column in ("NODE", "REASON", "MESSAGE"):
            skipped.add_column(column, overflow="fold" if column == "MESSAGE" else "ellipsis")
        for node in view.skipped_node_details:
            skipped.add_row(node.node_name, node.reason.value, node.message)
        console.print()
        console.print(skipped)


def age(dt: datetime) -> str:
    """`3d`, `5h`, `12m` or `40s` since `dt`, as kubectl's AGE column."""
    seconds = max(0.0, (datetime.now(UTC) - dt).total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{suffix}"
    return f"{int(seconds)}s"


def render_list(page: TaskList, status: TaskStatus | None, offset: int) -> None:
    """`ips list`: one row a task, and where the next page starts."""
    console = Console(highlight=False)
    if not page.tasks:
        which = f" {status.value}" if status else ""
        console.print(f"no{which} tasks" + (f" at offset {offset}" if offset else ""))
        return
    rows = [
        (
            task.task_id,
            status_text(task.status),
            ", ".join(task.images[:2])
            + (f" +{len(task.images) - 2}" if len(task.images) > 2 else ""),
            f"{task.progress.completed_nodes}/{task.progress.total_nodes}",
            f"{task.progress.percentage:.1f}%",
            age(task.created_at),
        )
        for task in page.tasks
    ]
    widths = [
        max(len(title), *(len(str(row[column])) for row in rows))
        for column, title in enumerate(LIST_COLUMNS)
    ]
    images = LIST_COLUMNS.index("IMAGES")
    # Only IMAGES gives way on a narrow terminal; an ID, a status or a count is never cut.
    others = sum(width for column, width in enumerate(widths) if column != images)
    room = console.width - others - 2 * 5
    table = Table(box=None, pad_edge=False)
    for column, title in enumerate(LIST_COLUMNS):
        table.add_column(
            title,
            justify="right" if title in ("NODES", "PROGRESS") else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=max(10, min(room, widths[column])) if column == images else widths[column],
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    last = page.offset + len(page.tasks)
    footer = f"{page.offset + 1}-{last} of {page.total} tasks"
    if last < page.total:
        footer += f" (next page: --offset {last})"
    console.print(Text(footer, style="dim"))
