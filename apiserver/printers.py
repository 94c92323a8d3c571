"""Printer-column helpers for the built-in kinds: the cells kube-apiserver's printers compute
(Pods and the workload kinds are in `workloadprinters.py`).

Each helper takes the stored object and returns one Table cell (`READY 1/1`, `PORT(S) 80/TCP`,
`<none>`), as `kubectl get` shows them; `col` builds a `Column` from a JSONPath or such a function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiserver.resources import Column, Obj
from apiserver.tables import age

NONE = "<none>"


def get(obj: Obj, *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def count(*path: str) -> Callable[[Obj], Any]:
    return lambda o: len(get(o, *path) or {})


def join(values: Any) -> str:
    return ",".join(str(v) for v in values) if values else "<none>"


def access_modes(modes: Any) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or []) or ""


def service_ports(o: Obj) -> str:
    out = []
    for p in get(o, "spec", "ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def external_ip(o: Obj) -> str:
    ingress = get(o, "status", "loadBalancer", "ingress") or []
    ips = [i.get("ip") or i.get("hostname") for i in ingress]
    ips += get(o, "spec", "externalIPs") or []
    if ips:
        return ",".join(str(i) for i in ips)
    return "<pending>" if get(o, "spec", "type") == "LoadBalancer" else "<none>"


def event_object(o: Obj) -> str:
    io = o.get("involvedObject") or {}
    return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"


def event_last_seen(o: Obj) -> str:
    ts = o.get("lastTimestamp") or o.get("eventTime") or get(o, "metadata", "creationTimestamp")
    return age(ts)


def col(
    name: str, path: str = "", *, type: str = "string", fn: Callable[[Obj], Any] | None = None, priority: int = 0
) -> Column:
    return Column(name, type, path, compute=fn, priority=priority)


AGE = col("Age", ".metadata.creationTimestamp", type="date")
CREATED_AT = col("Created At", ".metadata.creationTimestamp", fn=lambda o: get(o, "metadata", "creationTimestamp"))


# -- cluster kinds: Node, EndpointSlice, APIService, CSI ------------------------------------------
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
