"""The workflow's activity timeouts and retry policies, and why each value is what it is.

The values are part of the recorded histories (tests/workflows/histories): change one only with
care, and never the ones marked "histories before PATCH_RETRIES" (workflows/prewarm.py).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

LIST_NODES_TIMEOUT = timedelta(minutes=5)
CLEANUP_TIMEOUT = timedelta(minutes=2)
HEARTBEAT_TIMEOUT = timedelta(seconds=10)  # histories before PATCH_RETRIES
# The batch activity heartbeats every second from its own task, which no Kubernetes call can
# delay; what can delay it is the worker's event loop (and the SDK's 1 s heartbeat throttle).
# Measured: the longest gap between two heartbeats of any of 100 batches was 1.36 s, with two
# 5,000-node tasks at once on one worker, kubesim and the Temporal dev server on the same 2
# shared cores (bench/two_tasks_memory.py, bench/results/two-tasks-memory.json; each batch logs
# its "longest gap between heartbeats"). 20 s is about 15 times that, and still finds a dead
# worker (kill -9) in 20 s, after which the batch resumes on another worker.
PREWARM_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
# Retries of the batch activity are bounded by time (schedule-to-close), not by a count of
# attempts: a worker shutdown or a crash costs an attempt and must never end the task, and
# transient errors are already retried per request and per node inside the activity.
PREWARM_RETRY_ALLOWANCE = timedelta(minutes=10)
LIST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=6,
)
PREWARM_RETRY = RetryPolicy(  # histories before PATCH_RETRIES
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
PREWARM_RETRY_BY_TIME = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,  # unlimited: schedule_to_close bounds the activity
)
CLEANUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=12,
)


# list_nodes heartbeats once per page of 500 nodes; a page is one rate-limited request that may
# be retried with back-off (activities/kube.py), so a minute between two pages is still alive.
LIST_NODES_HEARTBEAT_TIMEOUT = timedelta(seconds=60)
# cleanup_task heartbeats after its deletecollection, and otherwise makes two list requests.
CLEANUP_HEARTBEAT_TIMEOUT = timedelta(seconds=30)

# The batch activity's start-to-close budget: every round of Jobs (a batch is one round; a
# rolling window runs ceil(nodes / batchSize) rounds) may take the per-node deadline
# (activeDeadlineSeconds = timeoutSeconds) plus ROUND_SLACK_SECONDS, the time the activity
# waits beyond that deadline for the Job's verdict (DEADLINE_SLACK in activities/batch.py;
# tests/workflows/test_timeouts.py keeps them equal). Creating the Jobs is rate-limited
# (K8S_QPS, default 20 a second): the budget allows CREATES_PER_SECOND, a tenth of that, so a
# throttled API server never times the batch out. STARTUP_SECONDS covers the rest: the
# activity's start, its pod listing, the watches, and a retried request or two.
ROUND_SLACK_SECONDS = 30
CREATES_PER_SECOND = 2
STARTUP_SECONDS = 300


def batch_budget(rounds: int, timeout_seconds: int, nodes: int) -> timedelta:
    """The start-to-close timeout of one batch activity (see above)."""
    return timedelta(
        seconds=rounds * (timeout_seconds + ROUND_SLACK_SECONDS)
        + nodes // CREATES_PER_SECOND
        + STARTUP_SECONDS
    )
