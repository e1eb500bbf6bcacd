"""The client commands' exit codes (docs/cli.md).

`watch` and `create --watch` end 0 when the task completed with no failed node, 1 when it
completed with failed nodes, 2 when it failed, 3 when it was cancelled. Every command ends 4
when the API refused the request (400, 401, 404, 409), 5 when the API was unavailable or
unreachable, 130 when interrupted, 141 when stdout's reader went away.
"""

from __future__ import annotations

from enum import IntEnum

from ips_client import TaskStatus, TaskView


class Exit(IntEnum):
    OK = 0
    COMPLETED_WITH_FAILURES = 1
    TASK_FAILED = 2
    TASK_CANCELLED = 3
    API_ERROR = 4
    API_UNAVAILABLE = 5
    INTERRUPTED = 130
    BROKEN_PIPE = 141


def exit_code_for(view: TaskView) -> Exit:
    """How a finished task ends `watch`."""
    if view.status == TaskStatus.COMPLETED:
        return Exit.COMPLETED_WITH_FAILURES if view.progress.failed_nodes else Exit.OK
    if view.status == TaskStatus.FAILED:
        return Exit.TASK_FAILED
    return Exit.TASK_CANCELLED
