"""The Pod status kubelet writes, computed from a `PodPlan`: a pure function, no I/O.

`pod_status(pod, plan, extra)` returns the whole `status` object: phase (and reason/message for
a failed Pod), the conditions `PodScheduled`, `PodReadyToStartContainers`, `Initialized`,
`ContainersReady`, `Ready` (a condition keeps its `lastTransitionTime` while its status stays),
`initContainerStatuses`/`containerStatuses` (state waiting/running/terminated with the runtime's reason
and the termination message, `lastState`,
`restartCount`, `started`, `ready`, `containerID` as `local://<id>`), `podIP(s)`, `hostIP(s)`,
`startTime` and `qosClass`. The executor writes it with `patch_status` only when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kube.clock import rfc3339
from localcluster.node.podplans import ContainerView, Next, Observed, PodPlan, spec_of

Obj = dict[str, Any]


@dataclass(frozen=True)
class StatusExtras:
    """What the status needs beyond the plan: addresses, probe verdicts, waiting reasons."""

    now: datetime
    pod_ip: str = ""
    host_ip: str = ""
    ready: frozenset[str] = frozenset()  # container ids whose readiness probe passes (or have none)
    started: frozenset[str] = frozenset()  # container ids whose startup probe passed (or have none)
    image_errors: Mapping[str, str] = field(default_factory=dict)
    image_pull_backoff: frozenset[str] = frozenset()
    config_errors: Mapping[str, str] = field(default_factory=dict)  # CreateContainerConfigError messages
    mount_error: str = ""


def container_id(obs: Observed) -> str:
    return f"local://{obs.container_id}"


def _terminated(obs: Observed) -> Obj:
    code = obs.exit_code if obs.exit_code is not None else 137
    reason = obs.reason or ("Completed" if code == 0 else "Error")
    out: Obj = {"exitCode": code, "reason": reason, "containerID": container_id(obs)}
    if obs.message:
        out["message"] = obs.message
    if obs.started_at:
        out["startedAt"] = rfc3339(obs.started_at)
    if obs.finished_at:
        out["finishedAt"] = rfc3339(obs.finished_at)
    return {"terminated": out}


def _state(v: ContainerView, pod: Mapping[str, Any], extras: StatusExtras, initializing: bool) -> Obj:
    obs = v.latest
    if v.name in extras.image_errors and (obs is None or not obs.running):
        reason = "ImagePullBackOff" if v.name in extras.image_pull_backoff else "ErrImagePull"
        return {"waiting": {"reason": reason, "message": extras.image_errors[v.name]}}
    if v.name in extras.config_errors and (obs is None or not obs.running):
        return {"waiting": {"reason": "CreateContainerConfigError", "message": extras.config_errors[v.name]}}
    if obs is None:
        return {"waiting": {"reason": "PodInitializing" if initializing and not v.init else "ContainerCreating"}}
    if obs.running:
        return {"running": {"startedAt": rfc3339(obs.started_at or extras.now)}}
    if v.next is Next.BACKOFF:
        meta = pod.get("metadata") or {}
        delay = int((v.start_at - (obs.finished_at or extras.now)).total_seconds()) if v.start_at else 10
        return {"waiting": {"reason": "CrashLoopBackOff", "message": (
            f"back-off {delay}s restarting failed container={v.name} "
            f"pod={meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})")}}
    return _terminated(obs)


def container_status(v: ContainerView, spec_c: Mapping[str, Any], pod: Mapping[str, Any], extras: StatusExtras,
                     initializing: bool = False) -> Obj:
    obs = v.latest
    running = bool(obs and obs.running)
    state = _state(v, pod, extras, initializing)
    last: Obj = {}
    if obs is not None and "waiting" in state and not obs.running:
        last = _terminated(obs)
    elif v.previous is not None:
        last = _terminated(v.previous)
    out: Obj = {
        "name": v.name,
        "image": spec_c.get("image", ""),
        "imageID": (obs.image_id if obs else "") or "",
        "ready": running and obs is not None and obs.container_id in extras.ready,
        "restartCount": v.restart_count,
        "started": running and obs is not None and obs.container_id in extras.started,
        "state": state,
        "lastState": last,
    }
    if obs is not None:
        out["containerID"] = container_id(obs)
    return out


def qos_class(pod: Mapping[str, Any]) -> str:
    """Guaranteed / Burstable / BestEffort from the containers' cpu and memory requests and limits."""
    spec = spec_of(pod)
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    resources = [c.get("resources") or {} for c in containers]
    if not any((r.get("requests") or r.get("limits")) for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for res in ("cpu", "memory"):
            if res not in limits or str(requests.get(res, limits[res])) != str(limits[res]):
                return "Burstable"
    return "Guaranteed"


def _condition(type_: str, ok: bool, previous: Mapping[str, Obj], now: datetime, reason: str = "",
               message: str = "") -> Obj:
    status = "True" if ok else "False"
    prev = previous.get(type_)
    cond: Obj = {"type": type_, "status": status, "lastProbeTime": None}
    cond["lastTransitionTime"] = (prev or {}).get("lastTransitionTime") if prev and prev.get("status") == status \
        else rfc3339(now)
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def conditions(pod: Mapping[str, Any], plan: PodPlan, statuses: list[Obj], extras: StatusExtras) -> list[Obj]:
    prev = {c.get("type", ""): c for c in (pod.get("status") or {}).get("conditions") or []}
    inits = [v for v in plan.containers if v.init]
    pending_inits = [v.name for v in inits if v.init_pending or (not v.sidecar and v.latest and v.latest.exit_code)]
    unready = [s["name"] for s in statuses if not s["ready"]]
    terminal = plan.phase in ("Succeeded", "Failed")
    initialized = not pending_inits or (terminal and not inits)
    ready_reason = "PodCompleted" if terminal else ("ContainersNotReady" if unready else "")
    init_reason = "" if initialized else "ContainersNotInitialized"
    msg = f"containers with unready status: [{' '.join(unready)}]" if unready and not terminal else ""
    return [
        _condition("PodReadyToStartContainers", bool(extras.pod_ip) and not terminal, prev, extras.now),
        _condition("Initialized", initialized, prev, extras.now, init_reason,
                   f"containers with incomplete status: [{' '.join(pending_inits)}]" if init_reason else ""),
        _condition("Ready", not unready and not terminal, prev, extras.now, ready_reason, msg),
        _condition("ContainersReady", not unready and not terminal, prev, extras.now, ready_reason, msg),
        _condition("PodScheduled", True, prev, extras.now),
    ]


def pod_status(pod: Mapping[str, Any], plan: PodPlan, extras: StatusExtras) -> Obj:
    """The full `status` for `pod` after `plan` (see the module docstring)."""
    spec = spec_of(pod)
    current = pod.get("status") or {}
    specs = {(True, c.get("name")): c for c in spec.get("initContainers") or []}
    specs.update({(False, c.get("name")): c for c in spec.get("containers") or []})
    inits = [container_status(v, specs.get((True, v.name), {}), pod, extras) for v in plan.containers if v.init]
    initializing = any(v.init_pending for v in plan.containers if v.init)
    apps = [container_status(v, specs.get((False, v.name), {}), pod, extras, initializing)
            for v in plan.containers if not v.init]
    status: Obj = {
        "phase": plan.phase,
        "conditions": conditions(pod, plan, apps, extras),
        "containerStatuses": apps,
        "qosClass": qos_class(pod),
        "startTime": current.get("startTime") or rfc3339(extras.now),
    }
    if inits:
        status["initContainerStatuses"] = inits
    if plan.reason:
        status["reason"] = plan.reason
    if plan.message:
        status["message"] = plan.message
    if extras.host_ip:
        status["hostIP"] = extras.host_ip
        status["hostIPs"] = [{"ip": extras.host_ip}]
    if extras.pod_ip:
        status["podIP"] = extras.pod_ip
        status["podIPs"] = [{"ip": extras.pod_ip}]
    return status


def status_patch(current: Mapping[str, Any], desired: Obj) -> Obj | None:
    """A merge patch turning `current` status into `desired` (None when nothing changes)."""
    patch: Obj = {k: v for k, v in desired.items() if current.get(k) != v}
    for gone in ("reason", "message"):
        if gone in current and gone not in desired:
            patch[gone] = None
    return patch or None
