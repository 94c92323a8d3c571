"""One controller runtime: shared informers, a work queue per reconciler, workers, a clean stop.

The shape is controller-runtime's: a `Reconciler` names the resources it watches and, for each
watched object, the keys it must reconcile (`Watch.keys`, by default the object's own
`(namespace, name)`); `reconcile(key)` reads from the shared caches (`Runtime.cache(res)`), writes
through `Kube`, and returns when to look again (`None`: only on the next change). Errors are
retried with the work queue's back-off; a 409 (a decision taken on a stale cache) is retried soon.

    runtime = Runtime(kube)
    runtime.add(JobController(runtime))
    runtime.start()      # informers synced, then workers run
    ...
    runtime.stop()       # queues drained out, informers stopped, workers joined

One informer per resource and process (`Runtime.cache` creates it on first use, before `start`),
whatever the number of reconcilers watching it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kube.clock import Clock, SystemClock
from kube.informing import Informer, WorkQueue, drain_forever, reconcile_one
from kube.rest import Kube, Obj, Resource

log = logging.getLogger("kube.controller")


def own_key(obj: Obj) -> Iterable[Hashable]:
    """The default key of a watched object: its own `(namespace, name)`."""
    meta = obj.get("metadata") or {}
    return [(meta.get("namespace") or "", meta.get("name") or "")]


def owner_keys(kind: str) -> Callable[[Obj], Iterable[Hashable]]:
    """Keys of the controlling owner of `kind` (e.g. the Job of a Pod): `(namespace, owner name)`."""

    def keys(obj: Obj) -> Iterable[Hashable]:
        meta = obj.get("metadata") or {}
        return [(meta.get("namespace") or "", ref.get("name", "")) for ref in meta.get("ownerReferences") or []
                if ref.get("kind") == kind and ref.get("controller")]

    return keys


@dataclass(frozen=True)
class Watch:
    """A resource a reconciler watches and how its objects map to the reconciler's keys."""

    res: Resource
    keys: Callable[[Obj], Iterable[Hashable]] = own_key


class Reconciler(Protocol):
    """What the runtime drives: `reconcile(key)` returns seconds until the next look, or None."""

    name: str
    watches: Sequence[Watch]

    def reconcile(self, key: Hashable) -> float | None: ...


@dataclass
class _Running:
    reconciler: Reconciler
    queue: WorkQueue
    threads: list[threading.Thread] = field(default_factory=list)


class Runtime:
    """Shared informers and one work queue per reconciler (see the module docstring)."""

    def __init__(self, kube: Kube, *, clock: Clock | None = None, workers: int = 2,
                 namespace: str | None = None) -> None:
        self.kube = kube
        self.clock = clock or SystemClock()
        self.workers = workers
        self.namespace = namespace
        self._informers: dict[str, Informer] = {}
        self._handlers: dict[str, list[Callable[[Obj, Obj | None], None]]] = {}
        self._running: list[_Running] = []
        self._started = False

    def cache(self, res: Resource) -> Informer:
        """The process's one informer for `res` (its `get`/`items` are the cache reconcilers read)."""
        key = res.path()
        inf = self._informers.get(key)
        if inf is None:
            if self._started:
                raise RuntimeError(f"informer for {res.plural} asked for after start")
            handlers: list[Callable[[Obj, Obj | None], None]] = []
            self._handlers[key] = handlers

            def fan_out(_kind: str, obj: Obj, prev: Obj | None) -> None:
                for handler in handlers:
                    try:  # a key function failing on one object must not stop the informer's watch
                        handler(obj, prev)
                    except Exception:
                        log.exception("mapping a %s event to keys failed", res.kind)

            inf = Informer(self.kube, res, fan_out, namespace=None if not res.namespaced else self.namespace)
            self._informers[key] = inf
        return inf

    def add(self, reconciler: Reconciler) -> WorkQueue:
        """Register `reconciler`; its queue is returned (to enqueue keys from outside the watches)."""
        if self._started:
            raise RuntimeError(f"reconciler {reconciler.name} added after start: it would never run")
        queue = WorkQueue(self.clock)
        for watch in reconciler.watches:
            self.cache(watch.res)

            def enqueue(obj: Obj, prev: Obj | None, keys: Callable[[Obj], Iterable[Hashable]] = watch.keys) -> None:
                for k in {*keys(obj), *(keys(prev) if prev is not None else ())}:
                    queue.add(k)

            self._handlers[watch.res.path()].append(enqueue)
        self._running.append(_Running(reconciler, queue))
        return queue

    def start(self, timeout: float = 30.0) -> Runtime:
        """Start every informer, wait for their caches, then start the workers."""
        self._started = True
        for inf in self._informers.values():
            inf.start()
        for inf in self._informers.values():
            if not inf.wait_synced(timeout):
                self.stop()
                raise RuntimeError(f"informer for {inf.res.plural} did not sync within {timeout}s")
        for run in self._running:
            for i in range(self.workers):
                t = threading.Thread(target=drain_forever, args=(run.queue, self._handler(run)),
                                     name=f"{run.reconciler.name}-{i}", daemon=True)
                t.start()
                run.threads.append(t)
        return self

    def stop(self) -> None:
        """Shut every queue (workers finish their key), stop the informers, join the workers."""
        for run in self._running:
            run.queue.shutdown()
        for inf in self._informers.values():
            inf.stop()
        for run in self._running:
            for t in run.threads:
                t.join(timeout=5)

    @staticmethod
    def _handler(run: _Running) -> Callable[[Hashable], None]:
        def process(key: Hashable) -> None:
            delay = run.reconciler.reconcile(key)
            if delay is None:
                run.queue.forget(key)
            else:
                run.queue.forget(key)
                run.queue.add_after(key, delay)

        return lambda key: reconcile_one(run.queue, key, process, run.reconciler.name)
