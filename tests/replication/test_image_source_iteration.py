"""agent/destination.py: a published image records which source iteration it holds.

`status.latestImageSourceIteration` (our addition) is the id the source named in its completion signal
(`shutdown 0 ID`); it is written in the same status patch as `latestImage`, dropped (merge patch None)
when an image is published without one, and untouched while no image is published.
"""

from __future__ import annotations

from typing import Any

from support.replication_objects import T0, at, pvc, rd, service, snapshot, ts
from test_destination_plan import DST, SNAP, SVC, generated, owner, snap_pvc

from agent.destination import DestinationView, ServerView, plan
from agent.plans import Plan
from api.volsync import ReplicationStatus

STARTED = {"lastSyncStartTime": ts(T0), "latestImageSourceIteration": "6-0a1b2c3d"}


def completed(obj: dict[str, Any], source_iteration: str | None, completion: int | None = 0, **kw: Any) -> Plan:
    kw.setdefault("service", service(SVC, owner=owner()))
    kw.setdefault("pvc", pvc(DST, owner=owner()))
    server = ServerView(ts(T0), completion=completion, source_iteration=source_iteration)
    return plan(DestinationView(rd=obj, now=at(9), secrets=generated(), server=server, **kw))


def test_a_direct_image_records_the_source_iteration() -> None:
    p = completed(rd(copy_method="Direct", status=STARTED), "7-0a1b2c3d")
    assert p.status is not None and p.status["latestImage"]["name"] == DST
    assert p.status["latestImageSourceIteration"] == "7-0a1b2c3d"


def test_a_snapshot_image_records_it_once_published() -> None:
    vs = snapshot(SNAP, source_pvc=DST, owner=owner())
    p = completed(rd(status=STARTED), "7-0a1b2c3d", pvc=snap_pvc(), snapshots={SNAP: vs})
    assert p.status is not None and p.status["latestImage"]["name"] == SNAP
    assert p.status["latestImageSourceIteration"] == "7-0a1b2c3d"


def test_an_image_published_without_an_id_drops_the_previous_one() -> None:
    p = completed(rd(copy_method="Direct", status=STARTED), None)
    assert p.status is not None and "latestImage" in p.status
    assert "latestImageSourceIteration" in p.status and p.status["latestImageSourceIteration"] is None


def test_no_image_leaves_it_alone() -> None:
    for completion in (None, 3):  # still receiving; the source signalled failure
        p = completed(rd(copy_method="Direct", status=STARTED), "7-0a1b2c3d", completion)
        assert p.status is not None and "latestImageSourceIteration" not in p.status
    waiting = completed(rd(status=STARTED), "7-0a1b2c3d", pvc=snap_pvc(),
                        snapshots={SNAP: snapshot(SNAP, source_pvc=DST, ready=False)})
    assert waiting.status is not None and "latestImageSourceIteration" not in waiting.status


def test_the_status_view_reads_it() -> None:
    assert ReplicationStatus.parse({"status": STARTED}).latest_image_source_iteration == "6-0a1b2c3d"
    assert ReplicationStatus.parse({"status": {}}).latest_image_source_iteration is None
