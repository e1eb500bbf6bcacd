"""Pull secrets, challenges and the plain-HTTP rule (activities/registry_auth.py), and the
registry's error body as a message (pure)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from activities.registry_auth import (
    Challenge,
    Credentials,
    is_loopback,
    merge_keyrings,
    parse_challenge,
    parse_docker_config,
    plain_http_allowed,
    registry_key,
)
from activities.registry_errors import registry_message
from common.preflight import ResolvedImage

pytestmark = pytest.mark.unit


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_dockerconfigjson_forms_and_keys() -> None:
    raw = json.dumps(
        {
            "auths": {
                "https://r.example.com:5000/v1/": {"auth": b64("alice:pa:ss")},
                "q.example.com": {"username": "bob", "password": "pw"},
                "https://index.docker.io/v1/": {"auth": b64("hub:tok")},
                "empty.example.com": {},
                "bad.example.com": {"auth": b64("no-colon")},
            }
        }
    )
    ring = parse_docker_config(raw)
    assert ring == {
        "r.example.com:5000": Credentials("alice", "pa:ss"),
        "q.example.com": Credentials("bob", "pw"),
        "docker.io": Credentials("hub", "tok"),
    }


def test_legacy_dockercfg_has_no_auths_wrapper() -> None:
    ring = parse_docker_config(json.dumps({"r.example.com": {"auth": b64("u:p")}}))
    assert ring == {"r.example.com": Credentials("u", "p")}


@pytest.mark.parametrize(
    ("raw", "why"), [("{", "not JSON"), ("[]", "not a JSON object"), ('{"auths": 1}', "'auths'")]
)
def test_malformed_config_names_the_problem(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_docker_config(raw)


def test_every_secret_counts_in_order_without_repeats() -> None:
    a = {"r.example.com": Credentials("a", "1")}
    b = {"r.example.com": Credentials("b", "2"), "q.example.com": Credentials("q", "3")}
    assert merge_keyrings([a, b, a]) == {
        "r.example.com": [Credentials("a", "1"), Credentials("b", "2")],
        "q.example.com": [Credentials("q", "3")],
    }


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("http://R.Example.com/", "r.example.com"),
        ("registry-1.docker.io", "docker.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
    ],
)
def test_registry_key(raw: str, key: str) -> None:
    assert registry_key(raw) == key


def test_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull,push"'
    )
    assert parse_challenge(header) == Challenge(
        "bearer",
        {
            "realm": "https://auth.example.com/token",
            "service": "registry.example.com",
            "scope": "repository:team/app:pull,push",
        },
    )


def test_basic_and_odd_challenges() -> None:
    assert parse_challenge('Basic realm="ips-test"') == Challenge("basic", {"realm": "ips-test"})
    assert parse_challenge('Bearer realm="a\\"b", error=insufficient_scope') == Challenge(
        "bearer", {"realm": 'a"b', "error": "insufficient_scope"}
    )
    assert parse_challenge(None) is None
    assert parse_challenge("") is None


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.3.4.5", True),
        ("[::1]:5000", True),
        ("128.0.0.1:5000", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("r.example.com:5000", False),
    ],
)
def test_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
    assert plain_http_allowed(host, []) is loop


def test_plain_http_needs_the_setting_elsewhere() -> None:
    assert plain_http_allowed("r.example.com:5000", ["r.example.com:5000"])
    assert plain_http_allowed("r.example.com:5000", ["R.example.com"])  # every port
    assert not plain_http_allowed("r.example.com:5000", ["r.example.com:5001"])
    assert not plain_http_allowed("q.example.com", ["r.example.com"])


def test_registry_message_forms() -> None:
    spec = httpx.Response(
        404,
        json={
            "errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {}}]
        },
    )
    assert registry_message(spec) == "HTTP 404: MANIFEST_UNKNOWN: manifest unknown"
    token = httpx.Response(401, json={"details": "incorrect username or password"})
    assert registry_message(token) == "HTTP 401: incorrect username or password"
    assert registry_message(httpx.Response(503, text="<html>")) == "HTTP 503: Service Unavailable"


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("r.example.com:5000/team/app:1", "r.example.com:5000/team/app@sha256:" + "c" * 64),
        ("r.example.com:5000/team/app", "r.example.com:5000/team/app@sha256:" + "c" * 64),
        ("nginx:1.25@sha256:" + "d" * 64, "nginx@sha256:" + "c" * 64),
    ],
)
def test_pinned_reference(image: str, pinned: str) -> None:
    assert ResolvedImage(image=image, digest="sha256:" + "c" * 64).pinned == pinned
    assert ResolvedImage(image=image).pinned is None
