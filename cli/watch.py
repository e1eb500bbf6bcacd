"""`ips watch` (and `create --watch`): poll a task to its end and draw it, as a live view on a
terminal or as plain lines elsewhere; ride out an API outage for a while."""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ips_client import IPSClient, ServiceUnavailable, TaskStatus, TaskView
from ips_client.models import FailedNodeDetail
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli.exit_codes import Exit, exit_code_for
from cli.render import (
    STATUS_STYLE,
    batch_text,
    by_reason,
    counts_text,
    done_nodes,
    elapsed,
    err_console,
    failure_line,
    final_text,
    fmt_duration,
    phase_text,
    progress_bar,
    progress_text,
    status_text,
)

# Off a TTY an unchanged task still gets a line this often, so a CI log shows the watch is alive.
PLAIN_HEARTBEAT_SECONDS = 30.0
# A task pending this long has not been picked up by any worker: say so.
PENDING_HINT_SECONDS = 30.0

FailureKey = tuple[str, str | None, str]


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
        (first_at, first_done), (last_at, last_done) = self.samples[0], self.samples[-1]
        if last_at <= first_at or last_done <= first_done:
            return None
        return (last_done - first_done) / (last_at - first_at)

    def eta(self, remaining: int) -> float | None:
        if remaining <= 0:
            return 0.0
        rate = self.rate()
        return None if rate is None else remaining / rate


def failure_key(failure: FailedNodeDetail) -> FailureKey:
    return (failure.node_name, failure.image, failure.reason.value)


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
        for failure in failures:
            self.console.print(
                Text(failure_line(failure), style="red"),
                no_wrap=True,
                overflow="ellipsis",
                crop=True,
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
        phase = phase_text(view)
        head = Text.assemble(
            ("task ", "dim"),
            (view.task_id, "bold"),
            "  ",
            status_text(view.status),
            (f"  {phase}" if phase else "", "bold cyan"),
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
        for preflight in view.warnings:  # one line each, cut to the width
            parts.append(Text(preflight, style="yellow", no_wrap=True, overflow="ellipsis"))
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
        self.warned: set[str] = set()

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
        for failure in failures:
            self.emit(failure_line(failure))

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
        for warning in view.warnings:
            if warning not in self.warned:
                self.warned.add(warning)
                self.emit(f"warning: {warning}")
        progress = view.progress
        phase = phase_text(view)
        state = (
            view.status,
            phase,
            progress.total_nodes,
            done_nodes(view),
            progress.skipped_nodes,
            progress.current_batch,
            progress.total_batches,
            progress.in_flight_window,
        )
        now = time.monotonic()
        if state == self.last_state and now - self.last_line_at < PLAIN_HEARTBEAT_SECONDS:
            return
        self.last_state, self.last_line_at = state, now
        shown = f"{view.status.value} ({phase})" if phase else view.status.value
        self.emit(
            f"{view.task_id} {shown}  {progress_text(view, eta).strip()}  "
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
    screen: LiveView | PlainView = LiveView(console) if tty else PlainView()
    estimator = RateEstimator()
    seen: set[FailureKey] = set()
    down_since: float | None = None
    pending_since: float | None = None
    view: TaskView | None = None
    try:
        with screen:
            while True:
                polled_at = time.monotonic()
                try:
                    view = client.get(task_id)
                except ServiceUnavailable as err:
                    down_since = down_since or polled_at
                    if polled_at - down_since >= give_up_after:
                        raise
                    screen.unavailable(
                        f"API unavailable for {fmt_duration(polled_at - down_since)}, "
                        f"retrying: {err}"
                    )
                else:
                    down_since = None
                    fresh = [
                        failure
                        for failure in view.failed_node_details
                        if failure_key(failure) not in seen
                    ]
                    seen.update(failure_key(failure) for failure in fresh)
                    if fresh:
                        screen.new_failures(sorted(fresh, key=lambda failure: failure.timestamp))
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
                    screen.update(view, eta, estimator.rate(), note)
                    if view.status.is_final:
                        break
                time.sleep(max(0.0, interval - (time.monotonic() - polled_at)))
    except KeyboardInterrupt:
        err_console.print(
            f"stopped watching; task {task_id} keeps running (resume: ips watch {task_id})"
        )
        return Exit.INTERRUPTED
    assert view is not None
    screen.finish(view)
    return exit_code_for(view)
