"""Status conditions as the workload controllers write them, in place (a condition keeps its position,
so a reconcile that changes nothing writes nothing): `lastTransitionTime` moves only when `status`
does; Deployment conditions also carry `lastUpdateTime`, which moves with progress."""

from __future__ import annotations

from kube.rest import Obj


def put(conditions: list[Obj], new: Obj, stamp: str, *, touch: bool = False, update_time: bool = False) -> list[Obj]:
    """`conditions` with `new` (type, status, reason, message) merged in at its old position.

    `update_time` adds `lastUpdateTime`, refreshed when `touch` is set or status/reason changed."""
    old = next((c for c in conditions if c.get("type") == new["type"]), None)
    before = old or {}
    same = before.get("status") == new.get("status")
    merged = dict(new)
    if update_time:
        keep = same and not touch and before.get("reason") == new.get("reason")
        merged["lastUpdateTime"] = before.get("lastUpdateTime") if keep and before.get("lastUpdateTime") else stamp
    merged["lastTransitionTime"] = before.get("lastTransitionTime") if same and before.get("lastTransitionTime") \
        else stamp
    for key in ("lastProbeTime",):
        if key in before:
            merged.setdefault(key, before[key])
    if old is None:
        return [*conditions, merged]
    return [merged if c is old else c for c in conditions]
