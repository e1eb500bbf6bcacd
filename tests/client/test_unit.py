"""ips_client against a fake transport: error mapping, request shape, wait(), the token kept quiet.

The same behaviours against the real API are in tests/client/test_stack.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import ips_client
import pytest
from ips_client import (
    AsyncIPSClient,
    Conflict,
    FollowSpec,
    Forbidden,
    IPSClient,
    IPSError,
    ServiceUnavailable,
    TaskNotFound,
    TaskPhase,
    TaskStatus,
    TaskView,
    TooManyTasks,
    Unauthorized,
    Unreachable,
    ValidationError,
    WaitTimeout,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[httpx.Request], httpx.Response]


def view(status: str = "running", completed: int = 0, failed: int = 0) -> dict[str, Any]:
    return {
        "taskId": "task-1",
        "status": status,
        "images": ["nginx:latest"],
        "batchSize": 2,
        "progress": {
            "totalNodes": 4,
            "completedNodes": completed,
            "failedNodes": failed,
            "currentBatch": 1,
            "totalBatches": 2,
            "percentage": 25.0 * (completed + failed),
        },
        "createdAt": "2026-01-16T15:12:34Z",
    }


def client(handler: Handler, token: str | None = None) -> IPSClient:
    return IPSClient("http://ips.test", token, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, ValidationError),
        (401, Unauthorized),
        (403, Forbidden),
        (404, TaskNotFound),
        (429, TooManyTasks),
        (409, Conflict),
        (503, ServiceUnavailable),
    ],
)
def test_each_status_has_its_typed_error_with_the_envelope(status: int, exc: type) -> None:
    body = {"error": "nope", "details": "batchSize: must be <= 100", "taskId": "task-9"}
    c = client(lambda r: httpx.Response(status, json=body))
    with pytest.raises(exc) as info:
        c.get("task-9")
    err = info.value
    assert isinstance(err, IPSError)
    assert (err.status_code, err.details, err.task_id) == (status, body["details"], "task-9")
    assert "batchSize: must be <= 100" in str(err)


def test_conflict_exposes_the_current_status() -> None:
    body = {"taskId": "task-1", "status": "completed", "message": "task already completed"}
    c = client(lambda r: httpx.Response(409, json=body))
    with pytest.raises(Conflict) as info:
        c.cancel("task-1")
    assert info.value.status == "completed"
    assert info.value.message == "task already completed"


def test_non_json_error_and_unknown_status_still_typed() -> None:
    c = client(lambda r: httpx.Response(500, text="<html>boom</html>"))
    with pytest.raises(ips_client.APIError) as info:
        c.list()
    assert info.value.status_code == 500 and "boom" in info.value.details
    assert not isinstance(info.value, ServiceUnavailable)


def test_unreachable_is_a_service_unavailable_naming_the_url() -> None:
    def refuse(r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=r)

    with pytest.raises(Unreachable) as info:
        client(refuse).get("task-1")
    assert isinstance(info.value, ServiceUnavailable)
    assert "http://ips.test" in str(info.value)


def test_requests_carry_token_path_encoding_and_list_params() -> None:
    seen: list[httpx.Request] = []

    def handler(r: httpx.Request) -> httpx.Response:
        seen.append(r)
        if r.method == "GET" and r.url.path == "/api/v1/tasks":
            return httpx.Response(200, json={"tasks": [], "total": 0, "limit": 5, "offset": 10})
        return httpx.Response(404, json={"error": "task not found", "details": "x"})

    c = client(handler, token="s3cret-token")
    assert c.list(status=TaskStatus.RUNNING, limit=5, offset=10).offset == 10
    with pytest.raises(TaskNotFound):
        c.get("../../healthz")
    assert seen[0].url.params["status"] == "running"
    assert seen[0].url.params["limit"] == "5"
    assert seen[0].headers["authorization"] == "Bearer s3cret-token"
    assert seen[1].url.raw_path == b"/api/v1/tasks/..%2F..%2Fhealthz"
    assert "s3cret-token" not in repr(c)


def test_create_validates_locally_with_the_api_model_and_sends_camel_case() -> None:
    bodies: list[Any] = []

    def handler(r: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(r.content))
        return httpx.Response(
            201,
            json={
                "taskId": "task-1",
                "status": "pending",
                "images": ["nginx:latest"],
                "batchSize": 10,
                "createdAt": "2026-01-16T15:12:34Z",
            },
        )

    c = client(handler)
    with pytest.raises(ValidationError) as info:
        c.create(images=["Not An Image"], batch_size=500)
    assert "images[0]" in info.value.details and "batchSize" in info.value.details
    assert info.value.status_code is None and not bodies  # nothing was sent

    created = c.create(images=["nginx:latest"], batch_size=10, node_selector={"a": "b"})
    assert created.task_id == "task-1" and created.status == TaskStatus.PENDING
    assert bodies[-1] == {"images": ["nginx:latest"], "batchSize": 10, "nodeSelector": {"a": "b"}}
    c.create({"images": ["x"], "batchSize": 0})  # a raw mapping goes as-is: the server judges
    assert bodies[-1] == {"images": ["x"], "batchSize": 0}


def test_create_takes_the_follow_option_and_reads_a_following_task() -> None:
    bodies: list[Any] = []
    view = {
        "taskId": "task-1", "status": "running", "images": ["nginx:latest"], "batchSize": 10,
        "createdAt": "2026-01-16T15:12:34Z", "follow": {"durationSeconds": 3600},
        "phase": "following", "following": {"since": "2026-01-16T15:20:02Z", "nodesAdded": 3},
    }  # fmt: skip

    def handler(r: httpx.Request) -> httpx.Response:
        if r.method == "GET":
            return httpx.Response(200, json=view)
        bodies.append(json.loads(r.content))
        keys = ("taskId", "status", "images", "batchSize", "createdAt")
        return httpx.Response(201, json={k: view[k] for k in keys})

    c = client(handler)
    with pytest.raises(ValidationError) as info:
        c.create(images=["nginx:latest"], batch_size=10, follow={"duration_seconds": 1})
    assert "follow.durationSeconds" in info.value.details and not bodies
    with pytest.raises(ValidationError) as info:
        c.create(images=["nginx:latest"], batch_size=10, node_names=["n1"], follow={})
    assert "follow" in info.value.details and not bodies
    c.create(images=["nginx:latest"], batch_size=10, follow=FollowSpec(duration_seconds=3600))
    assert bodies[-1]["follow"] == {"durationSeconds": 3600}
    c.create(images=["nginx:latest"], batch_size=10, follow={})
    assert bodies[-1]["follow"] == {}
    got = c.get("task-1")
    assert got.phase == TaskPhase.FOLLOWING
    assert got.following is not None and got.following.nodes_added == 3
    assert got.follow is not None and got.follow.duration_seconds == 3600


def test_wait_reports_progress_rides_out_an_outage_and_returns_the_final_view() -> None:
    answers: list[httpx.Response] = [
        httpx.Response(200, json=view("running", 1)),
        httpx.Response(503, json={"error": "temporal unavailable", "details": "restarting"}),
        httpx.Response(200, json=view("running", 3)),
        httpx.Response(200, json=view("completed", 3, 1)),
    ]
    c = client(lambda r: answers.pop(0))
    seen: list[TaskView] = []
    final = c.wait("task-1", on_progress=seen.append, poll_interval=0.2)
    assert final.status == TaskStatus.COMPLETED and final.progress.failed_nodes == 1
    assert [v.progress.completed_nodes for v in seen] == [1, 3, 3]


def test_wait_gives_up_after_tolerate_unavailable_and_after_timeout() -> None:
    c = client(lambda r: httpx.Response(503, json={"error": "down", "details": ""}))
    with pytest.raises(ServiceUnavailable):
        c.wait("task-1", poll_interval=0.2, tolerate_unavailable=0.3)
    c = client(lambda r: httpx.Response(200, json=view("running", 1)))
    with pytest.raises(WaitTimeout) as info:
        c.wait("task-1", timeout=0.5, poll_interval=0.2)
    assert isinstance(info.value, TimeoutError)
    assert info.value.last is not None and info.value.last.status == TaskStatus.RUNNING


async def test_async_client_same_errors_and_async_callback() -> None:
    answers = [view("running", 2), view("cancelled", 2)]

    def handler(r: httpx.Request) -> httpx.Response:
        if r.url.path.endswith("/missing"):
            return httpx.Response(404, json={"error": "task not found", "details": "missing"})
        return httpx.Response(200, json=answers.pop(0))

    got: list[str] = []

    async def on_progress(v: TaskView) -> None:
        got.append(v.status.value)

    async with AsyncIPSClient("http://ips.test", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(TaskNotFound):
            await c.get("missing")
        final = await c.wait("task-1", on_progress=on_progress, poll_interval=0.2)
    assert final.status == TaskStatus.CANCELLED and got == ["running", "cancelled"]


def test_bad_url_is_rejected_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IPS_URL", "localhost:8080")
    with pytest.raises(ValueError, match="http://host:port"):
        IPSClient()
    monkeypatch.setenv("IPS_URL", "http://from-env:1234/")
    monkeypatch.setenv("IPS_TOKEN", "env-token")
    c = IPSClient()
    assert c.base_url == "http://from-env:1234" and "token" in repr(c)


# The wire-model files the client ships as copies: the common/models package and
# common/schedule_models.py (Makefile: CLIENT_MODELS).
WIRE_MODEL_FILES = [
    *sorted(f"models/{p.name}" for p in (ROOT / "common/models").glob("*.py")),
    "schedule_models.py",
]


@pytest.mark.parametrize("name", WIRE_MODEL_FILES)
def test_models_are_a_byte_identical_copy_of_the_api_models(name: str) -> None:
    """One source of truth: each ips_client wire-model file is a committed copy of its
    common/ twin (a plain file, so it works in Windows checkouts and sdists) that never
    drifts; no engine types."""
    copy = ROOT / "client/python/ips_client" / name
    assert not copy.is_symlink()
    assert copy.read_bytes() == (ROOT / "common" / name).read_bytes(), (
        f"client/python/ips_client/{name} differs from common/{name}: run make client-models"
    )
    import ips_client.models as models
    import ips_client.schedule_models as schedule_models

    for engine_type in ("EngineState", "PrewarmInput", "LauncherInput", "LauncherResult"):
        assert not hasattr(models, engine_type)
        assert not hasattr(schedule_models, engine_type)


def test_the_client_models_package_holds_only_the_copies() -> None:
    """A module removed from common/models/ leaves no stale copy in the client."""
    shipped = sorted(
        f"models/{p.name}" for p in (ROOT / "client/python/ips_client/models").glob("*.py")
    )
    assert shipped == [n for n in WIRE_MODEL_FILES if n.startswith("models/")]


@pytest.mark.slow
def test_wheel_ships_the_models_and_imports_without_the_server(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT / "client/python")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("ips_client-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        for name in WIRE_MODEL_FILES:
            assert zf.read(f"ips_client/{name}") == (ROOT / "common" / name).read_bytes(), name
        meta = zf.read("ips_client-0.1.0.dist-info/METADATA").decode()
    requires = sorted(ln.split()[1] for ln in meta.splitlines() if ln.startswith("Requires-Dist"))
    assert [r.split(">")[0].split("<")[0] for r in requires] == ["httpx", "pydantic"]
    # Imported from the wheel alone, the client pulls in no server package.
    probe = (
        "import sys, ips_client; "
        "assert ips_client.__file__.startswith(sys.argv[1]), ips_client.__file__; "
        "bad = {'common', 'api', 'worker', 'activities', 'workflows', 'temporalio', 'fastapi'}; "
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(wheel)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PYTHONPATH": str(wheel), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
