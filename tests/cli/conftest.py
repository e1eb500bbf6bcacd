"""The CLI's unit tests' fake API: a scripted transport, a task body, and a runner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ips_client import IPSClient
from typer.testing import CliRunner

import cli.tasks
import cli.watch
from cli.main import app


def task(
    status: str = "running",
    completed: int = 0,
    failed: list[str] | None = None,
    batch: int = 1,
    warm: int = 0,
) -> dict[str, Any]:
    failed = failed or []
    done = completed + len(failed) + warm
    return {
        "taskId": "task-20260116-151234-a1b2c3d4",
        "status": status,
        "images": ["nginx:latest", "redis:7"],
        "batchSize": 2,
        "nodeSelector": {"workload": "compute"},
        "progress": {
            "totalNodes": 4,
            "completedNodes": completed,
            "failedNodes": len(failed),
            "skippedNodes": 1,
            "alreadyWarmNodes": warm,
            "currentBatch": batch,
            "totalBatches": 2,
            "percentage": 25.0 * done,
        },
        "failedNodeDetails": [
            {
                "nodeName": n,
                "image": "redis:7",
                "reason": "ImagePullBackOff",
                "message": 'Back-off pulling image "redis:7"',
                "timestamp": "2026-01-16T15:15:30Z",
            }
            for n in failed
        ],
        "skippedNodeDetails": [
            {"nodeName": "node-9", "reason": "Cordoned", "message": "node is cordoned"}
        ],
        "createdAt": "2026-01-16T15:12:34Z",
        "startedAt": "2026-01-16T15:12:35Z",
    }


class FakeAPI:
    """Answers GETs from a script of bodies (the last one repeats); records every request."""

    def __init__(self, *answers: httpx.Response | dict[str, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeAPI]]:
    """Route the CLI's client to the fake; `sleep` is skipped so watch runs instantly."""
    holder: list[FakeAPI] = []

    def make(url: str | None, token: str | None) -> IPSClient:
        return IPSClient(url or "http://ips.test", token, transport=httpx.MockTransport(holder[0]))

    monkeypatch.setattr(cli.tasks, "_client", make)
    monkeypatch.setattr(cli.watch.time, "sleep", lambda s: None)
    yield holder


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "160", "IPS_TOKEN": ""})
