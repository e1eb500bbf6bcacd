"""Every class of bad input gets a 400 (never 422 or 500) with the envelope naming the field."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.testlib import TASKS

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {"images": ["nginx:latest"], "batchSize": 10}

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("missing images", {"batchSize": 10}, "images: Field required"),
    ("missing batchSize", {"images": ["nginx:latest"]}, "batchSize: Field required"),
    ("empty images", {**GOOD, "images": []}, "images: List should have at least 1 item"),
    ("images not a list", {**GOOD, "images": "nginx"}, "images: Input should be a valid list"),
    ("image not a string", {**GOOD, "images": [42]}, "images[0]: Input should be a valid string"),
    ("bad image reference", {**GOOD, "images": ["NGINX:latest"]}, "images[0]:"),
    ("image with spaces", {**GOOD, "images": ["nginx latest"]}, "not a valid image reference"),
    ("batchSize zero", {**GOOD, "batchSize": 0}, "batchSize: Input should be greater than"),
    ("batchSize too big", {**GOOD, "batchSize": 101}, "batchSize: Input should be less than"),
    ("batchSize a string", {**GOOD, "batchSize": "ten"}, "batchSize: Input should be a valid"),
    ("batchSize fractional", {**GOOD, "batchSize": 2.5}, "batchSize:"),
    ("bad label key", {**GOOD, "nodeSelector": {"-bad": "x"}}, "nodeSelector: label key"),
    ("bad label value", {**GOOD, "nodeSelector": {"a": "b c"}}, "nodeSelector: label value"),
    ("selector not a map", {**GOOD, "nodeSelector": ["a"]}, "nodeSelector: Input should be"),
    ("unknown field", {**GOOD, "batchsize": 3}, "batchsize: unknown field"),
    ("timeout out of range", {**GOOD, "timeoutSeconds": 5}, "timeoutSeconds:"),
    ("bad strategy", {**GOOD, "strategy": "yolo"}, "strategy: Input should be 'batch'"),
    ("bad pacing", {**GOOD, "pacing": "slow"}, "pacing: Input should be 'adaptive' or 'fixed'"),
    ("pacing not a string", {**GOOD, "pacing": 1}, "pacing: Input should be 'adaptive'"),
    ("pacing upper case", {**GOOD, "pacing": "Fixed"}, "pacing: Input should be 'adaptive'"),
    ("bad ratio", {**GOOD, "maxFailureRatio": 2}, "maxFailureRatio:"),
    ("bad node name", {**GOOD, "nodeNames": ["Node_1"]}, "nodeNames[0]:"),
    (
        "follow too short",
        {**GOOD, "follow": {"durationSeconds": 5}},
        "follow.durationSeconds: Input should be greater than or equal to 10",
    ),
    (
        "follow too long",
        {**GOOD, "follow": {"durationSeconds": 604801}},
        "follow.durationSeconds: Input should be less than or equal to 604800",
    ),
    ("follow not an object", {**GOOD, "follow": True}, "follow: Input should be"),
    ("follow unknown field", {**GOOD, "follow": {"seconds": 60}}, "follow.seconds: unknown"),
    (
        "follow with nodeNames",
        {**GOOD, "nodeNames": ["n1"], "follow": {}},
        "follow: follow cannot be combined with nodeNames",
    ),
    ("body is a list", [GOOD], "Input should be a valid dictionary"),
    ("body is null", None, "body"),
]


def assert_envelope(r: httpx.Response, status: int, needle: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) <= {"error", "details", "taskId"} and {"error", "details"} <= set(body)
    assert needle in body["details"], body
    return body


@pytest.mark.parametrize(("case", "payload", "needle"), BAD_BODIES, ids=[c for c, *_ in BAD_BODIES])
async def test_bad_body_is_400_naming_the_field_and_rule(
    http: httpx.AsyncClient, case: str, payload: Any, needle: str
) -> None:
    r = await http.post(
        TASKS, content=json.dumps(payload), headers={"content-type": "application/json"}
    )
    body = assert_envelope(r, 400, needle)
    assert body["error"] == "invalid request", case


@pytest.mark.parametrize(
    "raw", [b"{", b"{'images': []}", b"not json", b"", b'{"images": ["a"], "batchSize": 1,}']
)
async def test_malformed_json_is_400(http: httpx.AsyncClient, raw: bytes) -> None:
    r = await http.post(TASKS, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] in ("malformed JSON", "invalid request")


async def test_wrong_content_type_is_400(http: httpx.AsyncClient) -> None:
    r = await http.post(TASKS, content=b"images=nginx", headers={"content-type": "text/plain"})
    assert_envelope(r, 400, "")


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"status": "done"}, "status: Input should be 'pending', 'running'"),
        ({"status": ""}, "status:"),
        ({"limit": 101}, "limit: Input should be less than or equal to 100"),
        ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
        ({"limit": "many"}, "limit: Input should be a valid integer"),
        ({"offset": -1}, "offset: Input should be greater than or equal to 0"),
        ({"offset": "x"}, "offset: Input should be a valid integer"),
    ],
)
async def test_bad_list_parameters_are_400(
    http: httpx.AsyncClient, params: dict[str, Any], needle: str
) -> None:
    assert_envelope(await http.get(TASKS, params=params), 400, needle)


async def test_bad_idempotency_key_is_400(http: httpx.AsyncClient) -> None:
    r = await http.post(TASKS, json=GOOD, headers={"Idempotency-Key": "k" * 256})
    assert_envelope(r, 400, "Idempotency-Key:")


async def test_body_over_the_cap_is_413(http: httpx.AsyncClient) -> None:
    big = {**GOOD, "nodeNames": [f"node-{i:07d}" for i in range(90_000)]}
    r = await http.post(TASKS, json=big)
    assert_envelope(r, 413, "at most 1048576 bytes")


async def test_chunked_body_over_the_cap_is_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 65536  # whitespace: valid JSON padding, but 1.3 MB of it

    r = await http.post(TASKS, content=chunks(), headers={"content-type": "application/json"})
    assert_envelope(r, 413, "at most")


async def test_unknown_route_and_method_use_the_envelope(http: httpx.AsyncClient) -> None:
    assert_envelope(await http.get("/api/v1/nope"), 404, "no such endpoint")
    r = await http.put(f"{TASKS}/task-20260116-151234-a1b2c3d4", json={})
    assert_envelope(r, 405, "PUT is not allowed")
    assert r.headers["allow"] == "DELETE, GET"
    r = await http.patch(TASKS, json={})
    assert_envelope(r, 405, "")
    assert r.headers["allow"] == "GET, POST"
