"""Constants that depend on each other across modules: the coupling is asserted, not commented."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activities import batch, kube, outcomes
from common.settings import Settings
from worker import main as worker_main
from workflows import timeouts

pytestmark = pytest.mark.unit


def test_the_budget_allows_the_activitys_own_deadline_slack_per_round() -> None:
    assert timeouts.ROUND_SLACK_SECONDS == batch.DEADLINE_SLACK


def test_the_batch_budget_is_the_recorded_formula() -> None:
    # rounds * (timeout + 30) + nodes // 2 + 300, as recorded in tests/workflows/histories
    assert timeouts.batch_budget(1, 600, 101) == timedelta(seconds=630 + 50 + 300)
    assert timeouts.batch_budget(3, 60, 1000) == timedelta(seconds=3 * 90 + 500 + 300)


def test_the_budget_assumes_fewer_creates_a_second_than_the_default_rate_limit() -> None:
    assert timeouts.CREATES_PER_SECOND < Settings(metrics_port=0).k8s_qps


def test_there_is_a_watch_thread_for_every_watch_a_full_worker_holds() -> None:
    # two per running batch (pods, FailedCreate Events) and the shared node watch
    assert kube.WATCH_THREADS >= 2 * worker_main.MAX_CONCURRENT_ACTIVITIES + 1


def test_heartbeats_are_not_sent_faster_than_the_worker_forwards_them() -> None:
    throttle = worker_main.HEARTBEAT_THROTTLE.total_seconds()
    assert outcomes.HEARTBEAT_INTERVAL >= throttle
    # a live worker misses many heartbeats before the timeout declares it dead
    assert timeouts.PREWARM_HEARTBEAT_TIMEOUT.total_seconds() >= 10 * outcomes.HEARTBEAT_INTERVAL
