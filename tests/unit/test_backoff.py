"""Exponential backoff: a running Backoff, and the delay of the n-th retry counted in a stored row."""

from __future__ import annotations

from app.backoff import Backoff, nth_delay
from app.notifications.sender import RetryPolicy


def test_a_backoff_doubles_to_its_cap_and_starts_again_after_a_reset() -> None:
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_the_nth_delay_doubles_from_the_first_to_the_cap() -> None:
    assert [nth_delay(10.0, 100.0, n) for n in range(6)] == [10.0, 20.0, 40.0, 80.0, 100.0, 100.0]


def test_a_message_that_failed_thousands_of_times_still_gets_the_cap_not_an_overflow() -> None:
    assert nth_delay(0.5, 60.0, 5000) == 60.0
    assert nth_delay(0.5, 60.0, -1) == 0.5


def test_mail_retries_keep_their_schedule() -> None:
    policy = RetryPolicy(first=10.0, cap=3600.0, attempts=10)
    assert [policy.delay(n) for n in (1, 2, 3, 9, 10)] == [10.0, 20.0, 40.0, 2560.0, None]
    assert RetryPolicy(first=10.0, cap=3600.0, attempts=2000).delay(1500) == 3600.0
