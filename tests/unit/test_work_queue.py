"""The controllers' work queue: deduplication, no concurrent processing of one key, delays on an
injected clock, one pending timer per key, and real-time retries."""

from __future__ import annotations

from kube.clock import FakeClock
from kube.informing import WorkQueue


def drain(q: WorkQueue) -> list[object]:
    out = []
    while (key := q.get(timeout=0.01)) is not None:
        out.append(key)
        q.done(key)
    return out


def test_a_key_is_queued_once() -> None:
    q = WorkQueue(FakeClock())
    for _ in range(3):
        q.add("a")
    q.add("b")
    assert drain(q) == ["a", "b"]


def test_a_key_changed_while_processing_comes_back_once_done() -> None:
    q = WorkQueue(FakeClock())
    q.add("a")
    assert q.get(timeout=0.01) == "a"
    q.add("a")  # changed while a worker holds it: not handed to a second worker
    assert q.get(timeout=0.01) is None
    q.done("a")
    assert drain(q) == ["a"]


def test_delays_follow_the_injected_clock() -> None:
    clock = FakeClock()
    q = WorkQueue(clock)
    q.add_after("later", 3600)
    assert drain(q) == []
    clock.advance(3599)
    assert drain(q) == []
    clock.advance(1)
    assert drain(q) == ["later"]


def test_one_timer_per_key_the_earliest_wins() -> None:
    clock = FakeClock()
    q = WorkQueue(clock)
    for delay in (60, 30, 90, 30, 45):
        q.add_after("k", delay)
    clock.advance(30)
    assert drain(q) == ["k"]
    clock.advance(3600)  # the later timers were superseded: they never fire again
    assert drain(q) == []


def test_retries_back_off_in_real_time_even_with_a_fake_clock() -> None:
    q = WorkQueue(FakeClock(), base_delay=0.01, max_delay=0.05)
    assert q.add_rate_limited("k") == 0.01
    assert q.add_rate_limited("k") == 0.02
    assert q.get(timeout=2) == "k"  # fires by real time although the fake clock never moved
    q.done("k")
    q.forget("k")
    assert q.add_rate_limited("k") == 0.01


def test_shutdown_releases_waiting_workers() -> None:
    q = WorkQueue(FakeClock())
    q.shutdown()
    assert q.get(timeout=5) is None
