"""Task IDs: `task-YYYYMMDD-HHMMSS-<8 hex>`, also the ID of the task's workflow."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from api.errors import TaskNotFound

TASK_ID_RE = re.compile(r"task-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")  # fullmatch, ASCII digits


def new_task_id(now: datetime) -> str:
    """`task-YYYYMMDD-HHMMSS-<8 hex>` in UTC, the original service's format."""
    return f"task-{now.astimezone(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def check_task_id(task_id: str) -> None:
    """TaskNotFound (404) for a malformed ID; checked before Temporal is asked, so a bad ID is a
    404 even while Temporal is down."""
    if not TASK_ID_RE.fullmatch(task_id):
        raise TaskNotFound(task_id)
