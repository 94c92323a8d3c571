"""The mover runtime: every mover is a Kubernetes Job, created, observed and deleted through the API.

The planners (`source.py`, `destination.py`) speak of transfers and servers; this layer turns their
actions into Jobs in VolSync's shape (`agent.jobs` renders them, `agent.moverpods` reads them) and
their Jobs back into the planners' views:

- a ReplicationSource's transfer is the Job `volsync-rsync-src-<rs>`, annotated with the iteration it
  pushes for (`volsync-addon.io/iteration`); it succeeded once the Job did, its log tail (the Pod's
  log, read once per finished Job) becomes `latestMoverStatus.logs`; a Job stuck on an image the
  agent no longer uses reads as no transfer, so the planner's next start replaces it;
- a ReplicationDestination's server is the Job `volsync-rsync-dst-<rd>` of the iteration it receives
  for; it completed when its Pod exited (the exit code is the one the source signalled; the
  container's termination message `{"code": N, "sourceIteration": ...}` names the source's iteration).
  A Job that succeeded is read from its succeeded Pod only, waited for while the Pods informer has
  not delivered its exit yet. A Pod that cannot start (bad image or container config) is the
  server's `error`, the destination's Error condition, instead of a silent wait; such a Job made
  with another image than the agent's is replaced (Job templates are immutable: the agent restarted
  with a corrected `--mover-image` would otherwise wait on it for good).

A Job of another iteration is deleted first (Background: the garbage collector takes its Pods) and the
new one created once the old is gone; deletions and creations are idempotent, so a restarted agent
finds its iteration's Job and goes on. The informers lag behind our own writes, so both are
remembered until they show (read your writes, the Job controller's "expectations"):

- a Job this agent created, until the informer delivers it, so a reconcile in between never starts a
  second mover; trusted for `CREATED_TTL` at most, as Kubernetes' expectations expire, so a Job
  deleted before the informer ever listed it cannot leave a phantom "running" mover forever;
- a Job this agent deleted, until the informer drops it (or shows another uid under its name): it
  reads as being deleted, so its outcome, already recorded, is never reported (nor a failure
  counted, nor an image published) a second time from the informer's older copy.

Both are keyed by the Job's name, so what is kept is bounded by the number of replications.
The per-mover ServiceAccount, Role and RoleBinding (unless `moverServiceAccount` names the user's
own) are ensured before each Job is created (three creates, 409 when present: a deleted account
comes back on the next iteration instead of leaving every later Job without Pods). Consecutive
failed transfers (in memory: a restart starts the backoff afresh) decide when the next attempt may
start.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent import jobs, moverpods
from agent.destination import ServerView
from agent.plans import Serve, StartTransfer
from agent.source import TransferView, retry_time
from kube import objects
from kube.clock import Clock
from kube.rest import JOBS, ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS, Kube, Resource

log = logging.getLogger("volsync.movers")

Obj = dict[str, Any]
JobLookup = Callable[[str, str], Obj | None]  # (namespace, name) -> the cached Job
PodLookup = Callable[[str], list[Obj]]  # namespace -> the cached mover Pods
JobKey = tuple[str, str]  # (namespace, Job name)
LOG_READ_LINES = 400  # the end of the log: rsync's summary follows one itemized line per file
LOG_READ_BYTES = 256 * 1024
CREATED_TTL = timedelta(minutes=5)  # Kubernetes' ExpectationsTimeout


def _role_of(owner: Obj) -> str:
    return jobs.ROLES[str(owner.get("kind"))]


def _iteration_of(job: Obj) -> str:
    return objects.annotations_of(job).get(jobs.ANNOTATION_ITERATION, "")


def terminated(pod: Obj | None) -> Obj:
    """The `state.terminated` of a mover Pod's container (empty while it runs)."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if isinstance(status, dict) and status.get("name") == "rsync":
            state = (status.get("state") or {}).get("terminated")
            return state if isinstance(state, dict) else {}
    return {}


def completion_of(pod: Obj | None, fallback: int) -> tuple[int, str | None]:
    """(code the source signalled, its iteration) from a destination Pod's termination message; the
    container's exit code (or `fallback`) when the message is missing or unreadable."""
    state = terminated(pod)
    code = state.get("exitCode")
    code = code if isinstance(code, int) and not isinstance(code, bool) else fallback
    try:
        message = json.loads(str(state.get("message") or ""))
    except ValueError:
        return code, None
    if not isinstance(message, dict):
        return code, None
    signalled, source = message.get("code"), message.get("sourceIteration")
    signalled = signalled if isinstance(signalled, int) and not isinstance(signalled, bool) else code
    return signalled, source if isinstance(source, str) and source else None


class JobMovers:
    """Movers as Jobs for one agent: `jobs_cache`/`pods_cache` read its informers (label-selected)."""

    def __init__(self, kube: Kube, jobs_cache: JobLookup, pods_cache: PodLookup, *, image: str, clock: Clock,
                 retries: int | None = None) -> None:
        self.kube = kube
        self.image = image
        self.clock = clock
        self.retries = retries
        self._jobs_cache = jobs_cache
        self._pods_cache = pods_cache
        self._lock = threading.Lock()
        self._created: dict[JobKey, tuple[Obj, datetime]] = {}  # created, not yet seen by the informer
        self._deleted: dict[JobKey, str] = {}  # the uid of a Job we deleted, until the informer drops it
        self._logs: dict[JobKey, tuple[str, str]] = {}  # a finished Job's (uid, log tail)
        self._failures: dict[str, tuple[int, datetime]] = {}

    # -- reading ------------------------------------------------------------------------------------
    def _job(self, owner: Obj) -> tuple[Obj | None, bool]:
        """(the owner's mover Job, whether it is going): the informer's copy, or the one just created
        if it has none yet; going when it is being deleted, or we deleted it and the informer lags."""
        key = (objects.namespace_of(owner), jobs.mover_name(_role_of(owner), objects.name_of(owner)))
        cached = self._jobs_cache(*key)
        uid = objects.uid_of(cached) if cached is not None else None
        with self._lock:
            if key in self._deleted and self._deleted[key] != uid:
                del self._deleted[key]  # the informer dropped it (or shows a newer Job of that name)
            deleted = key in self._deleted
            record = self._created.get(key)
            if record is not None and (uid == objects.uid_of(record[0]) or self.clock.now() - record[1] > CREATED_TTL):
                del self._created[key]  # delivered, or never will be (deleted before it was listed)
                record = None
        created = record[0] if record is not None else None
        if cached is not None:
            return cached, deleted or objects.is_deleting(cached)
        return created, False

    def _observe(self, owner: Obj) -> tuple[Obj, moverpods.JobObservation, Obj | None] | None:
        job, going = self._job(owner)
        if job is None or going or not objects.owned_by(job, objects.uid_of(owner)):
            return None
        pods = self._pods_cache(objects.namespace_of(owner))
        seen = moverpods.observe_job(job, pods)
        newest = next((p for p in reversed(moverpods.job_pods(job, pods)) if objects.name_of(p) == seen.pod), None)
        return job, seen, newest

    def _log_tail(self, job: Obj, pod: str | None, *, failed: bool) -> str:
        """The finished Job's `latestMoverStatus.logs` (read once; "" when the log cannot be read)."""
        uid, key = objects.uid_of(job), (objects.namespace_of(job), objects.name_of(job))
        with self._lock:
            kept = self._logs.get(key)
            if kept is not None and kept[0] == uid:
                return kept[1]
        text = ""
        if pod:
            try:
                text = self.kube.pod_log(pod, objects.namespace_of(job), container="rsync",
                                         tail_lines=LOG_READ_LINES, limit_bytes=LOG_READ_BYTES)
            except ApiException as exc:
                log.warning("cannot read the log of mover Pod %s/%s: %s", objects.namespace_of(job), pod, exc.reason)
        tail = moverpods.log_tail(text, keep_all=failed)
        with self._lock:
            self._logs[key] = (uid, tail)
        return tail

    def transfer(self, owner: Obj) -> TransferView | None:
        """The source's transfer of its current Job (None: no Job, or one being deleted)."""
        found = self._observe(owner)
        if found is None:
            return None
        job, seen, pod = found
        iteration = _iteration_of(job)
        if seen.state == "Running":
            # a Job stuck on an image we no longer use is no transfer: the planner starts one, which replaces it
            if self._stuck_on_old_image(job):
                return None
            return TransferView(iteration, running=True, error=moverpods.stuck(pod))
        failed = seen.state == "Failed"
        logs = self._log_tail(job, seen.pod, failed=failed)
        code = terminated(pod).get("exitCode")
        exit_code = code if isinstance(code, int) and not isinstance(code, bool) else (1 if failed else 0)
        return TransferView(iteration, running=False, succeeded=not failed, logs=logs, exit_code=exit_code)

    def server(self, owner: Obj) -> ServerView | None:
        """The destination's server: the iteration its Job receives for, and the completion once it exited."""
        found = self._observe(owner)
        if found is None:
            return None
        job, seen, pod = found
        iteration = _iteration_of(job)
        if seen.state == "Running":
            return ServerView(iteration=iteration, error=moverpods.stuck(pod))
        if seen.state == "Succeeded" and ((pod or {}).get("status") or {}).get("phase") != "Succeeded":
            # The Job's success reached us before its Pod's (two informers): wait for the Pod's exit
            # and the termination message naming the source iteration the image holds. Never read
            # the exit code of a failed predecessor: with no succeeded Pod to read, the Job's word.
            if pod is not None and not terminated(pod):
                return ServerView(iteration=iteration)
            pod = None
        code, source = completion_of(pod, 0 if seen.state == "Succeeded" else 1)
        if seen.state == "Failed" and code == 0:
            code = 1  # the Job failed whatever the message says: never an image
        return ServerView(iteration=iteration, completion=code, source_iteration=source)

    def retry_state(self, key: str) -> tuple[int, datetime | None]:
        with self._lock:
            count, at = self._failures.get(key, (0, None))
        return count, at

    # -- acting -------------------------------------------------------------------------------------
    def start_transfer(self, owner: Obj, action: StartTransfer) -> None:
        view = jobs.MoverView.of(owner, pvc=action.pvc, secret=action.secret)
        self._run(owner, view, action.iteration, lambda: jobs.source_job(
            view, image=self.image, address=action.address, port=action.port, iteration=action.iteration,
            retries=self.retries))

    def serve(self, owner: Obj, action: Serve) -> None:
        view = jobs.MoverView.of(owner, pvc=action.pvc, secret=action.secret)
        self._run(owner, view, action.iteration,
                  lambda: jobs.destination_job(view, image=self.image, iteration=action.iteration))

    def _run(self, owner: Obj, view: jobs.MoverView, iteration: str, render: Callable[[], Obj]) -> None:
        """Make the owner's mover Job the one of `iteration`: replace another iteration's (or a
        stranger's) Job, or one stuck on an image this agent no longer uses; create it when there is
        none; a Job being deleted is waited for."""
        job, going = self._job(owner)
        if job is not None:
            mine = objects.owned_by(job, objects.uid_of(owner)) and _iteration_of(job) == iteration
            if (not mine or self._stuck_on_old_image(job)) and not going:
                self._delete(job)
            return
        self._ensure_account(view)
        created = self._create(JOBS, render())
        if created is not None:
            with self._lock:
                self._created[(view.namespace, objects.name_of(created))] = (created, self.clock.now())

    def _stuck_on_old_image(self, job: Obj) -> bool:
        """A Job whose Pod cannot start, made with another image than ours (e.g. the agent restarted
        with a corrected `--mover-image`): its template is immutable and it never ends by itself."""
        containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        if not containers or containers[0].get("image") == self.image:
            return False
        pods = moverpods.job_pods(job, self._pods_cache(objects.namespace_of(job)))
        return bool(pods) and moverpods.stuck(pods[-1]) is not None

    def _ensure_account(self, view: jobs.MoverView) -> None:
        """The mover's generated ServiceAccount, Role and RoleBinding (none with `moverServiceAccount`)."""
        for res, obj in ((SERVICE_ACCOUNTS, jobs.mover_service_account(view)), (ROLES, jobs.mover_role(view)),
                         (ROLE_BINDINGS, jobs.mover_role_binding(view))):
            if obj is not None:
                self._create(res, obj)

    def _create(self, res: Resource, obj: Obj) -> Obj | None:
        """Create `obj`; None when it exists already (409)."""
        try:
            return self.kube.create(res, obj)
        except ApiException as exc:
            if exc.status != 409:
                raise
            return None

    def _delete(self, job: Obj) -> None:
        key, uid = (objects.namespace_of(job), objects.name_of(job)), objects.uid_of(job)
        with self._lock:
            self._created.pop(key, None)
            self._logs.pop(key, None)
        self.kube.delete(JOBS, key[1], key[0], preconditions={"uid": uid})  # False: gone already
        with self._lock:
            self._deleted[key] = uid

    def _delete_if(self, owner: Obj, iteration: str | None, *, only_running: bool = False) -> None:
        found = self._observe(owner)
        if found is None:
            return
        job, seen, _ = found
        if iteration is not None and _iteration_of(job) != iteration:
            return
        if only_running and seen.state != "Running":
            return
        self._delete(job)

    def forget_transfer(self, owner: Obj, key: str, failed: bool) -> None:
        """The transfer's outcome was recorded: its Job goes; a failure pushes the next start back."""
        self._delete_if(owner, None)
        with self._lock:
            if failed:
                count = self._failures.get(key, (0, self.clock.now()))[0] + 1
                self._failures[key] = (count, retry_time(self.clock.now(), count))  # the planner's backoff
            else:
                self._failures.pop(key, None)

    def cancel_transfer(self, owner: Obj) -> None:
        self._delete_if(owner, None)

    def stop_receiving(self, owner: Obj, iteration: str) -> None:
        """No more data for `iteration` (paused): a running destination Job goes; one that already
        exited keeps its completion for when the replication resumes."""
        self._delete_if(owner, iteration, only_running=True)

    def end_iteration(self, owner: Obj, iteration: str) -> None:
        """The iteration is over (published, or failed): its destination Job goes."""
        self._delete_if(owner, iteration)

    def forget(self, key: str) -> None:
        """The replication `role/namespace/name` is gone (its Jobs go with it, by garbage collection):
        drop what we kept."""
        role, ns, name = key.split("/", 2)
        job = (ns, jobs.mover_name(role, name))
        with self._lock:
            self._failures.pop(key, None)
            self._created.pop(job, None)
            self._deleted.pop(job, None)
            self._logs.pop(job, None)
