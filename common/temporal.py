"""Temporal names, typed search attributes and the one way to build a client.

Registering the search attributes: common/search_attributes.py.

Every client (API, worker, CLI, tests, replayer) goes through `connect`, so all of them use the
pydantic data converter and the same TLS / API-key settings.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import Client, TLSConfig
from temporalio.common import (
    SearchAttributeKey,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from common.settings import Settings

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
        # SQL visibility (the dev server's SQLite, PostgreSQL, MySQL) allows at most 3 custom
        # attributes per type: Int holds the three an operator filters on, Double the next
        # three (an int value is a valid float), Keyword the rest (decimal text).
        if self in (SearchAttr.STATUS, SearchAttr.IDEMPOTENCY_KEY, SearchAttr.TOTAL_BATCHES):
            return IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        if self in (SearchAttr.SKIPPED_NODES, SearchAttr.WARM_NODES, SearchAttr.CURRENT_BATCH):
            return IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE
        return IndexedValueType.INDEXED_VALUE_TYPE_INT


STATUS_KEY = SearchAttributeKey.for_keyword(SearchAttr.STATUS.value)
IDEMPOTENCY_KEY = SearchAttributeKey.for_keyword(SearchAttr.IDEMPOTENCY_KEY.value)
TOTAL_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.TOTAL_NODES.value)
COMPLETED_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.COMPLETED_NODES.value)
FAILED_NODES_KEY = SearchAttributeKey.for_int(SearchAttr.FAILED_NODES.value)
# Double (SQL visibility caps Int at 3): set with float(n) (an int is rejected at runtime).
SKIPPED_NODES_KEY = SearchAttributeKey.for_float(SearchAttr.SKIPPED_NODES.value)
WARM_NODES_KEY = SearchAttributeKey.for_float(SearchAttr.WARM_NODES.value)
CURRENT_BATCH_KEY = SearchAttributeKey.for_float(SearchAttr.CURRENT_BATCH.value)
# Keyword holding the decimal number, e.g. TOTAL_BATCHES_KEY.value_set(str(n)).
TOTAL_BATCHES_KEY = SearchAttributeKey.for_keyword(SearchAttr.TOTAL_BATCHES.value)

# Every key, in SearchAttr order: for test servers and tooling that register them all.
ALL_SEARCH_ATTRIBUTE_KEYS: list[SearchAttributeKey[Any]] = [
    STATUS_KEY,
    IDEMPOTENCY_KEY,
    TOTAL_NODES_KEY,
    COMPLETED_NODES_KEY,
    FAILED_NODES_KEY,
    SKIPPED_NODES_KEY,
    WARM_NODES_KEY,
    CURRENT_BATCH_KEY,
    TOTAL_BATCHES_KEY,
]


def _read(var: str, path: Path | None) -> bytes | None:
    """A PEM file's bytes; a missing or unreadable file fails at start-up, naming the variable."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{var}={path}: cannot read the file ({exc.strerror})") from None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for the Temporal client, from TEMPORAL_TLS_* / TEMPORAL_API_KEY (docs/deploy.md).

    mTLS (self-hosted or Temporal Cloud): TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY, and
    TEMPORAL_TLS_CA for a private CA. API key (Temporal Cloud): TLS with the system roots.
    TEMPORAL_TLS=true alone: server TLS from a public CA, no client certificate.
    """
    custom = (
        settings.temporal_tls_cert or settings.temporal_tls_ca or settings.temporal_tls_server_name
    )
    enabled = settings.temporal_tls
    if enabled is None:
        enabled = bool(custom or settings.temporal_api_key)
    if not enabled:
        return False
    if not custom:
        return True
    return TLSConfig(
        server_root_ca_cert=_read("TEMPORAL_TLS_CA", settings.temporal_tls_ca),
        client_cert=_read("TEMPORAL_TLS_CERT", settings.temporal_tls_cert),
        client_private_key=_read("TEMPORAL_TLS_KEY", settings.temporal_tls_key),
        domain=settings.temporal_tls_server_name,
    )


async def connect(settings: Settings, **kwargs: object) -> Client:
    """A client with the pydantic data converter and the configured TLS or API key."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key,
        **kwargs,  # type: ignore[arg-type]
    )
