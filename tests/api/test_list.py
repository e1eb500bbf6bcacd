"""Listing from visibility: filtering, paging (total, offset) and newest-first over 25 tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

import api.tasks.listing
from tests.api.testlib import TASKS, wait_status
from tests.waiting import async_wait_until

pytestmark = pytest.mark.integration

RUNNING = 5
TOTAL = 25


@pytest.fixture(scope="module")
async def created(api: Any, worker: Any) -> list[str]:
    """25 tasks in creation order: 20 that complete, then 5 that keep running."""
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for i in range(TOTAL):
            image = "example.com/hang:1" if i >= TOTAL - RUNNING else f"nginx:1.{i}"
            r = await http.post(TASKS, json={"images": [image], "batchSize": 3})
            assert r.status_code == 201, r.text
            ids.append(r.json()["taskId"])
        for task_id in ids[: TOTAL - RUNNING]:
            await wait_status(http, task_id, {"completed"})
        for task_id in ids[TOTAL - RUNNING :]:
            await wait_status(http, task_id, {"running"})
    return ids


async def page_through(http: httpx.AsyncClient, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        r = await http.get(TASKS, params={"limit": limit, "offset": offset, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["limit"] == limit and body["offset"] == offset
        items += body["tasks"]
        if not body["tasks"]:
            return items
        assert len(body["tasks"]) <= limit
        offset += limit


async def test_default_page_is_10_newest_first_with_the_seed_item_shape(
    http: httpx.AsyncClient, created: list[str]
) -> None:
    body = (await http.get(TASKS)).json()
    assert set(body) == {"tasks", "total", "limit", "offset"}
    assert body["total"] == TOTAL and body["limit"] == 10 and body["offset"] == 0
    assert [t["taskId"] for t in body["tasks"]] == created[::-1][:10]
    item = body["tasks"][0]
    assert set(item) == {"taskId", "status", "images", "progress", "createdAt"}
    assert set(item["progress"]) == {"totalNodes", "completedNodes", "percentage"}
    assert item["status"] == "running" and item["images"] == ["example.com/hang:1"]
    assert item["progress"] == {"totalNodes": 4, "completedNodes": 1, "percentage": 25.0}
    done = next(t for t in body["tasks"] if t["status"] == "completed")
    assert done["progress"] == {"totalNodes": 4, "completedNodes": 4, "percentage": 100.0}


@pytest.mark.parametrize("limit", [1, 7, 10, 25, 100])
async def test_paging_visits_every_task_once_in_order(
    http: httpx.AsyncClient, created: list[str], limit: int
) -> None:
    items = await page_through(http, limit)
    assert [t["taskId"] for t in items] == created[::-1]


async def test_offset_past_the_end_is_empty_with_the_total(
    http: httpx.AsyncClient, created: list[str]
) -> None:
    body = (await http.get(TASKS, params={"offset": 40, "limit": 5})).json()
    assert body == {"tasks": [], "total": TOTAL, "limit": 5, "offset": 40}
    body = (await http.get(TASKS, params={"offset": 23, "limit": 5})).json()
    assert [t["taskId"] for t in body["tasks"]] == created[1::-1]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("running", RUNNING), ("completed", TOTAL - RUNNING), ("pending", 0), ("failed", 0),
     ("cancelled", 0)],
)  # fmt: skip
async def test_status_filter_counts_and_lists_exactly_the_matching_tasks(
    http: httpx.AsyncClient, created: list[str], status: str, expected: int
) -> None:
    body = (await http.get(TASKS, params={"status": status, "limit": 100})).json()
    assert body["total"] == expected
    assert len(body["tasks"]) == expected
    assert all(t["status"] == status for t in body["tasks"])
    paged = await page_through(http, 3, status=status)
    assert [t["taskId"] for t in paged] == [t["taskId"] for t in body["tasks"]]


async def test_windowed_listing_matches_the_full_sort(
    http: httpx.AsyncClient, created: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the fetch-all threshold the API narrows by StartTime; the pages must not change."""
    monkeypatch.setattr(api.tasks.listing, "LIST_FETCH_ALL_BELOW", 0)
    monkeypatch.setattr(api.tasks.listing, "LIST_FIRST_WINDOW", timedelta(seconds=1))
    monkeypatch.setattr(api.tasks.listing, "LIST_WINDOW_GROWTH", 2)
    for limit in (3, 10):
        items = await page_through(http, limit)
        assert [t["taskId"] for t in items] == created[::-1]


async def test_cancelled_tasks_are_listed_as_cancelled(
    http: httpx.AsyncClient, created: list[str]
) -> None:
    victim = created[-1]
    assert (await http.delete(f"{TASKS}/{victim}")).status_code == 200
    body: dict[str, Any] = {}

    async def listed() -> bool:  # visibility is eventually consistent
        body.update((await http.get(TASKS, params={"status": "cancelled"})).json())
        return bool(body["tasks"])

    await async_wait_until(
        listed, 20, message=lambda: f"{victim} never listed as cancelled: {body}"
    )
    assert [t["taskId"] for t in body["tasks"]] == [victim] and body["total"] == 1
    running = (await http.get(TASKS, params={"status": "running"})).json()
    assert running["total"] == RUNNING - 1
    assert (await http.get(TASKS)).json()["total"] == TOTAL
