"""Schedules and `paused`, with the real controller, real movers and an injected clock (conftest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.harness import T0, Harness, setup_pair

from agent.kinds import REPLICATION_SOURCES
from kube.clock import parse_rfc3339

pytestmark = pytest.mark.timeout(180)


def test_schedule_slots_and_next_sync_time(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"schedule": "*/3 * * * *"})
    # VolSync's behaviour: the first sync runs at creation, whatever the schedule.
    first = h.until(lambda: h.status("rs", h.src, "rs").get("lastSyncTime"), "initial sync")
    assert parse_rfc3339(first) == T0
    st = h.status("rs", h.src, "rs")
    assert st["nextSyncTime"] == "2026-01-01T00:03:00Z"
    assert st["conditions"][0]["reason"] in ("CleaningUp", "WaitingForSchedule")
    h.until(lambda: h.status("rs", h.src, "rs")["conditions"][0]["reason"] == "WaitingForSchedule", "idle")

    # One second before the slot: a reconcile starts nothing.
    h.clock.set(datetime(2026, 1, 1, 0, 2, 59, tzinfo=UTC))
    h.controller.queue.add(("source", h.src, "rs"))
    h.drain()
    assert h.status("rs", h.src, "rs").get("lastSyncStartTime") is None
    assert h.status("rs", h.src, "rs")["lastSyncTime"] == first

    # At the slot the requeue fires by itself (no event needed) and the sync runs.
    h.clock.set(datetime(2026, 1, 1, 0, 3, 0, tzinfo=UTC))
    second = h.until(lambda: (lambda t: t if t != first else None)(h.status("rs", h.src, "rs").get("lastSyncTime")),
                     "sync at the slot")
    assert second == "2026-01-01T00:03:00Z"
    assert h.status("rs", h.src, "rs")["nextSyncTime"] == "2026-01-01T00:06:00Z"

    # A long outage: slots are skipped, not queued; the next one is computed from the completion.
    h.clock.set(datetime(2026, 1, 1, 0, 13, 30, tzinfo=UTC))
    third = h.until(lambda: (lambda t: t if t != second else None)(h.status("rs", h.src, "rs").get("lastSyncTime")),
                    "catch-up sync")
    assert third == "2026-01-01T00:13:30Z"
    assert h.status("rs", h.src, "rs")["nextSyncTime"] == "2026-01-01T00:15:00Z"
    missed = h.controller.metrics.missed.labels("rs", h.src, "source", "rsync")._value.get()
    assert missed == 1  # the run due at 00:06 completed after 00:09


def test_paused_source_does_not_sync_until_resumed(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"manual": "one"}, paused=True)
    key = ("source", h.src, "rs")
    for _ in range(3):
        h.clock.advance(600)
        h.controller.queue.add(key)
        h.drain()
        st = h.status("rs", h.src, "rs")
        assert st.get("lastSyncTime") is None and st.get("lastSyncStartTime") is None
        assert h.transfer() is None
    assert st["conditions"][0]["message"] == "Synchronization paused"

    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"paused": False}}, h.src)
    h.fresh_cache("rs", h.src, "rs")
    done = h.until(lambda: h.status("rs", h.src, "rs").get("lastManualSync") == "one", "sync after resume")
    assert done

    # Pausing again stops a later iteration before any data moves.
    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"paused": True, "trigger": {"manual": "two"}}}, h.src)
    h.fresh_cache("rs", h.src, "rs")
    h.clock.advance(60)
    h.controller.queue.add(key)
    h.drain()
    assert h.status("rs", h.src, "rs").get("lastManualSync") == "one"
    assert h.transfer() is None


def test_schedule_without_initial_sync_waits_for_the_first_slot(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"schedule": "0 * * * *"})
    h.until(lambda: h.status("rs", h.src, "rs").get("lastSyncTime"), "initial sync")
    # The opt-out is an annotation: a new RS carrying it waits for its first slot.
    rsync = (h.kube.get(REPLICATION_SOURCES, "rs", h.src) or {})["spec"]["rsync"]
    h.kube.create(REPLICATION_SOURCES, {
        "metadata": {"name": "rs2", "namespace": h.src, "annotations": {"volsync-addon.io/skip-initial-sync": "true"}},
        "spec": {"sourcePVC": "data", "trigger": {"schedule": "0 * * * *"}, "rsync": rsync}})
    h.fresh_cache("rs", h.src, "rs2")
    h.controller.queue.add(("source", h.src, "rs2"))
    h.drain()
    st = h.status("rs", h.src, "rs2")
    assert st.get("lastSyncStartTime") is None and st.get("lastSyncTime") is None
    assert st["conditions"][0]["reason"] == "WaitingForSchedule"
    slot = parse_rfc3339(st["nextSyncTime"])
    assert slot is not None and slot > h.clock.now() - timedelta(hours=1)
