"""The scenario's `registries:` and how kubesim's kubelet picks a registry and its credentials
(kubesim/registrypull.py), without a registry."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pydantic import ValidationError

from kubesim import registrypull
from kubesim.cluster import Cluster
from kubesim.scenario import load_scenario

pytestmark = pytest.mark.unit

REG = {"url": "https://127.0.0.1:5443", "username": "node", "password": "node-pw"}


def cluster(**extra: Any) -> Cluster:
    return Cluster(load_scenario({"registries": [REG, {"url": "http://localhost:5000"}], **extra}))


def secret(c: Cluster, name: str, data: dict[str, Any], key: str = ".dockerconfigjson") -> None:
    raw = base64.b64encode(json.dumps(data).encode()).decode()
    c.store.create(
        "Secret",
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "ns"},
         "type": "kubernetes.io/dockerconfigjson", "data": {key: raw}},
    )  # fmt: skip


def pod(*secrets: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"imagePullSecrets": [{"name": s} for s in secrets]},
    }


def test_a_registry_serves_the_images_on_its_host() -> None:
    c = cluster()
    assert registrypull.registry_for(c, "127.0.0.1:5443/team/app:1") is c.scenario.registries[0]
    assert (
        registrypull.registry_for(c, "localhost:5000/app@sha256:" + "a" * 64)
        is (c.scenario.registries[1])
    )
    assert registrypull.registry_for(c, "127.0.0.1:5444/team/app:1") is None
    assert registrypull.registry_for(c, "nginx") is None  # docker.io: the scenario's model
    assert registrypull.registry_for(Cluster(load_scenario({})), "127.0.0.1:5443/a:1") is None


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"url": "ftp://127.0.0.1:5000"}, "url"),
        ({"url": "https://127.0.0.1:5000/v2/"}, "url"),
        ({"url": "https://127.0.0.1:5000", "cafile": "x"}, "cafile"),
    ],
)
def test_bad_registry_entries_name_the_field(entry: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        load_scenario({"registries": [entry]})
    assert e.value.errors()[0]["loc"][:3] == ("registries", 0, field)


def test_pull_secrets_first_then_the_nodes_own() -> None:
    c = cluster()
    auth = base64.b64encode(b"from-auth:pw1").decode()
    secret(c, "a", {"auths": {"https://127.0.0.1:5443": {"auth": auth}}})
    auths = {
        "127.0.0.1:5443": {"username": "plain", "password": "pw2"},
        "127.0.0.1:9999": {"username": "other", "password": "x"},
    }
    secret(c, "b", {"auths": auths})
    secret(c, "legacy", {"127.0.0.1:5443": {"auth": auth}}, key=".dockercfg")
    reg = c.scenario.registries[0]
    assert registrypull.credentials(c, reg, pod("a", "missing", "b", "legacy")) == [
        ("from-auth", "pw1"),
        ("plain", "pw2"),
        ("from-auth", "pw1"),
        ("node", "node-pw"),
    ]
    # no secret and no node credentials: anonymous (an empty list)
    assert registrypull.credentials(c, c.scenario.registries[1], pod("a", "b")) == []


def test_challenges_parse_as_containerd_reads_them() -> None:
    header = (
        'Bearer realm="http://127.0.0.1:4000/token",service="reg",'
        'scope="repository:team/app:pull",error="insufficient_scope"'
    )
    assert registrypull.challenges([header, 'Basic realm="ips-test"']) == [
        ("bearer", {"realm": "http://127.0.0.1:4000/token", "service": "reg",
                    "scope": "repository:team/app:pull", "error": "insufficient_scope"}),
        ("basic", {"realm": "ips-test"}),
    ]  # fmt: skip


def test_cri_message_wraps_as_the_cri_plugin() -> None:
    ref = "127.0.0.1:5443/team/app:1"
    denied = registrypull.PullError("authorization failed: no basic auth credentials", denied=True)
    assert registrypull.cri_message(denied, ref) == (
        f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": failed to '
        f'resolve reference "{ref}": pull access denied, repository does not exist or may '
        "require authorization: authorization failed: no basic auth credentials"
    )
    platform = registrypull.PullError(
        "no match for platform in manifest: not found", code="NotFound", resolving=False
    )
    assert registrypull.cri_message(platform, ref) == (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
        "no match for platform in manifest: not found"
    )
