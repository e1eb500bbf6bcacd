"""The Job controller: active deadline, backoff limit, TTL after finished."""

from __future__ import annotations

import pytest
from kubernetes import client

from kubesim.testing import SimHandle
from tests.kubesim.conftest import job_body, job_done, job_pods, wait_for
from tests.kubesim.pods import DISTROLESS
from tests.kubesim.pods import create as _create

pytestmark = pytest.mark.integration


def test_active_deadline_becomes_deadline_exceeded(
    sim: SimHandle, batch: client.BatchV1Api
) -> None:
    _create(
        batch,
        job_body(
            "dl",
            [{"name": "c", "image": "registry.example.com/ips-test/large:1"}],
            activeDeadlineSeconds=30,
            backoffLimit=0,
        ),
    )
    failed = wait_for(lambda: job_done(sim, "dl"), timeout=10)
    cond = failed["status"]["conditions"][-1]
    assert (cond["type"], cond["reason"], cond["message"]) == (
        "Failed",
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    assert failed["status"]["conditions"][0]["type"] == "FailureTarget"
    assert failed["status"]["failed"] == 1 and "active" not in failed["status"]
    wait_for(lambda: not job_pods(sim, "dl"), what="deadline pod killed")


def test_backoff_limit_retries_then_fails(sim: SimHandle, batch: client.BatchV1Api) -> None:
    _create(
        batch,
        job_body(
            "bl",
            [{"name": "c", "image": DISTROLESS, "command": ["/bin/sh", "-c", "x"]}],
            backoffLimit=2,
        ),
    )
    failed = wait_for(lambda: job_done(sim, "bl"), timeout=20)
    assert failed["status"]["failed"] == 3
    assert failed["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    assert len(job_pods(sim, "bl")) == 3


def test_ttl_after_finished_cleans_up(sim: SimHandle, batch: client.BatchV1Api) -> None:
    _create(batch, job_body("ttl", [{"name": "c", "image": "busybox"}], ttlSecondsAfterFinished=20))
    wait_for(lambda: job_done(sim, "ttl"))
    wait_for(
        lambda: not [j for j in sim.objects("jobs", "default") if j["metadata"]["name"] == "ttl"],
        what="job gone",
    )
    wait_for(lambda: not job_pods(sim, "ttl"), what="pods gone")
