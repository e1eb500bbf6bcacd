"""The custom search attributes: one declaration each (common.temporal.SearchAttr), with the
names and types that existing namespaces and the committed workflow histories carry."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.common import SearchAttributeIndexedValueType as Kind

from common.models import TaskStatus
from common.temporal import SearchAttr

pytestmark = pytest.mark.unit

HISTORIES = sorted((Path(__file__).parents[1] / "workflows" / "histories").glob("*.json"))
# Renaming or retyping one breaks every namespace that registered it and every running task.
COMMITTED = {
    "IpsStatus": Kind.KEYWORD,
    "IpsTotalNodes": Kind.INT,
    "IpsCompletedNodes": Kind.INT,
    "IpsFailedNodes": Kind.INT,
    "IpsSkippedNodes": Kind.DOUBLE,
    "IpsWarmNodes": Kind.DOUBLE,
    "IpsCurrentBatch": Kind.DOUBLE,
    "IpsTotalBatches": Kind.KEYWORD,
    "IpsIdempotencyKey": Kind.KEYWORD,
    "IpsScheduleId": Kind.KEYWORD,
}


def test_names_and_types_are_the_committed_ones() -> None:
    assert {a.value: a.kind for a in SearchAttr} == COMMITTED
    for attr in SearchAttr:
        assert (attr.key.name, attr.key.indexed_value_type) == (attr.value, attr.kind)
        assert attr.indexed_type == IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{attr.kind.name}")


def test_a_member_is_its_name_in_visibility_queries() -> None:
    assert f"{SearchAttr.STATUS} = 'failed'" == "IpsStatus = 'failed'"
    assert SearchAttr("IpsTotalBatches") is SearchAttr.TOTAL_BATCHES


def test_value_set_stores_each_count_as_its_registered_type() -> None:
    """The server rejects an int for a Double or a Keyword: counts are converted."""
    stored = {a: a.value_set(7).value for a in SearchAttr if a != SearchAttr.STATUS}
    assert stored[SearchAttr.TOTAL_NODES] == 7 and type(stored[SearchAttr.TOTAL_NODES]) is int
    assert (
        type(stored[SearchAttr.SKIPPED_NODES]) is float and stored[SearchAttr.SKIPPED_NODES] == 7.0
    )
    assert stored[SearchAttr.TOTAL_BATCHES] == "7"
    status = SearchAttr.STATUS.pair(TaskStatus.RUNNING).value
    assert status == "running" and type(status) is str


def test_sql_visibility_limits_hold() -> None:
    """SQL visibility (the dev server's SQLite, PostgreSQL, MySQL) allows 3 Int and 3 Double."""
    kinds = [a.kind for a in SearchAttr]
    assert kinds.count(Kind.INT) <= 3
    assert kinds.count(Kind.DOUBLE) <= 3
    assert kinds.count(Kind.KEYWORD) <= 10


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
def test_committed_histories_upsert_only_declared_names_with_their_types(path: Path) -> None:
    upserted: dict[str, str] = {}
    for event in json.loads(path.read_text())["events"]:
        # The prewarm workflow upserts; the schedule launcher sets them on its child's start.
        attrs = event.get("upsertWorkflowSearchAttributesEventAttributes") or event.get(
            "startChildWorkflowExecutionInitiatedEventAttributes"
        )
        for name, payload in (
            (attrs or {}).get("searchAttributes", {}).get("indexedFields", {}).items()
        ):
            upserted[name] = base64.b64decode(payload["metadata"]["type"]).decode()
    # workflow.patched() records its patch in Temporal's own system attribute, not one of ours.
    if "TemporalChangeVersion" in upserted:
        assert upserted.pop("TemporalChangeVersion") == "KeywordList"
    assert upserted, "no upsert in the history"
    declared = {
        a.value: {Kind.KEYWORD: "Keyword", Kind.INT: "Int", Kind.DOUBLE: "Double"}[a.kind]
        for a in SearchAttr
    }
    assert upserted == {name: declared[name] for name in upserted}
