"""What the user side of the REST API shows (pure): rows, cluster info and the summary.

Everything is computed at query time from the stored reports, Leases and ManagedClusterAddOns and
the time `now`, so lag and RPO state (`hub/rpo.py`) move with the clock, not with the reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from api.hub import ClusterCounts, ClusterInfo, ReplicationReport, ReplicationRow, StateCounts, Summary
from hub import rpo
from hub.reports import holder, renew_time
from kube.clock import parse_rfc3339

Obj = dict[str, Any]


@dataclass(frozen=True)
class RowFilter:
    cluster: str | None = None
    namespace: str | None = None
    role: str | None = None
    state: str | None = None

    def matches(self, row: ReplicationRow) -> bool:
        return (
            (self.cluster is None or row.cluster == self.cluster)
            and (self.namespace is None or row.namespace == self.namespace)
            and (self.role is None or row.role == self.role)
            and (self.state is None or row.state == self.state)
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def row(cluster: str, report: ReplicationReport, now: datetime, rpo_seconds: float) -> ReplicationRow:
    status, spec = report.status, report.spec
    mover = status.get("latestMoverStatus") or {}
    image = status.get("latestImage")
    return ReplicationRow(
        cluster=cluster,
        namespace=report.namespace,
        name=report.name,
        role=report.role,
        last_sync_time=parse_rfc3339(status.get("lastSyncTime")),
        last_sync_duration=_str(status.get("lastSyncDuration")),
        next_sync_time=parse_rfc3339(status.get("nextSyncTime")),
        lag_seconds=rpo.lag_seconds(status, now),
        state=rpo.state(report.role, spec, status, now, rpo_seconds),
        latest_image=image if isinstance(image, dict) and image else None,
        mover_result=_str(mover.get("result")),
        mover_message=_str(mover.get("logs")),
        conditions=[dict(c) for c in status.get("conditions") or []],
        reported_at=report.observed_at,
    )


def count(rows: Iterable[ReplicationRow]) -> StateCounts:
    counts = dict.fromkeys(rpo.STATES, 0)
    for r in rows:
        counts[r.state] += 1
    return StateCounts(**counts)


def available(lease: Obj | None, now: datetime, stale_seconds: float) -> bool:
    """The agent is available while its Lease was renewed within the stale period."""
    renewed = renew_time(lease)
    return renewed is not None and (now - renewed).total_seconds() <= stale_seconds


def cluster_info(
    name: str,
    *,
    lease: Obj | None,
    addon: Obj | None,
    rows: Iterable[ReplicationRow],
    now: datetime,
    stale_seconds: float,
) -> ClusterInfo:
    conditions = ((addon or {}).get("status") or {}).get("conditions") or []
    return ClusterInfo(
        name=name,
        available=available(lease, now, stale_seconds),
        last_heartbeat=renew_time(lease),
        agent_id=holder(lease),
        addon_conditions=[dict(c) for c in conditions if isinstance(c, dict)],
        replications=count(rows),
    )


def summary(clusters: Iterable[ClusterInfo], rows: Iterable[ReplicationRow]) -> Summary:
    infos = list(clusters)
    return Summary(
        replications=count(rows),
        clusters=ClusterCounts(available=sum(1 for c in infos if c.available), total=len(infos)),
    )


def sort_key(r: ReplicationRow) -> tuple[str, str, str, str]:
    return (r.cluster, r.namespace, r.name, r.role)
