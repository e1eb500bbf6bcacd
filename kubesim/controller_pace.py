"""kube-controller-manager's client pace: a token bucket at QPS 20, burst 30, in simulated time.

Every controller of kube-controller-manager shares one client-go rate limiter
(`cmd/kube-controller-manager/app/options` `--kube-api-qps` 20, `--kube-api-burst` 30;
`staging/src/k8s.io/client-go/util/flowcontrol/throttle.go` `NewTokenBucketRateLimiter`). The Job
controller spends two requests per new pod (the pod create and its status update,
`pkg/controller/job/job_controller.go` `manageJob` and `trackJobStatusAndRemoveFinalizers`),
so at 5,000 Jobs the pods appear well after their Jobs. Reservations may run the bucket
negative, like `golang.org/x/time/rate` `Limiter.Reserve`: the caller waits the returned delay.
"""

from __future__ import annotations


class TokenBucket:
    def __init__(self, qps: float, burst: int) -> None:
        self.qps, self.burst = qps, burst
        self.tokens = float(burst)
        self.last: float | None = None

    def reserve(self, now: float, n: int = 1) -> float:
        """Take `n` tokens; the simulated seconds to wait before using them (0: at once)."""
        if self.qps <= 0:
            return 0.0
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps
