"""Time as a dependency: the system clock in production, a hand-driven clock in tests.

Everything that schedules (cron triggers, requeue delays, lease timing) asks a `Clock`, so tests
advance time by hours in microseconds instead of sleeping. Waiters (the work queue) subscribe to
`on_advance` so a fake clock can wake them when the test moves time forward.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def on_advance(self, callback: Callable[[], None]) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def on_advance(self, callback: Callable[[], None]) -> None:
        """Real time advances by itself; waiters use timeouts."""


class FakeClock:
    """A clock that moves only when told to. `monotonic()` follows `now()`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._origin = self._now
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return (self._now - self._origin).total_seconds()

    def on_advance(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def advance(self, seconds: float) -> None:
        self.set(self.now() + timedelta(seconds=seconds))

    def set(self, when: datetime) -> None:
        with self._lock:
            if when < self._now:
                raise ValueError("a fake clock never goes backwards")
            self._now = when
        for cb in list(self._callbacks):
            cb()


def rfc3339(when: datetime) -> str:
    """Kubernetes' metav1.Time format: UTC, second precision, `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
