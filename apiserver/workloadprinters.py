"""Printer columns of the workload, node, discovery and registration kinds, as kubectl 1.32 shows them.

The cells follow kube-apiserver's internal printers: a Pod's STATUS is the reason a user needs
(`Init:0/1`, `ErrImagePull`, `Completed`, `Terminating`), RESTARTS carries the age of the last
restart, a Job's STATUS is its terminal or suspended condition, a Node's is its Ready condition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apiserver.printers import AGE, NONE, col, get
from apiserver.resources import Column, Obj
from apiserver.tables import age, human_duration, parse_time


def _state_reason(state: Obj, prefix: str = "") -> str | None:
    """The reason shown for one container state, None when it is running or empty."""
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if waiting and waiting.get("reason"):
        return prefix + str(waiting["reason"])
    if terminated:
        if terminated.get("reason"):
            return prefix + str(terminated["reason"])
        if terminated.get("signal"):
            return f"{prefix}Signal:{terminated['signal']}"
        return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"
    return None


def _init_reason(o: Obj) -> str | None:
    statuses = get(o, "status", "initContainerStatuses") or []
    total = len(get(o, "spec", "initContainers") or [])
    for i, s in enumerate(statuses):
        state = s.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            return _state_reason(state, "Init:")
        if waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return f"Init:{waiting['reason']}"
        return f"Init:{i}/{total}"
    return None


def pod_status(o: Obj) -> str:
    """printPod's reason: phase, or status.reason, or the init/container state that explains it."""
    reason = str(get(o, "status", "reason") or get(o, "status", "phase") or "")
    init = _init_reason(o)
    if init is not None:
        reason = init
    else:
        running = False
        for s in reversed(get(o, "status", "containerStatuses") or []):
            state = s.get("state") or {}
            shown = _state_reason(state)
            if shown is not None:
                reason = shown
            elif state.get("running") and s.get("ready"):
                running = True
        if reason == "Completed" and running:
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in get(o, "status", "conditions") or []
            )
            reason = "Running" if ready else "NotReady"
    if get(o, "metadata", "deletionTimestamp"):
        reason = "Unknown" if get(o, "status", "reason") == "NodeLost" else "Terminating"
    return reason


def pod_restarts(o: Obj) -> str:
    """`2 (5m ago)`: the restarts of the regular containers and how long ago the last one ended."""
    total, last = 0, None
    for s in get(o, "status", "containerStatuses") or []:
        total += int(s.get("restartCount") or 0)
        finished = parse_time(get(s, "lastState", "terminated", "finishedAt"))
        if finished is not None and (last is None or finished > last):
            last = finished
    if total and last is not None:
        return f"{total} ({age(last.isoformat())} ago)"
    return str(total)


def pod_ready(o: Obj) -> str:
    statuses = get(o, "status", "containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(get(o, 'spec', 'containers') or [])}"


def _readiness_gates(o: Obj) -> str:
    gates = [g.get("conditionType") for g in get(o, "spec", "readinessGates") or []]
    if not gates:
        return NONE
    true = {c.get("type") for c in get(o, "status", "conditions") or [] if c.get("status") == "True"}
    return f"{sum(1 for g in gates if g in true)}/{len(gates)}"


def _or_none(*path: str) -> Any:
    return lambda o: get(o, *path) or NONE


POD_COLUMNS: tuple[Column, ...] = (
    col("Ready", fn=pod_ready),
    col("Status", fn=pod_status),
    col("Restarts", fn=pod_restarts),
    AGE,
    col("IP", fn=_or_none("status", "podIP"), priority=1),
    col("Node", fn=_or_none("spec", "nodeName"), priority=1),
    col("Nominated Node", fn=_or_none("status", "nominatedNodeName"), priority=1),
    col("Readiness Gates", fn=_readiness_gates, priority=1),
)


def _template_list(field: str) -> Any:
    def cell(o: Obj) -> str:
        containers = get(o, "spec", "template", "spec", "containers") or []
        return ",".join(str(c.get(field, "")) for c in containers)

    return cell


def _selector(o: Obj) -> str:
    sel = get(o, "spec", "selector") or {}
    labels = sel.get("matchLabels") if "matchLabels" in sel or "matchExpressions" in sel else sel
    parts = [f"{k}={v}" for k, v in sorted((labels or {}).items())]
    for e in sel.get("matchExpressions") or []:
        values = ",".join(e.get("values") or [])
        op = {"In": "in", "NotIn": "notin"}.get(e.get("operator", ""), "")
        if op:
            parts.append(f"{e.get('key')} {op} ({values})")
        else:
            parts.append(f"{'!' if e.get('operator') == 'DoesNotExist' else ''}{e.get('key')}")
    return ",".join(parts) or NONE


WIDE_TEMPLATE: tuple[Column, ...] = (
    col("Containers", fn=_template_list("name"), priority=1),
    col("Images", fn=_template_list("image"), priority=1),
    col("Selector", fn=_selector, priority=1),
)


def _int(*path: str) -> Any:
    return lambda o: int(get(o, *path) or 0)


DEPLOYMENT_COLUMNS: tuple[Column, ...] = (
    col("Ready", fn=lambda o: f"{get(o, 'status', 'readyReplicas') or 0}/{get(o, 'spec', 'replicas') or 0}"),
    col("Up-to-date", type="integer", fn=_int("status", "updatedReplicas")),
    col("Available", type="integer", fn=_int("status", "availableReplicas")),
    AGE,
    *WIDE_TEMPLATE,
)

REPLICA_COLUMNS: tuple[Column, ...] = (  # ReplicaSet and ReplicationController
    col("Desired", type="integer", fn=_int("spec", "replicas")),
    col("Current", type="integer", fn=_int("status", "replicas")),
    col("Ready", type="integer", fn=_int("status", "readyReplicas")),
    AGE,
    *WIDE_TEMPLATE,
)


def _node_selector(o: Obj) -> str:
    sel = get(o, "spec", "template", "spec", "nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or NONE


DAEMONSET_COLUMNS: tuple[Column, ...] = (
    col("Desired", type="integer", fn=_int("status", "desiredNumberScheduled")),
    col("Current", type="integer", fn=_int("status", "currentNumberScheduled")),
    col("Ready", type="integer", fn=_int("status", "numberReady")),
    col("Up-to-date", type="integer", fn=_int("status", "updatedNumberScheduled")),
    col("Available", type="integer", fn=_int("status", "numberAvailable")),
    col("Node Selector", fn=_node_selector),
    AGE,
    *WIDE_TEMPLATE,
)


def _job_status(o: Obj) -> str:
    true = {c.get("type") for c in get(o, "status", "conditions") or [] if c.get("status") == "True"}
    for kind in ("Failed", "Complete", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if kind in true:
            return kind
    return "Running"


def _job_completions(o: Obj) -> str:
    succeeded = get(o, "status", "succeeded") or 0
    completions = get(o, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = get(o, "spec", "parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _job_duration(o: Obj) -> str:
    start = parse_time(get(o, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(get(o, "status", "completionTime")) or datetime.now(UTC)
    return human_duration((end - start).total_seconds())


JOB_COLUMNS: tuple[Column, ...] = (
    col("Status", fn=_job_status),
    col("Completions", fn=_job_completions),
    col("Duration", fn=_job_duration),
    AGE,
    *WIDE_TEMPLATE,
)
