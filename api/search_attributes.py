"""The API registers the search attributes too, at its first connection to Temporal, so it
accepts tasks (201, pending) before any worker ever ran: on a first deploy, or while every
worker is down. Where the namespace forbids it (Temporal Cloud), /readyz answers 503 naming the
missing attributes and the command that adds them, and checks again on each probe, so it turns
ready as soon as an operator has added them.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client

from common.search_attributes import SearchAttributesMissing, ensure_search_attributes

log = logging.getLogger(__name__)


class SearchAttributeRegistration:
    """Whether our search attributes are known to exist in the namespace, and if not, why."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.confirmed = False
        self.problem: SearchAttributesMissing | None = None
        self._lock = asyncio.Lock()

    async def ensure(self, client: Client) -> None:
        """Register what is missing (idempotent; once confirmed, a no-op). An unreachable
        Temporal raises its RPCError; a refusal is kept in `problem`, not raised."""
        if self.confirmed:
            return
        async with self._lock:
            if self.confirmed:
                return
            try:
                added = await ensure_search_attributes(client, self.namespace)
            except SearchAttributesMissing as err:
                if self.problem is None or self.problem.missing != err.missing:
                    log.error("%s", err)
                self.problem = err
                return
            if added:
                log.info("registered search attributes: %s", ", ".join(added))
            self.problem = None
            self.confirmed = True

    async def not_ready_reason(self, client: Client) -> str | None:
        """None once the attributes exist; else what is missing and how to add it."""
        await self.ensure(client)
        if self.confirmed:
            return None
        return str(self.problem) if self.problem else "search attributes not registered yet"
