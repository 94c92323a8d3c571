"""What JobMovers remembers of its own writes while the Jobs informer lags (read your writes).

The cache lag is made deterministic: JobMovers reads a dict the test fills instead of the informer,
against the real API server and cluster of the harness (real creates and deletes of the Jobs).

- A Job the agent deleted, still in the informer's older copy, reads as being deleted: its outcome
  was recorded once (a failure counted, a `TransferFailed` emitted) and is never read again from
  that copy, and no new Job is started over it until the informer drops it.
- A Job the agent created and someone deleted before the informer ever listed it is not trusted
  forever: after `CREATED_TTL` (Kubernetes' expectations timeout) the mover is started again,
  instead of the replication waiting on a phantom "running" Job for good.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.harness import Harness

from agent.jobmovers import CREATED_TTL, JobMovers
from agent.jobs import mover_name
from agent.kinds import REPLICATION_SOURCES
from agent.plans import StartTransfer
from api.images import default_image
from kube.rest import JOBS

pytestmark = pytest.mark.timeout(120)
Obj = dict[str, Any]


def _setup(h: Harness) -> tuple[JobMovers, dict[tuple[str, str], Obj], Obj, str]:
    rs = h.kube.create(REPLICATION_SOURCES, {"metadata": {"name": "rs", "namespace": h.src}, "spec": {
        "sourcePVC": "data", "paused": True, "rsync": {"address": "10.0.0.9", "copyMethod": "Direct"}}})
    cache: dict[tuple[str, str], Obj] = {}
    movers = JobMovers(h.kube, lambda ns, name: cache.get((ns, name)), lambda ns: [], image=default_image(),
                       clock=h.clock)
    return movers, cache, rs, mover_name("source", "rs")


def _start(movers: JobMovers, rs: Obj, iteration: str) -> None:
    ns = rs["metadata"]["namespace"]
    movers.start_transfer(rs, StartTransfer(f"source/{ns}/rs", iteration, "data", ns, "10.0.0.9", 22, "keys"))


def test_a_deleted_job_in_a_lagging_cache_is_never_reported_twice(harness: Harness) -> None:
    h = harness
    movers, cache, rs, name = _setup(h)
    _start(movers, rs, "1-aaa")
    job = h.kube.get(JOBS, name, h.src)
    assert job is not None
    cache[(h.src, name)] = {**job, "status": {"failed": 2}}  # the informer's copy: backoffLimit Pods failed
    seen = movers.transfer(rs)
    assert seen is not None and (seen.iteration, seen.running, seen.succeeded) == ("1-aaa", False, False)

    movers.forget_transfer(rs, f"source/{h.src}/rs", failed=True)  # recorded: the Job goes
    assert h.kube.get(JOBS, name, h.src) is None
    assert movers.transfer(rs) is None, "the deleted Job's failure read again from the lagging cache"
    assert movers.retry_state(f"source/{h.src}/rs")[0] == 1
    _start(movers, rs, "1-aaa")  # the retry: waits while the informer still shows the old Job
    assert h.kube.get(JOBS, name, h.src) is None

    del cache[(h.src, name)]  # the informer delivers the deletion
    _start(movers, rs, "1-aaa")
    again = h.kube.get(JOBS, name, h.src)
    assert again is not None and again["metadata"]["uid"] != job["metadata"]["uid"]
    seen = movers.transfer(rs)
    assert seen is not None and seen.running


def test_a_created_job_deleted_before_the_informer_listed_it_is_started_again(harness: Harness) -> None:
    h = harness
    movers, _cache, rs, name = _setup(h)
    _start(movers, rs, "1-aaa")
    first = h.kube.get(JOBS, name, h.src)
    assert first is not None
    h.kube.delete(JOBS, name, h.src)  # e.g. `kubectl delete job`: the informer never saw it
    seen = movers.transfer(rs)
    assert seen is not None and seen.running  # within the expectation window: still trusted

    h.clock.advance(CREATED_TTL.total_seconds() + 1)
    assert movers.transfer(rs) is None, "a phantom Job trusted forever"
    _start(movers, rs, "1-aaa")
    second = h.kube.get(JOBS, name, h.src)
    assert second is not None and second["metadata"]["uid"] != first["metadata"]["uid"]
