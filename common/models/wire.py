"""The wire basics: the camelCase base model, RFC 3339 datetimes, and field paths as the API
words them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

_REQUEST_PARTS = ("body", "query", "path", "header")


def field_path(loc: Sequence[int | str], *, camel: bool = False) -> str:
    """A validation error's location as the API words it: ('body', 'images', 0) -> images[0].

    `camel` turns Python field names into wire names (the client validates by field name).
    """
    parts = list(loc)
    if parts and parts[0] in _REQUEST_PARTS:
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            name = to_camel(p) if camel else str(p)
            out += f".{name}" if out else name
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(dt: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z suffix and whole seconds, as the original service emitted."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; datetimes serialize as RFC 3339 UTC."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        use_enum_values=False,
    )


UtcDatetime = Annotated[
    datetime,
    AfterValidator(lambda d: d if d.tzinfo else d.replace(tzinfo=UTC)),
    # Whole seconds with a Z, as the original service's examples (2026-01-16T15:12:34Z).
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
