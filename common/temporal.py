"""Temporal names, typed search attributes and the one way to build a client.

Registering the search attributes: common/search_attributes.py.

Every client (API, worker, CLI, tests, replayer) goes through `connect`, so all of them use the
pydantic data converter and the same TLS / API-key settings.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import Client, TLSConfig
from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    SearchAttributeValue,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from common.settings import Settings

WORKFLOW_NAME = "PrewarmWorkflow"
QUERY_PROGRESS = "progress"
# The API starts each workflow with memo {MEMO_TASK: TaskCreated JSON}, so that listing needs
# neither a query nor a worker: images, batchSize and createdAt come from the memo, the status
# and counters from the search attributes.
MEMO_TASK = "task"
# The creator's principal ID in the same memo: the API's ownership checks read it; a schedule's
# runs (workflows/launcher.py) carry the schedule creator's.
MEMO_OWNER = "owner"
LAUNCHER_WORKFLOW_NAME = "ScheduleLauncherWorkflow"


Kind = SearchAttributeIndexedValueType
# The typed key of each kind of attribute that IPS uses.
_KEY_FOR: dict[Kind, Callable[[str], SearchAttributeKey[Any]]] = {
    Kind.KEYWORD: SearchAttributeKey.for_keyword,
    Kind.INT: SearchAttributeKey.for_int,
    Kind.DOUBLE: SearchAttributeKey.for_float,
}
# What a value becomes to be stored as that kind: the counters are ints everywhere in IPS.
_COERCE: dict[Kind, Callable[[Any], SearchAttributeValue]] = {
    Kind.KEYWORD: str,
    Kind.INT: int,
    Kind.DOUBLE: float,
}


class SearchAttr(StrEnum):
    """The custom search attributes, each declared once: its Temporal name and its type.

    The list API reads these, so it needs no worker. A member is the attribute's name (a str,
    for visibility queries: f"{SearchAttr.STATUS} = 'running'"); `key` is its typed key
    (workflow upserts, describe), `indexed_type` what the namespace registers
    (common/search_attributes.py). Names and types are fixed: committed workflow histories
    (tests/workflows/histories) and every existing namespace carry them.

    SQL visibility (the dev server's SQLite, PostgreSQL, MySQL) allows at most 3 custom
    attributes per type, except Keyword (10): Int holds the three an operator filters on,
    Double the next three (an int value is a valid float), Keyword the rest (decimal text) and
    the identifiers (4 of 10 used).
    """

    _value_: str
    kind: Kind
    key: SearchAttributeKey[Any]

    def __new__(cls, name: str, kind: Kind) -> SearchAttr:
        member = str.__new__(cls, name)
        member._value_ = name
        member.kind = kind
        member.key = _KEY_FOR[kind](name)
        return member

    STATUS = "IpsStatus", Kind.KEYWORD
    TOTAL_NODES = "IpsTotalNodes", Kind.INT
    COMPLETED_NODES = "IpsCompletedNodes", Kind.INT
    FAILED_NODES = "IpsFailedNodes", Kind.INT
    SKIPPED_NODES = "IpsSkippedNodes", Kind.DOUBLE
    WARM_NODES = "IpsWarmNodes", Kind.DOUBLE
    CURRENT_BATCH = "IpsCurrentBatch", Kind.DOUBLE
    TOTAL_BATCHES = "IpsTotalBatches", Kind.KEYWORD
    IDEMPOTENCY_KEY = "IpsIdempotencyKey", Kind.KEYWORD
    # The schedule a task ran for (GET /api/v1/tasks?scheduleId=...); set at the child's start.
    SCHEDULE_ID = "IpsScheduleId", Kind.KEYWORD

    @property
    def indexed_type(self) -> IndexedValueType.ValueType:
        """The type as the operator service registers it."""
        return IndexedValueType.ValueType(int(self.kind))

    def value_set(self, value: str | int | float) -> SearchAttributeUpdate[Any]:
        """An upsert of `value` as this attribute's type: a count becomes float(n) for a
        Double and its decimal text for a Keyword (the server rejects an int there)."""
        return self.key.value_set(_COERCE[self.kind](value))

    def pair(self, value: str | int | float) -> SearchAttributePair[Any]:
        """`value` as this attribute's type, for a workflow's start (TypedSearchAttributes)."""
        return SearchAttributePair(self.key, _COERCE[self.kind](value))


# Every key, for test servers and tooling that register them all.
ALL_SEARCH_ATTRIBUTE_KEYS: list[SearchAttributeKey[Any]] = [a.key for a in SearchAttr]


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
