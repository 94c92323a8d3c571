"""agent/destination.py `plan(DestinationView)`: keys, Service, receiving PVC, sshd, image, clean up.

VolSync semantics followed (reference §1.4-1.5, §2.2, §3.1-3.2, §3.4): the destination publishes
`status.rsync.{address,sshKeys}`, receives into one reused PVC, and only once the source signalled
success preserves an image; with Snapshot, `latestImage` moves to a snapshot only once it is bound
and ready, and the previous image is then labelled for cleanup (or released if pinned).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from support.replication_objects import (
    DEST_KEYS,
    MAIN_KEYS,
    NS,
    RD_UID,
    SOURCE_KEYS,
    T0,
    at,
    condition,
    ensured,
    of_type,
    pvc,
    rd,
    secret,
    service,
    snapshot,
    ts,
    with_status,
)

from agent import destination
from agent.destination import DestinationView, ServerView, plan
from agent.keysecrets import key_secret_names
from agent.plans import (
    Delete,
    Emit,
    EndIteration,
    GenerateKeys,
    Observe,
    Patch,
    Plan,
    Serve,
    StopReceiving,
    StopServing,
)
from api.volsync import ANNOTATION_ITERATION, ANNOTATION_SNAPNAME, LABEL_CLEANUP, LABEL_CREATED_BY, LABEL_DO_NOT_DELETE
from kube.rest import PVCS, SECRETS, SERVICES, VOLUME_SNAPSHOTS

Obj = dict[str, Any]
KEY = f"destination/{NS}/backup"
SVC = "volsync-rsync-dst-backup"
DST = "volsync-backup-dst"
MAIN, SRC, DEST = "volsync-rsync-dst-main-backup", "volsync-rsync-dst-src-backup", "volsync-rsync-dst-dest-backup"
STARTED = {"lastSyncStartTime": ts(T0)}
CLUSTER_IP = "10.96.0.20"
NLB = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}


def generated() -> dict[str, Obj | None]:
    return {
        MAIN: secret(MAIN, keys=MAIN_KEYS),
        SRC: secret(SRC, keys=SOURCE_KEYS),
        DEST: secret(DEST, keys=DEST_KEYS),
    }


def owner() -> Obj:
    return rd()


def dview(obj: Obj, now: datetime = T0, **kw: Any) -> DestinationView:
    kw.setdefault("service", service(SVC, owner=owner()))
    kw.setdefault("pvc", pvc(DST, owner=owner()))
    kw.setdefault("secrets", generated())
    return DestinationView(rd=obj, now=now, **kw)


def serving(obj: Obj, now: datetime, completion: int | None = None, **kw: Any) -> Plan:
    """A plan for an iteration whose server runs (for this iteration) and got `completion`."""
    st = obj.get("status") or {}
    iteration = (st.get("iteration") or {}).get("id") or st["lastSyncStartTime"]
    return plan(dview(obj, now, server=ServerView(iteration, completion=completion), **kw))


def taken_for(vs: Obj, iteration: str) -> Obj:
    """`vs` as the agent creates it: annotated with the iteration it was taken for."""
    vs["metadata"].setdefault("annotations", {})[ANNOTATION_ITERATION] = iteration
    return vs


def owned_by_rd(obj: Obj) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return [(r["uid"], r["kind"], r["controller"]) for r in refs] == [(RD_UID, "ReplicationDestination", True)]


def assert_error(p: Plan, fragment: str) -> None:
    assert p.error is not None and fragment in p.error
    cond = condition(p.status)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Error", p.error)
    assert of_type(p.before, Serve) == []


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        (rd(capacity=None), "capacity and spec.rsync.accessModes must be provided when spec.rsync.destinationPVC"),
        (rd(access_modes=[]), "must be provided when spec.rsync.destinationPVC is not"),
        (rd(movers={}), "a replication method must be specified"),
        (rd(movers={"rsync": {"capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}, "restic": {}}), "only one"),
        (rd(movers={"rsyncTLS": {}}), "'rsyncTLS' is not supported"),
        (rd(schedule="*/5 * * *"), "invalid cron schedule"),
    ],
    ids=["no-capacity", "no-access-modes", "no-mover", "two-movers", "unsupported", "bad-schedule"],
)
def test_spec_errors(obj: Obj, fragment: str) -> None:
    p = plan(dview(obj, at(1)))
    assert_error(p, fragment)
    assert p.before == []


def test_destination_pvc_needs_neither_capacity_nor_access_modes() -> None:
    obj = rd(capacity=None, access_modes=[], destinationPVC="mine")
    p = plan(dview(obj, at(1), pvc=pvc("mine")))
    assert p.error is None
    assert ensured(p, PVCS) == []


def test_missing_destination_pvc_is_an_error() -> None:
    p = plan(dview(rd(destinationPVC="mine"), at(1), pvc=None))
    assert_error(p, "destinationPVC 'mine' not found")
    assert ensured(p, PVCS) == []


def test_supplied_keys_secret_missing_is_an_error() -> None:
    assert_error(plan(dview(rd(ssh_keys="my-keys"), at(1), secrets={})), "ssh keys Secret 'my-keys' not found")


def test_supplied_keys_secret_missing_a_key_is_an_error() -> None:
    s = secret("my-keys", keys=("destination", "destination.pub"))
    assert_error(plan(dview(rd(ssh_keys="my-keys"), at(1), secrets={"my-keys": s})), "missing keys: source.pub")


def test_external_only_is_left_alone() -> None:
    assert plan(dview(rd(movers={"external": {"provider": "p"}}), at(1))) == Plan()


def test_deleting_stops_serving() -> None:
    p = plan(dview(rd(deleting=True, status=STARTED), at(1)))
    assert p.before == [StopServing(KEY)]
    assert p.status is None


# ------------------------------------------------------------------------------------ keys


def test_keys_are_generated_and_the_source_secret_published() -> None:
    obj = rd()
    p = plan(dview(obj, T0, secrets={}))
    [gen] = of_type(p.before, GenerateKeys)
    assert (gen.namespace, gen.name, gen.labels) == (NS, MAIN, {LABEL_CREATED_BY: "volsync"})
    assert gen.owner is obj
    assert p.status is not None and p.status["rsync"]["sshKeys"] == SRC
    assert of_type(p.before, Serve) == []


def test_generated_keys_are_split_with_the_right_data_keys() -> None:
    main = secret(MAIN, keys=MAIN_KEYS)
    p = plan(dview(rd(), T0, secrets={MAIN: main}))
    by_name = {s["metadata"]["name"]: s for s in ensured(p, SECRETS)}
    assert set(by_name) == {SRC, DEST}
    assert set(by_name[SRC]["data"]) == {"source", "source.pub", "destination.pub"}
    assert set(by_name[DEST]["data"]) == {"destination", "destination.pub", "source.pub"}
    for s in by_name.values():
        assert all(v == main["data"][k] for k, v in s["data"].items())
        assert owned_by_rd(s)
    assert p.status is not None and p.status["rsync"]["sshKeys"] == SRC


def test_only_the_missing_split_secret_is_ensured() -> None:
    secrets = generated()
    secrets[DEST] = None
    p = plan(dview(rd(), T0, secrets=secrets))
    assert [s["metadata"]["name"] for s in ensured(p, SECRETS)] == [DEST]


def test_supplied_keys_are_used_and_not_published() -> None:
    s = secret("my-keys", keys=DEST_KEYS)
    obj = rd(ssh_keys="my-keys", status=STARTED)
    p = plan(dview(obj, at(1), secrets={"my-keys": s}))
    assert [a.secret for a in of_type(p.before, Serve)] == ["my-keys"]
    assert p.status is not None and "sshKeys" not in p.status.get("rsync", {})


# ------------------------------------------------------------------------------------ Service


def test_service_is_created_with_defaults() -> None:
    p = plan(dview(rd(), T0, service=None))
    [svc] = ensured(p, SERVICES)
    assert svc["metadata"]["name"] == SVC
    assert svc["metadata"]["namespace"] == NS
    assert owned_by_rd(svc)
    assert svc["metadata"]["annotations"] == NLB
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "ssh", "port": 22, "targetPort": 8022, "protocol": "TCP"}]
    assert svc["spec"]["selector"] == {
        "app.kubernetes.io/name": "dst-backup",
        "app.kubernetes.io/component": "rsync-mover",
        "app.kubernetes.io/part-of": "volsync-addon",
    }
    assert p.status is not None and "address" not in p.status["rsync"]


def test_a_service_that_selects_other_pods_gets_the_mover_selector() -> None:
    svc = service(SVC)
    svc["spec"]["selector"] = {"app.kubernetes.io/name": "dst-backup", "app.kubernetes.io/part-of": "volsync"}
    p = plan(dview(rd(status=STARTED), at(1), service=svc))
    [patch] = [a for a in p.before if isinstance(a, Patch) and a.resource is SERVICES]
    assert patch.patch["spec"]["selector"]["app.kubernetes.io/part-of"] == "volsync-addon"
    assert p.status is not None and p.status["rsync"]["address"] == "10.96.0.20"  # the address stays valid


def test_a_service_of_the_retired_agent_loopback_class_is_replaced() -> None:
    svc = service(SVC, type="LoadBalancer", ingress=[{"ip": "127.64.1.1"}])
    svc["spec"]["loadBalancerClass"] = destination.RETIRED_LB_CLASS
    p = plan(dview(rd(status=STARTED), at(1), service=svc))
    assert [(a.resource, a.name) for a in p.before if isinstance(a, Delete)] == [(SERVICES, SVC)]
    assert p.status is not None and "address" not in p.status["rsync"]
    assert of_type(p.before, Serve) == []


def test_service_type_and_port_follow_the_spec() -> None:
    p = plan(dview(rd(serviceType="LoadBalancer", port=2022), T0, service=None))
    [svc] = ensured(p, SERVICES)
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"][0]["port"] == 2022
    assert svc["spec"]["ports"][0]["targetPort"] == 8022


def test_service_annotations_replace_the_default() -> None:
    [svc] = ensured(plan(dview(rd(serviceAnnotations={"a": "b"}), T0, service=None)), SERVICES)
    assert svc["metadata"]["annotations"] == {"a": "b"}


def test_empty_service_annotations_mean_none() -> None:
    [svc] = ensured(plan(dview(rd(serviceAnnotations={}), T0, service=None)), SERVICES)
    assert "annotations" not in svc["metadata"]


def test_existing_service_is_not_recreated() -> None:
    assert ensured(plan(dview(rd(), T0)), SERVICES) == []


@pytest.mark.parametrize(
    ("svc", "address"),
    [
        (service(SVC, cluster_ip="10.96.1.1"), "10.96.1.1"),
        (service(SVC, cluster_ip="None"), None),
        (service(SVC, cluster_ip=None), None),
        (service(SVC, type="LoadBalancer", ingress=[{"ip": "203.0.113.7"}]), "203.0.113.7"),
        (service(SVC, type="LoadBalancer", ingress=[{"hostname": "lb.example.com"}]), "lb.example.com"),
        (
            service(SVC, type="LoadBalancer", ingress=[{"ip": "203.0.113.7", "hostname": "lb.example.com"}]),
            "lb.example.com",
        ),
        (service(SVC, type="LoadBalancer", ingress=[{}, {"ip": "203.0.113.8"}]), "203.0.113.8"),
        (service(SVC, type="LoadBalancer", ingress=[]), None),  # the ClusterIP is not the address
        (service(SVC, type="LoadBalancer", ingress=None), None),
    ],
    ids=[
        "cluster-ip",
        "headless",
        "no-ip",
        "lb-ip",
        "lb-hostname",
        "lb-hostname-preferred",
        "lb-second",
        "lb-pending",
        "lb-no-status",
    ],
)
def test_address_is_published_once_known(svc: Obj, address: str | None) -> None:
    p = plan(dview(rd(status=STARTED), at(1), service=svc))
    assert p.status is not None
    assert p.status["rsync"].get("address") == address
    if address is None:
        assert of_type(p.before, Serve) == []
        assert f"an address for Service {SVC}" in condition(p.status)["message"]
        assert condition(p.status)["reason"] == "SyncInProgress"
        assert p.requeue_after == 1
    else:
        assert [s.address for s in of_type(p.before, Serve)] == [address]


def test_idle_destination_publishes_address_and_keys() -> None:
    obj = rd(manual="a", status={"lastSyncTime": ts(T0), "lastManualSync": "a"})
    p = plan(dview(obj, at(1)))
    assert p.status is not None
    assert p.status["rsync"] == {"sshKeys": SRC, "address": CLUSTER_IP}
    assert condition(p.status)["reason"] == "WaitingForManual"


# ------------------------------------------------------------------------------------ PVC


def test_receiving_pvc_is_provisioned_from_the_spec() -> None:
    obj = rd(capacity="3Gi", access_modes=["ReadWriteMany"], storageClassName="gp2-csi", volumeMode="Block")
    [claim] = ensured(plan(dview(obj, T0, pvc=None)), PVCS)
    assert claim["metadata"]["name"] == DST
    assert owned_by_rd(claim)
    assert claim["metadata"]["labels"] == {LABEL_CREATED_BY: "volsync"}  # reused: not for cleanup
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "3Gi"}},
        "volumeMode": "Block",
        "storageClassName": "gp2-csi",
    }


def test_receiving_pvc_defaults() -> None:
    [claim] = ensured(plan(dview(rd(), T0, pvc=None)), PVCS)
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert "storageClassName" not in claim["spec"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_cleanup_temp_pvc_labels_the_receiving_pvc() -> None:
    [claim] = ensured(plan(dview(rd(cleanupTempPVC=True, status=STARTED), at(1), pvc=None)), PVCS)
    assert claim["metadata"]["labels"][LABEL_CLEANUP] == RD_UID


def test_cleanup_temp_pvc_is_not_recreated_between_iterations() -> None:
    """A cleanup-labelled PVC created while idle would be deleted by the idle cleanup, then created
    again: a create/delete loop for every idle pass of a scheduled or manual destination."""
    obj = rd(cleanupTempPVC=True, schedule="@hourly", status={"lastSyncTime": ts(T0)})
    p = plan(dview(obj, at(minutes=5), pvc=None))
    assert condition(p.status)["reason"] == "WaitingForSchedule"
    assert ensured(p, PVCS) == []
    # Once the iteration runs, it is provisioned.
    running = plan(dview(rd(cleanupTempPVC=True, status=STARTED), at(hours=1, seconds=1), pvc=None))
    assert [c["metadata"]["name"] for c in ensured(running, PVCS)] == [DST]


def test_cleanup_temp_pvc_is_deleted_after_a_successful_iteration() -> None:
    temp = pvc(DST, labels={LABEL_CLEANUP: RD_UID}, owner=owner(), resource_version="55")
    obj = rd(copy_method="Direct", cleanupTempPVC=True, status=STARTED)
    p = serving(obj, at(10), 0, pvc=temp, leftovers=((PVCS, temp),))
    assert Delete(PVCS, NS, DST, "55") in p.after


def test_unbound_pvc_waits() -> None:
    p = plan(dview(rd(status=STARTED), at(1), pvc=pvc(DST, bound=False)))
    assert of_type(p.before, Serve) == []
    assert f"PVC {DST} to bind" in condition(p.status)["message"]


# ------------------------------------------------------------------------------------ serving


def test_idle_start_sets_the_iteration() -> None:
    p = plan(dview(rd(), at(2)))
    assert p.status is not None and p.status["lastSyncStartTime"] == ts(at(2))
    assert condition(p.status)["reason"] == "SyncInProgress"
    assert of_type(p.before, Serve) == []


def test_serve_once_the_iteration_started() -> None:
    p = plan(dview(rd(status=STARTED), at(2)))
    assert of_type(p.before, Serve) == [Serve(KEY, ts(T0), DST, NS, CLUSTER_IP, 22, DEST)]
    [emit] = of_type(p.before, Emit)
    assert (emit.type, emit.reason) == ("Normal", "TransferStarted")
    assert condition(p.status)["status"] == "True"


def test_serve_uses_the_spec_port() -> None:
    p = plan(dview(rd(port=2022, status=STARTED), at(2)))
    assert [s.port for s in of_type(p.before, Serve)] == [2022]


def test_a_server_of_another_iteration_is_replaced() -> None:
    p = plan(dview(rd(status=STARTED), at(2), server=ServerView(ts(at(-60)), completion=0)))
    assert [s.iteration for s in of_type(p.before, Serve)] == [ts(T0)]
    assert of_type(p.before, StopReceiving) == []
    assert p.status is not None and "latestImage" not in p.status


def test_no_completion_keeps_serving() -> None:
    p = serving(rd(status=STARTED), at(30), None)
    assert of_type(p.before, Serve) == [Serve(KEY, ts(T0), DST, NS, CLUSTER_IP, 22, DEST)]
    assert of_type(p.before, Emit) == []
    assert of_type(p.before, EndIteration) == [] and p.after == []
    assert p.status is not None and "lastSyncTime" not in p.status and "latestImage" not in p.status


def test_failure_signal_records_failure_and_serves_again() -> None:
    p = serving(rd(status=STARTED), at(30), 23)
    assert p.status is not None
    assert p.status["latestMoverStatus"]["result"] == "Failed"
    assert "23" in p.status["latestMoverStatus"]["logs"]
    assert "latestImage" not in p.status and "lastSyncTime" not in p.status and "lastSyncStartTime" not in p.status
    [emit] = of_type(p.before, Emit)
    assert (emit.type, emit.reason) == ("Warning", "TransferFailed")
    kinds = [type(a) for a in p.before if isinstance(a, EndIteration | Serve)]
    assert kinds == [EndIteration, Serve]  # forget the signal, then receive again
    assert of_type(p.before, StopReceiving) == []
    assert condition(p.status)["reason"] == "SyncInProgress"


def test_server_error_is_an_error_condition() -> None:
    obj = rd(status=STARTED)
    p = plan(dview(obj, at(30), server=ServerView(ts(T0), error="address already in use")))
    assert p.error == "address already in use"
    cond = condition(p.status)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Error", "address already in use")
    assert len(of_type(p.before, Serve)) == 1  # each backoff retry tries to start the server again


def test_a_server_that_never_started_reports_its_error() -> None:
    p = plan(dview(rd(status=STARTED), at(30), server=ServerView(None, error="cannot bind 127.0.0.9:22")))
    assert p.error == "cannot bind 127.0.0.9:22"
    assert condition(p.status)["reason"] == "Error"


def test_paused_stops_receiving() -> None:
    p = serving(rd(paused=True, status=STARTED), at(30), None)
    assert of_type(p.before, StopReceiving) == [StopReceiving(KEY, ts(T0))]
    assert of_type(p.before, Serve) == []
    assert condition(p.status)["message"] == "Synchronization paused"


# ------------------------------------------------------------------------------------ images


def test_direct_success_publishes_the_pvc_as_latest_image() -> None:
    obj = rd(copy_method="Direct", status=STARTED)
    p = serving(obj, at(90), 0)
    assert StopReceiving(KEY, ts(T0)) in p.before
    st = p.status
    assert st is not None
    assert st["latestImage"] == {"apiGroup": "", "kind": "PersistentVolumeClaim", "name": DST}
    assert st["lastSyncTime"] == ts(at(90))
    assert st["lastSyncDuration"] == "1m30s"
    assert st["lastSyncStartTime"] is None
    assert st["latestMoverStatus"] == {"result": "Successful", "logs": None}
    assert st["rsync"] == {"sshKeys": SRC, "address": CLUSTER_IP}
    assert condition(st)["reason"] == "CleaningUp"
    assert p.after[:2] == [Observe(duration=90.0, missed=False, succeeded=True, iteration=ts(T0)),
                           EndIteration(KEY, ts(T0))]
    assert of_type(p.after, Patch) == []  # no snapname annotation with Direct


@pytest.mark.parametrize("method", ["Direct", "None"])
def test_direct_image_with_a_supplied_pvc(method: str) -> None:
    obj = rd(copy_method=method, destinationPVC="mine", status=STARTED)
    p = serving(obj, at(10), 0, pvc=pvc("mine"))
    assert p.status is not None and p.status["latestImage"]["name"] == "mine"


def test_clone_is_rejected_before_any_data_moves() -> None:
    # VolSync accepts Clone on a destination and fails only after the transfer; we refuse it up front.
    obj = rd(copy_method="Clone", status=STARTED)
    for completion in (None, 0):
        p = serving(obj, at(10), completion)
        assert_error(p, "unsupported copyMethod 'Clone'")
        assert p.status is not None and "latestImage" not in p.status
        assert not any(isinstance(a, Serve) for a in p.before)


SNAP = "volsync-backup-dst-20260302100005"


def snap_pvc(**kw: Any) -> Obj:
    return pvc(DST, owner=owner(), annotations={ANNOTATION_SNAPNAME: SNAP}, **kw)


def test_snapshot_first_pins_the_snapshot_name_on_the_pvc() -> None:
    p = serving(rd(status=STARTED), at(5), 0)
    assert p.before[0] == StopReceiving(KEY, ts(T0))
    [patch] = of_type(p.before, Patch)
    assert patch == Patch(PVCS, NS, DST, {"metadata": {"annotations": {ANNOTATION_SNAPNAME: SNAP}}})
    assert ensured(p, VOLUME_SNAPSHOTS) == []
    assert p.status is not None and "latestImage" not in p.status and "lastSyncTime" not in p.status
    assert p.requeue_after == 1


def test_snapshot_is_created_under_the_pinned_name() -> None:
    obj = rd(status=STARTED, volumeSnapshotClassName="csi-aws-vsc")
    p = serving(obj, at(7), 0, pvc=snap_pvc())  # a later pass: the name does not move with the clock
    [vs] = ensured(p, VOLUME_SNAPSHOTS)
    assert vs["metadata"]["name"] == SNAP
    assert owned_by_rd(vs)
    assert LABEL_CLEANUP not in vs["metadata"]["labels"]  # the image is kept
    assert vs["spec"] == {"source": {"persistentVolumeClaimName": DST}, "volumeSnapshotClassName": "csi-aws-vsc"}
    assert [e.reason for e in of_type(p.before, Emit)] == ["VolumeSnapshotCreated"]
    assert of_type(p.before, Patch) == []
    assert p.status is not None and "latestImage" not in p.status


@pytest.mark.parametrize(
    "vs",
    [
        snapshot(SNAP, source_pvc=DST, ready=False),
        snapshot(SNAP, source_pvc=DST, ready=True, bound=False),
        snapshot(SNAP, source_pvc=DST, ready=False, bound=True),
        snapshot(SNAP, source_pvc=DST, ready=False, error="out of quota"),
    ],
    ids=["not-ready", "ready-unbound", "bound-not-ready", "error"],
)
def test_snapshot_image_waits_until_ready_and_bound(vs: Obj) -> None:
    p = serving(rd(status=STARTED), at(8), 0, pvc=snap_pvc(), snapshots={SNAP: vs})
    assert p.status is not None
    assert "latestImage" not in p.status
    assert "lastSyncTime" not in p.status and "lastSyncStartTime" not in p.status
    cond = condition(p.status)
    assert cond["reason"] == "SyncInProgress"
    assert f"VolumeSnapshot {SNAP} to be ready" in cond["message"]
    if "error" in vs["status"]:
        assert "out of quota" in cond["message"]
    assert p.after == []
    assert ensured(p, VOLUME_SNAPSHOTS) == []
    assert p.requeue_after == 2


def test_ready_snapshot_becomes_the_latest_image() -> None:
    vs = snapshot(SNAP, source_pvc=DST, owner=owner())
    p = serving(rd(status=STARTED), at(9), 0, pvc=snap_pvc(), snapshots={SNAP: vs})
    st = p.status
    assert st is not None
    assert st["latestImage"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": SNAP}
    assert st["lastSyncTime"] == ts(at(9))
    assert st["lastSyncStartTime"] is None
    assert condition(st)["reason"] == "CleaningUp"
    assert EndIteration(KEY, ts(T0)) in p.after
    assert Patch(PVCS, NS, DST, {"metadata": {"annotations": {ANNOTATION_SNAPNAME: None}}}) in p.after
    assert of_type(p.before, Patch) == []  # no previous image


def previous_image(name: str) -> Obj:
    return {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": name}


def test_previous_snapshot_image_is_labelled_for_cleanup() -> None:
    old = snapshot("volsync-backup-dst-20260301000000", source_pvc=DST, owner=owner())
    new = snapshot(SNAP, source_pvc=DST, owner=owner())
    obj = rd(status={**STARTED, "latestImage": previous_image("volsync-backup-dst-20260301000000")})
    p = serving(obj, at(9), 0, pvc=snap_pvc(), snapshots={SNAP: new, "volsync-backup-dst-20260301000000": old})
    assert (
        Patch(
            VOLUME_SNAPSHOTS, NS, "volsync-backup-dst-20260301000000", {"metadata": {"labels": {LABEL_CLEANUP: RD_UID}}}
        )
        in p.before
    )  # labelled before the new image is published...
    assert of_type(p.after, Delete) == []  # ...and deleted by a later cleanup pass, never before
    assert p.status is not None and p.status["latestImage"]["name"] == SNAP


def test_pinned_previous_snapshot_is_released_not_deleted() -> None:
    old = snapshot("old-image", source_pvc=DST, owner=owner(), labels={LABEL_DO_NOT_DELETE: "true"})
    old["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "u2"})
    obj = rd(status={**STARTED, "latestImage": previous_image("old-image")})
    new = snapshot(SNAP, source_pvc=DST, owner=owner())
    p = serving(obj, at(9), 0, pvc=snap_pvc(), snapshots={SNAP: new, "old-image": old})
    [release] = [a for a in of_type(p.before, Patch) if a.name == "old-image"]
    refs = release.patch["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == ["u2"]
    assert "labels" not in release.patch["metadata"]


def test_pinned_previous_snapshot_owned_only_by_the_rd_drops_owner_references() -> None:
    old = snapshot("old-image", source_pvc=DST, owner=owner(), labels={LABEL_DO_NOT_DELETE: ""})
    obj = rd(status={**STARTED, "latestImage": previous_image("old-image")})
    p = serving(obj, at(9), 0, pvc=snap_pvc(), snapshots={SNAP: snapshot(SNAP, source_pvc=DST), "old-image": old})
    [release] = [a for a in of_type(p.before, Patch) if a.name == "old-image"]
    assert release.patch == {"metadata": {"ownerReferences": None}}


@pytest.mark.parametrize(
    ("image", "snapshots"),
    [
        (previous_image(SNAP), {}),  # same name
        (previous_image("foreign"), {"foreign": snapshot("foreign", source_pvc=DST)}),  # not ours
        (previous_image("vanished"), {}),
        ({"apiGroup": "", "kind": "PersistentVolumeClaim", "name": DST}, {}),
    ],
    ids=["same-name", "not-owned", "gone", "pvc-image"],
)
def test_previous_image_left_alone(image: Obj, snapshots: dict[str, Obj]) -> None:
    obj = rd(status={**STARTED, "latestImage": image})
    snaps = {SNAP: snapshot(SNAP, source_pvc=DST, owner=owner()), **snapshots}
    p = serving(obj, at(9), 0, pvc=snap_pvc(), snapshots=snaps)
    assert [a for a in of_type(p.before, Patch) if a.resource is VOLUME_SNAPSHOTS] == []
    assert p.status is not None and p.status["latestImage"]["name"] == SNAP


def test_no_partial_image_is_ever_exposed() -> None:
    """Walk a Snapshot iteration; every status patch before the snapshot is ready lacks latestImage."""
    obj = rd(status={"lastSyncTime": ts(at(-600)), "latestImage": previous_image("old")})
    old = snapshot("old", source_pvc=DST, owner=owner())
    patches: list[Obj | None] = []

    p = plan(dview(obj, T0, snapshots={"old": old}))  # start
    patches.append(p.status)
    obj = with_status(obj, p.status)
    for completion in (None, 1, None):  # receiving, a failed attempt, receiving again
        p = serving(obj, at(10), completion, snapshots={"old": old})
        patches.append(p.status)
        obj = with_status(obj, p.status)
    p = serving(obj, at(20), 0, snapshots={"old": old})  # success: pin the name
    patches.append(p.status)
    obj = with_status(obj, p.status)
    [pin] = of_type(p.before, Patch)
    name = pin.patch["metadata"]["annotations"][ANNOTATION_SNAPNAME]
    pinned = pvc(DST, owner=owner(), annotations={ANNOTATION_SNAPNAME: name})
    p = serving(obj, at(21), 0, pvc=pinned, snapshots={"old": old})  # create it
    assert [vs["metadata"]["name"] for vs in ensured(p, VOLUME_SNAPSHOTS)] == [name]
    patches.append(p.status)
    obj = with_status(obj, p.status)
    ident = obj["status"]["iteration"]["id"]
    for vs in (snapshot(name, ready=False), snapshot(name, ready=True, bound=False)):
        p = serving(obj, at(22), 0, pvc=pinned, snapshots={"old": old, name: taken_for(vs, ident)})
        patches.append(p.status)
        obj = with_status(obj, p.status)
    for status in patches:
        assert status is None or "latestImage" not in status
    assert obj["status"]["latestImage"]["name"] == "old"
    assert "lastSyncStartTime" in obj["status"]

    ready = taken_for(snapshot(name, owner=owner()), ident)
    p = serving(obj, at(23), 0, pvc=pinned, snapshots={"old": old, name: ready})
    obj = with_status(obj, p.status)
    assert obj["status"]["latestImage"]["name"] == name
    assert "lastSyncStartTime" not in obj["status"]
    assert obj["status"]["latestMoverStatus"] == {"result": "Successful"}  # the failure was superseded


def test_success_cleans_up_leftovers_after_the_status() -> None:
    old = snapshot("old", source_pvc=DST, owner=owner(), labels={LABEL_CLEANUP: RD_UID}, resource_version="77")
    obj = rd(copy_method="Direct", status=STARTED)
    p = serving(obj, at(9), 0, leftovers=((VOLUME_SNAPSHOTS, old),))
    assert of_type(p.after, Delete) == [Delete(VOLUME_SNAPSHOTS, NS, "old", "77")]
    assert of_type(p.before, Delete) == []


def test_always_destination_starts_again_after_cleanup() -> None:
    obj = rd(status={"lastSyncTime": ts(T0), "latestImage": previous_image(SNAP)})
    old = snapshot("old", labels={LABEL_CLEANUP: RD_UID})
    cleaning = plan(dview(obj, at(1), leftovers=((VOLUME_SNAPSHOTS, old),)))
    assert of_type(cleaning.before, Delete) == [Delete(VOLUME_SNAPSHOTS, NS, "old", "21")]
    assert condition(cleaning.status)["reason"] == "CleaningUp"
    again = plan(dview(obj, at(2)))
    assert again.status is not None and again.status["lastSyncStartTime"] == ts(at(2))


def test_scheduled_destination_waits_between_slots() -> None:
    obj = rd(schedule="0 */6 * * *", status={"lastSyncTime": ts(T0)})
    p = plan(dview(obj, at(minutes=30)))
    assert condition(p.status)["reason"] == "WaitingForSchedule"
    assert p.status is not None and p.status["nextSyncTime"] == "2026-03-02T12:00:00Z"
    assert p.requeue_after == 90 * 60
    assert of_type(p.before, Serve) == []


# ------------------------------------------------------------------------------------ names


def test_names_of_a_60_character_destination_stay_within_63() -> None:
    name = "d" * 60
    names = [destination.service_name(name), *key_secret_names("destination", name)]
    obj = rd(name, status=STARTED)
    p = plan(dview(obj, at(1), service=None, pvc=None, secrets={}))
    [svc] = ensured(p, SERVICES)
    [claim] = ensured(p, PVCS)
    [gen] = of_type(p.before, GenerateKeys)
    names += [svc["metadata"]["name"], claim["metadata"]["name"], gen.name]
    for n in names:
        assert len(n) <= 63, n
        assert n[-1].isalnum()
    assert svc["metadata"]["name"] == destination.service_name(name)
    assert len(svc["spec"]["selector"]["app.kubernetes.io/name"]) <= 63


def test_snapshot_name_of_a_long_destination_stays_within_63() -> None:
    name = "d" * 60
    obj = rd(name, status=STARTED)
    first = plan(dview(obj, at(1), pvc=None))
    [created] = ensured(first, PVCS)
    dst = created["metadata"]["name"]
    main, src, dest = key_secret_names("destination", name)
    secrets = {
        main: secret(main, keys=MAIN_KEYS),
        src: secret(src, keys=SOURCE_KEYS),
        dest: secret(dest, keys=DEST_KEYS),
    }
    svc = service(destination.service_name(name))
    p = plan(dview(obj, at(5), pvc=pvc(dst), secrets=secrets, service=svc, server=ServerView(ts(T0), completion=0)))
    [patch] = of_type(p.before, Patch)
    assert patch.name == dst
    snapname = patch.patch["metadata"]["annotations"][ANNOTATION_SNAPNAME]
    assert len(snapname) <= 63


# ------------------------------------------------------------------------------------ snapname cleanup


def test_idle_removes_a_leftover_snapname_annotation() -> None:
    """CleaningUp removes the snapname annotation (VolSync §2.2 step 5). The completing plan removes
    it in `after`, which is not replayed once the status moved on: if that patch failed, a stale
    pin would make the next iteration "preserve" the previous snapshot again as a fresh image."""
    obj = rd(manual="a", status={"lastSyncTime": ts(T0), "lastManualSync": "a", "latestImage": previous_image(SNAP)})
    p = plan(dview(obj, at(5), pvc=snap_pvc(), snapshots={SNAP: snapshot(SNAP, owner=owner())}))
    assert Patch(PVCS, NS, DST, {"metadata": {"annotations": {ANNOTATION_SNAPNAME: None}}}) in p.before
    clean = plan(dview(obj, at(6)))
    assert of_type(clean.before, Patch) == []


def test_a_new_iteration_never_republishes_the_previous_image() -> None:
    obj = rd(status={"lastSyncTime": ts(T0), "latestImage": previous_image(SNAP)})
    started = plan(dview(obj, at(5), pvc=snap_pvc(), snapshots={SNAP: snapshot(SNAP, owner=owner())}))
    assert started.status is not None and started.status["lastSyncStartTime"] == ts(at(5))
    assert Patch(PVCS, NS, DST, {"metadata": {"annotations": {ANNOTATION_SNAPNAME: None}}}) in started.before
    obj = with_status(obj, started.status)
    unpinned = pvc(DST, owner=owner())  # the start pass removed the stale pin
    p = serving(obj, at(60), 0, pvc=unpinned, snapshots={SNAP: snapshot(SNAP, owner=owner())})
    assert p.status is not None and "latestImage" not in p.status
    [pin] = of_type(p.before, Patch)
    assert pin.patch["metadata"]["annotations"][ANNOTATION_SNAPNAME] != SNAP
