"""Registering IPS's custom search attributes: idempotent, safe when replicas race, and a clear
report where the namespace forbids it (Temporal Cloud registers them only through its own
control plane).

The API and the worker both call `ensure_search_attributes` when they connect, so a first
deploy works whichever starts first: a task can be accepted (and wait) before any worker ran.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from common.temporal import SearchAttr

log = logging.getLogger(__name__)

TYPE_NAMES = {
    IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    IndexedValueType.INDEXED_VALUE_TYPE_INT: "Int",
    IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE: "Double",
}
# Another replica registering at the same moment, or a server busy updating the namespace:
# list again and add what is still missing.
_RETRYABLE = {
    RPCStatusCode.ALREADY_EXISTS,
    RPCStatusCode.ABORTED,
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.INTERNAL,
    RPCStatusCode.RESOURCE_EXHAUSTED,
}
ATTEMPTS = 6


def register_commands(namespace: str, names: list[str]) -> str:
    """The commands that add `names` to `namespace`: the temporal CLI's (self-hosted; one
    attribute per command) and tcld's (Temporal Cloud)."""
    types = {a.value: TYPE_NAMES[a.indexed_type] for a in SearchAttr}
    cli = " && ".join(
        f"temporal operator search-attribute create --namespace {namespace} "
        f"--name {name} --type {types[name]}"
        for name in names
    )
    tcld = f"tcld namespace search-attributes add --namespace {namespace} " + " ".join(
        f"--search-attribute {name}={types[name]}" for name in names
    )
    return f"{cli} (Temporal Cloud: {tcld})"


class SearchAttributesMissing(Exception):
    """The namespace lacks some of our search attributes and this client may not add them."""

    def __init__(self, namespace: str, missing: list[str], cause: str) -> None:
        self.namespace = namespace
        self.missing = sorted(missing)
        self.cause = cause
        super().__init__(
            f"Temporal namespace {namespace} has no search attribute "
            f"{', '.join(self.missing)}, and IPS could not add them ({cause}). "
            f"Add them with: {register_commands(namespace, self.missing)}"
        )


async def missing_search_attributes(client: Client, namespace: str) -> list[str]:
    """Our attributes the namespace does not define yet (SearchAttr order)."""
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    return [a.value for a in SearchAttr if a.value not in resp.custom_attributes]


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the missing custom search attributes; returns the names this call added.

    Idempotent, and safe when several API and worker replicas start at once: whoever loses a
    race lists again and finds them there. Raises `SearchAttributesMissing` (naming the
    attributes and the command that adds them) when the server refuses; an unreachable
    Temporal raises the RPCError of the listing call.
    """
    types = {a.value: a.indexed_type for a in SearchAttr}
    added: list[str] = []
    for attempt in range(ATTEMPTS):
        missing = await missing_search_attributes(client, namespace)
        if not missing:
            break
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=namespace, search_attributes={n: types[n] for n in missing}
                )
            )
        except RPCError as err:
            cause = f"{err.status.name}: {err.message}"
            if err.status not in _RETRYABLE or attempt == ATTEMPTS - 1:
                raise SearchAttributesMissing(namespace, missing, cause) from err
            log.info("registering search attributes raced or failed (%s); listing again", cause)
            await asyncio.sleep(0.2 * 2**attempt)
        else:
            added = missing
            log.info("registered search attributes %s in namespace %s", missing, namespace)
    return sorted(added)
