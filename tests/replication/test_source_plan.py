"""agent/source.py `plan(SourceView)`: the ReplicationSource state machine, one step per call.

VolSync semantics followed (reference §1.5, §2.1, §3.3-3.4, §4): errors surface as
Synchronizing=False/Error; an iteration is Synchronizing while `status.lastSyncStartTime` is set;
the PiT copy is made per copyMethod and labelled for cleanup; success records lastSyncTime and
friends and goes CleaningUp; failures keep the iteration and retry with backoff.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from support.replication_objects import (
    MAIN_KEYS,
    NS,
    RS_UID,
    SOURCE_KEYS,
    T0,
    at,
    b64,
    condition,
    ensured,
    of_type,
    pvc,
    rs,
    secret,
    snapshot,
    ts,
    with_status,
)

from agent import source
from agent.keysecrets import key_secret_names
from agent.plans import (
    CancelTransfer,
    Delete,
    Emit,
    Ensure,
    ForgetTransfer,
    GenerateKeys,
    Observe,
    Plan,
    StartTransfer,
)
from agent.source import SourceView, TransferView, plan
from api.volsync import ANNOTATION_SKIP_INITIAL_SYNC, LABEL_CLEANUP, LABEL_CREATED_BY
from kube.rest import PVCS, SECRETS, VOLUME_SNAPSHOTS

Obj = dict[str, Any]
KEY = f"source/{NS}/app"
PIT = "volsync-app-src"
STARTED = {"lastSyncStartTime": ts(T0)}  # an iteration in progress since T0


def keys_secret(name: str = "rs-keys") -> Obj:
    return secret(name, keys=SOURCE_KEYS)


def view(obj: Obj, now: datetime = T0, **kw: Any) -> SourceView:
    kw.setdefault("source_pvc", pvc("data"))
    kw.setdefault("secrets", {"rs-keys": keys_secret()})
    return SourceView(rs=obj, now=now, **kw)


def starts(p: Plan) -> list[StartTransfer]:
    return of_type(p.before, StartTransfer)


def owned_by_rs(obj: Obj) -> bool:
    refs = obj["metadata"].get("ownerReferences") or []
    return (
        len(refs) == 1
        and refs[0]["uid"] == RS_UID
        and refs[0]["controller"] is True
        and refs[0]["kind"] == ("ReplicationSource")
    )


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("obj", "secrets", "source_pvc", "fragment"),
    [
        (rs(movers={}), None, pvc(), "a replication method must be specified"),
        (rs(movers={"rsync": {"address": "a", "sshKeys": "rs-keys"}, "rclone": {}}), None, pvc(), "only one"),
        (rs(movers={"rsync": {"address": "a", "sshKeys": "rs-keys"}, "external": {}}), None, pvc(), "only one"),
        (rs(movers={"restic": {"repository": "r"}}), None, pvc(), "'restic' is not supported"),
        (rs(address=None), None, pvc(), "spec.rsync.address is required"),
        (rs(ssh_keys="missing-keys"), None, pvc(), "'missing-keys' not found"),
        (rs(), {"rs-keys": secret("rs-keys", keys=("source",))}, pvc(), "'rs-keys' is missing keys: destination.pub"),
        (
            rs(),
            {"rs-keys": secret("rs-keys", data={"source": "%%%", "destination.pub": b64("k")})},
            pvc(),
            "invalid base64 in 'source'",
        ),
        (rs(schedule="every 5 minutes"), None, pvc(), "invalid cron schedule 'every 5 minutes'"),
        (rs(schedule="0 0 31 2 *"), None, pvc(), "invalid cron schedule '0 0 31 2 *'"),
        (rs(source_pvc=None), None, pvc(), "spec.sourcePVC is required"),
        (rs(source_pvc="gone"), None, None, "source PVC 'gone' not found"),
    ],
    ids=[
        "no-mover",
        "two-movers",
        "external-and-rsync",
        "unsupported-mover",
        "no-address",
        "secret-missing",
        "secret-missing-keys",
        "secret-bad-base64",
        "bad-schedule",
        "never-firing-schedule",
        "no-source-pvc-in-spec",
        "source-pvc-missing",
    ],
)
def test_errors_set_synchronizing_false_error(
    obj: Obj, secrets: dict[str, Obj | None] | None, source_pvc: Obj | None, fragment: str
) -> None:
    v = SourceView(
        rs=obj, now=at(5), source_pvc=source_pvc, secrets={"rs-keys": keys_secret()} if secrets is None else secrets
    )
    p = plan(v)
    assert p.error is not None and fragment in p.error
    cond = condition(p.status)
    assert cond["status"] == "False"
    assert cond["reason"] == "Error"
    assert cond["message"] == p.error
    assert cond["lastTransitionTime"] == ts(at(5))
    assert p.before == [] and p.after == []
    assert "lastSyncStartTime" not in (p.status or {})


def test_error_in_an_iteration_keeps_the_iteration() -> None:
    p = plan(view(rs(status=STARTED), at(60), source_pvc=None))
    assert p.error == "source PVC 'data' not found"
    assert p.status is not None and set(p.status) == {"conditions"}  # lastSyncStartTime untouched


def test_error_condition_clears_on_the_next_clean_pass() -> None:
    failed = plan(view(rs(), T0, source_pvc=None))
    obj = with_status(rs(), failed.status)
    assert condition(obj["status"])["reason"] == "Error"
    p = plan(view(obj, at(10)))
    assert p.error is None
    cond = condition(p.status)
    assert cond["reason"] == "SyncInProgress" and cond["status"] == "True"


def test_external_only_is_left_alone() -> None:
    p = plan(view(rs(movers={"external": {"provider": "x", "parameters": {}}}), source_pvc=None, secrets={}))
    assert p == Plan()


def test_deleting_cancels_the_transfer_and_nothing_else() -> None:
    p = plan(view(rs(deleting=True, status=STARTED), at(5)))
    assert p.before == [CancelTransfer(KEY)]
    assert p.status is None and p.after == []


# ------------------------------------------------------------------------------------ start


def test_idle_start_sets_last_sync_start_time_and_sync_in_progress() -> None:
    p = plan(view(rs(), at(3)))
    assert p.status is not None
    assert p.status["lastSyncStartTime"] == ts(at(3))
    cond = condition(p.status)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True",
        "SyncInProgress",
        "Synchronization in-progress",
    )
    assert starts(p) == []  # one step per call: the transfer starts on the next pass
    assert p.error is None


@pytest.mark.parametrize("method", ["Direct", "None"])
def test_direct_pushes_the_source_pvc(method: str) -> None:
    p = plan(view(rs(copy_method=method, status=STARTED), at(1)))
    assert starts(p) == [StartTransfer(KEY, ts(T0), "data", NS, "10.0.0.9", 22, "rs-keys")]
    assert ensured(p, PVCS) == [] and ensured(p, VOLUME_SNAPSHOTS) == []
    emits = of_type(p.before, Emit)
    assert [(e.type, e.reason) for e in emits] == [("Normal", "TransferStarted")]
    assert "10.0.0.9:22" in emits[0].message
    assert condition(p.status)["reason"] == "SyncInProgress"


def test_a_missing_copy_method_is_an_error_as_in_volsync() -> None:
    p = plan(view(rs(copy_method=None, status=STARTED), at(1)))
    assert p.error is not None and "copyMethod must be set" in p.error
    assert starts(p) == []
    assert condition(p.status)["reason"] == "Error"


def test_transfer_uses_spec_port() -> None:
    p = plan(view(rs(port=2222, status=STARTED), at(1)))
    assert [s.port for s in starts(p)] == [2222]


# ------------------------------------------------------------------------------------ Clone


def test_clone_creates_a_labelled_owned_pvc_from_the_source() -> None:
    src = pvc(
        "data", capacity="5Gi", request="4Gi", storage_class="fast", access_modes=["ReadWriteMany"], volume_mode="Block"
    )
    p = plan(view(rs(copy_method="Clone", status=STARTED), at(1), source_pvc=src))
    [clone] = ensured(p, PVCS)
    assert clone["metadata"]["name"] == PIT
    assert clone["metadata"]["namespace"] == NS
    assert clone["metadata"]["labels"] == {LABEL_CLEANUP: RS_UID, LABEL_CREATED_BY: "volsync"}
    assert owned_by_rs(clone)
    assert clone["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "data"}
    assert clone["spec"]["resources"] == {"requests": {"storage": "5Gi"}}  # status capacity first
    assert clone["spec"]["storageClassName"] == "fast"
    assert clone["spec"]["accessModes"] == ["ReadWriteMany"]
    assert clone["spec"]["volumeMode"] == "Block"
    assert starts(p) == []
    assert p.requeue_after is not None
    assert condition(p.status)["status"] == "True"


def test_clone_options_override_the_source_pvc() -> None:
    obj = rs(
        copy_method="Clone", status=STARTED, capacity="9Gi", storageClassName="slow", accessModes=["ReadWriteOnce"]
    )
    src = pvc("data", access_modes=["ReadWriteMany"], storage_class="fast")
    [clone] = ensured(plan(view(obj, at(1), source_pvc=src)), PVCS)
    assert clone["spec"]["resources"] == {"requests": {"storage": "9Gi"}}
    assert clone["spec"]["storageClassName"] == "slow"
    assert clone["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_clone_capacity_falls_back_to_the_request_of_an_unbound_source() -> None:
    src = pvc("data", bound=False, request="3Gi", storage_class=None)
    [clone] = ensured(plan(view(rs(copy_method="Clone", status=STARTED), at(1), source_pvc=src)), PVCS)
    assert clone["spec"]["resources"] == {"requests": {"storage": "3Gi"}}
    assert "storageClassName" not in clone["spec"]


def test_clone_waits_for_the_pvc_to_bind_then_pushes_it() -> None:
    obj = rs(copy_method="Clone", status=STARTED)
    owner = rs()
    pending = plan(view(obj, at(2), pit_pvc=pvc(PIT, bound=False, owner=owner, labels={LABEL_CLEANUP: RS_UID})))
    assert pending.before == []
    assert starts(pending) == []
    assert f"PVC {PIT} to bind" in condition(pending.status)["message"]
    assert pending.requeue_after == 2
    bound = plan(view(obj, at(3), pit_pvc=pvc(PIT, owner=owner, labels={LABEL_CLEANUP: RS_UID})))
    assert starts(bound) == [StartTransfer(KEY, ts(T0), PIT, NS, "10.0.0.9", 22, "rs-keys")]


# ------------------------------------------------------------------------------------ Snapshot


def test_snapshot_first_takes_a_labelled_owned_volume_snapshot() -> None:
    obj = rs(copy_method="Snapshot", status=STARTED, volumeSnapshotClassName="csi-vsc")
    p = plan(view(obj, at(1)))
    [vs] = ensured(p, VOLUME_SNAPSHOTS)
    assert vs["apiVersion"] == "snapshot.storage.k8s.io/v1" and vs["kind"] == "VolumeSnapshot"
    assert vs["metadata"]["name"] == PIT
    assert vs["metadata"]["labels"][LABEL_CLEANUP] == RS_UID
    assert owned_by_rs(vs)
    assert vs["spec"] == {"source": {"persistentVolumeClaimName": "data"}, "volumeSnapshotClassName": "csi-vsc"}
    assert ensured(p, PVCS) == []  # not before the snapshot is ready
    assert [e.reason for e in of_type(p.before, Emit)] == ["VolumeSnapshotCreated"]
    assert starts(p) == []


def test_snapshot_without_a_class_uses_the_default() -> None:
    [vs] = ensured(plan(view(rs(copy_method="Snapshot", status=STARTED), at(1))), VOLUME_SNAPSHOTS)
    assert "volumeSnapshotClassName" not in vs["spec"]


@pytest.mark.parametrize(
    "vs",
    [
        snapshot(PIT, ready=False),
        snapshot(PIT, ready=True, bound=False),  # readyToUse but no content yet
        snapshot(PIT, ready=False, bound=True),
    ],
    ids=["not-ready", "no-content", "bound-not-ready"],
)
def test_snapshot_waits_until_ready_and_bound(vs: Obj) -> None:
    p = plan(view(rs(copy_method="Snapshot", status=STARTED), at(5), pit_snapshot=vs))
    assert p.before == []
    assert starts(p) == []
    assert ensured(p, PVCS) == []
    assert f"VolumeSnapshot {PIT} to be ready" in condition(p.status)["message"]
    assert p.requeue_after == 2


def test_snapshot_error_is_shown_while_waiting() -> None:
    vs = snapshot(PIT, ready=False, error="driver exploded")
    p = plan(view(rs(copy_method="Snapshot", status=STARTED), at(5), pit_snapshot=vs))
    assert "driver exploded" in condition(p.status)["message"]


def test_snapshot_being_deleted_is_waited_for_not_recreated() -> None:
    vs = snapshot(PIT, deleting=True)
    p = plan(view(rs(copy_method="Snapshot", status=STARTED), at(5), pit_snapshot=vs))
    assert p.before == []
    assert "to be deleted" in condition(p.status)["message"]


def test_ready_snapshot_is_restored_into_a_labelled_pvc() -> None:
    vs = snapshot(PIT, ready=True, restore_size="3Gi")
    src = pvc("data", capacity="5Gi")
    p = plan(view(rs(copy_method="Snapshot", status=STARTED), at(5), pit_snapshot=vs, source_pvc=src))
    [restore] = ensured(p, PVCS)
    assert restore["metadata"]["name"] == PIT
    assert restore["metadata"]["labels"][LABEL_CLEANUP] == RS_UID
    assert owned_by_rs(restore)
    assert restore["spec"]["dataSource"] == {
        "kind": "VolumeSnapshot",
        "apiGroup": "snapshot.storage.k8s.io",
        "name": PIT,
    }
    assert restore["spec"]["resources"] == {"requests": {"storage": "3Gi"}}  # restoreSize first
    assert starts(p) == []


def test_restored_pvc_without_restore_size_uses_the_source_capacity() -> None:
    p = plan(
        view(
            rs(copy_method="Snapshot", status=STARTED),
            at(5),
            pit_snapshot=snapshot(PIT),
            source_pvc=pvc("data", capacity="5Gi"),
        )
    )
    [restore] = ensured(p, PVCS)
    assert restore["spec"]["resources"] == {"requests": {"storage": "5Gi"}}


def test_snapshot_restore_waits_for_bound_then_pushes_the_restored_pvc() -> None:
    obj = rs(copy_method="Snapshot", status=STARTED)
    pending = plan(view(obj, at(6), pit_snapshot=snapshot(PIT), pit_pvc=pvc(PIT, bound=False)))
    assert starts(pending) == [] and pending.before == []
    assert f"PVC {PIT} to bind" in condition(pending.status)["message"]
    bound = plan(view(obj, at(7), pit_snapshot=snapshot(PIT), pit_pvc=pvc(PIT)))
    assert starts(bound) == [StartTransfer(KEY, ts(T0), PIT, NS, "10.0.0.9", 22, "rs-keys")]


def test_waiting_on_the_pit_copy_names_an_unbound_source_pvc() -> None:
    p = plan(view(rs(copy_method="Snapshot", status=STARTED), at(5), source_pvc=pvc("data", bound=False)))
    assert "source PVC data to bind" in condition(p.status)["message"]


# ------------------------------------------------------------------------------------ paused


def test_paused_cancels_and_does_not_start() -> None:
    p = plan(view(rs(paused=True, status=STARTED), at(5), transfer=TransferView(ts(T0), running=True)))
    assert CancelTransfer(KEY) in p.before
    assert starts(p) == []
    assert condition(p.status)["message"] == "Synchronization paused"


def test_paused_still_makes_the_pit_copy() -> None:
    """VolSync: `paused` still takes the source snapshot; only the mover does not run."""
    p = plan(view(rs(copy_method="Snapshot", paused=True, status=STARTED), at(5)))
    assert [vs["metadata"]["name"] for vs in ensured(p, VOLUME_SNAPSHOTS)] == [PIT]
    assert starts(p) == []


def test_paused_idle_does_not_start_an_iteration() -> None:
    p = plan(view(rs(paused=True), at(5)))
    assert p.status is not None
    assert "lastSyncStartTime" not in p.status
    assert condition(p.status)["message"] == "Synchronization paused"
    assert starts(p) == []


# ------------------------------------------------------------------------------------ transfer


def test_running_transfer_waits() -> None:
    p = plan(view(rs(status=STARTED), at(30), transfer=TransferView(ts(T0), running=True)))
    assert starts(p) == []
    assert of_type(p.before, CancelTransfer) == []
    assert p.requeue_after == 60
    assert condition(p.status)["reason"] == "SyncInProgress"
    assert p.after == []


def test_a_mover_that_cannot_start_is_an_error_condition() -> None:
    why = "mover Pod volsync-rsync-src-app-x cannot start: ErrImagePull: image not found"
    p = plan(view(rs(status=STARTED), at(30), transfer=TransferView(ts(T0), running=True, error=why)))
    assert starts(p) == [] and of_type(p.before, CancelTransfer) == []
    assert (condition(p.status)["status"], condition(p.status)["reason"]) == ("False", "Error")
    assert condition(p.status)["message"] == why and p.error == why  # retried with backoff


def test_a_transfer_of_another_iteration_is_cancelled_and_replaced() -> None:
    stale = TransferView(ts(at(-600)), running=True)
    p = plan(view(rs(status=STARTED), at(30), transfer=stale))
    assert [type(a) for a in p.before[:2]] == [CancelTransfer, StartTransfer]
    assert starts(p)[0].iteration == ts(T0)


@pytest.mark.parametrize(("failures", "delay"), [(0, 2.0), (1, 4.0), (3, 16.0), (12, 300.0)])
def test_failed_transfer_records_failure_and_backs_off(failures: int, delay: float) -> None:
    t = TransferView(ts(T0), running=False, succeeded=False, logs="rsync: connection refused", exit_code=255)
    p = plan(view(rs(status=STARTED), at(40), transfer=t, failures=failures))
    assert p.status is not None
    assert p.status["latestMoverStatus"] == {"result": "Failed", "logs": "rsync: connection refused"}
    assert "lastSyncTime" not in p.status and "lastSyncStartTime" not in p.status  # the iteration goes on
    [warning] = of_type(p.before, Emit)
    assert (warning.type, warning.reason) == ("Warning", "TransferFailed")
    assert "exit 255" in warning.message
    [attempt] = of_type(p.after, Observe)  # logged as a failed attempt, never counted as a sync
    assert (attempt.succeeded, attempt.outcome, attempt.iteration, attempt.duration) == (False, "Failed", ts(T0), 40.0)
    assert p.after == [attempt, ForgetTransfer(KEY, failed=True)]
    assert p.requeue_after == delay
    assert starts(p) == []
    assert of_type(p.before, Observe) == []


def test_failed_transfer_logs_keep_the_last_1024_characters() -> None:
    logs = "x" * 2000 + "the end"
    t = TransferView(ts(T0), running=False, succeeded=False, logs=logs, exit_code=12)
    p = plan(view(rs(status=STARTED), at(40), transfer=t))
    assert p.status is not None
    assert p.status["latestMoverStatus"]["logs"] == logs[-1024:]


def test_no_new_transfer_before_retry_at() -> None:
    p = plan(view(rs(status=STARTED), at(40), retry_at=at(48)))
    assert starts(p) == []
    assert p.requeue_after == 8


def test_new_transfer_once_retry_at_passed() -> None:
    p = plan(view(rs(status=STARTED), at(48), retry_at=at(48), failures=2))
    assert [s.iteration for s in starts(p)] == [ts(T0)]


# ------------------------------------------------------------------------------------ success


def success(obj: Obj, now: datetime, logs: str = "sent 1 bytes  received 2 bytes", **kw: Any) -> Plan:
    t = TransferView(ts(T0), running=False, succeeded=True, logs=logs)
    return plan(view(obj, now, transfer=t, **kw))


def test_success_records_the_completion() -> None:
    p = success(rs(status=STARTED), at(62))
    st = p.status
    assert st is not None
    assert st["lastSyncTime"] == ts(at(62))
    assert st["lastSyncDuration"] == "1m2s"
    assert "lastSyncStartTime" in st and st["lastSyncStartTime"] is None  # cleared by the merge patch
    assert st["nextSyncTime"] is None  # no schedule
    assert st["latestMoverStatus"] == {"result": "Successful", "logs": "sent 1 bytes  received 2 bytes"}
    cond = condition(st)
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "CleaningUp", "Cleaning up")
    assert starts(p) == []


def test_success_without_logs_drops_the_logs_of_an_earlier_failure() -> None:
    """The status is a merge patch: a Successful result must not keep a failed attempt's logs."""
    obj = rs(status=STARTED)
    failed = plan(view(obj, at(5), transfer=TransferView(ts(T0), running=False, logs="connection refused")))
    obj = with_status(obj, failed.status)
    assert obj["status"]["latestMoverStatus"] == {"result": "Failed", "logs": "connection refused"}
    p = success(obj, at(50), logs="")
    assert p.status is not None and p.status["latestMoverStatus"] == {"result": "Successful", "logs": None}
    assert with_status(obj, p.status)["status"]["latestMoverStatus"] == {"result": "Successful"}


def test_success_sets_next_sync_time_from_the_completion_time() -> None:
    p = success(rs(schedule="*/15 * * * *", status=STARTED), at(minutes=16))
    assert p.status is not None and p.status["nextSyncTime"] == ts(at(minutes=30))


def test_success_sets_last_manual_sync_to_the_current_manual_value() -> None:
    # Changed mid-run from "one" to "two": the completing run takes the current value (VolSync §4).
    obj = rs(manual="two", status={**STARTED, "lastManualSync": "zero"})
    p = success(obj, at(5))
    assert p.status is not None and p.status["lastManualSync"] == "two"
    assert p.status["nextSyncTime"] is None


def test_success_with_manual_and_schedule_follows_manual() -> None:
    """Manual takes precedence: no nextSyncTime, and a late completion is not a missed deadline."""
    obj = rs(manual="m1", schedule="@hourly", status={**STARTED, "lastSyncTime": ts(at(hours=-5))})
    p = success(obj, at(5))
    assert p.status is not None
    assert p.status["nextSyncTime"] is None
    assert p.status["lastManualSync"] == "m1"
    [observed] = of_type([*p.before, *p.after], Observe)
    assert observed.missed is False


def test_success_without_manual_clears_last_manual_sync() -> None:
    """lastManualSync = spec.trigger.manual at completion; "" (unset) drops the field."""
    obj = rs(schedule="@hourly", status={**STARTED, "lastManualSync": "old"})
    p = success(obj, at(5))
    assert p.status is not None
    assert "lastManualSync" in p.status and p.status["lastManualSync"] is None
    assert "lastManualSync" not in with_status(obj, p.status)["status"]


def test_success_observes_duration_and_missed_deadline() -> None:
    on_time = success(rs(schedule="@hourly", status={**STARTED, "lastSyncTime": ts(at(hours=-1))}), at(90))
    [observed] = of_type([*on_time.before, *on_time.after], Observe)
    assert (observed.duration, observed.missed, observed.succeeded, observed.iteration) == (90.0, False, True, ts(T0))
    # Last success 09:00 -> due 10:00 -> deadline 11:00; completing at 11:00:01 is late.
    late_obj = rs(schedule="@hourly", status={**STARTED, "lastSyncTime": ts(at(hours=-1))})
    late = success(late_obj, at(hours=1, seconds=1))
    [observed] = of_type([*late.before, *late.after], Observe)
    assert observed.missed is True
    assert observed.duration == 3601.0


def test_observe_comes_after_the_status_patch() -> None:
    """Metrics only once the completion is recorded: a refused (409) status patch is retried with
    the same transfer, and must not count the iteration twice."""
    p = success(rs(status=STARTED), at(5))
    assert of_type(p.before, Observe) == []
    assert len(of_type(p.after, Observe)) == 1


def test_success_forgets_the_transfer_and_deletes_leftovers_after_the_status() -> None:
    owner = rs()
    vs = snapshot(PIT, labels={LABEL_CLEANUP: RS_UID}, owner=owner, resource_version="31")
    restored = pvc(PIT, labels={LABEL_CLEANUP: RS_UID}, owner=owner, resource_version="32")
    going = pvc("other-temp", labels={LABEL_CLEANUP: RS_UID}, deleting=True)
    obj = rs(copy_method="Snapshot", status=STARTED)
    p = success(
        obj,
        at(5),
        pit_snapshot=vs,
        pit_pvc=restored,
        leftovers=((VOLUME_SNAPSHOTS, vs), (PVCS, restored), (PVCS, going)),
    )
    assert ForgetTransfer(KEY) in p.after
    assert of_type(p.after, Delete) == [
        Delete(VOLUME_SNAPSHOTS, NS, PIT, "31"),
        Delete(PVCS, NS, PIT, "32"),
    ]
    assert of_type(p.before, Delete) == []
    assert p.requeue_after == 1


def test_idle_with_leftovers_cleans_up_before_deciding() -> None:
    obj = rs(status={"lastSyncTime": ts(T0)})  # always: would start at once
    vs = snapshot(PIT, labels={LABEL_CLEANUP: RS_UID}, resource_version="40")
    p = plan(view(obj, at(2), leftovers=((VOLUME_SNAPSHOTS, vs),)))
    assert p.before == [Delete(VOLUME_SNAPSHOTS, NS, PIT, "40")]
    assert p.status is not None and "lastSyncStartTime" not in p.status
    cond = condition(p.status)
    assert (cond["status"], cond["reason"]) == ("False", "CleaningUp")
    assert p.requeue_after == 2


def test_idle_with_leftovers_being_deleted_waits() -> None:
    vs = snapshot(PIT, labels={LABEL_CLEANUP: RS_UID}, deleting=True)
    p = plan(view(rs(status={"lastSyncTime": ts(T0)}), at(2), leftovers=((VOLUME_SNAPSHOTS, vs),)))
    assert p.before == []
    assert condition(p.status)["reason"] == "CleaningUp"
    assert p.status is not None and "lastSyncStartTime" not in p.status


def test_idle_forgets_a_finished_transfer() -> None:
    done = TransferView(ts(T0), running=False, succeeded=True)
    p = plan(view(rs(status={"lastSyncTime": ts(at(5))}, schedule="@hourly"), at(6), transfer=done))
    assert p.after == [ForgetTransfer(KEY)]


# ------------------------------------------------------------------------------------ waiting


def test_idle_schedule_waits_for_the_next_slot() -> None:
    obj = rs(schedule="*/15 * * * *", status={"lastSyncTime": ts(at(minutes=2))})
    p = plan(view(obj, at(minutes=5)))
    assert p.status is not None
    assert "lastSyncStartTime" not in p.status
    assert p.status["nextSyncTime"] == ts(at(minutes=15))
    cond = condition(p.status)
    assert (cond["status"], cond["reason"]) == ("False", "WaitingForSchedule")
    assert cond["message"] == "Waiting for next scheduled synchronization"
    assert p.requeue_after == 600
    assert starts(p) == []


def test_idle_schedule_starts_at_the_slot() -> None:
    obj = rs(schedule="*/15 * * * *", status={"lastSyncTime": ts(at(minutes=2))})
    p = plan(view(obj, at(minutes=15)))
    assert p.status is not None and p.status["lastSyncStartTime"] == ts(at(minutes=15))


def test_idle_schedule_picks_up_an_edited_schedule() -> None:
    obj = rs(schedule="@daily", status={"lastSyncTime": ts(T0), "nextSyncTime": ts(at(hours=1))})
    p = plan(view(obj, at(minutes=5)))
    assert p.status is not None and p.status["nextSyncTime"] == "2026-03-03T00:00:00Z"


def test_idle_manual_waits_for_a_new_value() -> None:
    obj = rs(manual="one", status={"lastSyncTime": ts(T0), "lastManualSync": "one"})
    p = plan(view(obj, at(hours=5)))
    assert p.status is not None
    cond = condition(p.status)
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False",
        "WaitingForManual",
        "Waiting for manual trigger",
    )
    assert p.status["nextSyncTime"] is None
    assert p.requeue_after is None
    assert "lastSyncStartTime" not in p.status


def test_idle_manual_new_value_starts() -> None:
    obj = rs(manual="two", status={"lastSyncTime": ts(T0), "lastManualSync": "one"})
    p = plan(view(obj, at(5)))
    assert p.status is not None and p.status["lastSyncStartTime"] == ts(at(5))


@pytest.mark.parametrize("trigger", [{"schedule": "0 0 1 1 *"}, {"manual": "x"}, {}], ids=["yearly", "manual", "none"])
def test_first_sync_at_creation_whatever_the_trigger(trigger: Obj) -> None:
    p = plan(view(rs(trigger=trigger), at(1)))
    assert p.status is not None and p.status["lastSyncStartTime"] == ts(at(1))


def test_skip_initial_sync_waits_for_the_first_slot_after_creation() -> None:
    created = at(minutes=1)
    obj = rs(schedule="*/15 * * * *", created=created, annotations={ANNOTATION_SKIP_INITIAL_SYNC: "true"})
    waiting = plan(view(obj, at(minutes=2)))
    assert waiting.status is not None and "lastSyncStartTime" not in waiting.status
    assert condition(waiting.status)["reason"] == "WaitingForSchedule"
    assert waiting.status["nextSyncTime"] == ts(at(minutes=15))
    assert waiting.requeue_after == 13 * 60
    due = plan(view(obj, at(minutes=15)))
    assert due.status is not None and due.status["lastSyncStartTime"] == ts(at(minutes=15))


def test_skip_initial_sync_needs_the_exact_value_true() -> None:
    obj = rs(schedule="@yearly", annotations={ANNOTATION_SKIP_INITIAL_SYNC: "yes"})
    p = plan(view(obj, at(1)))
    assert p.status is not None and "lastSyncStartTime" in p.status


def test_always_starts_again_right_after_cleanup() -> None:
    p = plan(view(rs(status={"lastSyncTime": ts(at(5))}), at(6)))
    assert p.status is not None and p.status["lastSyncStartTime"] == ts(at(6))


# ------------------------------------------------------------------------------------ keys


GEN_MAIN, GEN_SRC, GEN_DEST = "volsync-rsync-src-main-app", "volsync-rsync-src-src-app", "volsync-rsync-src-dest-app"


def test_keys_are_generated_when_ssh_keys_is_unset() -> None:
    obj = rs(ssh_keys=None)
    p = plan(view(obj, T0, secrets={}))
    [gen] = of_type(p.before, GenerateKeys)
    assert (gen.namespace, gen.name) == (NS, GEN_MAIN)
    assert gen.owner is obj
    assert gen.labels == {LABEL_CREATED_BY: "volsync"}
    assert p.status == {"rsync": {"sshKeys": GEN_DEST}}  # nothing starts before the keys exist
    assert p.requeue_after == 1


def test_generated_keys_are_split_into_src_and_dest_secrets() -> None:
    main = secret(GEN_MAIN, keys=MAIN_KEYS)
    p = plan(view(rs(ssh_keys=None), T0, secrets={GEN_MAIN: main}))
    assert of_type(p.before, GenerateKeys) == []
    by_name = {s["metadata"]["name"]: s for s in ensured(p, SECRETS)}
    assert set(by_name) == {GEN_SRC, GEN_DEST}
    assert by_name[GEN_SRC]["data"] == {k: main["data"][k] for k in ("source", "source.pub", "destination.pub")}
    assert by_name[GEN_DEST]["data"] == {k: main["data"][k] for k in ("destination", "destination.pub", "source.pub")}
    for s in by_name.values():
        assert s["type"] == "Opaque"
        assert owned_by_rs(s)
        assert LABEL_CLEANUP not in s["metadata"]["labels"]
    assert p.status is not None and p.status["rsync"] == {"sshKeys": GEN_DEST}
    assert "lastSyncStartTime" not in p.status


def test_generated_keys_in_place_start_and_publish_the_dest_secret() -> None:
    secrets = {
        GEN_MAIN: secret(GEN_MAIN, keys=MAIN_KEYS),
        GEN_SRC: secret(GEN_SRC, keys=SOURCE_KEYS),
        GEN_DEST: secret(GEN_DEST),
    }
    started = plan(view(rs(ssh_keys=None), T0, secrets=secrets))
    assert ensured(started, SECRETS) == []
    assert started.status is not None
    assert started.status["rsync"] == {"sshKeys": GEN_DEST}
    assert started.status["lastSyncStartTime"] == ts(T0)
    pushing = plan(view(rs(ssh_keys=None, status=STARTED), at(1), secrets=secrets))
    assert [s.secret for s in starts(pushing)] == [GEN_SRC]


def test_supplied_keys_publish_no_ssh_keys_status() -> None:
    p = plan(view(rs(), T0))
    assert p.status is not None and "rsync" not in p.status


# ------------------------------------------------------------------------------------ names


LONG = "a" * 57 + "xyz"  # 60 characters


def test_names_of_a_60_character_source_stay_within_63() -> None:
    assert len(LONG) == 60
    names = [source.pit_name(LONG), *key_secret_names("source", LONG)]
    for n in names:
        assert len(n) <= 63
        assert n.startswith("volsync-")
        assert n[-1].isalnum()
    assert len(set(names)) == len(names)
    other = "a" * 57 + "xyw"
    assert source.pit_name(other) != source.pit_name(LONG)
    assert source.pit_name(LONG) == source.pit_name(LONG)  # stable
    assert source.pit_name("app") == "volsync-app-src"  # short names are untouched


def test_a_60_character_source_creates_short_objects() -> None:
    keys = plan(view(rs(LONG, ssh_keys=None), at(1), secrets={}))
    [gen] = of_type(keys.before, GenerateKeys)
    assert len(gen.name) <= 63
    assert keys.status is not None and len(keys.status["rsync"]["sshKeys"]) <= 63
    p = plan(view(rs(LONG, copy_method="Snapshot", status=STARTED), at(1)))
    [vs] = ensured(p, VOLUME_SNAPSHOTS)
    assert vs["metadata"]["name"] == source.pit_name(LONG)
    assert len(vs["metadata"]["name"]) <= 63


# ------------------------------------------------------------------------------------ a full run


def test_a_snapshot_iteration_from_creation_to_idle() -> None:
    """Chain the plans, applying each status patch as the agent would."""
    obj = rs(copy_method="Snapshot", schedule="*/10 * * * *")
    owner = rs()
    labels = {LABEL_CLEANUP: RS_UID}

    p = plan(view(obj, at(1)))  # initial sync
    obj = with_status(obj, p.status)
    assert obj["status"]["lastSyncStartTime"] == ts(at(1))

    p = plan(view(obj, at(2)))  # take the snapshot
    assert ensured(p, VOLUME_SNAPSHOTS)
    obj = with_status(obj, p.status)

    vs = snapshot(PIT, labels=labels, owner=owner)
    p = plan(view(obj, at(3), pit_snapshot=vs))  # restore it
    assert ensured(p, PVCS)

    restored = pvc(PIT, labels=labels, owner=owner)
    p = plan(view(obj, at(4), pit_snapshot=vs, pit_pvc=restored))  # push it
    [start] = starts(p)
    assert start.pvc == PIT and start.iteration == obj["status"]["iteration"]["id"] == f"1-{RS_UID[:8]}"
    obj = with_status(obj, p.status)

    t = TransferView(start.iteration, running=False, succeeded=True, logs="Rsync completed in 3s")
    leftovers = ((VOLUME_SNAPSHOTS, vs), (PVCS, restored))
    p = plan(view(obj, at(64), pit_snapshot=vs, pit_pvc=restored, transfer=t, leftovers=leftovers))
    obj = with_status(obj, p.status)
    st = obj["status"]
    assert "lastSyncStartTime" not in st
    assert st["lastSyncTime"] == ts(at(64))
    assert st["lastSyncDuration"] == "1m3s"
    assert st["nextSyncTime"] == ts(at(minutes=10))
    assert len(of_type(p.after, Delete)) == 2

    p = plan(view(obj, at(65), transfer=t))  # cleaned up: idle until 10:10
    obj = with_status(obj, p.status)
    assert condition(obj["status"])["reason"] == "WaitingForSchedule"
    assert p.after == [ForgetTransfer(KEY)]
    assert p.requeue_after == 10 * 60 - 65

    p = plan(view(obj, at(minutes=10)))
    assert p.status is not None and p.status["lastSyncStartTime"] == ts(at(minutes=10))


def test_ensure_actions_never_overwrite() -> None:
    """Ensure is create-if-absent: a plan for an existing PiT PVC issues no Ensure for it."""
    p = plan(view(rs(copy_method="Clone", status=STARTED), at(2), pit_pvc=pvc(PIT)))
    assert [a for a in p.before if isinstance(a, Ensure)] == []
