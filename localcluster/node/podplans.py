"""What the kubelet should do next for one Pod: a pure planner over the Pod and its containers.

`plan_pod(pod, observed, facts)` takes the Pod as the API holds it, every attempt of every
container as the runtime recorded it (`Observed`, one per start), and what the executor knows
besides (`PodFacts`: the time, images it cannot map, a volume it cannot mount, containers whose
liveness probe failed, whether the Pod was already sent SIGTERM) and returns a `PodPlan` of typed
actions. Nothing here reads a clock, a file or the API: the same inputs give the same plan, so
adoption after `kill -9` is just planning again from what is on disk.

Kubelet semantics followed:
- init containers run one at a time in order, each to a zero exit, before any app container;
  a failed init container is restarted unless `restartPolicy: Never` (then the Pod fails);
- an init container with `restartPolicy: Always` is a sidecar: started in order but not waited for
  (the next one starts once it runs), restarted whenever it exits, stopped once every app container
  ended for good (a Job's Pod), and left out of the Pod's phase;
- app containers are (re)started per `restartPolicy` (Always / OnFailure / Never) with the crash
  back-off of kubelet: 10 s after the first exit, doubling to 300 s; a run of 10 minutes resets it;
- `activeDeadlineSeconds` past `status.startTime` stops everything (phase Failed, DeadlineExceeded);
- a Pod being deleted gets SIGTERM, SIGKILL at its deadline, then `Finish` (detach, remove, delete).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from kube.clock import parse_rfc3339

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0
DEFAULT_GRACE = 30


@dataclass(frozen=True)
class Observed:
    """One start of one container, as the runtime recorded it."""

    name: str
    attempt: int
    container_id: str
    running: bool
    exit_code: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    image_id: str = ""
    reason: str | None = None  # the runtime's (StartError, ContainerStatusUnknown); None: Completed/Error
    message: str = ""  # the termination message (`termination.py`) once it ended


@dataclass(frozen=True)
class PodFacts:
    """What the executor knows about the Pod besides the API object and the runtime's records."""

    now: datetime
    image_errors: Mapping[str, str] = field(default_factory=dict)  # container name -> message
    mount_error: str = ""
    unhealthy: frozenset[str] = frozenset()  # container ids whose liveness (or startup) probe failed
    term_sent: bool = False  # SIGTERM already sent to the Pod's running containers
    term_deadline: datetime | None = None  # for Pods gone from the API: when SIGKILL is due
    orphan: bool = False  # the Pod is no longer in the API


class Next(Enum):
    """Where one container stands."""

    START = "start"  # never started, may start now
    RUNNING = "running"
    BACKOFF = "backoff"  # exited, will be restarted at `start_at`
    DONE = "done"  # exited and stays so
    BLOCKED = "blocked"  # cannot start (image, volume, earlier init container)


@dataclass(frozen=True)
class ContainerView:
    """A container of the spec with its history folded into what happens next."""

    name: str
    init: bool
    latest: Observed | None
    previous: Observed | None
    restart_count: int
    next: Next
    start_at: datetime | None = None
    sidecar: bool = False  # an init container with `restartPolicy: Always`

    @property
    def init_pending(self) -> bool:
        """An init container the app containers still wait for (a sidecar: until its first start)."""
        if self.sidecar:
            return self.latest is None
        return self.next is not Next.DONE


@dataclass(frozen=True)
class StartContainer:
    """Start attempt `attempt` of the init (`init`) or app container `name`."""

    name: str
    attempt: int
    init: bool


@dataclass(frozen=True)
class KillContainers:
    """Signal running containers: `force` → SIGKILL, else SIGTERM (then SIGKILL at `deadline`)."""

    container_ids: tuple[str, ...]
    force: bool
    reason: str


@dataclass(frozen=True)
class Finish:
    """Every container is gone: detach the network, remove the Pod's state, final delete."""


Action = StartContainer | KillContainers | Finish


@dataclass(frozen=True)
class PodPlan:
    """The planner's answer: actions to take now, every container's view, the Pod's phase (with
    reason and message when terminal), and when to look again."""

    actions: tuple[Action, ...]
    containers: tuple[ContainerView, ...]
    phase: str
    reason: str = ""
    message: str = ""
    requeue_after: float | None = None


def spec_of(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = pod.get("spec") or {}
    return spec


def backoff_delay(history: Sequence[Observed]) -> float:
    """Kubelet's crash back-off before the next start, from the exited attempts (oldest first)."""
    crashes = 0
    for run in reversed(history):
        if run.running or run.started_at is None or run.finished_at is None:
            break
        if (run.finished_at - run.started_at).total_seconds() >= BACKOFF_RESET_AFTER:
            break
        crashes += 1
    return float(min(BACKOFF_INITIAL * 2 ** max(crashes - 1, 0), BACKOFF_MAX))


def _restarts(policy: str, init: bool, exit_code: int | None) -> bool:
    if init:
        return policy != "Never" and exit_code != 0
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def view_container(name: str, init: bool, history: Sequence[Observed], policy: str,
                   blocked: bool, sidecar: bool = False) -> ContainerView:
    """Fold one container's attempts (any order) into a `ContainerView` (a sidecar restarts always)."""
    if sidecar:
        policy, init = "Always", False
    runs = sorted(history, key=lambda o: o.attempt)
    latest = runs[-1] if runs else None
    previous = runs[-2] if len(runs) > 1 else None
    count = latest.attempt if latest else 0
    if latest is None:
        nxt, at = (Next.BLOCKED if blocked else Next.START), None
    elif latest.running:
        nxt, at = Next.RUNNING, None
    elif _restarts(policy, init, latest.exit_code):
        finished = latest.finished_at or latest.started_at
        at = finished + timedelta(seconds=backoff_delay(runs)) if finished else None
        nxt = Next.BLOCKED if blocked else Next.BACKOFF
    else:
        nxt, at = Next.DONE, None
    return ContainerView(name, init or sidecar, latest, previous, count, nxt, at, sidecar)


def observe_views(pod: Mapping[str, Any], observed: Sequence[Observed], facts: PodFacts) -> list[ContainerView]:
    """Init containers (in order) then app containers, each folded into a view."""
    spec = spec_of(pod)
    policy = str(spec.get("restartPolicy") or "Always")
    by_name: dict[str, list[Observed]] = {}
    for o in observed:
        by_name.setdefault(o.name, []).append(o)
    views: list[ContainerView] = []
    for init, key in ((True, "initContainers"), (False, "containers")):
        for c in spec.get(key) or []:
            name = str(c.get("name", ""))
            blocked = bool(facts.mount_error) or name in facts.image_errors
            sidecar = init and c.get("restartPolicy") == "Always"
            views.append(view_container(name, init, by_name.get(name, []), policy, blocked, sidecar))
    return views


def _running_ids(views: Sequence[ContainerView]) -> tuple[str, ...]:
    return tuple(v.latest.container_id for v in views if v.latest and v.latest.running)


def deadline_exceeded(pod: Mapping[str, Any], now: datetime) -> bool:
    limit = spec_of(pod).get("activeDeadlineSeconds")
    started = parse_rfc3339((pod.get("status") or {}).get("startTime"))
    return isinstance(limit, int) and started is not None and (now - started).total_seconds() >= limit


def _terminating(views: Sequence[ContainerView], pod: Mapping[str, Any], facts: PodFacts,
                 phase: str) -> PodPlan:
    running = _running_ids(views)
    if not running:
        return PodPlan((Finish(),), tuple(views), phase)
    deadline = facts.term_deadline or parse_rfc3339((pod.get("metadata") or {}).get("deletionTimestamp"))
    if deadline is not None and facts.now >= deadline:
        return PodPlan((KillContainers(running, True, "Killing"),), tuple(views), phase, requeue_after=1.0)
    wait = 1.0 if deadline is None else min(1.0, max((deadline - facts.now).total_seconds(), 0.05))
    if facts.term_sent:
        return PodPlan((), tuple(views), phase, requeue_after=wait)
    return PodPlan((KillContainers(running, False, "Killing"),), tuple(views), phase, requeue_after=wait)


def plan_pod(pod: Mapping[str, Any], observed: Sequence[Observed], facts: PodFacts) -> PodPlan:
    """The next actions for `pod` (see the module docstring)."""
    views = observe_views(pod, observed, facts)
    current = str((pod.get("status") or {}).get("phase") or "Pending")
    if facts.orphan or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return _terminating(views, pod, facts, current if current in ("Succeeded", "Failed") else phase_of(views, pod))
    if current in ("Succeeded", "Failed"):
        running = _running_ids(views)
        kills: tuple[Action, ...] = (KillContainers(running, True, "Killing"),) if running else ()
        status = pod.get("status") or {}
        return PodPlan(kills, tuple(views), current, str(status.get("reason") or ""), str(status.get("message") or ""))
    if deadline_exceeded(pod, facts.now):
        running = _running_ids(views)
        limit = spec_of(pod).get("activeDeadlineSeconds")
        acts: tuple[Action, ...] = (KillContainers(running, True, "DeadlineExceeded"),) if running else ()
        return PodPlan(acts, tuple(views), "Failed", "DeadlineExceeded",
                       f"Pod was active on the node longer than the specified deadline ({limit}s)")
    return _progress(views, pod, facts)


def _progress(views: list[ContainerView], pod: Mapping[str, Any], facts: PodFacts) -> PodPlan:
    actions: list[Action] = []
    unhealthy = tuple(v.latest.container_id for v in views
                      if v.latest and v.latest.running and v.latest.container_id in facts.unhealthy)
    if unhealthy:
        actions.append(KillContainers(unhealthy, False, "Unhealthy"))
    waits: list[datetime] = []
    apps = [v for v in views if not v.init]
    apps_ended = bool(apps) and all(v.next is Next.DONE for v in apps)
    for v in (v for v in views if v.init):
        if v.sidecar and not v.init_pending:
            if not apps_ended:
                _advance(v, actions, waits, facts.now)  # restart a sidecar that exited
            continue
        if not v.init_pending:
            continue
        _advance(v, actions, waits, facts.now)
        break
    else:
        if apps_ended:  # a Job's Pod: its sidecars are stopped, not restarted
            ids = tuple(v.latest.container_id for v in views if v.sidecar and v.latest and v.latest.running)
            actions += [KillContainers(ids, False, "Killing")] if ids else []
        for v in apps:
            _advance(v, actions, waits, facts.now)
    phase = phase_of(views, pod)
    requeue = 1.0 if _running_ids(views) or actions else None
    if waits:
        until = max(min(waits) - facts.now, timedelta(seconds=0.05)).total_seconds()
        requeue = min(requeue or until, until)
    if facts.image_errors or facts.mount_error:
        requeue = min(requeue or 10.0, 10.0)
    return PodPlan(tuple(actions), tuple(views), phase, requeue_after=requeue)


def _advance(v: ContainerView, actions: list[Action], waits: list[datetime], now: datetime) -> None:
    if v.next is Next.START:
        actions.append(StartContainer(v.name, 0, v.init))
    elif v.next is Next.BACKOFF and v.latest is not None:
        if v.start_at is None or now >= v.start_at:
            actions.append(StartContainer(v.name, v.latest.attempt + 1, v.init))
        else:
            waits.append(v.start_at)


def phase_of(views: Sequence[ContainerView], pod: Mapping[str, Any]) -> str:
    """The Pod phase kubelet reports for these containers (its getPhase, without `Unknown`)."""
    for v in (v for v in views if v.init):
        if not v.sidecar and v.next is Next.DONE and v.latest is not None and v.latest.exit_code != 0:
            return "Failed"
        if v.init_pending:
            return "Pending"
    apps = [v for v in views if not v.init]
    if any(v.latest is None for v in apps):
        return "Pending"
    if any(v.next in (Next.RUNNING, Next.BACKOFF) or (v.next is Next.BLOCKED and v.latest) for v in apps):
        return "Running"
    if all(v.latest is not None and v.latest.exit_code == 0 for v in apps):
        return "Succeeded"
    return "Failed"
