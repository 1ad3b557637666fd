"""The one back-off of passes, IDLE and webhook delivery."""

from __future__ import annotations

from poller.backoff import exponential


def test_the_wait_doubles_from_the_initial_one_up_to_the_cap():
    assert [exponential(n, 2.0, 30.0) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 30, 30]


def test_no_failure_means_no_wait_and_a_long_run_of_failures_stays_at_the_cap():
    assert exponential(0, 2.0, 30.0) == 0.0
    assert exponential(10_000, 2.0, 30.0) == 30.0
