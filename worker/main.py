"""`ips worker`: the Temporal worker, the only component that talks to Kubernetes.

Registers the search attributes if missing (common/search_attributes.py; the API does too),
serves Prometheus metrics (METRICS_PORT for ours, TEMPORAL_METRICS_PORT for the Temporal SDK's),
and on SIGTERM stops polling, lets in-flight activities finish or heartbeat their progress, and
exits; a restarted worker resumes them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
from datetime import timedelta
from typing import Any

from prometheus_client import start_http_server
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from activities.kube import Kube, KubeConfigError
from activities.prewarm import PrewarmActivities
from activities.registry import RegistryActivities, kube_secret_reader
from common.observability import setup_logging
from common.search_attributes import SearchAttributesMissing, ensure_search_attributes
from common.settings import Settings, load_settings
from common.temporal import connect
from workflows.launcher import ScheduleLauncherWorkflow
from workflows.prewarm import PrewarmWorkflow

log = logging.getLogger(__name__)

# Heartbeats reach the server (and cancellations reach activities) within about a second.
HEARTBEAT_THROTTLE = timedelta(seconds=1)
GRACEFUL_SHUTDOWN = timedelta(seconds=20)
# activities/kube.py sizes its watch thread pool (WATCH_THREADS) from this.
MAX_CONCURRENT_ACTIVITIES = 50


async def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    activity_executor: concurrent.futures.Executor | None = None,
    kube: Kube | None = None,
    activities: list[Any] | None = None,
    **worker_kwargs: Any,
) -> Worker:
    """A worker with PrewarmWorkflow, the Kubernetes activities and the registry preflight
    (or the given mocks, registered by name).

    Used by `ips worker`, and in-process by the tests, the API's integration tests and the
    chaos and bench suites.
    """
    if activities is None:
        kube = kube or Kube(settings)
        registry = RegistryActivities(settings, kube_secret_reader(kube))
        activities = [*PrewarmActivities(kube, settings).all, *registry.all]
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[PrewarmWorkflow, ScheduleLauncherWorkflow],
        activities=activities,
        activity_executor=activity_executor,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        **worker_kwargs,
    )


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _runtime(settings: Settings) -> Runtime | None:
    if not settings.temporal_metrics_port:
        return None
    bind = f"{_host(settings.metrics_host)}:{settings.temporal_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


async def _connect(settings: Settings) -> Client:
    """Temporal may come up after the worker (a pod restart, `ips dev`): retry for a minute."""
    runtime = _runtime(settings)
    kwargs: dict[str, Any] = {"runtime": runtime} if runtime else {}
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(RuntimeError),
        stop=stop_after_delay(60),
        wait=wait_exponential(multiplier=0.5, max=5),
        reraise=True,
    ):
        with attempt:
            return await connect(settings, **kwargs)
    raise AssertionError("unreachable")  # pragma: no cover


async def serve(settings: Settings) -> None:
    kube = Kube(settings)  # fails fast, before anything else, on a bad KUBECONFIG
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    client = await _connect(settings)
    added = await ensure_search_attributes(client, settings.temporal_namespace)
    if added:
        log.info("registered search attributes: %s", ", ".join(added))
    worker = await build_worker(client, settings, kube=kube)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %s on %s (namespace %s, Kubernetes namespace %s)",
        settings.temporal_task_queue,
        settings.temporal_address,
        settings.temporal_namespace,
        settings.k8s_namespace,
    )
    try:
        async with worker:
            await stop.wait()
            log.info("shutting down: finishing in-flight work (up to %s)", GRACEFUL_SHUTDOWN)
    finally:
        kube.close()
    log.info("worker stopped")


def run() -> None:
    """Entry point of `ips worker` (settings from the environment)."""
    settings = load_settings()
    setup_logging(settings, "worker")
    try:
        asyncio.run(serve(settings))
    except (KubeConfigError, SearchAttributesMissing) as err:
        log.error("%s", err)
        raise SystemExit(2) from None
