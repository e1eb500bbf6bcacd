"""Logging setup and the Prometheus metrics every component shares.

Metric labels never carry a node name, an image or a task ID: cardinality must not grow with
the cluster. Log lines about a task carry `taskId` (pass `extra={"taskId": ...}`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping

from prometheus_client import Counter, Histogram
from pythonjsonlogger.json import JsonFormatter

from common.settings import LogFormat, Settings

# --- Metrics ------------------------------------------------------------------------------

TASKS_STARTED = Counter("ips_tasks_started_total", "Prewarm tasks started.")
TASKS_FINISHED = Counter("ips_tasks_finished_total", "Prewarm tasks finished.", ["status"])
NODES_PROCESSED = Counter(
    "ips_nodes_processed_total", "Nodes processed, by result.", ["result"]
)  # result: completed | failed | skipped | warm
NODE_FAILURES = Counter("ips_node_failures_total", "Failed nodes, by reason code.", ["reason"])
NODE_PREWARM_SECONDS = Histogram(
    "ips_node_prewarm_seconds",
    "Seconds from Job creation to the node's outcome.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600, 7200),
)
K8S_REQUESTS = Counter(
    "ips_k8s_requests_total", "Kubernetes API requests.", ["verb", "resource", "code"]
)
K8S_RATE_LIMITED = Counter(
    "ips_k8s_rate_limited_total", "Kubernetes 429 answers honoured (Retry-After waited out)."
)
API_REQUEST_SECONDS = Histogram(
    "ips_api_request_seconds",
    "API request latency by route template.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

# --- Logging ------------------------------------------------------------------------------

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def _redact(value: object) -> object:
    return _BEARER.sub(r"\1[REDACTED]", value) if isinstance(value, str) else value


class RedactingFilter(logging.Filter):
    """Last line of defence: no bearer token reaches a log sink, whatever the caller logged.

    `record.args` keeps its shape: a tuple stays a tuple, and a dict (`log.info("%(who)s",
    {"who": ...})`) stays a dict, so the line still formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "earer" in record.msg:
            record.msg = _BEARER.sub(r"\1[REDACTED]", record.msg)
        args = record.args
        if isinstance(args, Mapping):
            record.args = {k: _redact(v) for k, v in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_redact(a) for a in args)
        return True


# The API's task IDs (`task-YYYYMMDD-HHMMSS-<8 hex>`), to tag lines that name a task but were
# logged without `extra={"taskId": ...}` (the Temporal SDK's own lines, third-party libraries).
_TASK_ID = re.compile(r"task-\d{8}-\d{6}-[0-9a-f]{8}(?![0-9a-f])")


class TaskIdFilter(logging.Filter):
    """Every line about a task carries `taskId`: from the Temporal context the SDK's workflow and
    activity loggers attach (the workflow ID is the task ID), else from the message text."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn adds an ANSI-coloured copy of its message; escape codes have no place in JSON.
        record.__dict__.pop("color_message", None)
        if getattr(record, "taskId", None):
            return True
        for attr in ("temporal_workflow", "temporal_activity"):
            ctx = getattr(record, attr, None)
            if isinstance(ctx, dict) and isinstance(ctx.get("workflow_id"), str):
                record.taskId = ctx["workflow_id"]
                return True
        try:
            text = record.getMessage()
        except Exception:  # a malformed call must still be logged, not break the handler
            return True
        m = _TASK_ID.search(text)
        if m:
            record.taskId = m.group(0)
        return True


class _ConsoleFormatter(logging.Formatter):
    """Readable lines for `ips dev`, with the taskId up front when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        task = getattr(record, "taskId", None)
        prefix = f"[{task}] " if task else ""
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: "
        text = base + prefix + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(settings: Settings, component: str) -> None:
    """JSON lines in production, readable lines under `ips dev` (IPS_LOG_FORMAT=console)."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == LogFormat.JSON:
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"component": component},
            timestamp=False,
        )
        # RFC 3339 in UTC with milliseconds (2026-01-16T15:12:34.567Z), what log pipelines parse.
        formatter.converter = time.gmtime
        formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
        formatter.default_msec_format = "%s.%03dZ"
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(_ConsoleFormatter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(TaskIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.value)
    # The Kubernetes client logs request headers at DEBUG, bearer tokens included.
    logging.getLogger("kubernetes").setLevel(max(logging.INFO, root.level))
    logging.getLogger("urllib3").setLevel(logging.WARNING)
