"""The fleet-status store: heartbeats and reports written to the hub API, queries served from memory.

Writes (the agent side of the REST API) go to the hub API, which is the only state: a Lease
`volsync` per cluster namespace on each heartbeat, a ConfigMap per replication on each report
(`hub/reports.py`). Reports are idempotent: a sequence not above the stored one is `stale` and not
written; writes carry the stored resourceVersion as a precondition, so two hub workers (or two
hubs) racing on one replication cannot go backwards. Queries (the user side) never touch the API:
Informers on the report ConfigMaps, heartbeat Leases, ManagedClusters and ManagedClusterAddOns
keep an in-memory index, and lag/state are computed at query time from an injected Clock. The index
also pairs sources with the destinations they send to (`hub/pairing.py`), so a destination is
judged against its source's last sync and the summary counts a pair once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from kubernetes.client.exceptions import ApiException

from api.hub import (
    ClusterInfo,
    Heartbeat,
    HeartbeatReply,
    ReplicationReport,
    ReplicationRow,
    ReportBatch,
    ReportReply,
    Summary,
)
from hub import ocm, pairing, reports, rpo, views
from hub.reports import StoredReport
from kube.clock import Clock
from kube.informing import Informer
from kube.objects import name_of, namespace_of
from kube.rest import CONFIGMAPS, LEASES, Kube, Obj, is_conflict, is_not_found

log = logging.getLogger("volsync.hub.fleet")

MAX_TOMBSTONES = 100_000
WRITE_ATTEMPTS = 8


@dataclass(frozen=True)
class FleetSettings:
    stale_seconds: int = 300  # an agent whose Lease is older is unavailable (OCM's 5 x 60 s)
    renew_interval_seconds: float = 60.0  # how often agents are told to heartbeat
    rpo_seconds: float = rpo.DEFAULT_RPO_SECONDS  # lag beyond which an unscheduled source is late
    grace_seconds: float = rpo.DEFAULT_GRACE_SECONDS  # a destination not publishing its source's sync by then is late
    clock_skew_seconds: float = rpo.DEFAULT_CLOCK_SKEW_SECONDS  # how far two clusters' clocks may disagree
    addon_name: str = ocm.ADDON


class FleetStore:
    def __init__(self, kube: Kube, *, clock: Clock, settings: FleetSettings | None = None) -> None:
        self.kube = kube
        self.clock = clock
        self.settings = settings or FleetSettings()
        self._lock = threading.Lock()
        self._reports: dict[tuple[str, str], StoredReport] = {}  # (cluster, ConfigMap name)
        self._peers = pairing.PeerIndex()  # the same reports, paired (under _lock too)
        self._leases: dict[str, Obj] = {}  # cluster -> Lease
        # sequences of replications deleted through this process, so a late older report does not revive them
        self._tombstones: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._configmaps = Informer(kube, CONFIGMAPS, self._on_configmap, label_selector=reports.REPORT_SELECTOR)
        self._lease_informer = Informer(kube, LEASES, self._on_lease, label_selector=reports.HEARTBEAT_SELECTOR)
        self._clusters = Informer(kube, ocm.MANAGED_CLUSTERS, lambda *_: None)
        self._addons = Informer(kube, ocm.MANAGED_CLUSTER_ADDONS, lambda *_: None)
        self._informers = (self._configmaps, self._lease_informer, self._clusters, self._addons)

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> FleetStore:
        for informer in self._informers:
            informer.start()
        return self

    def stop(self) -> None:
        for informer in self._informers:
            informer.stop()

    def synced(self) -> bool:
        return all(i.wait_synced(0) for i in self._informers)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return all(i.wait_synced(timeout) for i in self._informers)

    # -- index (informer events and our own writes; the newest state wins) ---------------------------
    def _on_configmap(self, event: str, obj: Obj, _prev: Obj | None) -> None:
        key = (namespace_of(obj), name_of(obj))
        if event == "DELETED":
            stored = reports.decode_configmap(obj)
            self._forget(key, stored.sequence if stored else None)
        elif (stored := reports.decode_configmap(obj)) is not None:
            self._remember(stored)

    def _remember(self, stored: StoredReport) -> None:
        key = (stored.cluster, stored.configmap)
        with self._lock:
            current = self._reports.get(key)
            if current is None or current.sequence <= stored.sequence:
                self._reports[key] = stored
                self._peers.put(views.side(stored.cluster, stored.report))

    def _forget(self, key: tuple[str, str], sequence: int | None) -> None:
        with self._lock:
            current = self._reports.get(key)
            if current is not None and (sequence is None or current.sequence <= sequence):
                del self._reports[key]
                self._peers.remove(views.side(current.cluster, current.report).ref)

    def _on_lease(self, event: str, obj: Obj, _prev: Obj | None) -> None:
        if name_of(obj) != reports.LEASE_NAME:
            return
        cluster = namespace_of(obj)
        renewed = reports.renew_time(obj)
        with self._lock:
            current = reports.renew_time(self._leases.get(cluster))
            newer = current is None or (renewed is not None and renewed >= current)
            if event == "DELETED":
                if newer:
                    self._leases.pop(cluster, None)
            elif newer:
                self._leases[cluster] = obj

    # -- agent side: writes --------------------------------------------------------------------------
    def heartbeat(self, cluster: str, beat: Heartbeat) -> HeartbeatReply:
        now, duration = self.clock.now(), self.settings.stale_seconds
        renewal = reports.lease_renewal(beat.agent_id, now, duration)
        try:
            obj = self.kube.patch(LEASES, reports.LEASE_NAME, renewal, cluster)
        except ApiException as exc:
            if not is_not_found(exc):
                raise
            try:
                obj = self.kube.create(LEASES, reports.lease(cluster, beat.agent_id, now, duration))
            except ApiException as exc2:
                if not is_conflict(exc2):
                    raise
                obj = self.kube.patch(LEASES, reports.LEASE_NAME, renewal, cluster)
        self._on_lease("MODIFIED", obj, None)
        return HeartbeatReply(
            lease_duration_seconds=duration, renew_interval_seconds=self.settings.renew_interval_seconds
        )

    def submit(self, cluster: str, batch: ReportBatch) -> ReportReply:
        accepted = 0
        for report in batch.reports:
            accepted += self._write(cluster, report)
        return ReportReply(accepted=accepted, stale=len(batch.reports) - accepted)

    def _current(self, key: tuple[str, str], *, authoritative: bool) -> tuple[int | None, str]:
        """(stored sequence, resourceVersion) of a report ConfigMap; (None, "") when there is none."""
        if not authoritative:
            with self._lock:
                known = self._reports.get(key)
            if known is not None:
                return known.sequence, known.resource_version
            return None, ""
        obj = self.kube.get(CONFIGMAPS, key[1], key[0])
        if obj is None:
            return None, ""
        stored = reports.decode_configmap(obj)
        if stored is not None:
            self._remember(stored)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        return (stored.sequence if stored else -1), rv

    def _write(self, cluster: str, report: ReplicationReport) -> bool:
        """Store one report; False when it is stale. Conflicts re-read the API and decide again."""
        key = (cluster, reports.configmap_name(report.role, report.namespace, report.name))
        # a delete must see what is really there: the cache may not have a new object yet
        sequence, rv = self._current(key, authoritative=report.deleted)
        for _ in range(WRITE_ATTEMPTS):
            with self._lock:
                tombstone = self._tombstones.get(key)
            if reports.stale(sequence, report.sequence) or reports.stale(tombstone, report.sequence):
                return False
            try:
                if report.deleted:
                    if rv:
                        self.kube.delete(CONFIGMAPS, key[1], cluster, preconditions={"resourceVersion": rv})
                    self._forget(key, report.sequence)
                    self._bury(key, report.sequence)
                elif rv:
                    obj = self.kube.replace(CONFIGMAPS, reports.report_configmap(cluster, report, rv))
                    self._remember_written(cluster, key, report, obj)
                else:
                    obj = self.kube.create(CONFIGMAPS, reports.report_configmap(cluster, report))
                    self._remember_written(cluster, key, report, obj)
                return True
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
                log.debug("report %s/%s: %s on write; re-reading", *key, exc.status)
                sequence, rv = self._current(key, authoritative=True)
        raise ApiException(status=409, reason=f"report {key[0]}/{key[1]} kept conflicting; retry later")

    def _remember_written(self, cluster: str, key: tuple[str, str], report: ReplicationReport, obj: Obj) -> None:
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        self._remember(StoredReport(cluster, key[1], report.sequence, rv, report))

    def _bury(self, key: tuple[str, str], sequence: int) -> None:
        with self._lock:
            self._tombstones[key] = max(sequence, self._tombstones.get(key, sequence))
            self._tombstones.move_to_end(key)
            while len(self._tombstones) > MAX_TOMBSTONES:
                self._tombstones.popitem(last=False)

    # -- user side: queries (memory only) ------------------------------------------------------------
    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self.clock.now()

    def replications(self, flt: views.RowFilter | None = None, now: datetime | None = None) -> list[ReplicationRow]:
        flt, when = flt or views.RowFilter(), self._now(now)
        settings = self.settings
        judging = views.Judging(settings.rpo_seconds, settings.grace_seconds, settings.clock_skew_seconds)
        with self._lock:  # pairing reads the index: look the peers up under the lock, judge outside it
            found = [(s, self._peers.peer(views.side(s.cluster, s.report).ref)) for s in self._reports.values()
                     if flt.cluster is None or s.cluster == flt.cluster]
        rows = (views.row(s.cluster, s.report, when, peer, judging) for s, peer in found)
        return sorted((r for r in rows if flt.matches(r)), key=views.sort_key)

    def stored_names(self, cluster: str) -> set[str]:
        """The report ConfigMap names stored for `cluster` (the REST API's per-cluster cap counts them)."""
        with self._lock:
            return {name for owner, name in self._reports if owner == cluster}

    def cluster_names(self) -> set[str]:
        with self._lock:
            names = {s.cluster for s in self._reports.values()} | set(self._leases)
        names |= {name_of(mc) for mc in self._clusters.items()}
        names |= {namespace_of(a) for a in self._addons.items() if name_of(a) == self.settings.addon_name}
        return names

    def clusters(self, now: datetime | None = None) -> list[ClusterInfo]:
        when = self._now(now)
        return self._infos(self.replications(now=when), when)

    def _infos(self, rows: list[ReplicationRow], now: datetime) -> list[ClusterInfo]:
        by_cluster: dict[str, list[ReplicationRow]] = {}  # one pass, not one per cluster
        for r in rows:
            by_cluster.setdefault(r.cluster, []).append(r)
        return [self._info(name, by_cluster.get(name, []), now) for name in sorted(self.cluster_names())]

    def cluster(self, name: str, now: datetime | None = None) -> ClusterInfo | None:
        if name not in self.cluster_names():
            return None
        when = self._now(now)
        return self._info(name, self.replications(views.RowFilter(cluster=name), when), when)

    def _info(self, name: str, rows: list[ReplicationRow], now: datetime) -> ClusterInfo:
        with self._lock:
            lease = self._leases.get(name)
        return views.cluster_info(
            name,
            lease=lease,
            addon=self._addons.get(name, self.settings.addon_name),
            rows=[r for r in rows if r.cluster == name],
            now=now,
            stale_seconds=self.settings.stale_seconds,
        )

    def summary(self, now: datetime | None = None) -> Summary:
        when = self._now(now)
        rows = self.replications(now=when)
        return views.summary(self._infos(rows, when), rows)
