"""Watch streams with local receive times, and the mover Jobs' start-up costs read from them.

`ClusterApi` is one cluster of the fleet's API server over HTTPS (its private CA, the kubeconfig's
token). `EventLog` runs one raw watch (`?watch=true` from the current resourceVersion) in a thread
and keeps every event with the `time.perf_counter()` at which it arrived: Kubernetes timestamps have
one-second resolution, far too coarse for a Job's start-up, so the clock here is the receive time of
events that all pass through the same API server.

`job_timings` pairs each Job (by uid) with its Pods (label `controller-uid`) and returns when the Job
was first seen, when its Pod's container was first seen running (or already terminated), when that
container was first seen terminated, and when the Job was first seen Complete or Failed.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from common import WatchThread, check, http_client

Obj = dict[str, Any]
Event = tuple[float, str, Obj]  # (receive time, ADDED/MODIFIED/DELETED, object)
UID_LABEL = "controller-uid"


class ClusterApi:
    """One cluster of an API server with authentication: HTTPS with its CA, the context's token."""

    def __init__(self, base: str, ca_file: str, token: str) -> None:
        self.base = base
        self.verify = ssl.create_default_context(cafile=ca_file)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.http = self.client(httpx.Timeout(30.0))

    def client(self, timeout: httpx.Timeout) -> httpx.Client:
        return http_client(self.base, timeout, verify=self.verify, headers=self.headers)

    def get(self, path: str, **params: str) -> Obj:
        body: Obj = check(self.http.get(path, params=params), 200)
        return body

    def merge_patch(self, path: str, patch: Obj) -> Obj:
        body: Obj = check(self.http.patch(path, content=json.dumps(patch),
                                          headers={"Content-Type": "application/merge-patch+json"}), 200)
        return body

    def close(self) -> None:
        self.http.close()


class EventLog(WatchThread):
    """Every event of one watch, with its local receive time (a thread; `stop()` ends it)."""

    def __init__(self, api: ClusterApi, path: str) -> None:
        super().__init__(api.client(httpx.Timeout(30.0, read=None)), path)
        self.api = api
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def start(self) -> EventLog:
        self.start_at(str(self.api.get(self.path, limit="1")["metadata"]["resourceVersion"]))
        return self

    def snapshot(self) -> list[Event]:
        if self.failure is not None:
            raise RuntimeError(f"watch {self.path} failed: {self.failure!r}")
        with self._lock:
            return list(self.events)

    def first(self, match: Callable[[Obj], bool], after: float = 0.0) -> float | None:
        """The receive time of the first event after `after` whose object matches."""
        return next((t for t, _kind, obj in self.snapshot() if t >= after and match(obj)), None)

    def handle(self, arrived: float, event: Obj) -> None:
        with self._lock:
            self.events.append((arrived, str(event.get("type")), event.get("object") or {}))


def container_state(pod: Obj) -> str | None:
    """"running" or "terminated" once the Pod's (first) container has started, else None."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    state = (statuses[0].get("state") or {}) if statuses else {}
    return "terminated" if "terminated" in state else "running" if "running" in state else None


def finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


@dataclass
class JobTiming:
    """One Job's life in receive times (None: not seen)."""

    name: str
    uid: str
    seen: float
    running: float | None = None  # its Pod's container first seen running (or already terminated)
    exited: float | None = None  # its Pod's container first seen terminated
    finished: float | None = None  # the Job first seen Complete or Failed

    @property
    def start_up(self) -> float | None:
        return None if self.running is None else self.running - self.seen


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def job_timings(jobs: list[Event], pods: list[Event], prefix: str = "") -> list[JobTiming]:
    """Every Job whose name starts with `prefix` and that was created while the watch ran (first seen in an
    ADDED event: a Job from before has no creation time here), in the order they were first seen."""
    found: dict[str, JobTiming] = {}
    for t, kind, job in jobs:
        uid = _uid(job)
        if not uid or not _name(job).startswith(prefix) or (uid not in found and kind != "ADDED"):
            continue
        timing = found.setdefault(uid, JobTiming(_name(job), uid, t))
        if timing.finished is None and finished(job):
            timing.finished = t
    for t, _kind, pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        owner = found.get(str(labels.get(UID_LABEL) or labels.get(f"batch.kubernetes.io/{UID_LABEL}") or ""))
        state = container_state(pod)
        if owner is None or state is None:
            continue
        if owner.running is None:
            owner.running = t
        if state == "terminated" and owner.exited is None:
            owner.exited = t
    return sorted(found.values(), key=lambda j: j.seen)
