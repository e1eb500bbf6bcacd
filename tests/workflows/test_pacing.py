"""The AIMD window (workflows/pacing.py): halve on RateLimited down to a floor, grow back slowly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.models import FailureReason
from workflows.pacing import AimdWindow

pytestmark = pytest.mark.unit


def test_starts_at_the_ceiling() -> None:
    assert AimdWindow(ceiling=16).window == 16


def test_halves_on_rate_limited_down_to_the_floor() -> None:
    w = AimdWindow(ceiling=64, floor=4)
    seen = []
    for _ in range(6):
        w.cooldown = 0  # a fresh burst each time
        seen.append(w.on_rate_limited())
    assert seen == [32, 16, 8, 4, 4, 4]
    assert w.decreases == 6


def test_one_burst_halves_once() -> None:
    """The 429s of pulls already in flight when the window halved are the same event."""
    w = AimdWindow(ceiling=16)
    # the halving 429, then the 16 outcomes of the pulls that were in flight at the time
    assert [w.on_rate_limited() for _ in range(17)] == [8] * 17
    assert w.decreases == 1
    # the burst is over: the next 429 halves again
    assert w.on_rate_limited() == 4
    assert w.decreases == 2


def test_grows_by_one_per_window_of_successes_up_to_the_ceiling() -> None:
    w = AimdWindow(ceiling=6, window=2)
    history = [w.on_success() for _ in range(20)]
    # 2 successes at window 2, 3 at 3, 4 at 4, 5 at 5: then capped at 6
    assert history[:14] == [2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 5, 6]
    assert max(history) == 6 and history[-1] == 6


def test_recovery_is_slower_than_the_decrease() -> None:
    w = AimdWindow(ceiling=32)
    w.on_rate_limited()
    assert w.window == 16
    successes = 0
    while w.window < 32:
        w.on_success()
        successes += 1
    assert successes == sum(range(16, 32))  # 376 pulls to win back what one 429 burst took


def test_record_dispatches_on_the_reason() -> None:
    w = AimdWindow(ceiling=8)
    assert w.record(False, FailureReason.IMAGE_NOT_FOUND) == 8
    assert w.record(False, FailureReason.RATE_LIMITED) == 4
    assert w.record(True) == 4


def test_other_outcomes_age_the_burst_without_changing_the_window() -> None:
    w = AimdWindow(ceiling=4)
    w.on_rate_limited()
    assert w.cooldown == 4
    for _ in range(4):
        assert w.on_other_outcome() == 2
    assert w.cooldown == 0
    assert w.on_rate_limited() == 1


def test_state_round_trips_through_json() -> None:
    w = AimdWindow(ceiling=10, floor=2)
    w.on_rate_limited()
    w.on_success()
    again = AimdWindow.model_validate_json(w.model_dump_json())
    assert again == w
    assert again.on_success() == w.on_success()


def test_bounds_are_validated() -> None:
    with pytest.raises(ValidationError, match="floor 5 is above ceiling 4"):
        AimdWindow(ceiling=4, floor=5)
    with pytest.raises(ValidationError):
        AimdWindow(ceiling=0)
    assert AimdWindow(ceiling=4, floor=2, window=1).window == 2
