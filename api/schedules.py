"""Schedules as Temporal sees them: each is a Temporal Schedule whose action is the launcher
workflow (workflows/launcher.py). The API keeps no state: the definition is the action's input,
the pause state and next run times are Temporal's, the runs are tasks found by IpsScheduleId.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ANONYMOUS, Principal, Role
from api.errors import ApiError, BadRequest, Forbidden, describe_validation_errors
from api.schedule_rules import check_interval
from api.store import TaskReads, TaskStore
from api.tasks.rpc import temporal_errors
from common import temporal as t
from common.engine import LauncherInput
from common.schedule_models import (
    SCHEDULE_ID_RE,
    Overlap,
    ScheduleCreate,
    ScheduleCreated,
    ScheduleList,
    SchedulePatch,
    ScheduleRun,
    ScheduleSummary,
    ScheduleView,
    ScheduleWhen,
    now_utc,
    parse_duration,
)
from common.settings import Settings
from common.temporal import MEMO_OWNER

log = logging.getLogger(__name__)

RPC_TIMEOUT = timedelta(seconds=5)
MEMO_QUEUE = "ipsTaskQueue"
MEMO_CREATED_AT = "createdAt"
NEXT_RUNS = 5
LAST_RUNS = 5
# DELETE cancels the runs still going; visibility lags a little (a launcher started just
# before the delete), so it lists again for this long, and at most for the sweep bound.
DELETE_SETTLE_SECONDS = 1.5
DELETE_SWEEP_SECONDS = 5.0

OVERLAP_POLICY = {
    Overlap.SKIP: ScheduleOverlapPolicy.SKIP,
    Overlap.BUFFER_ONE: ScheduleOverlapPolicy.BUFFER_ONE,
    Overlap.CANCEL_OLDER: ScheduleOverlapPolicy.CANCEL_OTHER,
}


def trigger_overlap(policy: ScheduleOverlapPolicy) -> ScheduleOverlapPolicy:
    """The overlap policy of a trigger: the schedule's own for cancel_older (the trigger
    replaces the run going); BUFFER_ALL for skip and buffer_one, which would drop it."""
    if policy == ScheduleOverlapPolicy.CANCEL_OTHER:
        return policy
    return ScheduleOverlapPolicy.BUFFER_ALL


class ScheduleNotFound(ApiError):
    status = HTTPStatus.NOT_FOUND
    error = "schedule not found"

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with ID {schedule_id!r}")


def new_schedule_id() -> str:
    return f"sched-{secrets.token_hex(6)}"


def build_schedule(
    schedule_id: str, queue: str, inp: LauncherInput, *, paused: bool, note: str | None
) -> Schedule:
    when = inp.when
    return Schedule(
        action=ScheduleActionStartWorkflow(
            t.LAUNCHER_WORKFLOW_NAME,
            inp,
            id=schedule_id,  # Temporal appends the scheduled time
            task_queue=queue,
            typed_search_attributes=TypedSearchAttributes(
                [t.SearchAttr.SCHEDULE_ID.pair(schedule_id)]
            ),
            static_summary=f"IPS schedule {schedule_id}: prewarm {inp.spec.images[0]}",
        ),
        spec=ScheduleSpec(
            cron_expressions=[when.cron] if when.cron else [],
            intervals=[ScheduleIntervalSpec(every=parse_duration(when.every))]
            if when.every
            else [],
            jitter=parse_duration(when.jitter) if when.jitter else None,
            time_zone_name=when.timezone,
        ),
        policy=SchedulePolicy(overlap=OVERLAP_POLICY[when.overlap]),
        state=ScheduleState(paused=paused, note=note or ""),
    )


class ScheduleStore:
    """The schedule operations over one Temporal client; cheap to build per request."""

    client: Client

    def __init__(
        self,
        get_client: Callable[[], Awaitable[Client]],
        settings: Settings,
        reads: TaskReads | None = None,
    ) -> None:
        self._get_client = get_client
        self.settings = settings
        self.queue = settings.temporal_task_queue
        self.tasks = TaskStore(get_client, settings, reads)

    async def _connect(self) -> None:
        if not hasattr(self, "client"):
            self.client = await self._get_client()

    # --- reading ----------------------------------------------------------------------------

    async def _describe(self, schedule_id: str) -> tuple[ScheduleHandle, ScheduleDescription]:
        """The schedule, if it is one of this deployment's (same task queue); else 404."""
        if not SCHEDULE_ID_RE.fullmatch(schedule_id):
            raise ScheduleNotFound(schedule_id)
        await self._connect()
        handle = self.client.get_schedule_handle(schedule_id)
        try:
            async with temporal_errors("reading the schedule"):
                desc = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        except ApiError as err:
            cause = err.__cause__
            if isinstance(cause, RPCError) and cause.status == RPCStatusCode.NOT_FOUND:
                raise ScheduleNotFound(schedule_id) from None
            raise
        action = desc.schedule.action
        if (
            not isinstance(action, ScheduleActionStartWorkflow)
            or action.workflow != t.LAUNCHER_WORKFLOW_NAME
            or action.task_queue != self.queue
        ):
            raise ScheduleNotFound(schedule_id)
        return handle, desc

    async def _input(self, desc: ScheduleDescription) -> LauncherInput:
        action = desc.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        (value,) = await self.client.data_converter.decode(list(action.args), [LauncherInput])
        assert isinstance(value, LauncherInput)
        return value

    async def _view(self, desc: ScheduleDescription) -> ScheduleView:
        inp = await self._input(desc)
        runs = await self.tasks.list_tasks(None, LAST_RUNS, 0, schedule_id=desc.id)
        memo = await desc.memo()
        created = memo.get(MEMO_CREATED_AT)
        return ScheduleView(
            schedule_id=desc.id,
            task=inp.spec,
            **inp.when.model_dump(),
            paused=desc.schedule.state.paused,
            note=desc.schedule.state.note or None,
            created_at=datetime.fromisoformat(created) if created else desc.info.created_at,
            next_runs=list(desc.info.next_action_times[:NEXT_RUNS]),
            last_runs=[
                ScheduleRun(task_id=r.task_id, status=r.status, created_at=r.created_at)
                for r in runs.tasks
            ],
            total_runs=runs.total,
        )

    async def get(self, schedule_id: str) -> ScheduleView:
        _, desc = await self._describe(schedule_id)
        return await self._view(desc)

    async def list(self, limit: int, offset: int) -> ScheduleList:
        """Newest first. Schedules are few: this lists them all, then describes one page."""
        await self._connect()
        found: list[tuple[str, str]] = []
        async with temporal_errors("listing schedules"):
            async for entry in await self.client.list_schedules(rpc_timeout=RPC_TIMEOUT):
                action = entry.schedule.action if entry.schedule else None
                if getattr(action, "workflow", None) != t.LAUNCHER_WORKFLOW_NAME:
                    continue
                memo = await entry.memo()
                if memo.get(MEMO_QUEUE) != self.queue:
                    continue
                found.append((str(memo.get(MEMO_CREATED_AT, "")), entry.id))
        found.sort(reverse=True)
        items: list[ScheduleSummary] = []
        for _, sid in found[offset : offset + limit]:
            try:
                _, desc = await self._describe(sid)
            except ScheduleNotFound:  # deleted since the listing
                continue
            inp = await self._input(desc)
            nxt = desc.info.next_action_times
            items.append(
                ScheduleSummary(
                    schedule_id=sid,
                    images=inp.spec.images,
                    cron=inp.when.cron,
                    every=inp.when.every,
                    timezone=inp.when.timezone,
                    paused=desc.schedule.state.paused,
                    next_run=nxt[0] if nxt and not desc.schedule.state.paused else None,
                )
            )
        return ScheduleList(schedules=items, total=len(found), limit=limit, offset=offset)

    # --- writing ----------------------------------------------------------------------------

    async def _owned(
        self, schedule_id: str, caller: Principal
    ) -> tuple[ScheduleHandle, ScheduleDescription]:
        """The schedule (404 as `_describe`), if `caller` may change it: its creator or an
        admin token; else 403."""
        handle, desc = await self._describe(schedule_id)
        if not caller.may(Role.ADMIN):
            inp = await self._input(desc)
            if inp.owner != caller.id:
                raise Forbidden(
                    "this token did not create the schedule; only its creator or an admin "
                    "token may change it"
                )
        return handle, desc

    async def create(self, body: ScheduleCreate, caller: Principal = ANONYMOUS) -> ScheduleCreated:
        check_interval(body, self.settings)
        await self._connect()
        schedule_id = new_schedule_id()
        when = ScheduleWhen.model_validate(body.model_dump(include=set(ScheduleWhen.model_fields)))
        inp = LauncherInput(schedule_id=schedule_id, owner=caller.id, spec=body.task, when=when)
        schedule = build_schedule(schedule_id, self.queue, inp, paused=body.paused, note=body.note)
        memo = {
            MEMO_QUEUE: self.queue,
            MEMO_OWNER: caller.id,
            MEMO_CREATED_AT: now_utc().isoformat(),
        }
        async with _invalid_as_400("creating the schedule"):
            handle = await self.client.create_schedule(
                schedule_id, schedule, memo=memo, rpc_timeout=RPC_TIMEOUT
            )
        async with temporal_errors("reading the new schedule"):
            desc = await handle.describe(rpc_timeout=RPC_TIMEOUT)
        log.info("schedule %s created (%s)", schedule_id, when.cron or f"every {when.every}")
        return ScheduleCreated(
            schedule_id=schedule_id,
            paused=desc.schedule.state.paused,
            next_runs=list(desc.info.next_action_times[:NEXT_RUNS]),
        )

    async def patch(
        self, schedule_id: str, body: SchedulePatch, caller: Principal = ANONYMOUS
    ) -> ScheduleView:
        handle, desc = await self._owned(schedule_id, caller)
        inp = await self._input(desc)
        given = body.model_fields_set
        changes = {f for f in given if f not in ("paused", "note")}
        if changes:
            merged = inp.when.model_dump()
            if "cron" in given and body.cron is not None:
                merged["every"] = None
            if "every" in given and body.every is not None:
                merged["cron"] = None
            for name in changes - {"task"}:
                merged[name] = getattr(body, name)
            try:
                when = ScheduleWhen.model_validate(merged)
            except ValidationError as err:
                raise BadRequest(describe_validation_errors(err.errors())) from None
            check_interval(when, self.settings)
            new_inp = LauncherInput(
                schedule_id=schedule_id,
                owner=inp.owner,
                spec=body.task if body.task is not None else inp.spec,
                when=when,
            )
            paused = body.paused if body.paused is not None else desc.schedule.state.paused
            note = body.note if body.note is not None else desc.schedule.state.note
            new = build_schedule(schedule_id, self.queue, new_inp, paused=paused, note=note)

            def updater(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            async with _invalid_as_400("changing the schedule"):
                await handle.update(updater, rpc_timeout=RPC_TIMEOUT)
        elif body.paused is not None:
            async with temporal_errors("pausing the schedule"):
                if body.paused:
                    await handle.pause(note=body.note or "paused through the IPS API")
                else:
                    await handle.unpause(note=body.note or "resumed through the IPS API")
        log.info("schedule %s changed (%s)", schedule_id, ", ".join(sorted(given)) or "nothing")
        return await self.get(schedule_id)

    async def trigger(self, schedule_id: str, caller: Principal = ANONYMOUS) -> None:
        """One run, now or, under skip and buffer_one, as soon as the run still going ends:
        a 202 is never dropped. Temporal applies the schedule's policy to a trigger, and under
        skip a trigger that finds a launcher still running is dropped, even one whose task has
        just ended (the launcher closes a moment after its child; issue 15)."""
        handle, desc = await self._owned(schedule_id, caller)
        overlap = trigger_overlap(desc.schedule.policy.overlap)
        try:
            async with temporal_errors("triggering the schedule"):
                await handle.trigger(overlap=overlap, rpc_timeout=RPC_TIMEOUT)
        finally:  # a run starts (and under cancel_older, one is cancelled): reread the tasks
            self.tasks.reads.tasks_written()
        log.info("schedule %s triggered", schedule_id)

    async def delete(self, schedule_id: str, caller: Principal = ANONYMOUS) -> int:
        """Delete the schedule, then cancel its runs still going (launchers and tasks): no run
        is left behind. Returns how many workflows were asked to cancel."""
        handle, _ = await self._owned(schedule_id, caller)
        async with temporal_errors("deleting the schedule"):
            await handle.delete(rpc_timeout=RPC_TIMEOUT)
        log.info("schedule %s deleted", schedule_id)
        try:
            return await self._cancel_runs(schedule_id)
        finally:  # its runs were cancelled: reread the tasks
            self.tasks.reads.tasks_written()

    async def _cancel_runs(self, schedule_id: str) -> int:
        """Ask every running launcher and task of the schedule to cancel. Visibility lags a
        little, so it lists again until a listing shows nothing new after the settle time; it
        does not wait for them to close (a cancelled task cleans up on its own)."""
        query = (
            f"{t.SearchAttr.SCHEDULE_ID} = '{schedule_id}' AND ExecutionStatus = 'Running'"
            f" AND TaskQueue = '{self.queue}'"
        )
        cancelled: set[tuple[str, str | None]] = set()
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            fresh: list[Any] = []
            async with temporal_errors("listing the schedule's runs"):
                async for wf in self.client.list_workflows(query, rpc_timeout=RPC_TIMEOUT):
                    if (wf.id, wf.run_id) not in cancelled:
                        fresh.append(wf)
            for wf in fresh:
                try:
                    await self.client.get_workflow_handle(wf.id, run_id=wf.run_id).cancel(
                        rpc_timeout=RPC_TIMEOUT
                    )
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        log.warning("cancelling %s: %s", wf.id, err)
                cancelled.add((wf.id, wf.run_id))
            elapsed = loop.time() - start
            if (not fresh and elapsed >= DELETE_SETTLE_SECONDS) or elapsed >= DELETE_SWEEP_SECONDS:
                return len(cancelled)
            await asyncio.sleep(0.3)


class _invalid_as_400:
    """Temporal's INVALID_ARGUMENT (a cron it does not accept, say) as a 400; the rest as
    temporal_errors maps them."""

    def __init__(self, what: str) -> None:
        self._inner = temporal_errors(what)

    async def __aenter__(self) -> None:
        await self._inner.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        if isinstance(exc, RPCError) and exc.status == RPCStatusCode.INVALID_ARGUMENT:
            field = "cron" if "cron" in exc.message.lower() else "schedule"
            raise BadRequest(f"{field}: Temporal refused it ({exc.message})") from exc
        return await self._inner.__aexit__(exc_type, exc, tb)
