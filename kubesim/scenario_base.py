"""The scenario models' common base: camelCase keys, unknown keys refused, and sizes in bytes."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}


def parse_bytes(value: Any) -> int:
    """`52428800`, `50MiB`, `100MB/s`, `5Gi` -> bytes (or bytes per second)."""
    if isinstance(value, int | float):
        return int(value)
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*(/s)?\s*", str(value))
    if not m or m[2].lower() not in _UNITS:
        raise ValueError(f"not a size: {value!r} (use e.g. 52428800, 50MiB, 1GB, 100MB/s)")
    return int(float(m[1]) * _UNITS[m[2].lower()])


class ScenarioModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )
