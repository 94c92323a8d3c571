"""The times the agent writes, as real kubectl prints them (issue 7, item 6, agent side).

`Last Sync Duration` is the iteration's real duration (microseconds from its start to its end, not
two one-second timestamps apart), and a paused source shows no `nextSyncTime` in the past. The
controller runs in-process with an injected clock (conftest), the movers are real.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from support.harness import T0, Harness, setup_pair

from agent.kinds import REPLICATION_SOURCES

pytestmark = pytest.mark.timeout(180)


def kubectl_row(h: Harness, kind: str, ns: str, name: str) -> dict[str, str]:
    out = h.server.kubectl("get", kind, name, "-n", ns, context="cluster1").stdout
    assert "<invalid>" not in out, out
    header, row = (re.split(r"\s{2,}", line.strip()) for line in out.splitlines())
    return dict(zip(header, row, strict=False))


def test_duration_is_real_and_paused_source_has_no_past_next_sync(harness: Harness) -> None:
    h = harness
    start = T0 + timedelta(milliseconds=600)  # not on a second boundary
    h.clock.set(start)
    setup_pair(h, {"schedule": "*/3 * * * *"})
    h.until(lambda: h.status("rs", h.src, "rs").get("lastSyncStartTime"), "initial sync started")
    h.clock.advance(1.25)  # the transfer takes 1.25 s of the agent's clock
    h.until(lambda: h.status("rs", h.src, "rs").get("lastSyncTime"), "initial sync done")
    st = h.status("rs", h.src, "rs")
    assert st["lastSyncDuration"] == "1.25s"  # one-second timestamps made it 1.85s
    assert st["iteration"]["startTime"] == "2026-01-01T00:00:30.600000Z"
    row = kubectl_row(h, "replicationsource", h.src, "rs")
    assert (row["LAST SYNC"], row["DURATION"], row["NEXT SYNC"]) == (
        "2026-01-01T00:00:31Z", "1.25s", "2026-01-01T00:03:00Z")

    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"paused": True}}, h.src)
    h.fresh_cache("rs", h.src, "rs")
    h.clock.set(T0 + timedelta(minutes=10))  # well past the slot that was due
    h.controller.queue.add(("source", h.src, "rs"))
    h.drain()
    st = h.status("rs", h.src, "rs")
    assert "nextSyncTime" not in st, st.get("nextSyncTime")
    assert st["conditions"][0]["message"] == "Synchronization paused"
    row = kubectl_row(h, "replicationsource", h.src, "rs")
    assert row.get("NEXT SYNC", "<none>") == "<none>", row
