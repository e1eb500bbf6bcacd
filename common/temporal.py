"""Temporal names, typed search attributes and the one way to build a client.

Every client (API, worker, CLI, tests, replayer) goes through `connect`, so all of them use the
pydantic data converter and the same TLS / API-key settings.
"""

from __future__ import annotations

import logging
from enum import StrEnum

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, TLSConfig
from temporalio.common import (
    SearchAttributeKey,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from common.settings import Settings

log = logging.getLogger(__name__)

WORKFLOW_NAME = "PrewarmWorkflow"
QUERY_PROGRESS = "progress"
# The API starts each workflow with memo {MEMO_TASK: TaskCreated JSON}, so that listing needs
# neither a query nor a worker: images, batchSize and createdAt come from the memo, the status
# and counters from the search attributes.
MEMO_TASK = "task"


class SearchAttr(StrEnum):
    """Custom search attributes; the list API reads these, so it needs no worker."""

    STATUS = "IpsStatus"
    TOTAL_NODES = "IpsTotalNodes"
    COMPLETED_NODES = "IpsCompletedNodes"
    FAILED_NODES = "IpsFailedNodes"
    SKIPPED_NODES = "IpsSkippedNodes"
    WARM_NODES = "IpsWarmNodes"
    CURRENT_BATCH = "IpsCurrentBatch"
    TOTAL_BATCHES = "IpsTotalBatches"
    IDEMPOTENCY_KEY = "IpsIdempotencyKey"

    @property
    def indexed_type(self) -> IndexedValueType.ValueType:
        if self in (SearchAttr.STATUS, SearchAttr.IDEMPOTENCY_KEY):
            return IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        return IndexedValueType.INDEXED_VALUE_TYPE_INT


STATUS_KEY = SearchAttributeKey.for_keyword(SearchAttr.STATUS.value)
IDEMPOTENCY_KEY = SearchAttributeKey.for_keyword(SearchAttr.IDEMPOTENCY_KEY.value)
TOTAL_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.TOTAL_NODES.value)
COMPLETED_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.COMPLETED_NODES.value)
FAILED_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.FAILED_NODES.value)
SKIPPED_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.SKIPPED_NODES.value)
WARM_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.WARM_NODES.value)
CURRENT_BATCH_KEY = SearchAttributeKey.for_int(SearchAttr.CURRENT_BATCH.value)
TOTAL_BATCHES_KEY = SearchAttributeKey.for_int(SearchAttr.TOTAL_BATCHES.value)


def search_attribute_cli_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for attr in SearchAttr:
        kind = (
            "Keyword" if attr.indexed_type == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD else "Int"
        )
        flags += ["--search-attribute", f"{attr.value}={kind}"]
    return flags


def _tls(settings: Settings) -> TLSConfig | bool:
    if not (settings.temporal_tls_cert or settings.temporal_tls_ca):
        return bool(settings.temporal_api_key)
    return TLSConfig(
        server_root_ca_cert=settings.temporal_tls_ca.read_bytes()
        if settings.temporal_tls_ca
        else None,
        client_cert=settings.temporal_tls_cert.read_bytes() if settings.temporal_tls_cert else None,
        client_private_key=settings.temporal_tls_key.read_bytes()
        if settings.temporal_tls_key
        else None,
    )


async def connect(settings: Settings, **kwargs: object) -> Client:
    """A client with the pydantic data converter and the configured TLS or API key."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=_tls(settings),
        api_key=api_key,
        **kwargs,  # type: ignore[arg-type]
    )


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register missing custom search attributes; idempotent. Returns the names it added."""
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {a.value: a.indexed_type for a in SearchAttr if a.value not in resp.custom_attributes}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        log.info("registered search attributes %s", sorted(missing))
    return sorted(missing)
