"""Informers and a work queue: the client-go pattern for level-triggered controllers.

An `Informer` keeps an in-memory copy of one resource in sync with list + watch (resuming from
the last resourceVersion, relisting after 410 Expired or errors, with backoff) and calls a
handler for every change. A `WorkQueue` holds keys to reconcile: a key is queued at most once,
never processed by two workers at the same time, re-queued if it changed while being processed,
and can be delayed (`add_after`) or retried with exponential backoff (`add_rate_limited`).
Delays use an injectable `Clock`, so tests drive schedules without sleeping.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, SystemClock
from kube.rest import Kube, Obj, Resource

log = logging.getLogger("kube.informer")

Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous object)


def key_of(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class Informer:
    def __init__(
        self,
        kube: Kube,
        res: Resource,
        handler: Handler,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        watch_timeout: int = 240,
    ) -> None:
        self.kube = kube
        self.res = res
        self.handler = handler
        self.namespace = namespace
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self._cache: dict[tuple[str, str], Obj] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- cache --------------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._cache.get((namespace or "", name))

    def items(self, namespace: str | None = None) -> list[Obj]:
        with self._lock:
            return [o for (ns, _), o in sorted(self._cache.items()) if namespace is None or ns == namespace]

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    # -- loop ---------------------------------------------------------------------------------------
    def start(self) -> Informer:
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.res.plural}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            try:
                rv = self._relist()
                delay = 0.2
                while not self._stop.is_set():
                    rv = self._watch(rv)
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("%s: list/watch failed (%s); retrying in %.1fs", self.res.plural, exc.status, delay)
                    self._stop.wait(delay)
                    delay = min(delay * 2, 30.0)
            except Exception as exc:
                log.warning("%s: list/watch failed (%s); retrying in %.1fs", self.res.plural, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0) * (1 + random.random() / 10)

    def _relist(self) -> str:
        items, rv = self.kube.list(self.res, self.namespace, label_selector=self.label_selector)
        fresh = {key_of(o): o for o in items}
        with self._lock:
            old = self._cache
            self._cache = fresh
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None:
                self.handler("ADDED", obj, None)
            elif (prev.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get(
                "resourceVersion"
            ):
                self.handler("MODIFIED", obj, prev)
        for key, obj in old.items():
            if key not in fresh:
                self.handler("DELETED", obj, None)
        self._synced.set()
        return rv

    def _watch(self, rv: str) -> str:
        for kind, obj in self.kube.watch(
            self.res,
            self.namespace,
            resource_version=rv,
            timeout_seconds=self.watch_timeout,
            label_selector=self.label_selector,
        ):
            if self._stop.is_set():
                break
            rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
            if kind == "BOOKMARK":
                continue
            obj.setdefault("apiVersion", self.res.api_version)
            obj.setdefault("kind", self.res.kind)
            key = key_of(obj)
            with self._lock:
                prev = self._cache.get(key)
                if kind == "DELETED":
                    self._cache.pop(key, None)
                else:
                    self._cache[key] = obj
            self.handler(kind, obj, prev)
        return rv


class WorkQueue:
    """Deduplicating, delaying, rate-limited queue of hashable keys shared by worker threads."""

    def __init__(self, clock: Clock | None = None, *, base_delay: float = 0.5, max_delay: float = 300.0) -> None:
        self.clock = clock or SystemClock()
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._queue: list[Any] = []
        self._queued: set[Any] = set()
        self._processing: set[Any] = set()
        self._dirty: set[Any] = set()
        self._delayed: list[tuple[float, int, Any]] = []
        self._delayed_real: list[tuple[float, int, Any]] = []
        self._due: dict[Any, float] = {}  # key -> its one pending wake-up (queue clock)
        self._due_real: dict[Any, float] = {}  # the same in real time
        self._real = SystemClock()
        self._seq = 0
        self._failures: dict[Any, int] = {}
        self._shutdown = False
        self.clock.on_advance(self._wake)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def add(self, key: Any) -> None:
        with self._cond:
            if self._shutdown:
                return
            if key in self._processing:
                self._dirty.add(key)
                return
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: Any, delay: float, *, real_time: bool = False) -> None:
        """Queue `key` after `delay` seconds of the queue's clock, or of real time with `real_time`
        (for waits on physical work, such as a copy finishing, that an injected clock must not stall)."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heap, due = (self._delayed_real, self._due_real) if real_time else (self._delayed, self._due)
            at = (self._real.monotonic() if real_time else self.clock.monotonic()) + delay
            if key in due and due[key] <= at:
                return  # an earlier wake-up is pending: one timer per key, as client-go keeps it
            due[key] = at
            self._seq += 1
            heapq.heappush(heap, (at, self._seq, key))
            self._cond.notify_all()

    def add_rate_limited(self, key: Any) -> float:
        """Retry a failed key after an exponential backoff in real time (a retry waits for the world
        to change, which an injected clock cannot speed up)."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = min(self.base_delay * float(2**n), self.max_delay)
        self.add_after(key, delay, real_time=True)
        return delay

    def retry_conflict(self, key: Any, first_delay: float = 0.05) -> float:
        """Retry a key whose reconcile hit a 409 (decided on a stale cache): soon the first time (the
        watch catches up), then with the rate limiter's backoff until a reconcile succeeds."""
        with self._cond:
            first = key not in self._failures
            if first:
                self._failures[key] = 0
        if not first:
            return self.add_rate_limited(key)
        self.add_after(key, first_delay, real_time=True)
        return first_delay

    def forget(self, key: Any) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def _promote_due(self) -> float | None:
        """Move due delayed keys into the queue; returns real seconds to wait for the next one (or None)."""
        waits = []
        for heap, due, now in ((self._delayed, self._due, self.clock.monotonic()),
                               (self._delayed_real, self._due_real, self._real.monotonic())):
            while heap and heap[0][0] <= now:
                at, _, key = heapq.heappop(heap)
                if due.get(key) != at:
                    continue  # superseded by an earlier timer for the same key
                del due[key]
                if key in self._processing:
                    self._dirty.add(key)
                elif key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
            if heap:
                left = heap[0][0] - now
                # fake seconds are not real ones: a fake clock wakes us on advance (see _wake)
                waits.append(left if heap is self._delayed_real or isinstance(self.clock, SystemClock) else 0.05)
        return min(waits) if waits else None

    def get(self, timeout: float | None = None) -> Any | None:
        """The next key to process (mark it done with `done`), or None on shutdown/timeout."""
        deadline = None if timeout is None else self._real.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                wait = self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if deadline is not None:
                    left = deadline - self._real.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: Any) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed) + len(self._delayed_real)


def start_controller(informers: Iterable[Informer], work: Callable[[], None], workers: int, name: str,
                     timeout: float = 30.0) -> list[threading.Thread]:
    """Start the informers, wait until every cache is synced, then start `workers` threads running `work`."""
    informers = list(informers)
    for inf in informers:
        inf.start()
    for inf in informers:
        if not inf.wait_synced(timeout):
            raise RuntimeError(f"informer for {inf.res.plural} did not sync within {timeout}s")
    threads = [threading.Thread(target=work, name=f"{name}-{i}", daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    return threads


def stop_controller(queue: WorkQueue, informers: Iterable[Informer], threads: Iterable[threading.Thread]) -> None:
    """Shut the queue (workers drain out), stop the informers, join the workers."""
    queue.shutdown()
    for inf in informers:
        inf.stop()
    for t in threads:
        t.join(timeout=5)


def reconcile_one(queue: WorkQueue, key: Any, process: Callable[[Any], None], name: str) -> None:
    """Process a key taken from `queue` and mark it done. A 409 means a decision was taken on a stale cache:
    retry soon the first time (the watch catches up), then with backoff; any other error is retried with backoff,
    never stopping the worker."""
    try:
        process(key)
    except ApiException as exc:
        if exc.status == 409:
            queue.retry_conflict(key)
        else:
            log.warning("reconcile %s failed: %s %s", name, exc.status, exc.reason)
            queue.add_rate_limited(key)
    except Exception:  # one bad object must not stop the worker
        log.exception("reconcile %s failed", name)
        queue.add_rate_limited(key)
    finally:
        queue.done(key)


def drain_forever(queue: WorkQueue, handle: Callable[[Any], None]) -> None:
    """A worker thread's loop: hand every key to `handle` until the queue shuts down."""
    while (key := queue.get()) is not None:
        handle(key)
