"""The ManagedClusterAddOn's conditions and the cluster's feature label (pure).

From what the deployer knows, the agent's Lease on the hub, the ManagedCluster's own availability
and the replication states of the cluster, `assess` computes OCM's conditions with OCM's types and
reasons (`shared/reference/ocm-addon.md` §1.2, §3.4):

- `RegistrationApplied`: True, NilRegistration (the agent needs no hub registration from OCM).
- `ManifestApplied`: True AddonManifestApplied when the manifests are applied; False
  AddonManifestAppliedFailed when the cluster reports they are not; False ManifestWorkApplyFailed when
  they could not be handed over at all. While nothing is known yet a stale False is dropped, as
  addon-framework does.
- `Available`: what OCM's Work health prober says of the agent Deployment (through the
  ManifestWork's feedback, as the upstream volsync addon's `Customized` mode does), then our own
  heartbeat Lease, in this order (first match wins; `shared/reference/ocm-addon.md` §3.4):
  1. the cluster's own ManagedClusterConditionAvailable is Unknown: its status, reason and message
     are copied (a cluster that is False, API server unhealthy, is not propagated);
  2. nothing handed over, or the work not applied yet (no deploy state, or `applied` unknown):
     Unknown WorkNotApplied, with the deploy state's (or the apply error's) message;
  3. the work not applied (`applied` False): False WorkNotApplied, the deploy message;
  4. no Available condition or no Deployment feedback yet (`available` unknown): Unknown
     NoProbeResult;
  5. the work not Available, or the Deployment's ReadyReplicas != Replicas: False
     ProbeUnavailable, the deploy message (e.g. "Deployment volsync-agent: 0/1 replicas ready");
  6. the probe passes, so the agent's heartbeat decides: Lease renewed less than `stale_seconds`
     ago: True ProbeAvailable; older: False ManagedClusterAddOnLeaseUpdateStopped; never seen:
     Unknown ManagedClusterAddOnLeaseNotFound.
  `status.healthCheck.mode` is `Customized`, what the upstream addon with a Work prober reports.
- `Degraded`: True ReplicationsFailing when a replication is in error, True ReplicationsLate when
  one is late (the message names up to three of them), False ReplicationsHealthy otherwise.
- `Progressing`: True Progressing until the manifests are applied and the agent Deployment is not
  reported unready; False Completed after.

`lastTransitionTime` moves only when a condition's status does. The feature label
`feature.open-cluster-management.io/addon-volsync` follows Available: available / unhealthy /
unreachable. `recheck_after` is when Available would change by time alone (the Lease going stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub import ocm
from hub.deployers import DeployState
from hub.rpo import State
from kube.clock import parse_rfc3339, rfc3339
from kube.objects import condition, set_condition

Obj = dict[str, Any]

DEFAULT_STALE_SECONDS = 300.0
LABELS = {"True": "available", "False": "unhealthy"}  # anything else: unreachable
MAX_NAMED = 3  # replications named in the Degraded message


@dataclass(frozen=True)
class Health:
    status: Obj  # merge patch for the MCA's .status (conditions is the whole list)
    label: str  # the ManagedCluster's feature label value
    recheck_after: float | None  # seconds until Available changes without any event; None: never


def _cond(type_: str, status: str, reason: str, message: str) -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def manifest_applied(deploy: DeployState | None, apply_error: str | None) -> Obj | None:
    if apply_error is not None:
        return _cond("ManifestApplied", "False", "ManifestWorkApplyFailed", apply_error)
    if deploy is None or deploy.applied is None:
        return None
    if deploy.applied:
        return _cond("ManifestApplied", "True", "AddonManifestApplied", "manifests of addon are applied successfully")
    return _cond("ManifestApplied", "False", "AddonManifestAppliedFailed",
                 deploy.message or "failed to apply the manifests of addon")


def available(deploy: DeployState | None, lease: Obj | None, cluster_available: Obj | None, now: datetime,
              stale_seconds: float, apply_error: str | None = None) -> tuple[Obj, float | None]:
    """Available by the rule of the module docstring, and when it would change by time alone."""
    if (cluster_available or {}).get("status") == "Unknown":
        assert cluster_available is not None
        reason = str(cluster_available.get("reason") or "ManagedClusterUnknown")
        return _cond("Available", "Unknown", reason, str(cluster_available.get("message") or "")), None
    probe = _work_probe(deploy, apply_error)
    if probe is not None:
        return probe, None
    return _heartbeat(lease, now, stale_seconds)


def _work_probe(deploy: DeployState | None, apply_error: str | None) -> Obj | None:
    """Available from the work and its Deployment feedback (OCM's Work prober); None when it passes."""
    message = apply_error or (deploy.message if deploy is not None else "")
    if deploy is None or deploy.applied is None:
        return _cond("Available", "Unknown", "WorkNotApplied", message or "waiting for the work agent")
    if not deploy.applied:
        return _cond("Available", "False", "WorkNotApplied", message or "the manifests are not applied")
    if deploy.available is None:
        return _cond("Available", "Unknown", "NoProbeResult", message or "no health probe result yet")
    if not deploy.available:
        return _cond("Available", "False", "ProbeUnavailable", message or f"{ocm.AGENT} is not available")
    return None


def _heartbeat(lease: Obj | None, now: datetime, stale_seconds: float) -> tuple[Obj, float | None]:
    """Available from the agent's Lease on the hub (the probe passed), and when it goes stale."""
    renewed = parse_rfc3339(((lease or {}).get("spec") or {}).get("renewTime"))
    if renewed is None:
        return _cond("Available", "Unknown", "ManagedClusterAddOnLeaseNotFound",
                     f"The status of {ocm.ADDON} add-on is unknown."), None
    age = (now - renewed).total_seconds()
    if age < stale_seconds:
        return _cond("Available", "True", "ProbeAvailable", f"{ocm.ADDON} add-on is available."), stale_seconds - age
    return _cond("Available", "False", "ManagedClusterAddOnLeaseUpdateStopped",
                 f"{ocm.ADDON} add-on is not available."), None


def _which(states: Sequence[State], names: Sequence[str], state: State) -> str:
    """`: a, b, c (+2 more)` naming the replications in `state`, when names are given."""
    found = [n for n, s in zip(names, states, strict=False) if s == state]
    if not found:
        return ""
    more = f" (+{len(found) - MAX_NAMED} more)" if len(found) > MAX_NAMED else ""
    return ": " + ", ".join(found[:MAX_NAMED]) + more


def degraded(states: Sequence[State], names: Sequence[str] = ()) -> Obj:
    """`names`, when given, name the replications of `states` (same order) in the message."""
    failing, late = states.count("error"), states.count("late")
    if failing:
        return _cond("Degraded", "True", "ReplicationsFailing",
                     f"{failing} of {len(states)} replications failing{_which(states, names, 'error')}")
    if late:
        return _cond("Degraded", "True", "ReplicationsLate",
                     f"{late} of {len(states)} replications late{_which(states, names, 'late')}")
    return _cond("Degraded", "False", "ReplicationsHealthy", f"{len(states)} replications, none failing or late")


def progressing(deploy: DeployState | None, apply_error: str | None) -> Obj:
    if apply_error is None and deploy is not None and deploy.applied and deploy.available is not False:
        return _cond("Progressing", "False", "Completed", "the agent is deployed")
    message = apply_error or (deploy.message if deploy is not None else "") or "deploying the agent"
    return _cond("Progressing", "True", "Progressing", message)


def assess(mca: Obj, deploy: DeployState | None, lease: Obj | None, cluster_available: Obj | None,
           states: Sequence[State], now: datetime, *, stale_seconds: float = DEFAULT_STALE_SECONDS,
           apply_error: str | None = None, names: Sequence[str] = ()) -> Health:
    """The MCA status patch, the feature label and when to look again. `deploy` is None when the
    manifests were not handed over (then `apply_error` says why, if it was a failure)."""
    stamp = rfc3339(now)
    current: list[Obj] = list((mca.get("status") or {}).get("conditions") or [])
    conditions = set_condition(current, _cond("RegistrationApplied", "True", "NilRegistration",
                                              "the addon agent needs no registration"), stamp)
    applied = manifest_applied(deploy, apply_error)
    if applied is not None:
        conditions = set_condition(conditions, applied, stamp)
    else:  # nothing known yet: drop a stale False, keep a True
        old = condition(conditions, "ManifestApplied")
        conditions = [c for c in conditions if c.get("type") != "ManifestApplied"]
        if old is not None and old.get("status") == "True":
            conditions.append(old)
    avail, recheck = available(deploy, lease, cluster_available, now, stale_seconds, apply_error)
    conditions = set_condition(conditions, avail, stamp)
    conditions = set_condition(conditions, degraded(states, names), stamp)
    conditions = set_condition(conditions, progressing(deploy, apply_error), stamp)
    status: Obj = {
        "conditions": conditions,
        "supportedConfigs": [{"group": ocm.ADDON_GROUP, "resource": ocm.ADC_RESOURCE}],
        "healthCheck": {"mode": "Customized"},
    }
    return Health(status, LABELS.get(avail["status"], "unreachable"), recheck)
