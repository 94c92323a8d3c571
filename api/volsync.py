"""Typed views of VolSync's `ReplicationSource` / `ReplicationDestination` (volsync.backube/v1alpha1).

Specs are parsed from the raw objects into frozen dataclasses (field names as in VolSync's API,
snake_cased); statuses are built as dataclasses and rendered back with VolSync's JSON names. The
schema itself (enums, patterns, defaults) lives in `manifests/crds/`; these types are what the
agent reasons with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

GROUP = "volsync.backube"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

CopyMethod = Literal["Direct", "None", "Clone", "Snapshot"]
MOVERS = ("rsync", "rsyncTLS", "rclone", "restic", "syncthing", "external")

CONDITION_SYNCHRONIZING = "Synchronizing"
REASON_SYNC_IN_PROGRESS = "SyncInProgress"
REASON_WAITING_FOR_SCHEDULE = "WaitingForSchedule"
REASON_WAITING_FOR_MANUAL = "WaitingForManual"
REASON_CLEANING_UP = "CleaningUp"
REASON_ERROR = "Error"

LABEL_CLEANUP = "volsync.backube/cleanup"
LABEL_DO_NOT_DELETE = "volsync.backube/do-not-delete"
LABEL_CREATED_BY = "app.kubernetes.io/created-by"
ANNOTATION_SNAPNAME = "volsync.backube/snapname"
# Our opt-out of VolSync's "first sync at creation" (see docs/agent.md).
ANNOTATION_SKIP_INITIAL_SYNC = "volsync-addon.io/skip-initial-sync"
# On a destination's VolumeSnapshot: the iteration it was taken for (a name clash is detected, never published).
ANNOTATION_ITERATION = "volsync-addon.io/iteration"
REASON_TRIGGER_QUEUED = "ManualTriggerQueued"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _quantity(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return _str(value)


@dataclass(frozen=True)
class Trigger:
    schedule: str | None = None
    manual: str | None = None

    @classmethod
    def parse(cls, raw: Any) -> Trigger:
        raw = raw if isinstance(raw, dict) else {}
        return cls(schedule=_str(raw.get("schedule")), manual=_str(raw.get("manual")))


@dataclass(frozen=True)
class VolumeOptions:
    copy_method: str | None
    capacity: str | None
    storage_class_name: str | None
    access_modes: tuple[str, ...]
    volume_snapshot_class_name: str | None

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> VolumeOptions:
        modes = raw.get("accessModes")
        return cls(
            copy_method=_str(raw.get("copyMethod")),
            capacity=_quantity(raw.get("capacity")),
            storage_class_name=_str(raw.get("storageClassName")),
            access_modes=tuple(m for m in modes if isinstance(m, str)) if isinstance(modes, list) else (),
            volume_snapshot_class_name=_str(raw.get("volumeSnapshotClassName")),
        )


@dataclass(frozen=True)
class RsyncSpec:
    """`spec.rsync` of either kind (the destination-only fields are None on a source)."""

    volume: VolumeOptions
    ssh_keys: str | None = None
    service_type: str = "ClusterIP"
    address: str | None = None
    port: int | None = None
    destination_pvc: str | None = None
    cleanup_temp_pvc: bool = False
    volume_mode: str | None = None
    service_annotations: dict[str, str] | None = None

    @classmethod
    def parse(cls, raw: Any) -> RsyncSpec:
        raw = raw if isinstance(raw, dict) else {}
        annotations = raw.get("serviceAnnotations")
        return cls(
            volume=VolumeOptions.parse(raw),
            ssh_keys=_str(raw.get("sshKeys")),
            service_type=_str(raw.get("serviceType")) or "ClusterIP",
            address=_str(raw.get("address")),
            port=_int(raw.get("port")),
            destination_pvc=_str(raw.get("destinationPVC")),
            cleanup_temp_pvc=raw.get("cleanupTempPVC") is True,
            volume_mode=_str(raw.get("volumeMode")),
            service_annotations=dict(annotations) if isinstance(annotations, dict) else None,
        )


@dataclass(frozen=True)
class ReplicationSpec:
    """The spec parts shared by both kinds, plus `sourcePVC` for a source."""

    trigger: Trigger
    paused: bool
    movers: tuple[str, ...]  # which mover sections are present
    rsync: RsyncSpec | None
    source_pvc: str | None = None

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> ReplicationSpec:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        movers = tuple(m for m in MOVERS if isinstance(spec.get(m), dict))
        return cls(
            trigger=Trigger.parse(spec.get("trigger")),
            paused=spec.get("paused") is True,
            movers=movers,
            rsync=RsyncSpec.parse(spec["rsync"]) if "rsync" in movers else None,
            source_pvc=_str(spec.get("sourcePVC")),
        )


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }


@dataclass(frozen=True)
class MoverStatus:
    result: Literal["Successful", "Failed"]
    logs: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"result": self.result, "logs": self.logs} if self.logs else {"result": self.result}


@dataclass(frozen=True)
class ImageRef:
    kind: str
    name: str
    api_group: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"apiGroup": self.api_group, "kind": self.kind, "name": self.name}

    @classmethod
    def parse(cls, raw: Any) -> ImageRef | None:
        if not isinstance(raw, dict) or not _str(raw.get("name")):
            return None
        return cls(kind=str(raw.get("kind") or ""), name=str(raw["name"]), api_group=str(raw.get("apiGroup") or ""))


@dataclass(frozen=True)
class IterationRecord:
    """`status.iteration`, our addition to VolSync's status (both kinds): the running or last iteration.

    `id` is unique per iteration (`<number>-<uid prefix>`), unlike `lastSyncStartTime`, whose one-second
    resolution let two iterations share an identity; `startTime`/`endTime` have microseconds, so
    `lastSyncDuration` is the real duration; `manual` is the `spec.trigger.manual` value the
    iteration serves (so a trigger changed while it runs is not counted as done); `completed`
    counts completed iterations (a destination completes one per image it publishes).
    """

    number: int = 0
    id: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    manual: str | None = None
    completed: int = 0

    @classmethod
    def parse(cls, raw: Any) -> IterationRecord:
        raw = raw if isinstance(raw, dict) else {}
        return cls(
            number=_int(raw.get("number")) or 0,
            id=_str(raw.get("id")),
            start_time=_str(raw.get("startTime")),
            end_time=_str(raw.get("endTime")),
            manual=_str(raw.get("manual")),
            completed=_int(raw.get("completed")) or 0,
        )


@dataclass(frozen=True)
class ReplicationStatus:
    """The status fields the state machine reads (everything else it writes through patches)."""

    last_sync_time: str | None = None
    last_sync_start_time: str | None = None
    last_sync_duration: str | None = None
    next_sync_time: str | None = None
    last_manual_sync: str | None = None
    latest_image: ImageRef | None = None
    # our addition (RD): the source iteration id whose data `latest_image` holds, when the source named it
    latest_image_source_iteration: str | None = None
    conditions: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    iteration: IterationRecord = field(default_factory=IterationRecord)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> ReplicationStatus:
        st = obj.get("status") if isinstance(obj.get("status"), dict) else {}
        assert isinstance(st, dict)
        conditions = st.get("conditions")
        return cls(
            last_sync_time=_str(st.get("lastSyncTime")),
            last_sync_start_time=_str(st.get("lastSyncStartTime")),
            last_sync_duration=_str(st.get("lastSyncDuration")),
            next_sync_time=_str(st.get("nextSyncTime")),
            last_manual_sync=_str(st.get("lastManualSync")),
            latest_image=ImageRef.parse(st.get("latestImage")),
            latest_image_source_iteration=_str(st.get("latestImageSourceIteration")),
            conditions=tuple(c for c in conditions if isinstance(c, dict)) if isinstance(conditions, list) else (),
            iteration=IterationRecord.parse(st.get("iteration")),
        )

    def condition(self, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.conditions if c.get("type") == type_), None)


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it (VolSync's lastSyncDuration), e.g. `1m2.5s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    text = f"{secs:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text
