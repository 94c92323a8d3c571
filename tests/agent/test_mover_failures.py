"""A mover Job that fails is reported and retried (VolSync's reading of a mover Job).

The source's key Secret pins a host key the destination does not have: every attempt of the source
mover fails at once, the Job's Pods fail up to its `backoffLimit`, and the agent then reports the
attempt (`latestMoverStatus.result: Failed` with the failed Pod's whole log tail, a `TransferFailed`
Warning Event naming the exit code), keeps the iteration going (`Synchronizing` stays in progress,
no `lastSyncTime`), deletes the failed Job and, after its backoff, starts a new one. Once the key is
right, that retry completes the iteration.
"""

from __future__ import annotations

import base64

import pytest
from support.harness import Harness, setup_pair

from agent.jobs import mover_name
from agent.kinds import REPLICATION_SOURCES
from kube.rest import EVENTS, JOBS, SECRETS
from movers import keys

pytestmark = pytest.mark.timeout(240)


def test_a_failed_mover_job_is_reported_then_retried_until_it_succeeds(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"manual": "one"}, paused=True)
    secret_name = h.status("rd", h.dst, "rd")["rsync"]["sshKeys"]
    good = (h.kube.get(SECRETS, secret_name, h.src) or {})["data"]["destination.pub"]
    stranger = base64.b64encode(keys.generate().destination_pub).decode()
    h.kube.patch(SECRETS, secret_name, {"data": {"destination.pub": stranger}}, h.src)
    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"paused": False}}, h.src)

    failed = h.until(lambda: (lambda m: m if m.get("result") == "Failed" else None)(
        h.status("rs", h.src, "rs").get("latestMoverStatus") or {}), "the failed attempt reported", timeout=120)
    assert "Host key verification failed" in failed["logs"], failed
    st = h.status("rs", h.src, "rs")
    assert st.get("lastSyncTime") is None and st.get("lastSyncStartTime")
    assert st["conditions"][0]["reason"] == "SyncInProgress"
    events = [e for e in h.kube.list(EVENTS, h.src)[0] if e.get("reason") == "TransferFailed"]
    assert events and events[0]["type"] == "Warning" and "failed (exit" in events[0]["message"], events
    job = mover_name("source", "rs")
    h.until(lambda: h.kube.get(JOBS, job, h.src) is None, "the failed Job deleted")

    h.kube.patch(SECRETS, secret_name, {"data": {"destination.pub": good}}, h.src)
    h.clock.advance(600)  # past the retry backoff
    h.controller.queue.add(("source", h.src, "rs"))
    h.until(lambda: h.status("rs", h.src, "rs").get("lastManualSync") == "one", "the retry succeeding",
            timeout=120)
    assert h.status("rs", h.src, "rs")["latestMoverStatus"]["result"] == "Successful"
