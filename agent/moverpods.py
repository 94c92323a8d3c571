"""What a mover Job is doing (pure): its state from the Job and its Pods, and its log for the status.

`observe_job` follows VolSync's reading of a mover Job: succeeded once a Pod succeeded (or the Job is
Complete); failed once `backoffLimit` Pods failed (or the Job is Failed), after which the caller
reports the newest failed Pod's log, emits `TransferFailed` and deletes the Job so the next
reconcile starts it again (retries unbounded by design). `log_tail` is the text of
`latestMoverStatus.logs`: rsync's summary lines only, the last 1 KiB of them.

`stuck` says why a mover Pod's container cannot start (a bad image, a bad container config), so
the replication can say it instead of waiting silently for a Job that never ends.

`agent/jobmovers.py` uses it to build the planners' views of a running mover.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from kube import objects

Obj = dict[str, Any]

JobState = Literal["Running", "Succeeded", "Failed", "Missing"]
LOG_MAX_BYTES = 1024
# a container waiting for one of these does not start until someone fixes the Pod's spec or image
STUCK_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError"})
DEFAULT_BACKOFF_LIMIT = 6  # Kubernetes' default when a Job does not say
# VolSync's filter of an rsync mover's log: the stats lines and the duration line.
_KEPT = re.compile(r"^\s*(sent .*bytes\s+received .*bytes|total size|Rsync completed in)")


@dataclass(frozen=True)
class JobObservation:
    """A mover Job as observed: its state, how many of its Pods failed, its newest Pod (for the log)."""

    state: JobState
    failed: int = 0
    pod: str | None = None  # the newest Pod of the Job (None: none yet)


def _condition(job: Obj, type_: str) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True" for c in conditions)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def job_pods(job: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The Pods of `job` (controller reference to its uid), oldest first (creation time, then name)."""
    uid = objects.uid_of(job)
    mine = [p for p in pods if uid and objects.owned_by(p, uid)]
    return sorted(mine, key=lambda p: (str(objects.meta(p).get("creationTimestamp") or ""), objects.name_of(p)))


def observe_job(job: Obj | None, pods: Iterable[Obj]) -> JobObservation:
    """The state of a mover Job: Missing (no Job), Succeeded, Failed (≥ backoffLimit failed Pods, or
    the Job controller gave up), else Running. `pods` may hold other Pods: only the Job's count.
    `pod` names the Pod whose end decided the state (Succeeded: the succeeded Pod; Failed: the last
    failed one; Running: the newest), not merely the newest: creation times have a one-second
    resolution, so a failed Pod and its replacement of the same second sort by their random names,
    and the replacement's success must not be read from its predecessor's exit code and message."""
    if job is None:
        return JobObservation("Missing")
    mine = job_pods(job, pods)
    status = job.get("status") or {}
    failed = max(_count(status.get("failed")), len(_in_phase(mine, "Failed")))
    newest = objects.name_of(mine[-1]) if mine else None
    limit = (job.get("spec") or {}).get("backoffLimit")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else DEFAULT_BACKOFF_LIMIT
    succeeded = _in_phase(mine, "Succeeded")
    if _condition(job, "Complete") or _count(status.get("succeeded")) > 0 or succeeded:
        return JobObservation("Succeeded", failed, _last(succeeded) or newest)
    if _condition(job, "Failed") or failed >= max(limit, 1):
        return JobObservation("Failed", failed, _last(_in_phase(mine, "Failed")) or newest)
    return JobObservation("Running", failed, newest)


def _in_phase(pods: list[Obj], phase: str) -> list[Obj]:
    return [p for p in pods if (p.get("status") or {}).get("phase") == phase]


def _last(pods: list[Obj]) -> str | None:
    """The name of the last of `pods` (the Pod whose end decided the Job's state)."""
    return objects.name_of(pods[-1]) if pods else None


def stuck(pod: Obj | None) -> str | None:
    """Why a mover Pod's container cannot start, when only the Pod's author can fix it (a bad image
    or container config: kubelet keeps retrying, and the Job never ends); None otherwise."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        waiting = ((status.get("state") or {}).get("waiting") or {}) if isinstance(status, dict) else {}
        if waiting.get("reason") in STUCK_REASONS:
            message = str(waiting.get("message") or "").strip()
            return f"mover Pod {objects.name_of(pod or {})}: {waiting['reason']}" + (f": {message}" if message else "")
    return None


def log_tail(text: str, *, keep_all: bool = False, max_bytes: int = LOG_MAX_BYTES) -> str:
    """`latestMoverStatus.logs` from a mover Pod's log: the lines VolSync keeps ("sent … bytes
    received … bytes", "total size …", "Rsync completed in …"), or every line with `keep_all` (a
    failed rsync mover's log), then only the last `max_bytes` bytes, cut at a line start."""
    lines = [line.rstrip() for line in text.splitlines()]
    kept = [line for line in lines if line and (keep_all or _KEPT.match(line))]
    tail = "\n".join(kept)
    data = tail.encode()
    if len(data) <= max_bytes:
        return tail
    cut = data[-max_bytes:]
    start = cut.find(b"\n") + 1  # a line cut in two is dropped
    if start == 0:  # one line longer than the limit: its last bytes, on a character boundary
        return cut.decode(errors="ignore")
    return cut[start:].decode()
