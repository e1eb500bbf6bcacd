"""The AIMD window (common/pacing.py): halve on RateLimited down to a floor, grow back slowly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.models import FailureReason
from common.pacing import AimdWindow

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


def test_grows_by_one_per_window_of_successes_while_429s_keep_coming() -> None:
    w = AimdWindow(ceiling=64, window=8)
    w.cooldown = 1000  # one long burst: its 429s do not halve again
    history = []
    for _ in range(6):  # a 429 every 4 successes: never a clean window
        w.on_rate_limited()
        history += [w.on_success() for _ in range(4)]
    # 8 successes at window 8, then 9 at 9: additive increase
    assert history == [8] * 7 + [9] * 9 + [10] * 8
    assert w.decreases == 0 and w.clean == 4


def test_a_clean_window_grows_it_by_one_per_success_up_to_the_ceiling() -> None:
    """A window's worth of successes with no 429: the limit eased, so the window doubles per
    window (slow start) instead of growing by one."""
    w = AimdWindow(ceiling=6, window=2)
    history = [w.on_success() for _ in range(8)]
    assert history == [2, 3, 3, 4, 5, 6, 6, 6]


def test_recovery_after_the_limit_eases_takes_two_windows_not_hundreds() -> None:
    w = AimdWindow(ceiling=32)
    w.on_rate_limited()
    assert w.window == 16
    successes = 0
    while w.window < 32:
        w.on_success()
        successes += 1
    # a clean window of 16 (growing once, at its end), then one Job per success:
    # 32 pulls, where one Job per window's worth of successes took sum(range(16, 32)) = 376
    assert successes == 32


def test_a_429_ends_the_fast_growth() -> None:
    w = AimdWindow(ceiling=64, window=8)
    for _ in range(9):
        w.on_success()
    assert (w.window, w.clean) == (9, 9)  # growing one per success
    assert w.on_rate_limited() == 4 and w.clean == 0
    # back to one Job per window's worth of successes, inside the burst (cooldown 9)
    assert [w.on_success() for _ in range(4)] == [4, 4, 4, 5]
    w.on_rate_limited()  # still in the burst: no halving, but no clean window either
    assert [w.on_success() for _ in range(5)] == [5] * 4 + [6]
    assert w.decreases == 1


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
