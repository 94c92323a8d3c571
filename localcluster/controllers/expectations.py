"""What a controller just created or deleted and its cache has not shown yet (client-go's expectations).

After a reconcile creates two Pods, the informer may take a moment to show them; a reconcile in
that moment would count too few and create two more. `Expectations` remembers the names written
per controller key; `pending(key, cache)` answers until the cache shows every created name and no
longer shows a deleted one as live (or a few seconds passed: an object created and deleted by
someone else before we saw it must not block the controller forever), with the seconds left, so
the controller looks again then at the latest. In memory only: after a
restart the caches are synced before any reconcile, so there is nothing to wait for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

from kube.rest import Obj

EXPIRY = 10.0  # real seconds after which an unobserved write no longer holds a controller back


class Expectations:
    """Per controller key, the names created or deleted whose effect the cache has not shown yet."""

    def __init__(self, expiry: float = EXPIRY) -> None:
        self.expiry = expiry
        self._lock = threading.Lock()
        self._creates: dict[Hashable, dict[str, float]] = {}
        self._deletes: dict[Hashable, dict[str, float]] = {}

    def created(self, key: Hashable, name: str) -> None:
        with self._lock:
            self._creates.setdefault(key, {})[name] = time.monotonic() + self.expiry

    def deleted(self, key: Hashable, name: str) -> None:
        with self._lock:
            self._deletes.setdefault(key, {})[name] = time.monotonic() + self.expiry

    def forget(self, key: Hashable) -> None:
        """Drop what is expected for `key` (its owner is gone: nothing will ever wait on it)."""
        with self._lock:
            self._creates.pop(key, None)
            self._deletes.pop(key, None)

    def pending(self, key: Hashable, lookup: Callable[[str], Obj | None]) -> float | None:
        """Seconds until the unobserved writes for `key` stop counting (None: nothing pending);
        `lookup(name)` reads the cache."""
        now = time.monotonic()
        with self._lock:
            creates = {n: t for n, t in self._creates.get(key, {}).items() if t > now and lookup(n) is None}
            deletes = {n: t for n, t in self._deletes.get(key, {}).items() if t > now and _live(lookup(n))}
            self._store(self._creates, key, creates)
            self._store(self._deletes, key, deletes)
            left = [*creates.values(), *deletes.values()]
            return min(left) - now if left else None

    @staticmethod
    def _store(table: dict[Hashable, dict[str, float]], key: Hashable, left: dict[str, float]) -> None:
        if left:
            table[key] = left
        else:
            table.pop(key, None)


def _live(obj: Obj | None) -> bool:
    return obj is not None and not (obj.get("metadata") or {}).get("deletionTimestamp")
