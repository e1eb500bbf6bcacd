"""Who a rate-limited registry refuses, and when: the decisions of the 429 fault proxy
(kubesim/ratelimit_proxy.py), apart from its HTTP.

Who is limited (`per`):
- `client` (default): a registry limits a client by its address, so every request from a client
  that is over its quota fails until the quota resets. A client (the first `X-Forwarded-For`
  address, which kubesim's kubelet sets to the node's InternalIP, else the peer address) is
  over quota with probability `fraction`, drawn again every `windowSeconds`. containerd retries
  a 429 up to 5 times at once, so only a limit that holds for the client fails the pull:
  `fraction` is then about the fraction of pulls that fail.
- `request`: each manifest request independently with probability `fraction`.
- `total`: one token bucket over all (limited) clients together, `rate` manifest requests per
  second with `burst` tokens (full when the limit starts); a request with no token left gets the
  429 and takes none. This is the aggregate limit of real clusters: nodes behind one NAT egress
  address share Docker Hub's per-address quota, and a self-hosted registry (Harbor,
  Artifactory) or a cloud registry throttles its total request rate. Unlike a per-client quota,
  it eases when fewer pulls are in flight. `fraction` is not used.

The limit is active from `after` seconds after it is set, for `seconds` (omitted: until
cleared); both real seconds. Decisions come from `seed`, so a run is reproducible.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel


class Limit(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    per: Literal["client", "request", "total"] = "client"
    fraction: float | None = Field(
        default=None, ge=0, le=1, validate_default=True, description="per client|request"
    )
    rate: float | None = Field(
        default=None,
        gt=0,
        validate_default=True,
        description="per total: manifest requests per second, over all clients",
    )
    burst: int | None = Field(default=None, ge=1, description="per total: default max(1, rate)")
    window_seconds: float = Field(default=5.0, gt=0)
    after: float = Field(default=0.0, ge=0)
    seconds: float | None = Field(default=None, gt=0)
    retry_after_seconds: int = Field(default=1, ge=0)
    clients: Literal["all", "nodes"] = Field(
        default="all",
        description="nodes: only requests carrying X-Forwarded-For (kubesim's kubelets); the "
        "worker's preflight, which sends none, is never limited.",
    )

    @field_validator("fraction")
    @classmethod
    def _fraction_for_per(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and info.data.get("per", "client") != "total":
            raise ValueError("fraction is required unless per is total")
        return v

    @field_validator("rate")
    @classmethod
    def _rate_for_total(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and info.data.get("per") == "total":
            raise ValueError("rate is required when per is total")
        return v

    @property
    def bucket_size(self) -> float:
        """per total: `burst`, else the rate rounded up (one second's worth)."""
        return float(self.burst if self.burst is not None else max(1, math.ceil(self.rate or 1)))


class Limiter:
    """The limit in force and its state: when it started, the token bucket, the random draws."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.limit: Limit | None = None
        self.start_at = 0.0
        self.tokens = 0.0  # per total: the bucket, refilled at `rate` since `filled_at`
        self.filled_at = 0.0

    def set(self, limit: Limit | None, now: float) -> None:
        self.limit = limit
        self.start_at = now + (limit.after if limit else 0.0)
        self.tokens = limit.bucket_size if limit else 0.0
        self.filled_at = self.start_at

    def active(self, now: float) -> bool:
        lim = self.limit
        if lim is None or now < self.start_at:
            return False
        return lim.seconds is None or now < self.start_at + lim.seconds

    def limited(self, client: str, now: float) -> bool:
        lim = self.limit
        if lim is None or not self.active(now):
            return False
        if lim.per == "total":
            return not self.take_token(now)
        assert lim.fraction is not None
        if lim.per == "request":
            return self.rng.random() < lim.fraction
        window = int((now - self.start_at) // lim.window_seconds)
        h = hashlib.sha256(f"{self.seed}/{client}/{window}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < lim.fraction

    def take_token(self, now: float) -> bool:
        """The aggregate token bucket: refill for the time since the last request, take one."""
        lim = self.limit
        assert lim is not None and lim.rate is not None
        since = max(0.0, now - self.filled_at)
        self.tokens = min(lim.bucket_size, self.tokens + since * lim.rate)
        self.filled_at = max(now, self.filled_at)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
