"""Real registries for the registry tests, one per variant per session (regserver.py).

Every variant serves the same three images, pushed by the tests themselves:
`<ns>/single:1` (linux/amd64, one manifest), `<ns>/multi:1` (an index: linux/amd64 and
linux/arm64) and `<ns>/amd64only:1` (an index with linux/amd64 only). `<ns>` is `public`
on the token-auth registry (anonymous pull allowed there) and `team` elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.activities.registry.regserver import (
    CA,
    OciImage,
    Registry,
    TokenServer,
    build_layout,
    make_ca,
    missing_tools,
)

USER, PASSWORD = "ips-puller", "s3cret-pull"


@dataclass
class Served:
    registry: Registry
    images: dict[str, OciImage]  # "single" | "multi" | "amd64only" -> what was pushed
    ns: str

    def ref(self, name: str, tag: str = "1") -> str:
        return f"{self.registry.host}/{self.ns}/{name}:{tag}"


@pytest.fixture(scope="session")
def registry_tools() -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(f"real-registry tests need {', '.join(missing)} (installed by .ci/run)")


@pytest.fixture(scope="session")
def layouts(tmp_path_factory: pytest.TempPathFactory, registry_tools: None) -> dict[str, OciImage]:
    d = tmp_path_factory.mktemp("layouts")
    return {
        "single": build_layout(d / "single", "1", [("linux", "amd64")], index=False),
        "multi": build_layout(
            d / "multi", "1", [("linux", "amd64"), ("linux", "arm64")], index=True
        ),
        "amd64only": build_layout(d / "amd64only", "1", [("linux", "amd64")], index=True),
    }


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory, registry_tools: None) -> CA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def _serve(
    reg: Registry, layouts: dict[str, OciImage], ns: str, *, private: bool = False
) -> Iterator[Served]:
    try:
        reg.start()
        for name, img in layouts.items():
            reg.push(img.layout, img.tag, f"{ns}/{name}")
        if private:
            reg.push(layouts["single"].layout, "1", "private/single")
        yield Served(reg, layouts, ns)
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory, layouts: dict[str, OciImage], test_ca: CA
) -> Iterator[Served]:
    """TLS from the test CA, htpasswd (bcrypt) auth."""
    reg = Registry(
        tmp_path_factory.mktemp("reg-tls"), tls=True, htpasswd=(USER, PASSWORD), ca=test_ca
    )
    yield from _serve(reg, layouts, "team")


@pytest.fixture(scope="session")
def plain_registry(
    tmp_path_factory: pytest.TempPathFactory, layouts: dict[str, OciImage]
) -> Iterator[Served]:
    """Plain HTTP, no auth (allowed because it is on loopback)."""
    reg = Registry(tmp_path_factory.mktemp("reg-plain"))
    yield from _serve(reg, layouts, "team")


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, layouts: dict[str, OciImage]
) -> Iterator[Served]:
    """Plain HTTP, token auth: anonymous pull on public/*, the user gets everything; also
    serves `private/single:1`, which anonymous clients may not pull."""
    d = tmp_path_factory.mktemp("reg-token")
    tokens = TokenServer(
        d / "token",
        service="ips-test-registry",
        issuer="ips-test-issuer",
        user=USER,
        password=PASSWORD,
    )
    reg = Registry(d / "registry", token=tokens)
    try:
        yield from _serve(reg, layouts, "public", private=True)
    finally:
        tokens.close()
