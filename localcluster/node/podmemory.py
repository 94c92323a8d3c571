"""What the kubelet keeps about a Pod between syncs (`PodMemory`: timing refinements and one-off
events only; everything else is re-derived from the API and the runtime's files), and how a
container start is named for the planner (`container_key`, `observe`)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from localcluster.node.netseam import PodAttachment
from localcluster.node.podplans import DEFAULT_GRACE, Observed
from localcluster.node.runtime import ContainerRecord

Obj = dict[str, Any]


def container_key(rec: ContainerRecord) -> str:
    return f"{rec.pod_uid}.{rec.name}.{rec.attempt}"


def observe(rec: ContainerRecord, image_id: str = "", message: str = "") -> Observed:
    return Observed(rec.name, rec.attempt, container_key(rec), rec.running, rec.exit_code, rec.started_at,
                    rec.finished_at, image_id, rec.reason, message)


@dataclass
class PodMemory:
    """What the kubelet remembers about one Pod between syncs (timing refinements only)."""

    key: Hashable
    grace: int = DEFAULT_GRACE
    term_deadline: datetime | None = None
    term_sent: bool = False
    status: Obj | None = None
    attachment: PodAttachment | None = None
    prepared_at: datetime | None = None  # volumes last written (re-synced every REFRESH_SECONDS)
    names: set[str] = field(default_factory=set)
    pull_failures: dict[str, int] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # one-off events already recorded
    signalled: dict[str, datetime] = field(default_factory=dict)  # container id -> SIGKILL due (SIGTERM sent)
