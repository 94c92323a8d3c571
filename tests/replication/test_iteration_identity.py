"""Back-to-back iterations (issue 7, item 5): identities, snapshot names, manual triggers, durations.

Iterations used to be identified by `lastSyncStartTime` (one-second resolution) and destination
snapshots named after the second they were pinned in, so two iterations in one second shared an
identity (a destination never noticed the second completion signal) and a snapshot name (the
previous image was published again as the new one). These tests chain the pure plans as the agent
applies them, with iterations that start and end within the same second.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from support.replication_objects import (
    DEST_KEYS,
    MAIN_KEYS,
    RD_UID,
    SOURCE_KEYS,
    T0,
    at,
    condition,
    ensured,
    of_type,
    pvc,
    rd,
    rs,
    secret,
    service,
    snapshot,
    ts,
    with_status,
)

from agent import destination, iterations, source
from agent.destination import DestinationView, ServerView
from agent.plans import Began, Emit, Observe, Patch, Plan, Serve, StartTransfer
from agent.source import SourceView, TransferView
from api.volsync import ANNOTATION_ITERATION, ANNOTATION_SNAPNAME, REASON_TRIGGER_QUEUED
from kube.rest import VOLUME_SNAPSHOTS

Obj = dict[str, Any]
DST = "volsync-backup-dst"
MAIN, SRC, DEST = "volsync-rsync-dst-main-backup", "volsync-rsync-dst-src-backup", "volsync-rsync-dst-dest-backup"


def ms(n: int) -> datetime:
    return T0 + timedelta(milliseconds=n)


def dplan(obj: Obj, now: datetime, *, completion: int | None = None, pinned: str | None = None,
          snapshots: dict[str, Obj] | None = None) -> Plan:
    """The destination's plan with its server serving the running iteration (if any)."""
    owner = rd()
    st = obj.get("status") or {}
    ident = (st.get("iteration") or {}).get("id") if st.get("lastSyncStartTime") else None
    server = ServerView(ident, completion=completion) if ident else None
    annotations = {ANNOTATION_SNAPNAME: pinned} if pinned else None
    secrets = {MAIN: secret(MAIN, keys=MAIN_KEYS), SRC: secret(SRC, keys=SOURCE_KEYS),
               DEST: secret(DEST, keys=DEST_KEYS)}
    return destination.plan(DestinationView(
        rd=obj, now=now, service=service("volsync-rsync-dst-backup", owner=owner),
        pvc=pvc(DST, owner=owner, annotations=annotations), secrets=secrets, snapshots=snapshots or {},
        server=server))


def publish(obj: Obj, now: datetime, snapshots: dict[str, Obj]) -> tuple[Obj, str]:
    """Drive one destination iteration that got its completion signal until its image is published,
    all at `now`, as the snapshotter would (the VolumeSnapshot the plan creates becomes ready)."""
    p = dplan(obj, now, completion=0, snapshots=snapshots)
    [pin] = of_type(p.before, Patch)
    name = pin.patch["metadata"]["annotations"][ANNOTATION_SNAPNAME]
    p = dplan(obj, now, completion=0, pinned=name, snapshots=snapshots)
    created = ensured(p, VOLUME_SNAPSHOTS)
    if created:
        [vs] = created
        ready = snapshot(name, owner=rd())
        ready["metadata"]["annotations"] = vs["metadata"]["annotations"]
        snapshots = {**snapshots, name: ready}
    p = dplan(obj, now, completion=0, pinned=name, snapshots=snapshots)
    assert p.status is not None
    return with_status(obj, p.status), name


def test_two_destination_iterations_in_one_second_have_their_own_identity_and_image() -> None:
    obj = rd()
    snapshots: dict[str, Obj] = {}
    images, served = [], []
    for n in range(3):  # three iterations within 300 ms
        start = dplan(obj, ms(100 * n))
        assert start.status is not None and start.status.get("lastSyncStartTime") == ts(T0)
        obj = with_status(obj, start.status)
        [serve] = of_type(dplan(obj, ms(100 * n + 10)).before, Serve)
        served.append(serve.iteration)
        obj, name = publish(obj, ms(100 * n + 20), snapshots)
        assert obj["status"]["latestImage"]["name"] == name
        snapshots[name] = snapshot(name, owner=rd())
        snapshots[name]["metadata"]["annotations"] = {ANNOTATION_ITERATION: serve.iteration}
        images.append(name)
    assert served == [f"{n}-{RD_UID[:8]}" for n in (1, 2, 3)]
    assert len(set(images)) == 3, images
    assert all(len(name) <= 63 for name in images)
    assert obj["status"]["iteration"]["completed"] == 3


def test_a_snapshot_name_taken_by_another_snapshot_is_never_published() -> None:
    obj = with_status(rd(), dplan(rd(), T0).status)
    ident = obj["status"]["iteration"]["id"]
    name = destination.snapshot_name(iterations.Context.of(obj, T0, "destination"), DST)
    kept = snapshot(name, owner=rd())  # e.g. kept by the user, from before our status was reset
    kept["metadata"]["annotations"] = {ANNOTATION_ITERATION: "1-someone"}
    p = dplan(obj, T0, completion=0, pinned=name, snapshots={name: kept})
    assert p.status is None or "latestImage" not in p.status
    [warning] = [e for e in of_type(p.before, Emit) if e.reason == "SnapshotNameTaken"]
    assert warning.type == "Warning" and ident in warning.message
    [repin] = of_type(p.before, Patch)
    assert repin.patch["metadata"]["annotations"][ANNOTATION_SNAPNAME] not in (name, None)


def sview(obj: Obj, now: datetime, transfer: TransferView | None = None) -> SourceView:
    return SourceView(rs=obj, now=now, source_pvc=pvc("data"), secrets={"rs-keys": secret("rs-keys",
                      keys=SOURCE_KEYS)}, transfer=transfer)


def run_source(obj: Obj, start: datetime, end: datetime, logs: str = "") -> tuple[Obj, Plan, str]:
    """One source iteration (copyMethod Direct) from idle to completed."""
    p = source.plan(sview(obj, start))
    assert p.status is not None and of_type(p.after, Began)
    obj = with_status(obj, p.status)
    [push] = of_type(source.plan(sview(obj, start)).before, StartTransfer)
    done = source.plan(sview(obj, end, TransferView(push.iteration, running=False, succeeded=True, logs=logs)))
    return with_status(obj, done.status), done, push.iteration


def test_source_iterations_in_one_second_are_distinct_and_timed_to_the_microsecond() -> None:
    obj = rs()
    seen = []
    for n in range(3):
        logs = "sent 1,234 bytes  received 5 bytes"
        obj, done, ident = run_source(obj, ms(300 * n + 100), ms(300 * n + 250), logs=logs)
        seen.append(ident)
        [observed] = of_type(done.after, Observe)
        assert (observed.iteration, observed.bytes, observed.succeeded) == (ident, 1234, True)
        assert observed.duration == 0.15
        assert obj["status"]["lastSyncDuration"] == "150ms"  # not rounded by one-second timestamps
    assert len(set(seen)) == 3
    assert obj["status"]["iteration"]["completed"] == 3


def test_a_transfer_left_from_a_finished_iteration_is_not_taken_for_the_next() -> None:
    obj, _, first = run_source(rs(), ms(100), ms(200))
    p = source.plan(sview(obj, ms(300)))  # the next iteration starts in the same second
    obj = with_status(obj, p.status)
    leftover = TransferView(first, running=False, succeeded=True)
    p = source.plan(sview(obj, ms(400), leftover))
    assert p.status is None or "lastSyncTime" not in p.status  # not completed by the old transfer
    [push] = of_type(p.before, StartTransfer)
    assert push.iteration != first


def test_a_manual_trigger_changed_during_an_iteration_runs_next() -> None:
    obj = rs(manual="one")
    p = source.plan(sview(obj, at(1)))
    obj = with_status(obj, p.status)
    [push] = of_type(source.plan(sview(obj, at(1))).before, StartTransfer)
    obj["spec"]["trigger"]["manual"] = "two"  # the user triggers again while "one" is running
    done = source.plan(sview(obj, at(2), TransferView(push.iteration, running=False, succeeded=True)))
    obj = with_status(obj, done.status)
    assert obj["status"]["lastManualSync"] == "one"
    [queued] = [e for e in of_type(done.after, Emit) if e.reason == REASON_TRIGGER_QUEUED]
    assert "'two'" in queued.message and push.iteration in queued.message
    nxt = source.plan(sview(obj, at(3)))
    assert nxt.status is not None and nxt.status["iteration"]["manual"] == "two"  # it runs next
    obj = with_status(obj, nxt.status)
    [push2] = of_type(source.plan(sview(obj, at(3))).before, StartTransfer)
    done = source.plan(sview(obj, at(4), TransferView(push2.iteration, running=False, succeeded=True)))
    assert with_status(obj, done.status)["status"]["lastManualSync"] == "two"
    assert not [e for e in of_type(done.after, Emit) if e.reason == REASON_TRIGGER_QUEUED]


def test_pausing_drops_next_sync_time_and_keeps_a_finished_transfer() -> None:
    obj = rs(schedule="*/5 * * * *", status={"nextSyncTime": ts(at(minutes=5)), "lastSyncTime": ts(T0)})
    obj = with_status(obj, source.plan(sview(obj, at(minutes=5))).status)
    [push] = of_type(source.plan(sview(obj, at(minutes=5))).before, StartTransfer)
    obj["spec"]["paused"] = True
    running = source.plan(sview(obj, at(minutes=6), TransferView(push.iteration, running=True)))
    assert running.status is not None and running.status["nextSyncTime"] is None
    assert condition(running.status)["message"] == "Synchronization paused"
    # a transfer that already succeeded when the pause arrives completes its iteration (counted once)
    done = source.plan(sview(obj, at(minutes=6), TransferView(push.iteration, running=False, succeeded=True)))
    assert done.status is not None and done.status["lastSyncTime"] == ts(at(minutes=6))
    assert done.status["nextSyncTime"] is None
    idle = source.plan(sview(with_status(obj, done.status), at(hours=2)))
    assert idle.status is not None and idle.status["nextSyncTime"] is None


def test_sent_bytes() -> None:
    assert iterations.sent_bytes("x\nsent 12,345,678 bytes  received 35 bytes  1.00 bytes/sec\ntotal size") == 12345678
    assert iterations.sent_bytes("Rsync completed in 3s") is None
