"""The supervisor's pure parts: the restart backoff, the process count, the layout, exit statuses."""

from __future__ import annotations

import signal

import pytest

from app.supervisor import API_COMMAND, RestartDelay, api_process_count, cores, exit_status, layout


def test_a_child_that_keeps_crashing_waits_twice_as_long_each_time_up_to_the_cap() -> None:
    backoff = RestartDelay(start=1.0, cap=30.0, stable_after=60.0)
    delays = [backoff.next_delay(ran_for=0.5) for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_crash_loop_that_never_ends_stays_at_the_cap() -> None:
    backoff = RestartDelay(start=1.0, cap=30.0, stable_after=60.0)
    for _ in range(10_000):
        backoff.next_delay(ran_for=1.0)
    assert backoff.next_delay(ran_for=1.0) == 30.0


def test_a_child_that_ran_long_enough_is_restarted_soon_again() -> None:
    backoff = RestartDelay(start=1.0, cap=30.0, stable_after=60.0)
    for _ in range(6):
        backoff.next_delay(ran_for=2.0)
    assert backoff.next_delay(ran_for=61.0) == 1.0
    assert backoff.next_delay(ran_for=2.0) == 2.0


def test_zero_processes_means_one_per_core() -> None:
    assert api_process_count(0) == cores() >= 1
    assert api_process_count(3) == 3
    with pytest.raises(ValueError, match="0 \\(one per core\\) or more"):
        api_process_count(-1)


def test_the_layout_is_the_api_processes_then_one_worker_unless_none() -> None:
    children = layout(2, workers=True, listen_fd=7)
    assert [c.name for c in children] == ["API process 1", "API process 2", "worker"]
    assert children[0].args == (API_COMMAND, "--listen-fd", "7")
    assert children[-1].command[-3:] == ["-m", "app.cli", "worker"]
    assert [c.name for c in layout(1, workers=False, listen_fd=7)] == ["API process 1"]


def test_exit_statuses_name_the_signal() -> None:
    assert exit_status(3) == "status 3"
    assert exit_status(-signal.SIGKILL) == "signal SIGKILL"
    assert exit_status(-200) == "signal 200"
