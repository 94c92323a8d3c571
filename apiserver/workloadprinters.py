"""Printer columns of the workload, node, discovery and registration kinds, as kubectl 1.32 shows them.

The cells follow kube-apiserver's internal printers: a Pod's STATUS is the reason a user needs
(`Init:0/1`, `ErrImagePull`, `Completed`, `Terminating`), RESTARTS carries the age of the last
restart, a Job's STATUS is its terminal or suspended condition, a Node's is its Ready condition.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apiserver.printers import AGE, col, get
from apiserver.resources import Column, Obj
from apiserver.tables import age, human_duration, parse_time

NONE = "<none>"


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


def _node_status(o: Obj) -> str:
    ready = next((c for c in get(o, "status", "conditions") or [] if c.get("type") == "Ready"), None)
    status = "Unknown"
    if ready is not None:
        status = {"True": "Ready", "False": "NotReady"}.get(str(ready.get("status")), "Unknown")
    if get(o, "spec", "unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(o: Obj) -> str:
    labels = get(o, "metadata", "labels") or {}
    roles = sorted(
        k.removeprefix("node-role.kubernetes.io/") for k in labels if k.startswith("node-role.kubernetes.io/")
    )
    if labels.get("kubernetes.io/role"):
        roles.append(str(labels["kubernetes.io/role"]))
    return ",".join(r for r in roles if r) or NONE


def _node_address(kind: str) -> Any:
    def cell(o: Obj) -> str:
        found = [a.get("address") for a in get(o, "status", "addresses") or [] if a.get("type") == kind]
        return str(found[0]) if found else NONE

    return cell


def _node_info(field: str) -> Any:
    return lambda o: get(o, "status", "nodeInfo", field) or "<unknown>"


NODE_COLUMNS: tuple[Column, ...] = (
    col("Status", fn=_node_status),
    col("Roles", fn=_node_roles),
    AGE,
    col("Version", fn=lambda o: get(o, "status", "nodeInfo", "kubeletVersion") or ""),
    col("Internal-IP", fn=_node_address("InternalIP"), priority=1),
    col("External-IP", fn=_node_address("ExternalIP"), priority=1),
    col("OS-Image", fn=_node_info("osImage"), priority=1),
    col("Kernel-Version", fn=_node_info("kernelVersion"), priority=1),
    col("Container-Runtime", fn=_node_info("containerRuntimeVersion"), priority=1),
)


def _more(items: list[str], limit: int = 3) -> str:
    if not items:
        return "<unset>"
    shown = ",".join(items[:limit])
    return shown + (f" + {len(items) - limit} more..." if len(items) > limit else "")


def _slice_ports(o: Obj) -> str:
    ports = o.get("ports") or []
    return _more([str(p["port"]) if p.get("port") is not None else "<unset>" for p in ports])


def _slice_endpoints(o: Obj) -> str:
    return _more([str(a) for e in o.get("endpoints") or [] for a in e.get("addresses") or []])


ENDPOINTSLICE_COLUMNS: tuple[Column, ...] = (
    col("AddressType", ".addressType"),
    col("Ports", fn=_slice_ports),
    col("Endpoints", fn=_slice_endpoints),
    AGE,
)


def _apiservice_service(o: Obj) -> str:
    svc = get(o, "spec", "service")
    return f"{svc.get('namespace')}/{svc.get('name')}" if svc else "Local"


def _apiservice_available(o: Obj) -> str:
    cond = next((c for c in get(o, "status", "conditions") or [] if c.get("type") == "Available"), None)
    if cond is None:
        return "Unknown"
    status = str(cond.get("status"))
    return status if status == "True" or not cond.get("reason") else f"{status} ({cond['reason']})"


APISERVICE_COLUMNS: tuple[Column, ...] = (
    col("Service", fn=_apiservice_service),
    col("Available", fn=_apiservice_available),
    AGE,
)


def _flag(*path: str) -> Any:
    return lambda o: "true" if get(o, *path) else "false"


CSIDRIVER_COLUMNS: tuple[Column, ...] = (
    col("AttachRequired", fn=lambda o: "false" if get(o, "spec", "attachRequired") is False else "true"),
    col("PodInfoOnMount", fn=_flag("spec", "podInfoOnMount")),
    col("StorageCapacity", fn=_flag("spec", "storageCapacity")),
    col(
        "TokenRequests",
        fn=lambda o: ",".join(t.get("audience", "") for t in get(o, "spec", "tokenRequests") or []) or NONE,
    ),
    col("RequiresRepublish", fn=_flag("spec", "requiresRepublish")),
    col("Modes", fn=lambda o: ",".join(get(o, "spec", "volumeLifecycleModes") or ["Persistent"])),
    AGE,
)

CSISTORAGECAPACITY_COLUMNS: tuple[Column, ...] = (
    col("StorageClassName", ".storageClassName"),
    col("Capacity", fn=lambda o: o.get("capacity") or NONE),
    AGE,
)
