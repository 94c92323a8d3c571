"""The controller runtime (kube/controller.py) against a real API server: shared informers, owner
mapping, requeue on the injected clock, error back-off, clean stop."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator, Sequence
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException
from support.apiserver import ApiServer
from support.waiting import eventually

from kube.clock import FakeClock
from kube.controller import Runtime, Watch, owner_keys
from kube.rest import CONFIGMAPS, SECRETS, Kube


class Recorder:
    """A reconciler that records its keys; `script` gives, per call for the object named `scripted`, a
    delay to return or an exception (other objects, such as the namespace's kube-root-ca.crt, get None)."""

    def __init__(self, name: str, watches: Sequence[Watch], script: list[float | None | Exception] | None = None,
                 scripted: str = "") -> None:
        self.name = name
        self.watches = watches
        self.script = list(script or [])
        self.scripted = scripted
        self.calls: list[Hashable] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def reconcile(self, key: Hashable) -> float | None:
        with self._lock:
            self.calls.append(key)
            self.threads.add(threading.current_thread().name)
            mine = isinstance(key, tuple) and key[1] == self.scripted
            step = self.script.pop(0) if self.script and mine else None
        if isinstance(step, Exception):
            raise step
        return step

    def count(self, key: Hashable) -> int:
        with self._lock:
            return self.calls.count(key)


@pytest.fixture
def kube(apiserver: ApiServer) -> Kube:
    return Kube(apiserver.api_client("cluster1"), field_manager="runtime-test")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def make_runtime(kube: Kube, clock: FakeClock, namespace: str) -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for rt in made:
        rt.stop()


def runtime_for(kube: Kube, clock: FakeClock, namespace: str, made: list[Runtime], *recorders: Recorder) -> Runtime:
    rt = Runtime(kube, clock=clock, namespace=namespace)
    for rec in recorders:
        rt.add(rec)
    made.append(rt)
    return rt.start()


def test_one_shared_informer_feeds_every_reconciler(kube: Kube, clock: FakeClock, namespace: str,
                                                    make_runtime: list[Runtime]) -> None:
    first, second = Recorder("first", [Watch(CONFIGMAPS)]), Recorder("second", [Watch(CONFIGMAPS)])
    existing = kube.create(CONFIGMAPS, {"metadata": {"name": "before"}}, namespace)
    rt = runtime_for(kube, clock, namespace, make_runtime, first, second)
    assert rt.cache(CONFIGMAPS) is rt.cache(CONFIGMAPS)
    assert rt.cache(CONFIGMAPS).get(namespace, "before")["metadata"]["uid"] == existing["metadata"]["uid"]
    kube.create(CONFIGMAPS, {"metadata": {"name": "after"}}, namespace)
    for rec in (first, second):
        eventually(lambda rec=rec: rec.count((namespace, "before")) >= 1 and rec.count((namespace, "after")) >= 1)
    with pytest.raises(RuntimeError, match="after start"):
        rt.cache(SECRETS)
    with pytest.raises(RuntimeError, match="after start"):
        rt.add(Recorder("late", [Watch(CONFIGMAPS)]))


def test_owned_objects_map_to_their_controller(kube: Kube, clock: FakeClock, namespace: str,
                                               make_runtime: list[Runtime]) -> None:
    rec = Recorder("owners", [Watch(SECRETS, owner_keys("ConfigMap"))])
    runtime_for(kube, clock, namespace, make_runtime, rec)
    owner = kube.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, namespace)
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    kube.create(SECRETS, {"metadata": {"name": "not-controlled", "ownerReferences": [ref]}}, namespace)
    kube.create(SECRETS, {"metadata": {"name": "controlled", "ownerReferences": [{**ref, "controller": True}]}},
                namespace)
    eventually(lambda: rec.count((namespace, "owner")) == 1)
    assert set(rec.calls) == {(namespace, "owner")}, "own keys of the Secrets are not reconciled"
    kube.patch(SECRETS, "controlled", {"metadata": {"labels": {"x": "y"}}}, namespace)
    eventually(lambda: rec.count((namespace, "owner")) == 2)


def test_a_returned_delay_requeues_on_the_injected_clock(kube: Kube, clock: FakeClock, namespace: str,
                                                         make_runtime: list[Runtime]) -> None:
    rec = Recorder("requeue", [Watch(CONFIGMAPS)], [30.0, None], "tick")
    rt = Runtime(kube, clock=clock, namespace=namespace)
    queue = rt.add(rec)
    make_runtime.append(rt.start())
    kube.create(CONFIGMAPS, {"metadata": {"name": "tick"}}, namespace)
    key = (namespace, "tick")
    eventually(lambda: rec.count(key) == 1 and len(queue) == 1 and len(rec.script) == 1,
               what="reconciled once, one wake-up pending")
    clock.advance(29)
    cm = kube.get(CONFIGMAPS, "tick", namespace)
    assert rec.count(key) == 1 and cm is not None, "not before its time"
    clock.advance(1)
    eventually(lambda: rec.count(key) == 2, what="requeued after 30 fake seconds")
    clock.advance(3600)
    kube.patch(CONFIGMAPS, "tick", {"data": {"a": "b"}}, namespace)
    eventually(lambda: rec.count(key) == 3, what="None waits for the next change only")


def test_errors_are_retried_with_backoff_and_a_conflict_soon(kube: Kube, clock: FakeClock, namespace: str,
                                                             make_runtime: list[Runtime]) -> None:
    failing: list[float | None | Exception] = [ApiException(status=500, reason="boom"), RuntimeError("bug"),
                                               ApiException(status=409, reason="Conflict"), None]
    rec = Recorder("flaky", [Watch(CONFIGMAPS)], failing, "flaky")
    runtime_for(kube, clock, namespace, make_runtime, rec)
    kube.create(CONFIGMAPS, {"metadata": {"name": "flaky"}}, namespace)
    eventually(lambda: rec.count((namespace, "flaky")) == 4, timeout=15, what="two back-offs, one quick retry")
    assert rec.script == []


def test_stop_drains_workers_and_ends_reconciling(kube: Kube, clock: FakeClock, namespace: str,
                                                  make_runtime: list[Runtime]) -> None:
    rec = Recorder("stopping", [Watch(CONFIGMAPS)])
    rt = runtime_for(kube, clock, namespace, make_runtime, rec)
    kube.create(CONFIGMAPS, {"metadata": {"name": "one"}}, namespace)
    eventually(lambda: rec.count((namespace, "one")) == 1)
    rt.stop()
    assert not any(t.name in rec.threads and t.is_alive() for t in threading.enumerate()), "workers joined"
    kube.create(CONFIGMAPS, {"metadata": {"name": "two"}}, namespace)
    marker = Recorder("marker", [Watch(CONFIGMAPS)])
    runtime_for(kube, clock, namespace, make_runtime, marker)
    eventually(lambda: marker.count((namespace, "two")) == 1, what="a fresh runtime sees the object")
    assert rec.count((namespace, "two")) == 0, "a stopped runtime reconciles nothing"
