"""A mover Job the API server refuses as invalid becomes the replication's Error condition.

`moverResources` that pass the CRD's schema can still make a Job that kube-apiserver refuses (422:
a request above its limit). The refusal becomes `Synchronizing=False/Error` carrying the API
server's message (as a 403 does: `reconciling.ReplicationController._refused`), retried with backoff.
"""

from __future__ import annotations

import pytest
from support.harness import Harness

from agent.kinds import REPLICATION_DESTINATIONS
from kube.rest import PVCS

pytestmark = pytest.mark.timeout(120)


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
