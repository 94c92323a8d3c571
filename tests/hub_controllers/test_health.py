"""The MCA's conditions and the feature label (pure): OCM's types, reasons and timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub import health
from hub.deployers import DeployState
from hub.rpo import State

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
APPLIED = DeployState(True, True, "ready")


def lease(age: float) -> dict[str, Any]:
    renewed = NOW - timedelta(seconds=age)
    return {"spec": {"renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "holderIdentity": "a"}}


def assess(deploy: DeployState | None = APPLIED, lease_: dict[str, Any] | None = None, cluster: Any = None,
           states: list[State] | None = None, mca: dict[str, Any] | None = None, **kw: Any) -> health.Health:
    return health.assess(mca or {}, deploy, lease_, cluster, states or [], NOW, **kw)


def conds(h: health.Health) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in h.status["conditions"]}


def test_applied_and_fresh_lease_is_available() -> None:
    h = assess(lease_=lease(10))
    assert conds(h) == {
        "RegistrationApplied": ("True", "NilRegistration"),
        "ManifestApplied": ("True", "AddonManifestApplied"),
        "Available": ("True", "ProbeAvailable"),
        "Degraded": ("False", "ReplicationsHealthy"),
        "Progressing": ("False", "Completed"),
    }
    assert h.label == "available"
    assert h.recheck_after == pytest.approx(290)
    assert all(c["lastTransitionTime"] == "2026-01-01T12:00:00Z" and isinstance(c["message"], str)
               for c in h.status["conditions"])
    assert h.status["supportedConfigs"] == [{"group": "addon.open-cluster-management.io",
                                             "resource": "addondeploymentconfigs"}]


def test_stale_lease_is_unavailable() -> None:
    h = assess(lease_=lease(301))
    assert conds(h)["Available"] == ("False", "ManagedClusterAddOnLeaseUpdateStopped")
    assert h.label == "unhealthy" and h.recheck_after is None
    assert conds(assess(lease_=lease(300)))["Available"][0] == "False"  # "within" the period: strictly less
    assert conds(assess(lease_=lease(299.5)))["Available"][0] == "True"
    assert conds(assess(lease_=lease(20), stale_seconds=10))["Available"][0] == "False"


def test_no_lease_is_unknown() -> None:
    h = assess(lease_=None)
    assert conds(h)["Available"] == ("Unknown", "ManagedClusterAddOnLeaseNotFound")
    assert h.label == "unreachable"
    assert conds(assess(lease_={"spec": {"holderIdentity": "a"}}))["Available"][0] == "Unknown"


def test_cluster_unknown_is_copied_over() -> None:
    unknown = {"type": "ManagedClusterConditionAvailable", "status": "Unknown",
               "reason": "ManagedClusterLeaseUpdateStopped",
               "message": "Registration agent stopped updating its lease."}
    h = assess(lease_=lease(1), cluster=unknown)
    available = next(c for c in h.status["conditions"] if c["type"] == "Available")
    assert (available["status"], available["reason"], available["message"]) == (
        "Unknown", "ManagedClusterLeaseUpdateStopped", "Registration agent stopped updating its lease.")
    assert h.label == "unreachable"
    # a cluster that is False (API server unhealthy) is not propagated
    unhealthy = unknown | {"status": "False", "reason": "ManagedClusterKubeAPIServerUnavailable"}
    assert conds(assess(lease_=lease(1), cluster=unhealthy))["Available"] == (
        "True", "ProbeAvailable")


@pytest.mark.parametrize(("states", "expected"), [
    ([], ("False", "ReplicationsHealthy")),
    (["ok", "never"], ("False", "ReplicationsHealthy")),
    (["ok", "late"], ("True", "ReplicationsLate")),
    (["late", "error", "ok"], ("True", "ReplicationsFailing")),
])
def test_degraded(states: list[State], expected: tuple[str, str]) -> None:
    assert conds(assess(states=states))["Degraded"] == expected


def test_manifest_applied_states() -> None:
    failed = assess(DeployState(False, None, "CRD is invalid"))
    assert conds(failed)["ManifestApplied"] == ("False", "AddonManifestAppliedFailed")
    assert conds(failed)["Progressing"] == ("True", "Progressing")
    error = assess(None, apply_error="403 Forbidden")
    assert conds(error)["ManifestApplied"] == ("False", "ManifestWorkApplyFailed")
    assert next(c for c in error.status["conditions"] if c["type"] == "ManifestApplied")["message"] == "403 Forbidden"
    # the Deployment not ready yet: applied, still progressing
    rolling = assess(DeployState(True, False, "0/1 replicas ready"))
    assert conds(rolling)["ManifestApplied"] == ("True", "AddonManifestApplied")
    assert conds(rolling)["Progressing"] == ("True", "Progressing")
    assert conds(assess(DeployState(True, None)))["Progressing"] == ("False", "Completed")


def test_unknown_drops_a_stale_false_and_keeps_a_true() -> None:
    was_false = assess(DeployState(False, None, "x"))
    assert "ManifestApplied" not in conds(assess(DeployState(None, None), mca={"status": was_false.status}))
    was_true = assess(APPLIED)
    again = assess(DeployState(None, None), mca={"status": was_true.status})
    assert conds(again)["ManifestApplied"] == ("True", "AddonManifestApplied")
    assert conds(assess(DeployState(None, None)))["Progressing"] == ("True", "Progressing")
    assert "ManifestApplied" not in conds(assess(DeployState(None, None)))


def test_transition_time_moves_only_with_the_status() -> None:
    earlier = [{"type": "Available", "status": "True", "reason": "ProbeAvailable", "message": "m",
                "lastTransitionTime": "2025-12-31T00:00:00Z"},
               {"type": "Degraded", "status": "True", "reason": "ReplicationsLate", "message": "m",
                "lastTransitionTime": "2025-12-31T00:00:00Z"},
               {"type": "Configured", "status": "True", "reason": "ConfigurationsConfigured", "message": "kept",
                "lastTransitionTime": "2025-12-30T00:00:00Z"}]
    h = assess(lease_=lease(5), mca={"status": {"conditions": earlier}})
    times = {c["type"]: c["lastTransitionTime"] for c in h.status["conditions"]}
    assert times["Available"] == "2025-12-31T00:00:00Z"  # still True
    assert times["Degraded"] == "2026-01-01T12:00:00Z"  # True -> False
    assert times["Configured"] == "2025-12-30T00:00:00Z"  # someone else's condition is left alone
    # the same inputs give the same status: nothing to write the second time
    assert assess(lease_=lease(5), mca={"status": h.status}).status == h.status


def available(h: health.Health) -> tuple[str, str, str]:
    cond = next(c for c in h.status["conditions"] if c["type"] == "Available")
    return cond["status"], cond["reason"], cond["message"]


@pytest.mark.parametrize(("deploy", "apply_error", "expected"), [
    (None, None, ("Unknown", "WorkNotApplied", "waiting for the work agent")),
    (None, "failed to deploy the agent: 403 Forbidden",
     ("Unknown", "WorkNotApplied", "failed to deploy the agent: 403 Forbidden")),
    (DeployState(None, None, "ManifestWork created; waiting for the work agent"), None,
     ("Unknown", "WorkNotApplied", "ManifestWork created; waiting for the work agent")),
    (DeployState(False, None, "CRD is invalid"), None, ("False", "WorkNotApplied", "CRD is invalid")),
    (DeployState(True, None, "no status feedback from Deployment volsync-agent yet"), None,
     ("Unknown", "NoProbeResult", "no status feedback from Deployment volsync-agent yet")),
    (DeployState(True, False, "Deployment volsync-agent: 0/1 replicas ready"), None,
     ("False", "ProbeUnavailable", "Deployment volsync-agent: 0/1 replicas ready")),
    (DeployState(True, False, "Available False"), None, ("False", "ProbeUnavailable", "Available False")),
    (APPLIED, None, ("True", "ProbeAvailable", "volsync add-on is available.")),
])
def test_available_follows_the_work_probe_before_the_heartbeat(
        deploy: DeployState | None, apply_error: str | None, expected: tuple[str, str, str]) -> None:
    h = assess(deploy, lease_=lease(10), apply_error=apply_error)  # a fresh heartbeat all along
    assert available(h) == expected
    assert h.label == {"True": "available", "False": "unhealthy"}.get(expected[0], "unreachable")
    # only the heartbeat's verdict changes with time alone
    assert (h.recheck_after is not None) == (expected[0] == "True")
    assert h.status["healthCheck"] == {"mode": "Customized"}


def test_a_failing_probe_wins_over_the_heartbeat_and_a_passing_one_defers_to_it() -> None:
    not_ready = DeployState(True, False, "Deployment volsync-agent: 0/1 replicas ready")
    for lease_ in (lease(10), lease(301), None):  # fresh, stale, never seen: the probe decides
        assert available(assess(not_ready, lease_=lease_))[:2] == ("False", "ProbeUnavailable")
        assert available(assess(DeployState(True, None), lease_=lease_))[:2] == ("Unknown", "NoProbeResult")
    # a ready Deployment: the heartbeat decides
    assert available(assess(APPLIED, lease_=lease(301))) == (
        "False", "ManagedClusterAddOnLeaseUpdateStopped", "volsync add-on is not available.")
    assert available(assess(APPLIED, lease_=None))[:2] == ("Unknown", "ManagedClusterAddOnLeaseNotFound")


def test_an_unknown_cluster_wins_over_the_work_probe() -> None:
    unknown = {"type": "ManagedClusterConditionAvailable", "status": "Unknown",
               "reason": "ManagedClusterLeaseUpdateStopped",
               "message": "Registration agent stopped updating its lease."}
    for deploy in (None, DeployState(False, None, "x"), DeployState(True, False, "0/1"), DeployState(True, None)):
        h = assess(deploy, lease_=lease(10), cluster=unknown, apply_error="boom" if deploy is None else None)
        assert available(h) == ("Unknown", "ManagedClusterLeaseUpdateStopped",
                                 "Registration agent stopped updating its lease.")
        assert h.label == "unreachable" and h.recheck_after is None


def test_the_probe_turning_unready_moves_the_transition_time() -> None:
    ready = assess(APPLIED, lease_=lease(5))
    unready = assess(DeployState(True, False, "Deployment volsync-agent: 0/1 replicas ready"), lease_=lease(5),
                     mca={"status": {"conditions": [c | {"lastTransitionTime": "2025-12-31T00:00:00Z"}
                                                    for c in ready.status["conditions"]]}})
    cond = next(c for c in unready.status["conditions"] if c["type"] == "Available")
    assert (cond["status"], cond["lastTransitionTime"]) == ("False", "2026-01-01T12:00:00Z")
