"""What the user side of the REST API shows (pure): rows, cluster info and the summary.

Everything is computed at query time from the stored reports, Leases and ManagedClusterAddOns and
the time `now`, so lag and RPO state (`hub/rpo.py`) move with the clock, not with the reports.
Rows are one per reported object and name their peer (`hub/pairing.py`); the summary counts a
recognised pair once, in the worse state of its two sides, and keeps per-role counts too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from api.hub import ClusterCounts, ClusterInfo, PeerRef, ReplicationReport, ReplicationRow, Role, StateCounts, Summary
from hub import pairing, rpo
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


@dataclass(frozen=True)
class Judging:
    """How rows are judged: the hub's default RPO, the grace a destination has to publish, and how far the
    clusters' clocks may disagree (`hub/rpo.py`)."""

    rpo_seconds: float = rpo.DEFAULT_RPO_SECONDS
    grace_seconds: float = rpo.DEFAULT_GRACE_SECONDS
    skew_seconds: float = rpo.DEFAULT_CLOCK_SKEW_SECONDS


def side(cluster: str, report: ReplicationReport) -> pairing.Side:
    ref = pairing.Ref(cluster, report.role, report.namespace, report.name)
    return pairing.Side(ref, report.spec, report.status, report.annotations)


def verdict(one: pairing.Side, found: pairing.Pairing, now: datetime, judging: Judging) -> rpo.Verdict:
    """The RPO verdict on one side, given its peer (a destination is judged against its source)."""
    peer = found.peer
    source_status = peer.status if peer is not None and peer.ref.role == "source" else None
    v = rpo.assess(one.ref.role, one.spec, one.status, now, annotations=one.annotations,
                   rpo_seconds=judging.rpo_seconds, source_status=source_status, grace_seconds=judging.grace_seconds,
                   skew_seconds=judging.skew_seconds)
    if found.problem:
        return replace(v, message="; ".join(m for m in (v.message, found.problem) if m))
    return v


def _peer(ref: pairing.Ref) -> PeerRef:
    role: Role = "source" if ref.role == "source" else "destination"
    return PeerRef(cluster=ref.cluster, namespace=ref.namespace, name=ref.name, role=role)


def row(cluster: str, report: ReplicationReport, now: datetime, found: pairing.Pairing,
        judging: Judging) -> ReplicationRow:
    status = report.status
    judged = verdict(side(cluster, report), found, now, judging)
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
        state=judged.state,
        state_message=judged.message,
        rpo_seconds=judged.rpo_seconds,
        peer=_peer(found.peer.ref) if found.peer is not None else None,
        latest_image=image if isinstance(image, dict) and image else None,
        mover_result=_str(mover.get("result")),
        mover_message=_str(mover.get("logs")),
        conditions=[dict(c) for c in status.get("conditions") or []],
        reported_at=report.observed_at,
    )


def count(rows: Iterable[ReplicationRow]) -> StateCounts:
    return _tally(r.state for r in rows)


def _tally(states: Iterable[rpo.State]) -> StateCounts:
    counts = dict.fromkeys(rpo.STATES, 0)
    for state in states:
        counts[state] += 1
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


def _ref(r: ReplicationRow) -> tuple[str, str, str, str]:
    return (r.cluster, r.role, r.namespace, r.name)


def _peer_ref(r: ReplicationRow) -> tuple[str, str, str, str] | None:
    p = r.peer
    return None if p is None else (p.cluster, p.role, p.namespace, p.name)


def summary(clusters: Iterable[ClusterInfo], rows: Iterable[ReplicationRow]) -> Summary:
    """Counts over every row: a pair (each side naming the other) once, in its worse state."""
    infos, listed = list(clusters), list(rows)
    by_ref = {_ref(r): r for r in listed}
    states: list[rpo.State] = []
    pairs = 0
    for r in listed:
        mate = by_ref.get(_peer_ref(r) or ("",) * 4)
        if mate is None or _peer_ref(mate) != _ref(r):
            states.append(r.state)
        elif r.role == "source":
            pairs += 1
            states.append(rpo.worse(r.state, mate.state))
    return Summary(
        replications=_tally(states),
        pairs=pairs,
        sources=count(r for r in listed if r.role == "source"),
        destinations=count(r for r in listed if r.role == "destination"),
        clusters=ClusterCounts(available=sum(1 for c in infos if c.available), total=len(infos)),
    )


def sort_key(r: ReplicationRow) -> tuple[str, str, str, str]:
    return (r.cluster, r.namespace, r.name, r.role)
