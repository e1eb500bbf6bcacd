"""One definition of the custom search attributes: names, registered types and typed keys."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.common import SearchAttributeIndexedValueType

from common import temporal as t

pytestmark = pytest.mark.unit

_KEY_TYPE = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
}


def test_every_attribute_has_one_typed_key_of_its_registered_type() -> None:
    keys = {k.name: k for k in t.ALL_SEARCH_ATTRIBUTE_KEYS}
    assert len(keys) == len(t.ALL_SEARCH_ATTRIBUTE_KEYS) == len(t.SearchAttr)
    for attr in t.SearchAttr:
        assert _KEY_TYPE[keys[attr.value].indexed_value_type] == attr.indexed_type, attr


def test_sql_visibility_limits_hold() -> None:
    """SQL visibility (the dev server's SQLite, PostgreSQL, MySQL) allows 3 Int and 3 Double."""
    types = [a.indexed_type for a in t.SearchAttr]
    assert types.count(IndexedValueType.INDEXED_VALUE_TYPE_INT) <= 3
    assert types.count(IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE) <= 3
