"""How fleet status is kept on the hub API (pure): report ConfigMaps and heartbeat Leases.

One ConfigMap `volsync-status-<hash>` per replication in the cluster's namespace (hash: the first 12
hex digits of sha256(`role/namespace/name`)), labelled `volsync-addon.io/report=true` and
`volsync-addon.io/role=<role>`, annotated with the report's sequence, `data.report` = the report as
JSON. One Lease `volsync` per cluster namespace, renewed on each heartbeat. This module builds and
reads those objects; `hub/fleet.py` does the I/O.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from api.hub import ReplicationReport
from hub import ocm
from kube.clock import parse_rfc3339
from kube.objects import annotations_of, meta, name_of, namespace_of

log = logging.getLogger("volsync.hub.reports")

Obj = dict[str, Any]

LABEL_REPORT = ocm.REPORT_LABEL
LABEL_ROLE = "volsync-addon.io/role"
ANNOTATION_SEQUENCE = "volsync-addon.io/sequence"
REPORT_SELECTOR = f"{LABEL_REPORT}=true"
CONFIGMAP_PREFIX = "volsync-status-"

LEASE_NAME = ocm.LEASE
LABEL_HEARTBEAT = "volsync-addon.io/heartbeat"
HEARTBEAT_SELECTOR = f"{LABEL_HEARTBEAT}=true"


@dataclass(frozen=True)
class StoredReport:
    """A report as the hub API holds it: which cluster, which ConfigMap (and its version)."""

    cluster: str
    configmap: str
    sequence: int
    resource_version: str
    report: ReplicationReport


def configmap_name(role: str, namespace: str, name: str) -> str:
    digest = hashlib.sha256(f"{role}/{namespace}/{name}".encode()).hexdigest()[:12]
    return CONFIGMAP_PREFIX + digest


def report_configmap(cluster: str, report: ReplicationReport, resource_version: str = "") -> Obj:
    """The ConfigMap holding `report` (with a resourceVersion precondition when given)."""
    metadata: Obj = {
        "name": configmap_name(report.role, report.namespace, report.name),
        "namespace": cluster,
        "labels": {LABEL_REPORT: "true", LABEL_ROLE: report.role},
        "annotations": {ANNOTATION_SEQUENCE: str(report.sequence)},
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    body = report.model_dump(mode="json", by_alias=True, exclude={"deleted"})
    return {"metadata": metadata, "data": {"report": json.dumps(body, separators=(",", ":"), sort_keys=True)}}


def decode_configmap(obj: Obj) -> StoredReport | None:
    """The report a ConfigMap holds, or None (logged) when it is not one of ours or is damaged."""
    cluster, name = namespace_of(obj), name_of(obj)
    raw = (obj.get("data") or {}).get("report")
    if not isinstance(raw, str):
        log.warning("ConfigMap %s/%s has no data.report; ignored", cluster, name)
        return None
    try:
        report = ReplicationReport.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("ConfigMap %s/%s holds an invalid report (%d errors); ignored", cluster, name, exc.error_count())
        return None
    sequence = report.sequence
    annotated = annotations_of(obj).get(ANNOTATION_SEQUENCE, "")
    if annotated.isdigit():
        sequence = int(annotated)
    return StoredReport(cluster, name, sequence, str(meta(obj).get("resourceVersion") or ""), report)


def stale(stored_sequence: int | None, incoming: int) -> bool:
    """Idempotency: a report whose sequence is not above the stored one changes nothing."""
    return stored_sequence is not None and incoming <= stored_sequence


# -- leases -----------------------------------------------------------------------------------------
def micro_time(when: datetime) -> str:
    """metav1.MicroTime: UTC with microseconds and `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(agent_id: str, now: datetime, duration_seconds: int) -> Obj:
    return {"holderIdentity": agent_id, "renewTime": micro_time(now), "leaseDurationSeconds": duration_seconds}


def lease(cluster: str, agent_id: str, now: datetime, duration_seconds: int) -> Obj:
    spec = {**lease_spec(agent_id, now, duration_seconds), "acquireTime": micro_time(now)}
    return {
        "metadata": {"name": LEASE_NAME, "namespace": cluster, "labels": {LABEL_HEARTBEAT: "true"}},
        "spec": spec,
    }


def lease_renewal(agent_id: str, now: datetime, duration_seconds: int) -> Obj:
    """A merge patch renewing the Lease (and labelling one that was made without our label)."""
    return {"metadata": {"labels": {LABEL_HEARTBEAT: "true"}}, "spec": lease_spec(agent_id, now, duration_seconds)}


def renew_time(obj: Obj | None) -> datetime | None:
    if obj is None:
        return None
    return parse_rfc3339((obj.get("spec") or {}).get("renewTime"))


def holder(obj: Obj | None) -> str | None:
    value = ((obj or {}).get("spec") or {}).get("holderIdentity")
    return value if isinstance(value, str) and value else None
