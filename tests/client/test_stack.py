"""ips_client against the real stack: the sync and async paths, wait(), every typed error, and the
README's "使用 Python" example run as written (only the URL changed)."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ips_client import (
    AsyncIPSClient,
    Conflict,
    IPSClient,
    ServiceUnavailable,
    TaskNotFound,
    TaskStatus,
    TaskView,
    Unauthorized,
    Unreachable,
    ValidationError,
    WaitTimeout,
)

from tests.stack import (
    KNOWN_OUTCOME,
    NOT_FOUND_IMAGE,
    ROOT,
    WARM_IMAGE,
    Stack,
    base_env,
    free_port,
    fresh_image,
    run_api_without_temporal,
    run_stack,
)

pytestmark = pytest.mark.integration

TOKEN = f"client-token-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def stack(dev_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with run_stack(dev_address, tmp_path_factory.mktemp("client"), token=TOKEN) as s:
        yield s


def test_sync_create_get_list_wait_and_typed_errors(stack: Stack) -> None:
    with stack.client() as ips:
        created = ips.create(
            images=[WARM_IMAGE, NOT_FOUND_IMAGE], batch_size=2, node_selector={"pool": "obs"}
        )
        assert created.status == TaskStatus.PENDING
        assert created.node_selector == {"pool": "obs"}
        seen: list[TaskView] = []
        final = ips.wait(created.task_id, timeout=120, on_progress=seen.append, poll_interval=0.5)
        assert final.status == TaskStatus.COMPLETED
        p = final.progress
        assert (p.completed_nodes, p.failed_nodes, p.already_warm_nodes, p.skipped_nodes) == (
            KNOWN_OUTCOME["completed"], KNOWN_OUTCOME["failed"],
            KNOWN_OUTCOME["warm"], KNOWN_OUTCOME["skipped"],
        )  # fmt: skip
        assert seen[-1] == final and all(v.task_id == created.task_id for v in seen)
        done = [v.progress.completed_nodes + v.progress.failed_nodes for v in seen]
        assert done == sorted(done)  # progress never goes back

        assert ips.get(created.task_id) == final
        page = ips.list(status=TaskStatus.COMPLETED, limit=100)
        assert created.task_id in {t.task_id for t in page.tasks}
        assert created.task_id not in {t.task_id for t in ips.list(status="running").tasks}

        with pytest.raises(Conflict) as conflict:
            ips.cancel(created.task_id)
        assert conflict.value.status == "completed" and conflict.value.status_code == 409
        with pytest.raises(TaskNotFound) as missing:
            ips.get("task-20260101-000000-00000000")
        assert missing.value.task_id == "task-20260101-000000-00000000"
        # A body the server judges (sent as-is): the 400 names the field and the rule.
        with pytest.raises(ValidationError) as invalid:
            ips.create({"images": ["nginx:latest"], "batchSize": 1000})
        assert invalid.value.status_code == 400 and "batchSize" in invalid.value.details
        with pytest.raises(ValidationError) as unknown:
            ips.create({"images": ["nginx:latest"], "batchSize": 1, "batchSise": 2})
        assert "batchSise" in unknown.value.details

    with stack.client(token="wrong") as bad, pytest.raises(Unauthorized):
        bad.list()
    with IPSClient(stack.url) as anonymous, pytest.raises(Unauthorized):
        anonymous.list()
    with IPSClient(f"http://127.0.0.1:{free_port()}") as nowhere, pytest.raises(Unreachable):
        nowhere.list()


def test_service_unavailable_when_the_api_cannot_reach_temporal(tmp_path: Path) -> None:
    with run_api_without_temporal(tmp_path) as url, IPSClient(url) as ips:
        with pytest.raises(ServiceUnavailable) as info:
            ips.list()
        assert info.value.status_code == 503 and not isinstance(info.value, Unreachable)
        with pytest.raises(ServiceUnavailable):
            ips.wait("task-20260101-000000-00000000", tolerate_unavailable=1, poll_interval=0.5)


async def test_async_create_wait_cancel_and_idempotency(stack: Stack) -> None:
    async with AsyncIPSClient(stack.url, TOKEN) as ips:
        key = f"deploy-{uuid.uuid4().hex[:8]}"
        images = [fresh_image() for _ in range(3)]  # ~30 s on pool=slow: the cancel lands
        first = await ips.create(
            images=images, batch_size=1, node_selector={"pool": "slow"}, idempotency_key=key
        )
        again = await ips.create(
            images=images, batch_size=1, node_selector={"pool": "slow"}, idempotency_key=key
        )
        assert again.task_id == first.task_id  # a retried create never starts a second task

        with pytest.raises(WaitTimeout) as timeout:
            await ips.wait(first.task_id, timeout=1, poll_interval=0.5)
        assert timeout.value.last is not None and not timeout.value.last.status.is_final

        result = await ips.cancel(first.task_id)
        assert result.task_id == first.task_id and result.status in ("cancelled", "cancelling")
        statuses: list[str] = []

        async def on_progress(view: TaskView) -> None:
            statuses.append(view.status.value)

        final = await ips.wait(first.task_id, timeout=60, on_progress=on_progress)
        assert final.status == TaskStatus.CANCELLED and statuses[-1] == "cancelled"
        with pytest.raises(Conflict):
            await ips.cancel(first.task_id)
        with pytest.raises(TaskNotFound):
            await ips.get("task-20260101-000000-00000000")

    async with AsyncIPSClient(stack.url, "wrong") as bad:
        with pytest.raises(Unauthorized):
            await bad.list()


def test_the_readme_example_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    readme = (ROOT / "client/python/README.md").read_text()
    section = readme.split("## 使用 Python", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    code = example.group(1).replace("http://localhost:8080", stack.url)
    script = tmp_path / "example.py"
    script.write_text(code)
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=base_env(IPS_TOKEN=TOKEN),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^Task created: task-\d{8}-\d{6}-[0-9a-f]{8}$", out.stdout, re.M)
    assert "nothing to cancel, the task is completed" in out.stdout
