"""The hub's REST contract (docs/hub.md "REST API"): pydantic models, camelCase on the wire.

Agent side: `Heartbeat` → `HeartbeatReply`, `ReportBatch` (of `ReplicationReport`) → `ReportReply`.
User side: `ClusterInfo`, `ReplicationRow`, `Summary`. Request models reject unknown top-level
fields; a report's `spec` and `status` are the ReplicationSource/-Destination's own objects, kept as
dicts, but the fields the hub reads from them (times, conditions, mover status, trigger) are
type-checked here so that a malformed report is a 422 at the door and never an error at query time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

Role = Literal["source", "destination"]
State = Literal["ok", "late", "never", "error", "paused"]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
# A namespace: a DNS-1123 label. A ReplicationSource/-Destination name: a DNS-1123 subdomain.
Dns1123Label = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=rf"^{_LABEL}$")]
Dns1123Subdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=rf"^{_LABEL}(\.{_LABEL})*$")
]
AgentId = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[^\x00-\x1f\x7f]+$")]

MAX_REPORTS_PER_BATCH = 1000
MAX_SEQUENCE = 2**53 - 1  # exact in every JSON implementation
MAX_REPORT_BYTES = 256 * 1024  # spec + status + annotations as JSON; a ConfigMap holds at most 1 MiB
_TIME_FIELDS = ("lastSyncTime", "lastSyncStartTime", "nextSyncTime")


def _check_time(where: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        raise ValueError(f"{where} must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where} is not an RFC 3339 time: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{where} must carry a time zone (e.g. a trailing Z)")


def _check_optional(where: str, value: Any, kind: type, what: str) -> None:
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{where} must be {what}")


def _check_status(status: dict[str, Any]) -> dict[str, Any]:
    for key in _TIME_FIELDS:
        _check_time(f"status.{key}", status.get(key))
    _check_optional("status.lastSyncDuration", status.get("lastSyncDuration"), str, "a duration string")
    _check_optional("status.latestImage", status.get("latestImage"), dict, "an object")
    mover = status.get("latestMoverStatus")
    _check_optional("status.latestMoverStatus", mover, dict, "an object")
    for key in ("result", "logs"):
        _check_optional(f"status.latestMoverStatus.{key}", (mover or {}).get(key), str, "a string")
    conditions = status.get("conditions")
    _check_optional("status.conditions", conditions, list, "a list")
    for i, cond in enumerate(conditions or []):
        if not isinstance(cond, dict) or not isinstance(cond.get("type"), str):
            raise ValueError(f"status.conditions[{i}] must be an object with a string type")
        for key in ("status", "reason", "message"):
            _check_optional(f"status.conditions[{i}].{key}", cond.get(key), str, "a string")
    return status


def _check_spec(spec: dict[str, Any]) -> dict[str, Any]:
    trigger = spec.get("trigger")
    _check_optional("spec.trigger", trigger, dict, "an object")
    for key in ("schedule", "manual"):
        _check_optional(f"spec.trigger.{key}", (trigger or {}).get(key), str, "a string")
    return spec


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Wire):
    model_config = ConfigDict(extra="forbid")


# -- agent side -------------------------------------------------------------------------------------
class Heartbeat(_Request):
    agent_id: AgentId
    version: Annotated[str, StringConstraints(max_length=64)] = ""
    sent_at: AwareDatetime


class HeartbeatReply(_Wire):
    lease_duration_seconds: float
    renew_interval_seconds: float


class ReplicationReport(_Request):
    """The latest state of one ReplicationSource/-Destination; `sequence` increases per object."""

    role: Role
    namespace: Dns1123Label
    name: Dns1123Subdomain
    sequence: int = Field(ge=0, le=MAX_SEQUENCE, description="Increases with every report of this object")
    observed_at: AwareDatetime
    deleted: bool = Field(False, description="The object is gone: forget it")
    spec: Annotated[dict[str, Any], AfterValidator(_check_spec)] = Field(
        default_factory=dict, description="The object's spec (the hub reads `trigger`)"
    )
    status: Annotated[dict[str, Any], AfterValidator(_check_status)] = Field(
        default_factory=dict,
        description="The object's status as VolSync defines it (the hub reads lastSyncTime, lastSyncDuration, "
        "nextSyncTime, latestImage, latestMoverStatus, conditions)",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="The object's annotations in the volsync-addon.io domain (e.g. rpo-seconds, peer)",
    )

    @model_validator(mode="after")
    def _bounded(self) -> ReplicationReport:
        size = len(json.dumps([self.spec, self.status, self.annotations], separators=(",", ":"), default=str))
        if size > MAX_REPORT_BYTES:
            raise ValueError(
                f"spec, status and annotations take {size} bytes as JSON; at most {MAX_REPORT_BYTES} are accepted")
        return self


class ReportBatch(_Request):
    agent_id: AgentId
    reports: list[ReplicationReport] = Field(max_length=MAX_REPORTS_PER_BATCH)


class ReportReply(_Wire):
    accepted: int
    stale: int


# -- user side --------------------------------------------------------------------------------------
class StateCounts(_Wire):
    ok: int = 0
    late: int = 0
    never: int = 0
    error: int = 0
    paused: int = 0


class PeerRef(_Wire):
    """The other side of a replication: the ReplicationDestination a source sends to, or its source."""

    cluster: str
    namespace: str
    name: str
    role: Role


class ClusterInfo(_Wire):
    name: str
    available: bool
    last_heartbeat: datetime | None = None
    agent_id: str | None = None
    addon_conditions: list[dict[str, Any]] = Field(default_factory=list)
    replications: StateCounts = Field(default_factory=StateCounts)


class ReplicationRow(_Wire):
    cluster: str
    namespace: str
    name: str
    role: Role
    last_sync_time: datetime | None = None
    last_sync_duration: str | None = None
    next_sync_time: datetime | None = None
    lag_seconds: float | None = None
    state: State
    state_message: str | None = Field(None, description="Why the state is not plainly ok (or what was ignored)")
    rpo_seconds: float | None = Field(None, description="The lag beyond which it is late, when that applies")
    peer: PeerRef | None = Field(None, description="The other side, when the hub recognises the pair")
    latest_image: dict[str, Any] | None = None
    mover_result: str | None = None
    mover_message: str | None = None
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    reported_at: datetime


class ClusterCounts(_Wire):
    available: int = 0
    total: int = 0


class Summary(_Wire):
    replications: StateCounts = Field(
        description="Replications: a recognised source/destination pair counts once (the worse state of its "
        "two sides), an unpaired source or destination counts alone")
    pairs: int = Field(0, description="Source/destination pairs the hub recognises")
    sources: StateCounts = Field(default_factory=StateCounts, description="ReplicationSources by state")
    destinations: StateCounts = Field(default_factory=StateCounts, description="ReplicationDestinations by state")
    clusters: ClusterCounts


class ErrorDetail(BaseModel):
    """FastAPI's error body: a message, or (422) a list of validation errors."""

    detail: str | list[dict[str, Any]]
