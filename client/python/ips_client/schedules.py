"""The schedule calls (/api/v1/schedules) of `IPSClient` and `AsyncIPSClient`.

    sid = ips.create_schedule(images=["nginx:1.27"], batch_size=10, every="6h").schedule_id
    ips.pause_schedule(sid); ips.resume_schedule(sid); ips.trigger_schedule(sid)
    runs = ips.list(schedule_id=sid)  # each run is an ordinary task
    ips.delete_schedule(sid)          # and its runs still going are cancelled

Mixins over the clients' `request`, so the sync and async calls share one body builder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ips_client._core import create_body, decode, list_params, resource_path, validated_body
from ips_client.models import TaskSpec
from ips_client.schedule_models import (
    ScheduleCreate,
    ScheduleCreated,
    ScheduleList,
    SchedulePatch,
    ScheduleView,
    TriggerResult,
)

SCHEDULES_PATH = "/api/v1/schedules"
_WHEN = ("cron", "every", "timezone", "jitter", "overlap", "paused", "note")


def schedule_path(schedule_id: str, suffix: str = "") -> str:
    return resource_path(SCHEDULES_PATH, "schedule", schedule_id, suffix)


def schedule_body(
    spec: TaskSpec | Mapping[str, Any] | None, fields: dict[str, Any]
) -> dict[str, Any]:
    """POST body: `cron`/`every`/`timezone`/`jitter`/`overlap`/`paused`/`note` plus the task,
    given as a TaskSpec, a camelCase mapping, or task keyword fields (images=..., ...)."""
    when = {k: fields.pop(k) for k in _WHEN if k in fields}
    return validated_body(ScheduleCreate, {"task": create_body(spec, fields), **when})


def patch_body(changes: dict[str, Any]) -> dict[str, Any]:
    return validated_body(SchedulePatch, changes)


class ScheduleCalls:
    """Blocking schedule calls (mixed into IPSClient)."""

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        raise NotImplementedError  # the client's own

    def create_schedule(
        self, spec: TaskSpec | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ScheduleCreated:
        """`create_schedule(images=[...], batch_size=10, cron="0 3 * * *", timezone=...)`."""
        data = self.request("POST", SCHEDULES_PATH, json=schedule_body(spec, dict(fields)))
        return decode(ScheduleCreated, data)

    def get_schedule(self, schedule_id: str) -> ScheduleView:
        return decode(ScheduleView, self.request("GET", schedule_path(schedule_id)))

    def list_schedules(self, limit: int | None = None, offset: int | None = None) -> ScheduleList:
        params = list_params(None, limit, offset)
        return decode(ScheduleList, self.request("GET", SCHEDULES_PATH, params=params))

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleView:
        """Change any of task, cron, every, timezone, jitter, overlap, paused, note."""
        body = patch_body(changes)
        return decode(ScheduleView, self.request("PATCH", schedule_path(schedule_id), json=body))

    def pause_schedule(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return self.update_schedule(schedule_id, paused=True, **({"note": note} if note else {}))

    def resume_schedule(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return self.update_schedule(schedule_id, paused=False, **({"note": note} if note else {}))

    def trigger_schedule(self, schedule_id: str) -> TriggerResult:
        data = self.request("POST", schedule_path(schedule_id, "/trigger"))
        return decode(TriggerResult, data)

    def delete_schedule(self, schedule_id: str) -> TriggerResult:
        """Delete it; its runs still going are cancelled."""
        return decode(TriggerResult, self.request("DELETE", schedule_path(schedule_id)))


class AsyncScheduleCalls:
    """The same calls for AsyncIPSClient."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        raise NotImplementedError  # the client's own

    async def create_schedule(
        self, spec: TaskSpec | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ScheduleCreated:
        data = await self.request("POST", SCHEDULES_PATH, json=schedule_body(spec, dict(fields)))
        return decode(ScheduleCreated, data)

    async def get_schedule(self, schedule_id: str) -> ScheduleView:
        return decode(ScheduleView, await self.request("GET", schedule_path(schedule_id)))

    async def list_schedules(
        self, limit: int | None = None, offset: int | None = None
    ) -> ScheduleList:
        params = list_params(None, limit, offset)
        return decode(ScheduleList, await self.request("GET", SCHEDULES_PATH, params=params))

    async def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleView:
        body = patch_body(changes)
        data = await self.request("PATCH", schedule_path(schedule_id), json=body)
        return decode(ScheduleView, data)

    async def pause_schedule(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return await self.update_schedule(
            schedule_id, paused=True, **({"note": note} if note else {})
        )

    async def resume_schedule(self, schedule_id: str, note: str | None = None) -> ScheduleView:
        return await self.update_schedule(
            schedule_id, paused=False, **({"note": note} if note else {})
        )

    async def trigger_schedule(self, schedule_id: str) -> TriggerResult:
        data = await self.request("POST", schedule_path(schedule_id, "/trigger"))
        return decode(TriggerResult, data)

    async def delete_schedule(self, schedule_id: str) -> TriggerResult:
        return decode(TriggerResult, await self.request("DELETE", schedule_path(schedule_id)))
