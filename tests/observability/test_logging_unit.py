"""setup_logging in-process: JSON shape, taskId tagging, redaction. The e2e version is in
test_metrics_and_logs.py (real processes, real task)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from common.observability import setup_logging
from common.settings import LogFormat, Settings

pytestmark = pytest.mark.unit
TASK = "task-20260116-151234-a1b2c3d4"


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sink = io.StringIO()
    monkeypatch.setattr("sys.stderr", sink)
    setup_logging(Settings(log_format=LogFormat.JSON), "worker")
    try:
        yield sink
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def lines(sink: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in sink.getvalue().splitlines()]


def test_json_lines_with_rfc3339_utc_time_and_component(json_lines: io.StringIO) -> None:
    logging.getLogger("x").info("hello %s", "there")
    (line,) = lines(json_lines)
    assert line["message"] == "hello there" and line["level"] == "INFO"
    assert line["logger"] == "x" and line["component"] == "worker"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line["time"])


def test_task_id_from_extra_from_temporal_context_or_from_the_text(
    json_lines: io.StringIO,
) -> None:
    log = logging.getLogger("t")
    log.info("explicit", extra={"taskId": TASK})
    log.info("activity line", extra={"temporal_activity": {"workflow_id": TASK}})
    log.info("Running activity (token b'\\x1d%s\\x1a')", TASK)
    log.info("no task here: task-2026 is not an ID")
    got = lines(json_lines)
    assert [ln.get("taskId") for ln in got] == [TASK, TASK, TASK, None]


def test_bearer_tokens_and_colour_codes_never_reach_the_sink(json_lines: io.StringIO) -> None:
    log = logging.getLogger("uvicorn.error")
    log.info("Authorization: Bearer s3cr3t-value", extra={"color_message": "\x1b[36mx\x1b[0m"})
    log.info("header %s", "bearer another-s3cr3t")
    text = json_lines.getvalue()
    assert "s3cr3t" not in text and "[REDACTED]" in text
    assert "\\u001b" not in text and "color_message" not in text


def test_dict_style_arguments_are_redacted_and_never_lose_the_line(
    json_lines: io.StringIO,
) -> None:
    """Issue 14: the filter turned a dict argument into a tuple, and the line was lost."""
    log = logging.getLogger("ips.test")
    log.warning("caller %(who)s sent %(auth)s", {"who": "ci", "auth": "Bearer s3cr3t-tok"})
    log.warning("positional %s and %d", "Bearer s3cr3t-two", 7)
    out = lines(json_lines)
    assert [ln["message"] for ln in out] == [
        "caller ci sent Bearer [REDACTED]",
        "positional Bearer [REDACTED] and 7",
    ]
    assert "s3cr3t" not in json_lines.getvalue()
