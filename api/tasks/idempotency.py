"""The Idempotency-Key scheme: the same key and body return the same task and never start a
second one; the same key with another body is a 409 (docs/api.md).

1. `reservation_id`: each (deployment, caller, key) maps to one deterministic workflow ID.
2. `reserve`: the create starts a reservation workflow under that ID, carrying the new task ID
   and the body hash in its memo. Temporal rejects a second start of the same workflow ID, so of
   two concurrent retries exactly one reserves; the other reads the reservation's memo: a
   different body hash is a 409, the same one gives the reserved task ID (and createdAt).
3. Both then start the prewarm workflow under the reserved task ID; the slower start collides
   with WorkflowAlreadyStartedError, and `task_started_first` answers with that task.

A reservation runs no code (no worker polls its queue) and is terminated as soon as it is made;
its ID keeps the key claimed until the namespace retention removes the closed workflow. A key
is scoped to its caller, so one token's key never finds another token's task.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ANONYMOUS, Principal
from api.errors import Conflict, TemporalUnavailable
from api.tasks.recorded_state import derive_status, task_from_memo
from api.tasks.rpc import RPC_TIMEOUT, find_task_workflow, temporal_errors
from common.models import TaskCreated, TaskSpec

log = logging.getLogger(__name__)

RESERVATION_WORKFLOW = "IpsIdempotencyReservation"
MEMO_BODY_HASH = "bodyHash"
MEMO_TASK_ID = "taskId"
MEMO_CREATED_AT = "createdAt"
# A reservation is terminated as soon as it is made; this only bounds one left behind by a crash.
RESERVATION_TIMEOUT = timedelta(minutes=1)


def body_hash(spec: TaskSpec) -> str:
    """Hash of the validated spec (defaults applied, duplicates dropped): one meaning, one hash."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def reservation_id(task_queue: str, key: str, owner: str = ANONYMOUS.id) -> str:
    """Deterministic per (deployment, caller, key): two concurrent retries race for this one ID,
    and one caller's key never finds another caller's task."""
    scoped = key if owner == ANONYMOUS.id else f"{owner}\0{key}"
    digest = hashlib.sha256(f"{task_queue}\0{scoped}".encode()).hexdigest()[:40]
    return f"ips-idempotency-{digest}"


async def reserve(
    client: Client,
    task_queue: str,
    key: str,
    digest: str,
    task_id: str,
    now: datetime,
    caller: Principal,
) -> tuple[str, datetime]:
    """Claim the key for `task_id`, or read the task that claimed it: (task ID, createdAt).

    Conflict (409) when the key was claimed with another body hash."""
    reservation = reservation_id(task_queue, key, caller.id)
    memo = {MEMO_TASK_ID: task_id, MEMO_CREATED_AT: now.isoformat(), MEMO_BODY_HASH: digest}
    try:
        async with temporal_errors("reserving the idempotency key"):
            handle = await client.start_workflow(
                RESERVATION_WORKFLOW,
                id=reservation,
                # No worker polls this queue: the reservation never runs any code.
                task_queue=f"{task_queue}-idempotency",
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                execution_timeout=RESERVATION_TIMEOUT,
                memo=memo,
                static_summary=f"Idempotency-Key reservation for {task_id} (not a task)",
                rpc_timeout=RPC_TIMEOUT,
            )
    except WorkflowAlreadyStartedError:
        async with temporal_errors("reading the idempotency key"):
            desc = await client.get_workflow_handle(reservation).describe(rpc_timeout=RPC_TIMEOUT)
            stored = await desc.memo()
        claimed_by = str(stored.get(MEMO_TASK_ID, ""))
        if stored.get(MEMO_BODY_HASH) != digest:
            raise Conflict(
                "Idempotency-Key was already used with a different request body "
                f"(task {claimed_by}); use a new key for a different task",
                task_id=claimed_by or None,
            ) from None
        return claimed_by, datetime.fromisoformat(str(stored[MEMO_CREATED_AT]))
    try:  # best effort: an open reservation would otherwise sit in the Web UI for a minute
        await handle.terminate(reason="idempotency key reserved", rpc_timeout=RPC_TIMEOUT)
    except RPCError as err:
        log.debug("could not close reservation %s: %s", reservation, err)
    return task_id, now


async def is_reserved(client: Client, task_queue: str, key: str, caller: Principal) -> bool:
    """Whether this caller's key is already claimed: a retry of an accepted request."""
    reservation = reservation_id(task_queue, key, caller.id)
    try:
        await client.get_workflow_handle(reservation).describe(rpc_timeout=RPC_TIMEOUT)
        return True
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(f"checking the key: {err.message}") from err
    return False


async def task_started_first(client: Client, task_queue: str, task: TaskCreated) -> TaskCreated:
    """Another request with the same key (and body) started the task first: that task as it
    is now (step 3)."""
    desc = await find_task_workflow(client, task_queue, task.task_id)
    existing = await task_from_memo(desc) or task
    existing.status = derive_status(desc.status, desc.typed_search_attributes)
    return existing
