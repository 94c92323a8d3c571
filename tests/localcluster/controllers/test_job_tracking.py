"""Job tracking with finalizers against a real API server (fake kubelet, fake clock): a deleted Pod
is a failed attempt, a succeeded one stays succeeded, no Pod keeps the finalizer once counted or
once its Job is gone, and a controller that dies between counting and releasing counts once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from fake_kubelet import FakeKubelet
from support.waiting import eventually
from test_jobs import cond, job, job_pods, status

from kube.clock import FakeClock
from kube.controller import Runtime
from kube.rest import JOBS, PODS, Kube, Obj, Resource
from localcluster import controllers

TRACKING = "batch.kubernetes.io/job-tracking"
T = TypeVar("T")


def until(fn: Callable[[], T | None], what: str = "") -> T:
    """`eventually`, typed for a check that answers None until its condition holds."""
    found = eventually(fn, what=what)
    assert found is not None
    return found


def finished(kube: Kube, ns: str, name: str, type_: str) -> Obj:
    return until(lambda: (lambda s: s if cond(s, type_) else None)(status(kube, ns, name)), f"job {name} {type_}")


def finalizers(pod: Obj) -> list[str]:
    return list(pod["metadata"].get("finalizers") or [])


def gone(kube: Kube, ns: str, pod: Obj) -> bool:
    return kube.get(PODS, pod["metadata"]["name"], ns) is None


def counted(kube: Kube, ns: str, name: str, **want: int) -> Obj:
    """The Job's status once its counters are `want` and nothing is left uncounted."""
    def check() -> Obj | None:
        st = status(kube, ns, name)
        pending = any((st.get("uncountedTerminatedPods") or {}).values())
        return st if all(st.get(k) == v for k, v in want.items()) and not pending else None
    return until(check, f"job {name} counted {want}")


def test_deleted_pods_count_as_failed_up_to_the_backoff_limit(kube: Kube, namespace: str, runtime: Runtime,
                                                              kubelet: FakeKubelet, clock: FakeClock) -> None:
    kube.create(JOBS, job("del", backoffLimit=1), namespace)
    [first] = job_pods(kubelet, "del", 1)
    assert finalizers(first) == [TRACKING]
    kubelet.run(first)
    kube.delete(PODS, first["metadata"]["name"], namespace)
    st = counted(kube, namespace, "del", failed=1)
    assert "active" not in st and not cond(st, "Failed")
    eventually(lambda: gone(kube, namespace, first), what="the deleted Pod released and gone")
    assert kubelet.pods(**{"job-name": "del"}) == [], "the replacement waits for the back-off"
    clock.advance(60)
    [second] = job_pods(kubelet, "del", 1)
    kubelet.run(second)
    kube.delete(PODS, second["metadata"]["name"], namespace)
    st = finished(kube, namespace, "del", "Failed")
    failed = cond(st, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded" and st["failed"] == 2 and "succeeded" not in st
    assert st["uncountedTerminatedPods"] == {} and st.get("terminating") == 0
    eventually(lambda: gone(kube, namespace, second), what="the second deleted Pod gone")


def test_a_succeeded_pod_deleted_later_stays_succeeded(kube: Kube, namespace: str, runtime: Runtime,
                                                       kubelet: FakeKubelet) -> None:
    kube.create(JOBS, job("ok", completions=2), namespace)
    [first] = job_pods(kubelet, "ok", 1)
    kubelet.finish(first)
    counted(kube, namespace, "ok", succeeded=1)
    released = until(lambda: (lambda p: p if p and not finalizers(p) else None)(
        kube.get(PODS, first["metadata"]["name"], namespace)), "the finalizer released")
    assert released["status"]["phase"] == "Succeeded", "a counted Pod stays until someone deletes it"
    kube.delete(PODS, first["metadata"]["name"], namespace)
    assert gone(kube, namespace, first)
    [second] = job_pods(kubelet, "ok", 1)
    kubelet.finish(second)
    st = finished(kube, namespace, "ok", "Complete")
    assert st["succeeded"] == 2 and "failed" not in st
    eventually(lambda: not finalizers(kube.get(PODS, second["metadata"]["name"], namespace) or {"metadata": {}}))


@pytest.mark.parametrize("propagation", ["Foreground", "Background", "Orphan"])
def test_deleting_the_job_releases_its_pods(kube: Kube, namespace: str, runtime: Runtime, kubelet: FakeKubelet,
                                            propagation: str) -> None:
    name = f"gone-{propagation.lower()}"
    kube.create(JOBS, job(name, parallelism=2, completions=4), namespace)
    pods = job_pods(kubelet, name, 2)
    for pod in pods:
        kubelet.run(pod)
    kube.delete(JOBS, name, namespace, propagation=propagation)
    eventually(lambda: kube.get(JOBS, name, namespace) is None, what=f"job deleted ({propagation})")
    if propagation == "Orphan":
        def kept() -> list[Obj] | None:
            found = [p for p in (kube.get(PODS, p["metadata"]["name"], namespace) for p in pods) if p]
            return found if len(found) == len(pods) and all(
                not finalizers(p) and not p["metadata"].get("ownerReferences") for p in found) else None
        left = until(kept, "orphaned Pods released")
        assert [p["status"]["phase"] for p in left] == ["Running", "Running"]
    else:
        eventually(lambda: all(gone(kube, namespace, p) for p in pods), what="the Job's Pods released and gone")


class CrashingKube(Kube):
    """A controller's client that dies (for good) on its first finalizer release, as a kill -9 would
    between the status write that lists a Pod as uncounted and the release of its finalizer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.crashed = threading.Event()

    def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, **kwargs: Any) -> Obj:
        if self.crashed.is_set() or (res == PODS and "finalizers" in (patch.get("metadata") or {})):
            self.crashed.set()
            raise RuntimeError("killed")
        return super().patch(res, name, patch, namespace, **kwargs)


def test_a_crash_between_counting_and_releasing_counts_the_pod_once(kube: Kube, namespace: str,
                                                                    kubelet: FakeKubelet, clock: FakeClock) -> None:
    def started(client: Kube) -> Runtime:
        rt = Runtime(client, clock=clock, namespace=namespace)
        controllers.register(rt, client, clock=clock)
        return rt.start()

    dying = CrashingKube(kube.api, field_manager="controller-test")
    rt = started(dying)
    try:
        kube.create(JOBS, job("crash", backoffLimit=3), namespace)
        [pod] = job_pods(kubelet, "crash", 1)
        kube.delete(PODS, pod["metadata"]["name"], namespace)
        assert dying.crashed.wait(10), "the controller reached the release"
    finally:
        rt.stop()
    st = status(kube, namespace, "crash")
    assert st["uncountedTerminatedPods"] == {"failed": [pod["metadata"]["uid"]]} and "failed" not in st
    held = kube.get(PODS, pod["metadata"]["name"], namespace)
    assert held is not None and finalizers(held) == [TRACKING] and held["metadata"]["deletionTimestamp"]
    rt = started(kube)
    try:
        counted(kube, namespace, "crash", failed=1)
        eventually(lambda: gone(kube, namespace, pod), what="the Pod released after the restart")
        clock.advance(60)
        [replacement] = job_pods(kubelet, "crash", 1)
        assert finalizers(replacement) == [TRACKING]
        assert status(kube, namespace, "crash")["failed"] == 1
    finally:
        rt.stop()
