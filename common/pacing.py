"""Adaptive pacing of pulls (pure, deterministic): an AIMD window over the Jobs in flight.

When a node's pull fails with `RateLimited` (the registry answered 429), the window halves,
down to `floor`; while pulls succeed it grows back, up to `ceiling`, the task's own in-flight
limit:

- while 429s keep coming (fewer than a window's worth of successes since the last one), by one
  Job per window's worth of successes (TCP congestion avoidance: additive increase,
  multiplicative decrease): the window probes slowly for what the registry accepts;
- once a whole window's worth of pulls has succeeded with no 429 in between (`clean`), by one
  Job per success, so it doubles every window (TCP's slow start): the limit has eased, and a
  window that stays small after it only slows the task down. Measured (bench/registry.py):
  growing by one per window took 45 s to win back 7 -> 40 Jobs after a 20 s limit, most of
  the AIMD runs' extra makespan.

One burst of 429s is one congestion event: the pulls that were already in flight when the
window halved can still report 429s, so after a decrease the next `window-before-the-decrease`
outcomes cannot halve it again (TCP halves at most once per round trip for the same reason).

The batch activity runs it (activities/pacing_gate.py): it sees each pod's first 429 as it
happens and gates Job creation on `window`. It reports the state with its outcomes, and the
workflow keeps the latest in `EngineState.pacing`, shows `window` in the progress, and hands it
to the next unit. It lives in `common/` because both sides hold it. The state is a pydantic
model with no clock and no randomness, so it crosses continue-as-new and replays the same.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from common.models import FailureReason, WireModel


class AimdWindow(WireModel):
    ceiling: int = Field(
        ge=1, description="The task's in-flight limit; the window never exceeds it."
    )
    floor: int = Field(default=1, ge=1)
    window: int = Field(default=0, ge=0, description="0 means: start at the ceiling.")
    successes: int = Field(default=0, ge=0, description="Since the window last grew.")
    cooldown: int = Field(default=0, ge=0, description="Outcomes left in the last 429 burst.")
    decreases: int = Field(default=0, ge=0)
    clean: int = Field(default=0, ge=0, description="Successes since the last 429.")

    @model_validator(mode="after")
    def _bounds(self) -> AimdWindow:
        if self.floor > self.ceiling:
            raise ValueError(f"floor {self.floor} is above ceiling {self.ceiling}")
        if self.window == 0:
            self.window = self.ceiling
        self.window = min(max(self.window, self.floor), self.ceiling)
        return self

    def on_rate_limited(self) -> int:
        """A node failed with RateLimited: halve (once per burst). Returns the window."""
        self.clean = 0
        if self.cooldown > 0:
            self.cooldown -= 1
            return self.window
        self.cooldown = self.window
        self.window = max(self.floor, self.window // 2)
        self.successes = 0
        self.decreases += 1
        return self.window

    def on_success(self) -> int:
        """A node's pull succeeded: one step towards growing by one, or one more Job after a
        clean window. Returns the window."""
        if self.cooldown > 0:
            self.cooldown -= 1
        self.clean += 1
        if self.clean > self.window:  # a whole window of successes, no 429: the limit eased
            self.successes = 0
            self.window = min(self.ceiling, self.window + 1)
            return self.window
        self.successes += 1
        if self.successes >= self.window:
            self.successes = 0
            self.window = min(self.ceiling, self.window + 1)
        return self.window

    def on_other_outcome(self) -> int:
        """Any other outcome (another failure reason, a skip): only ages the burst."""
        if self.cooldown > 0:
            self.cooldown -= 1
        return self.window

    def record(self, ok: bool, reason: FailureReason | None = None) -> int:
        """One node outcome, as the batch activity reports it."""
        if ok:
            return self.on_success()
        if reason == FailureReason.RATE_LIMITED:
            return self.on_rate_limited()
        return self.on_other_outcome()
