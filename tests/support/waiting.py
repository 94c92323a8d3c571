"""Poll for a condition with a deadline instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Call `fn` until it returns a truthy value without raising AssertionError; return that value.

    On timeout, re-raise the last AssertionError, or fail saying what `fn` last returned.
    """
    deadline = time.monotonic() + timeout
    last_error: AssertionError | None = None
    last: T | None = None
    while True:
        try:
            last = fn()
            if last:
                return last
            last_error = None
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"condition not met within {timeout}s; last result: {last!r}")
        time.sleep(interval)
