"""A reconcile on an informer cache that has not yet seen the agent's own status patch (issue 7, item 5).

Right after an iteration completes, the next reconcile may run before the informer delivers the
completing status patch. Planning on that older copy restarted the finished transfer on the source
(its completion signal then landed in the destination's next iteration: an image no source
iteration completed) and re-opened the finished iteration on the destination (a signal arriving
there was dropped when the next iteration opened). The controller now plans on the object its own
patch returned until the cache catches up. The cache lag is made deterministic here: the
informer's `get` returns the copy the controller planned the completing step with.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.harness import Harness, setup_pair

from agent.kinds import REPLICATION_DESTINATIONS, REPLICATION_SOURCES
from kube.rest import Resource

pytestmark = pytest.mark.timeout(180)
Obj = dict[str, Any]


def lag_from_completion(h: Harness, res: Resource) -> list[Obj]:
    """From the status patch that completes an iteration on, the informer keeps answering with the
    copy that patch was planned on (the iteration still running) for that object. Returns that copy
    (once it exists) in a list."""
    frozen: list[Obj] = []
    real_patch, inf = h.kube.patch, h.controller.informers[res.plural]
    real_get = inf.get

    def patch(r: Resource, name: str, body: Obj, namespace: str = "", **kw: Any) -> Any:
        status = body.get("status") or {}
        if r is res and kw.get("subresource") == "status" and status.get("lastSyncTime") and not frozen:
            frozen.append(real_get(namespace, name) or {})
        return real_patch(r, name, body, namespace, **kw)

    def get(namespace: str, name: str) -> Obj | None:
        if frozen and (namespace, name) == (frozen[0]["metadata"]["namespace"], frozen[0]["metadata"]["name"]):
            return frozen[0]
        return real_get(namespace, name)

    h.kube.patch = patch  # type: ignore[method-assign]
    inf.get = get  # type: ignore[method-assign]
    return frozen


def test_a_lagging_cache_does_not_restart_a_finished_transfer(harness: Harness) -> None:
    h = harness
    frozen = lag_from_completion(h, REPLICATION_SOURCES)
    setup_pair(h, {"manual": "one"})
    h.until(lambda: h.status("rs", h.src, "rs").get("lastManualSync") == "one", "first sync")
    assert frozen and frozen[0]["status"].get("lastSyncStartTime")  # the cache still shows it running
    for _ in range(3):
        h.controller.queue.add(("source", h.src, "rs"))
        h.drain()
        assert h.transfer() is None  # nothing pushed again
    st = h.status("rs", h.src, "rs")
    assert "lastSyncStartTime" not in st and st["iteration"]["completed"] == 1


def test_a_lagging_cache_does_not_reopen_a_published_iteration(harness: Harness) -> None:
    h = harness
    frozen = lag_from_completion(h, REPLICATION_DESTINATIONS)
    setup_pair(h, {"manual": "one"})
    h.until(lambda: h.status("rd", h.dst, "rd").get("latestImage"), "first image")
    assert frozen and h.status("rd", h.dst, "rd")["iteration"]["completed"] == 1
    published = frozen[0]["status"]["iteration"]["id"]  # the cache shows it still running
    for _ in range(3):
        h.controller.queue.add(("destination", h.dst, "rd"))
        h.drain()
        server = h.receiver()
        assert server is None or server.iteration != published  # the published iteration stays closed
    assert h.status("rd", h.dst, "rd")["iteration"]["number"] == 2  # the next one is open
