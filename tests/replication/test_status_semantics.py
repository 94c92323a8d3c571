"""Status semantics shared by both kinds: the Synchronizing condition, completion, idle waiting.

kube/objects.py `set_condition` follows metav1.Condition: `lastTransitionTime` moves only when
`status` changes. agent/iterations.py builds every status patch from it (VolSync §1.5, §4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from support.replication_objects import RS_UID, T0, at, condition, rd, rs, ts, with_status

from agent import iterations
from agent.iterations import Context, complete, condition_status, error_plan, idle, start
from agent.plans import Observe
from api.volsync import (
    CONDITION_SYNCHRONIZING,
    REASON_CLEANING_UP,
    REASON_ERROR,
    REASON_SYNC_IN_PROGRESS,
    REASON_WAITING_FOR_MANUAL,
    REASON_WAITING_FOR_SCHEDULE,
)
from kube import objects
from kube.objects import set_condition
from kube.rest import PVCS

Obj = dict[str, Any]
OLD = "2026-03-01T00:00:00Z"
NOW = "2026-03-02T10:00:00Z"


def cond(status: str, reason: str = "R", when: str | None = OLD, type_: str = "Synchronizing") -> Obj:
    c = {"type": type_, "status": status, "reason": reason, "message": reason}
    if when is not None:
        c["lastTransitionTime"] = when
    return c


# ------------------------------------------------------------------------------------ set_condition


def test_set_condition_adds_a_new_type_with_now() -> None:
    out = set_condition([], cond("True", when=None), NOW)
    assert out == [{**cond("True", when=None), "lastTransitionTime": NOW}]


def test_same_status_keeps_the_transition_time_but_takes_reason_and_message() -> None:
    out = set_condition([cond("False", "WaitingForSchedule")], cond("False", "Error", when=None), NOW)
    assert out == [
        {"type": "Synchronizing", "status": "False", "reason": "Error", "message": "Error", "lastTransitionTime": OLD}
    ]


def test_changed_status_moves_the_transition_time() -> None:
    out = set_condition([cond("False", "CleaningUp")], cond("True", "SyncInProgress", when=None), NOW)
    assert out[0]["lastTransitionTime"] == NOW
    assert out[0]["status"] == "True"


def test_same_status_without_a_previous_time_gets_now() -> None:
    out = set_condition([cond("False", when=None)], cond("False", when=None), NOW)
    assert out[0]["lastTransitionTime"] == NOW


def test_set_condition_keeps_other_types_and_does_not_mutate_its_input() -> None:
    other = cond("True", "Fine", type_="Other")
    before = [other, cond("False")]
    snapshot = [dict(c) for c in before]
    out = set_condition(before, cond("True", when=None), NOW)
    assert before == snapshot
    assert [c["type"] for c in out] == ["Other", "Synchronizing"]
    assert out[0] == other and out[0] is not other
    assert len([c for c in out if c["type"] == "Synchronizing"]) == 1


def test_set_condition_accepts_none_and_tuples() -> None:
    assert set_condition(None, cond("True", when=None), NOW)[0]["lastTransitionTime"] == NOW
    assert set_condition((cond("True"),), cond("True", when=None), NOW)[0]["lastTransitionTime"] == OLD


# ------------------------------------------------------------------------------------ through the plans


def ctx_of(obj: Obj, now: datetime = T0, role: str = "source") -> Context:
    return Context.of(obj, now, role)


@pytest.mark.parametrize(
    ("reason", "status", "message"),
    [
        (REASON_SYNC_IN_PROGRESS, "True", "Synchronization in-progress"),
        (REASON_CLEANING_UP, "False", "Cleaning up"),
        (REASON_WAITING_FOR_SCHEDULE, "False", "Waiting for next scheduled synchronization"),
        (REASON_WAITING_FOR_MANUAL, "False", "Waiting for manual trigger"),
        (REASON_ERROR, "False", "Error"),
    ],
)
def test_condition_status_values(reason: str, status: str, message: str) -> None:
    c = condition(condition_status(ctx_of(rs()), reason))
    assert (c["type"], c["status"], c["reason"], c["message"]) == (CONDITION_SYNCHRONIZING, status, reason, message)
    assert c["lastTransitionTime"] == ts(T0)


def test_condition_status_message_override() -> None:
    assert condition(condition_status(ctx_of(rs()), REASON_ERROR, "boom"))["message"] == "boom"


def test_waiting_after_an_error_keeps_the_transition_time() -> None:
    """Error -> WaitingForSchedule are both status False: lastTransitionTime stays."""
    obj = rs(schedule="@hourly")
    errored = with_status(obj, error_plan(ctx_of(obj, at(1)), "boom").status)
    assert condition(errored["status"])["lastTransitionTime"] == ts(at(1))
    errored["status"]["lastSyncTime"] = ts(at(2))
    waiting = idle(ctx_of(errored, at(minutes=5)), ())
    assert waiting is not None
    c = condition(waiting.status)
    assert c["reason"] == REASON_WAITING_FOR_SCHEDULE
    assert c["lastTransitionTime"] == ts(at(1))


def test_start_after_waiting_moves_the_transition_time() -> None:
    obj = with_status(rs(), {"conditions": [cond("False", REASON_WAITING_FOR_MANUAL)]})
    c = condition(start(ctx_of(obj, at(30))).status)
    assert c["status"] == "True"
    assert c["lastTransitionTime"] == ts(at(30))


def test_in_progress_passes_keep_the_transition_time() -> None:
    obj = with_status(rs(), start(ctx_of(rs(), at(1))).status)
    again = condition_status(ctx_of(obj, at(100)), REASON_SYNC_IN_PROGRESS, "waiting for something")
    assert condition(again)["lastTransitionTime"] == ts(at(1))


def test_completion_moves_the_transition_time() -> None:
    obj = with_status(rs(), start(ctx_of(rs(), at(1))).status)
    status, _ = complete(ctx_of(obj, at(61)), {}, "")
    assert condition(status)["reason"] == REASON_CLEANING_UP
    assert condition(status)["lastTransitionTime"] == ts(at(61))


def test_a_whole_iteration_leaves_one_condition() -> None:
    obj = rs(schedule="@hourly")
    obj = with_status(obj, start(ctx_of(obj, at(1))).status)
    obj = with_status(obj, complete(ctx_of(obj, at(5)), {}, "")[0])
    waiting = idle(ctx_of(obj, at(6)), ())
    assert waiting is not None
    obj = with_status(obj, waiting.status)
    assert len(obj["status"]["conditions"]) == 1
    assert obj["status"]["conditions"][0]["reason"] == REASON_WAITING_FOR_SCHEDULE


# ------------------------------------------------------------------------------------ complete()


def test_complete_status_fields() -> None:
    obj = rs(schedule="*/5 * * * *", status={"lastSyncStartTime": ts(T0), "lastSyncTime": ts(at(-300))})
    status, [observed] = complete(ctx_of(obj, at(3725)), {"extra": 1}, "x" * 1000 + "y" * 1000)
    assert status["lastSyncTime"] == ts(at(3725))
    assert status["lastSyncDuration"] == "1h2m5s"
    assert status["lastSyncStartTime"] is None
    assert status["nextSyncTime"] == ts(at(minutes=65))
    assert status["latestMoverStatus"] == {"result": "Successful", "logs": "x" * 24 + "y" * 1000}  # the tail
    assert status["extra"] == 1
    # Last success 09:55 -> due 10:00 -> deadline 10:05; completing at 11:02:05 is late.
    assert observed == Observe(duration=3725.0, missed=True, succeeded=True, iteration=ts(T0))


def test_complete_without_a_start_time_has_zero_duration() -> None:
    status, [observed] = complete(ctx_of(rs(), at(10)), {}, "")
    assert status["lastSyncDuration"] == "0s"
    assert observed.duration == 0.0


def test_complete_never_counts_a_first_sync_as_missed() -> None:
    obj = rs(schedule="* * * * *", status={"lastSyncStartTime": ts(T0)})
    [observed] = complete(ctx_of(obj, at(hours=3)), {}, "")[1]
    assert isinstance(observed, Observe) and observed.missed is False


def test_complete_extra_overrides() -> None:
    status, _ = complete(
        ctx_of(rd(status={"lastSyncStartTime": ts(T0)}), at(1), "destination"),
        {"latestImage": {"kind": "PersistentVolumeClaim", "name": "x", "apiGroup": ""}},
        "",
    )
    assert status["latestImage"]["name"] == "x"


# ------------------------------------------------------------------------------------ idle()


def test_idle_paused_always_trigger_reports_paused_without_requeue() -> None:
    p = idle(ctx_of(rs(paused=True), at(1)), ())
    assert p is not None
    assert condition(p.status)["message"] == "Synchronization paused"
    assert p.status is not None and p.status["nextSyncTime"] is None
    assert p.requeue_after is None


def test_idle_paused_schedule_drops_next_sync_time_and_timer() -> None:
    """Paused: no nextSyncTime (it would slip into the past while nothing runs), no timer."""
    p = idle(ctx_of(rs(paused=True, schedule="@hourly", status={"lastSyncTime": ts(T0),
                                                                 "nextSyncTime": ts(at(hours=1))}), at(hours=3)), ())
    assert p is not None and p.status is not None
    assert "nextSyncTime" in p.status and p.status["nextSyncTime"] is None  # removed by the merge patch
    assert condition(p.status)["reason"] == REASON_WAITING_FOR_SCHEDULE
    assert p.requeue_after is None


def test_idle_returns_none_when_an_iteration_should_start() -> None:
    assert idle(ctx_of(rs(), at(1)), ()) is None


def test_idle_uses_creation_time_for_opt_out() -> None:
    obj = rs(schedule="@daily", annotations={"volsync-addon.io/skip-initial-sync": "true"}, created=at(hours=1))
    p = idle(ctx_of(obj, at(hours=2)), ())
    assert p is not None and p.status is not None
    assert p.status["nextSyncTime"] == "2026-03-03T00:00:00Z"
    assert p.requeue_after == (datetime.fromisoformat("2026-03-03T00:00:00+00:00") - at(hours=2)).total_seconds()


# ------------------------------------------------------------------------------------ Context


def test_context_identity() -> None:
    c = ctx_of(rs("web", namespace="shop", status={"lastSyncStartTime": ts(T0)}), at(1))
    assert (c.name, c.namespace, c.uid, c.key) == ("web", "shop", RS_UID, "source/shop/web")
    assert c.iteration == ts(T0)
    assert ctx_of(rd("db"), at(1), "destination").key == "destination/apps/db"
    assert ctx_of(rs(), at(1)).iteration is None


def test_owned_skeleton() -> None:
    c = ctx_of(rs())
    plain = c.owned(PVCS, "p")
    assert plain["apiVersion"] == "v1" and plain["kind"] == "PersistentVolumeClaim"
    assert plain["metadata"]["labels"] == {"app.kubernetes.io/created-by": "volsync"}
    assert plain["metadata"]["ownerReferences"] == [objects.owner_ref(rs())]
    temp = c.owned(PVCS, "t", cleanup=True, extra={"spec": {"x": 1}})
    assert temp["metadata"]["labels"]["volsync.backube/cleanup"] == RS_UID
    assert temp["spec"] == {"x": 1}


def test_transfer_retry_max_is_five_minutes() -> None:
    assert iterations.TRANSFER_RETRY_MAX == 300.0
