"""A destination mover Pod that cannot start says so in the replication's condition.

With a mover image the node cannot pull, the destination's Job never ends: its Pod waits in
`ErrImagePull`/`ImagePullBackOff` for good. The replication then shows `Synchronizing=False/Error`
naming the Pod, the reason and the node's message, not an in-progress sync that never progresses.
Once the agent's image is right again (a restart with a corrected `--mover-image`), the stuck Job,
whose template is immutable, is replaced and the destination serves.
"""

from __future__ import annotations

import pytest
from support.harness import Harness

from agent.jobs import mover_name
from agent.kinds import REPLICATION_DESTINATIONS
from api.images import default_image
from kube.rest import JOBS

pytestmark = pytest.mark.timeout(120)
BAD_IMAGE = "example.com/not-here:1"


def test_a_mover_pod_that_cannot_pull_its_image_is_the_destinations_error(harness: Harness) -> None:
    h = harness
    h.controller.movers.image = BAD_IMAGE
    h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": h.dst}, "spec": {"rsync": {
        "copyMethod": "Direct", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}}})

    def error() -> dict[str, str] | None:
        conds = h.status("rd", h.dst, "rd").get("conditions") or []
        return conds[0] if conds and conds[0].get("reason") == "Error" else None

    cond = h.until(error, "the Error condition", timeout=60)
    assert cond["status"] == "False"
    assert "mover Pod volsync-rsync-dst-rd-" in cond["message"] and BAD_IMAGE in cond["message"], cond
    assert "ErrImagePull" in cond["message"] or "ImagePullBackOff" in cond["message"], cond

    stuck = h.kube.get(JOBS, mover_name("destination", "rd"), h.dst)
    assert stuck is not None
    h.controller.movers.image = default_image()
    h.controller.queue.add(("destination", h.dst, "rd"))

    def replaced() -> bool:
        job = h.kube.get(JOBS, mover_name("destination", "rd"), h.dst) or {"metadata": {}}
        cond = (h.status("rd", h.dst, "rd").get("conditions") or [{}])[0]
        return job["metadata"].get("uid") not in (None, stuck["metadata"]["uid"]) and cond.get("reason") != "Error"

    h.until(replaced, "the stuck Job replaced and the error gone", timeout=60)
