"""A source mover Job stuck on an image the agent no longer uses is replaced.

The agent ran with a mover image the node cannot pull (its source Job's Pod waits in
`ErrImagePull` for good; a Job's template is immutable) and restarted with the right one: the
stuck Job no longer reads as a running transfer, so the planner starts the transfer again, and that
start replaces the Job with one of the agent's image. Driven through the controller's JobMovers and
informers on the harness cluster (the controller itself is not stepped: it would cancel the
paused source's transfer).
"""

from __future__ import annotations

import pytest
from support.harness import Harness
from support.waiting import eventually

from agent import moverpods
from agent.jobs import mover_name
from agent.kinds import REPLICATION_SOURCES
from agent.plans import StartTransfer
from api.images import default_image
from kube.rest import JOBS, PVCS, SECRETS

pytestmark = pytest.mark.timeout(120)


def test_a_source_job_stuck_on_an_old_image_is_replaced(harness: Harness) -> None:
    h = harness
    movers, name = h.controller.movers, mover_name("source", "rs")
    h.kube.create(PVCS, {"metadata": {"name": "data", "namespace": h.src}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    h.kube.create(SECRETS, {"metadata": {"name": "keys", "namespace": h.src}, "stringData": {"source": "x"}})
    rs = h.kube.create(REPLICATION_SOURCES, {"metadata": {"name": "rs", "namespace": h.src}, "spec": {
        "sourcePVC": "data", "paused": True, "rsync": {"address": "10.0.0.9", "copyMethod": "Direct"}}})
    start = StartTransfer(f"source/{h.src}/rs", "1-abc", "data", h.src, "10.0.0.9", 22, "keys")
    movers.image = "example.com/not-here:1"
    movers.start_transfer(rs, start)
    stuck = h.kube.get(JOBS, name, h.src)
    assert stuck is not None
    eventually(lambda: any(moverpods.stuck(p) for p in moverpods.job_pods(
        stuck, h.controller.informers["pods"].items(h.src))), 60, what="the mover Pod stuck on its image")
    seen = movers.transfer(rs)
    assert seen is not None and seen.running  # our own image: a transfer (the RD's error says why it waits)

    movers.image = default_image()  # the agent restarted with the right image
    assert movers.transfer(rs) is None
    movers.start_transfer(rs, start)  # what the planner does for a missing transfer: the stuck Job goes
    eventually(lambda: (h.kube.get(JOBS, name, h.src) or {"metadata": {}})["metadata"].get("uid")
               != stuck["metadata"]["uid"], 30, what="the stuck Job deleted")

    def replaced() -> bool:
        movers.start_transfer(rs, start)  # once the informer dropped the old Job: created
        job = h.kube.get(JOBS, name, h.src) or {"spec": {"template": {"spec": {"containers": [{}]}}}}
        return bool(job["spec"]["template"]["spec"]["containers"][0].get("image") == default_image())

    eventually(replaced, 30, what="a Job of the agent's image")
