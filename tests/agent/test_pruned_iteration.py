"""On a cluster serving CRDs without `status.iteration` (VolSync's own), the loss is not silent (issue 7, item 5).

The CRDs are replaced, at run time, by copies of `manifests/crds/` with the `status.iteration`
property removed, so the API server's structural pruning drops the field from every status patch,
as it does on a cluster where VolSync's CRDs were installed first. The agent must say so (one
WARNING line and one Warning Event per object, naming the consequence and the fix) and still sync,
publishing an image per iteration (an iteration never starts in the second the previous one ended in,
so the one-second fallback identities stay distinct).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.harness import Harness, setup_pair

from agent import iterations
from agent.iterations import REASON_ITERATION_PRUNED
from agent.kinds import REPLICATION_SOURCES
from kube.rest import EVENTS

pytestmark = pytest.mark.timeout(180)
CRDS = Path(__file__).resolve().parents[2] / "manifests" / "crds"
Obj = dict[str, Any]


def without_iteration(plural: str) -> Obj:
    """Our CRD for `plural`, with `status.iteration` removed from every version's schema."""
    crd: Obj = yaml.safe_load((CRDS / f"volsync.backube_{plural}.yaml").read_text())
    for version in crd["spec"]["versions"]:
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["properties"].pop("iteration", None) is not None
    return crd


def install_without_iteration(h: Harness) -> None:
    """Serve the CRDs without `status.iteration` (the cluster is shared: ours come back at the end)."""
    def restore() -> None:
        for plural in ("replicationsources", "replicationdestinations"):
            h.server.kubectl("apply", "-f", str(CRDS / f"volsync.backube_{plural}.yaml"), context="cluster1")

    h.cleanups.append(restore)
    for plural in ("replicationsources", "replicationdestinations"):
        h.server.kubectl("apply", "-f", "-", context="cluster1", input=yaml.safe_dump(without_iteration(plural)))
        served = json.loads(h.server.kubectl("get", "crd", f"{plural}.volsync.backube", "-o", "json",
                                             context="cluster1").stdout)
        status = served["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert "iteration" not in status["properties"]


def pruned_events(h: Harness, ns: str) -> list[Obj]:
    return [e for e in h.kube.list(EVENTS, ns)[0] if e.get("reason") == REASON_ITERATION_PRUNED]


def test_a_pruned_iteration_field_is_a_warning_and_the_sync_still_completes(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.WARNING, logger="volsync.iterations")
    install_without_iteration(h)
    setup_pair(h, {"manual": "one"})
    h.until(lambda: h.status("rs", h.src, "rs").get("lastManualSync") == "one", "first sync on the source")
    first = h.until(lambda: h.status("rd", h.dst, "rd").get("latestImage"), "first image on the destination")
    assert "iteration" not in h.status("rs", h.src, "rs")  # pruned: the condition under test holds
    # A second sync. Without status.iteration the destination held its next start back to a second
    # after the first image's (the agent's clock stands still here, so move it on): that iteration
    # used to reopen in the same second, share the first one's identity and never publish again.
    # The sync completes and publishes, and the warning is not repeated.
    h.clock.advance(2)
    h.kube.patch(REPLICATION_SOURCES, "rs", {"spec": {"trigger": {"manual": "two"}}}, h.src)
    h.until(lambda: h.status("rs", h.src, "rs").get("lastManualSync") == "two", "second sync on the source")
    h.until(lambda: h.status("rd", h.dst, "rd").get("latestImage") not in (None, first), "second image published")
    for ns, kind in ((h.src, "ReplicationSource"), (h.dst, "ReplicationDestination")):
        events = pruned_events(h, ns)
        assert len(events) == 1 and events[0]["type"] == "Warning", events
        assert events[0]["count"] == 1 and events[0]["involvedObject"]["kind"] == kind
        assert "within one second" in events[0]["message"] and "manifests/crds/" in events[0]["message"]
        lines = [r.getMessage() for r in caplog.records
                 if r.levelno == logging.WARNING and r.getMessage().startswith(f"{kind} {ns}/")]
        assert len(lines) == 1 and "status.iteration was pruned" in lines[0], lines


def test_our_crds_bring_no_warning(harness: Harness) -> None:
    h = harness
    setup_pair(h, {"manual": "one"})
    h.until(lambda: h.status("rs", h.src, "rs").get("lastManualSync") == "one", "first sync on the source")
    assert h.status("rs", h.src, "rs")["iteration"]["completed"] == 1
    assert pruned_events(h, h.src) == [] and pruned_events(h, h.dst) == []


def _rs(status: Obj) -> Obj:
    return {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
            "metadata": {"name": "rs", "namespace": "src", "uid": "0123456789",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"sourcePVC": "data", "rsync": {"address": "a", "copyMethod": "Snapshot"}}, "status": status}


def test_without_the_record_a_start_waits_for_the_next_second() -> None:
    now = datetime(2026, 1, 1, 0, 1, 0, 250000, tzinfo=UTC)
    pruned = iterations.Context.of(_rs({"lastSyncTime": "2026-01-01T00:01:00Z"}), now, "source")
    plan = iterations.idle(pruned, ())
    assert plan is not None and plan.requeue_after == pytest.approx(0.75)
    assert plan.status is not None and "lastSyncStartTime" not in plan.status  # nothing started
    later = iterations.Context.of(_rs({"lastSyncTime": "2026-01-01T00:00:59Z"}), now, "source")
    assert iterations.idle(later, ()) is None  # a later second: starts now
    recorded = {"lastSyncTime": "2026-01-01T00:01:00Z", "iteration": {"number": 3, "id": "3-01234567"}}
    assert iterations.idle(iterations.Context.of(_rs(recorded), now, "source"), ()) is None  # unique ids: no hold


def test_pruned_iteration_is_told_only_when_the_patch_set_it() -> None:
    started = {"iteration": {"number": 1, "id": "1-01234567"}}
    assert iterations.pruned_iteration(started, _rs({})) is not None
    assert iterations.pruned_iteration(started, _rs({"iteration": started["iteration"]})) is None
    assert iterations.pruned_iteration({"conditions": []}, _rs({})) is None
