"""Preflight: the activity that resolves a task's images against their registries.

It reads the task's pull secrets into a keyring (through the worker's Kubernetes client),
resolves every image with `RegistryClient` (activities/registry_client.py: the OCI
distribution API, its auth and its typed errors) and heartbeats while it waits. What could
not be checked becomes a warning, not a failure.

The client's names are re-exported here, so `from activities.registry import RegistryClient`
keeps working.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from temporalio import activity

from activities.errors import KubernetesNotFound
from activities.kube import Kube
from activities.registry_auth import Credentials, Keyring, merge_keyrings, parse_docker_config
from activities.registry_client import (
    ACCEPT,
    DOCKER_HUB_API,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    TIMEOUT,
    RegistryClient,
    ssl_context,
)
from common.preflight import (
    ACTIVITY_RESOLVE_IMAGES,
    PreflightError,
    ResolveImagesInput,
    ResolveImagesResult,
)
from common.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "ACCEPT",
    "DOCKER_HUB_API",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MAX_MANIFEST_BYTES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "PREFLIGHT_BEAT",
    "TIMEOUT",
    "RegistryActivities",
    "RegistryClient",
    "SecretReader",
    "kube_secret_reader",
    "ssl_context",
]


SecretReader = Callable[[str], Awaitable[dict[str, Any] | None]]


def kube_secret_reader(kube: Kube) -> SecretReader:
    """Reads a pull secret from K8S_NAMESPACE through the worker's rate-limited client
    (a `get` on that Secret by name: RBAC can name each allowed secret in `resourceNames`)."""

    async def read(name: str) -> dict[str, Any] | None:
        try:
            return await kube.call(
                "get", "secrets", kube.core.read_namespaced_secret, name, kube.namespace
            )
        except KubernetesNotFound:
            return None

    return read


PREFLIGHT_BEAT = 5.0


async def _heartbeat_loop() -> None:
    while True:
        if activity.in_activity():
            activity.heartbeat()
        await asyncio.sleep(PREFLIGHT_BEAT)


class RegistryActivities:
    """The preflight activity. `read_secret(name)` returns a Secret object (a dict) or None
    when it does not exist; the worker passes one backed by the Kubernetes API."""

    def __init__(
        self,
        settings: Settings,
        read_secret: SecretReader,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.read_secret = read_secret
        self.transport = transport

    @property
    def all(self) -> list[Any]:
        return [self.resolve_images]

    async def keyring(self, names: list[str]) -> tuple[Keyring, list[str]]:
        """Credentials from the named pull secrets; what could not be used becomes a warning
        (the kubelet, too, pulls without a secret it cannot read)."""
        rings: list[dict[str, Credentials]] = []
        warnings: list[str] = []
        for name in names:
            try:
                secret = await self.read_secret(name)
            except Exception as exc:  # the reader's typed errors vary with its backend
                warnings.append(f"pull secret {name!r} could not be read: {exc}")
                continue
            if secret is None:
                warnings.append(f"pull secret {name!r} does not exist")
                continue
            data = secret.get("data") or {}
            raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
            if not raw:
                warnings.append(f"pull secret {name!r} has no .dockerconfigjson")
                continue
            try:
                rings.append(parse_docker_config(base64.b64decode(raw)))
            except ValueError as exc:
                warnings.append(f"pull secret {name!r} is malformed: {exc}")
        return merge_keyrings(rings), warnings

    @activity.defn(name=ACTIVITY_RESOLVE_IMAGES)
    async def resolve_images(self, request: ResolveImagesInput) -> ResolveImagesResult:
        """Heartbeats every PREFLIGHT_BEAT from its own task (workflows/timeouts.py allows 30 s)
        while the images resolve concurrently."""
        beat = asyncio.create_task(_heartbeat_loop(), name="preflight-heartbeat")
        try:
            return await self._resolve_images(request)
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)

    async def _resolve_images(self, request: ResolveImagesInput) -> ResolveImagesResult:
        keyring, warnings = await self.keyring(list(request.image_pull_secrets))
        verify = ssl_context(self.settings.registry_ca_file)
        async with RegistryClient(
            keyring=keyring,
            insecure_registries=self.settings.insecure_registries,
            verify=verify,
            transport=self.transport,
        ) as client:
            images = await client.resolve_all(list(request.images))
        for img in images:
            if img.error == PreflightError.UNREACHABLE:
                warnings.append(f"preflight skipped for {img.image}: {img.message}")
        log.info(
            "preflight: %s",
            ", ".join(f"{i.image}={i.digest or i.error}" for i in images),
            extra={"taskId": request.task_id},
        )
        return ResolveImagesResult(images=images, warnings=warnings)
