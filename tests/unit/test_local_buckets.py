"""The process-local buckets the budgets fall back on: same rules as the Redis script, bounded memory."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.admission.local import LocalBuckets
from app.settings import Settings

SETTINGS = replace(
    Settings(), budget_capacity=10, budget_refill=2.0, write_budget_capacity=2, write_budget_refill=0.5
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refuses_past_capacity_and_refills() -> None:
    clock = Clock()
    buckets = LocalBuckets(SETTINGS, clock=clock)
    assert buckets.charge("a", 8, 0).allowed
    refused = buckets.charge("a", 4, 0)
    assert not refused.allowed and refused.bucket == "cost" and refused.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    assert buckets.charge("a", 4, 0).left == pytest.approx(0)


def test_writes_are_all_or_nothing() -> None:
    buckets = LocalBuckets(SETTINGS, clock=Clock())
    refused = buckets.charge("a", 1, 3)
    assert not refused.allowed and refused.bucket == "writes"
    assert refused.retry_after == pytest.approx(4.0)  # above capacity: a full refill
    assert buckets.charge("a", 0, 0).left == 10
    both = buckets.charge("a", 11, 3)
    assert both.bucket == "cost" and both.retry_after == pytest.approx(5.0)  # the longer wait


def test_memory_is_bounded_by_forgetting_the_least_recent_client() -> None:
    buckets = LocalBuckets(SETTINGS, max_clients=3, clock=Clock())
    for key in ("a", "b", "c"):
        buckets.charge(key, 5, 0)
    buckets.charge("a", 1, 0)
    buckets.charge("d", 5, 0)
    assert len(buckets) == 3
    assert buckets.charge("b", 0, 0).left == 10  # forgotten: full again
    assert buckets.charge("a", 0, 0).left == 4
