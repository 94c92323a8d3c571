"""Printer-column helpers for the built-in kinds: the cells kube-apiserver's printers compute.

Each helper takes the stored object and returns one Table cell (`READY 1/1`, `PORT(S) 80/TCP`,
`<none>`), as `kubectl get` shows them; `col` builds a `Column` from a JSONPath or such a function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiserver.resources import Column, Obj
from apiserver.tables import age


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
