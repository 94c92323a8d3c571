"""A mover Job the API server refuses as invalid becomes the replication's Error condition.

`moverResources` that pass the CRD's schema can still make a Job that kube-apiserver refuses (422:
a request above its limit). Today the refusal is an exception: the reconcile is logged and retried
with backoff, and the replication shows `SyncInProgress` forever, with nothing telling the user why.
Expected (as a 403 already is, in `reconciling.ReplicationController._denied`):
`Synchronizing=False/Error` carrying the API server's message.
"""

from __future__ import annotations

import pytest
from support.harness import Harness

from agent.kinds import REPLICATION_DESTINATIONS
from kube.rest import PVCS

pytestmark = pytest.mark.timeout(120)


@pytest.mark.xfail(strict=True, reason="reconciling.process turns only a 403 into the Error condition; "
                   "a 400/422 (invalid mover Job) is retried silently: lead to extend it")
def test_an_invalid_mover_job_is_the_replications_error(harness: Harness) -> None:
    h = harness
    h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": h.dst}, "spec": {"rsync": {
        "copyMethod": "Direct", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"],
        "moverResources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}}})
    h.until(lambda: (h.status("rd", h.dst, "rd").get("rsync") or {}).get("address"), "the RD's address")
    h.until(lambda: ((h.kube.get(PVCS, "volsync-rd-dst", h.dst) or {}).get("status") or {}).get("phase") == "Bound",
            "the receiving PVC bound")
    h.fresh_cache("rd", h.dst, "rd")
    h.controller.queue.add(("destination", h.dst, "rd"))
    h.drain()  # plans Serve: the Job create is refused (422)
    [cond] = h.status("rd", h.dst, "rd")["conditions"]
    assert (cond["status"], cond["reason"]) == ("False", "Error"), cond
    assert "must be less than or equal to memory limit" in cond["message"], cond
