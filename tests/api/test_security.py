"""Issue 14, without Temporal: closed by default, authenticate before parsing, roles, policy,
and a /readyz that tells its reasons only to authenticated callers."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import AuthConfigError, load_auth
from api.main import create_app
from api.policy import normalized_repository, registry_allowed
from common.settings import Settings

pytestmark = pytest.mark.unit

TASKS = "/api/v1/tasks"
DEAD_TEMPORAL = "127.0.0.1:1"
TOKENS = "tok-read read, tok-write write, tok-admin admin, tok-legacy"
VALID = {"images": ["nginx:1"], "batchSize": 1}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"temporal_address": DEAD_TEMPORAL, "ips_api_tokens": TOKENS}
    values.update(overrides)
    return Settings(**values)


async def client_for(s: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(s)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async for c in client_for(settings()):
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- 1. auth never turns itself off ------------------------------------------------------------


@pytest.mark.parametrize("value", ["", ",", " , ,", "   "])
def test_an_empty_token_variable_is_a_startup_error(value: str) -> None:
    with pytest.raises(AuthConfigError, match="holds no token"):
        load_auth(Settings(ips_api_tokens=value))


def test_a_token_file_with_only_comments_is_a_startup_error(tmp_path: Path) -> None:
    f = tmp_path / "tokens"
    f.write_text("# ops\n\n   # ci\n")
    with pytest.raises(AuthConfigError, match="holds no token"):
        load_auth(Settings(ips_api_tokens_file=f))
    with pytest.raises(AuthConfigError, match="cannot be read"):
        load_auth(Settings(ips_api_tokens_file=tmp_path / "absent"))


def test_token_file_roles_are_backward_compatible(tmp_path: Path) -> None:
    """The old format (one bare token a line, # comments) still loads, with every right."""
    f = tmp_path / "tokens"
    f.write_text("# ops\nold-token\n  ci-token   write \ndash read\nroot ADMIN\n")
    auth = load_auth(Settings(ips_api_tokens_file=f))
    roles = {tok.decode(): p.role.label for tok, p in auth.tokens}
    assert roles == {"old-token": "admin", "ci-token": "write", "dash": "read", "root": "admin"}
    ids = {p.id for _, p in auth.tokens}
    assert len(ids) == 4 and not any("token" in i.removeprefix("token-") for i in ids)
    with pytest.raises(AuthConfigError, match="line 2"):
        f.write_text("# ops\nci-token writer\n")
        load_auth(Settings(ips_api_tokens_file=f))


def test_no_token_and_no_explicit_none_is_a_startup_error() -> None:
    with pytest.raises(AuthConfigError, match="IPS_AUTH=none"):
        load_auth(Settings())
    with pytest.raises(AuthConfigError, match="contradicts"):
        load_auth(Settings(ips_auth="none", ips_api_tokens="tok"))
    # Compose passes an empty variable next to IPS_AUTH=none: consistent, auth is off.
    assert not load_auth(Settings(ips_auth="none", ips_api_tokens="")).enabled


def test_a_bad_token_entry_never_echoes_the_entry() -> None:
    with pytest.raises(AuthConfigError) as exc:
        load_auth(Settings(ips_api_tokens="good, s3cret-part1 s3cret-part2"))
    assert "entry 2" in str(exc.value) and "s3cret" not in str(exc.value)


def test_explicit_none_runs_open_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    app = create_app(Settings(temporal_address=DEAD_TEMPORAL, ips_auth="none"))
    assert not app.state.auth.enabled
    assert any(
        r.levelno == logging.WARNING and "NO authentication" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("value", ["", ","])
def test_ips_api_refuses_to_start_with_an_empty_token_source(value: str) -> None:
    env = {"PATH": str(Path(sys.executable).parent), "IPS_API_TOKENS": value}
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "api"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "IPS_API_TOKENS" in out.stderr and "Traceback" not in out.stderr


# --- 5. authenticate before parsing the body ---------------------------------------------------


async def test_unauthenticated_bad_json_is_401_not_400(http: httpx.AsyncClient) -> None:
    for headers in ({}, bearer("wrong")):
        r = await http.post(
            TASKS, content=b"{not json", headers={"Content-Type": "application/json", **headers}
        )
        assert r.status_code == 401, r.text
        # Even a body over the cap: no byte of it is read before the token is checked.
        r = await http.post(TASKS, content=b"x" * 2_000_000, headers=headers)
        assert r.status_code == 401, r.text
    r = await http.post(
        TASKS,
        content=b"{not json",
        headers={"Content-Type": "application/json", **bearer("tok-write")},
    )
    assert r.status_code == 400 and r.json()["error"] == "malformed JSON"


# --- roles -------------------------------------------------------------------------------------


async def test_a_read_token_reads_but_never_writes(http: httpx.AsyncClient) -> None:
    # Past auth, a read reaches the store: 503 here (no Temporal), never 401/403.
    assert (await http.get(TASKS, headers=bearer("tok-read"))).status_code == 503
    r = await http.get(f"{TASKS}/task-20260116-151234-a1b2c3d4", headers=bearer("tok-read"))
    assert r.status_code == 503
    r = await http.post(TASKS, json=VALID, headers=bearer("tok-read"))
    assert r.status_code == 403 and "role read" in r.json()["details"], r.text
    r = await http.delete(f"{TASKS}/task-20260116-151234-a1b2c3d4", headers=bearer("tok-read"))
    assert r.status_code == 403, r.text
    for token in ("tok-write", "tok-admin", "tok-legacy"):  # a bare token keeps every right
        assert (await http.post(TASKS, json=VALID, headers=bearer(token))).status_code == 503


# --- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"imagePullPolicy": "Always"}, "IPS_ALLOW_ALWAYS_PULL"),
        ({"imagePullSecrets": ["regcred"]}, "IPS_ALLOWED_PULL_SECRETS"),
        ({"tolerations": [{"operator": "Exists"}]}, "IPS_ALLOW_KEYLESS_TOLERATIONS"),
        ({"tolerations": [{"operator": "Exists", "effect": "NoSchedule"}]}, "KEYLESS"),
        (
            {
                "tolerations": [
                    {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
                ]
            },
            "IPS_ALLOW_CONTROL_PLANE",
        ),
        (
            {"tolerations": [{"key": "node-role.kubernetes.io/master", "operator": "Exists"}]},
            "IPS_ALLOW_CONTROL_PLANE",
        ),
        (
            {"nodeSelector": {"node-role.kubernetes.io/control-plane": ""}},
            "IPS_ALLOW_CONTROL_PLANE",
        ),
    ],
)
async def test_closed_policy_by_default_is_a_403_naming_the_rule(
    http: httpx.AsyncClient, body: dict[str, Any], rule: str
) -> None:
    r = await http.post(TASKS, json={**VALID, **body}, headers=bearer("tok-write"))
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden by policy" and rule in r.json()["details"]


async def test_the_operator_can_open_each_rule() -> None:
    s = settings(
        ips_allow_always_pull=True,
        ips_allowed_pull_secrets=["regcred"],
        ips_allow_keyless_tolerations=True,
        ips_allow_control_plane=True,
        ips_allowed_registries=["docker.io/library", "registry.example.com/team/"],
    )
    body = {
        "images": ["nginx:1", "registry.example.com/team/app:2"],
        "batchSize": 1,
        "imagePullPolicy": "Always",
        "imagePullSecrets": ["regcred"],
        "tolerations": [
            {"operator": "Exists"},
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
        ],
    }
    async for http in client_for(s):
        r = await http.post(TASKS, json=body, headers=bearer("tok-write"))
        assert r.status_code == 503, r.text  # allowed: it reached the (absent) Temporal
        r = await http.post(
            TASKS,
            json={**body, "imagePullSecrets": ["other"]},
            headers=bearer("tok-write"),
        )
        assert r.status_code == 403 and "imagePullSecrets[0]" in r.json()["details"]
        r = await http.post(
            TASKS,
            json={**body, "images": ["registry.example.com/teammate/app:1"]},
            headers=bearer("tok-write"),
        )
        assert r.status_code == 403 and "IPS_ALLOWED_REGISTRIES" in r.json()["details"]


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1@sha256:" + "a" * 64, "docker.io/library/nginx"),
        ("team/app:1", "docker.io/team/app"),
        ("index.docker.io/library/redis", "docker.io/library/redis"),
        ("localhost/app", "localhost/app"),
        ("localhost:5000/app:1", "localhost:5000/app"),
        ("registry.example.com/team/app", "registry.example.com/team/app"),
    ],
)
def test_images_are_matched_as_the_runtime_resolves_them(image: str, repo: str) -> None:
    assert normalized_repository(image) == repo


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("registry.example.com/team/app:1", True),
        ("registry.example.com/team", True),
        ("registry.example.com/teammate/app:1", False),  # whole components only
        ("registry.example.com.evil.io/team/app", False),
        ("evil.io/registry.example.com/team/app", False),
        ("nginx:1", True),  # docker.io/library
        ("someone/nginx:1", False),
    ],
)
def test_registry_prefixes_match_whole_components(image: str, allowed: bool) -> None:
    prefixes = ["registry.example.com/team", "docker.io/library/"]
    assert registry_allowed(image, prefixes) is allowed


# --- 7. /readyz tells its reasons only to callers with a token -----------------------------------


async def test_readyz_hides_the_reason_from_anonymous_callers(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    r = await http.get("/readyz")
    assert r.status_code == 503 and DEAD_TEMPORAL not in r.text, r.text
    assert "logs" in r.json()["details"]
    assert DEAD_TEMPORAL in caplog.text  # the operator still has it
    for token in ("tok-read", "tok-admin"):
        r = await http.get("/readyz", headers=bearer(token))
        assert r.status_code == 503 and DEAD_TEMPORAL in r.json()["details"], r.text
    r = await http.get("/readyz", headers=bearer("wrong"))
    assert DEAD_TEMPORAL not in r.text


async def test_readyz_with_auth_off_tells_nobody() -> None:
    async for http in client_for(settings(ips_api_tokens=None, ips_auth="none")):
        r = await http.get("/readyz", headers=bearer("anything"))
        assert r.status_code == 503 and DEAD_TEMPORAL not in r.text
