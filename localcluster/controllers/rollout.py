"""Deployment arithmetic, pure: template hashes, surge/unavailability bounds, revisions, and the
RollingUpdate / Recreate scaling steps of kube-controller-manager's Deployment controller.

Each step takes the Deployment, its new ReplicaSet (the one whose template is the Deployment's)
and the old ones, and returns the `spec.replicas` each ReplicaSet should have next.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from typing import Any

from kube import objects
from kube.rest import Obj

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj, collisions: int = 0) -> str:
    """A stable hash of a pod template (FNV-1a over its canonical JSON), in upstream's safe alphabet."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")) + (str(collisions) if collisions else "")
    h = 0x811C9DC5
    for byte in data.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[b % len(_SAFE)] for b in str(h).encode())


def without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def replicas_of(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def st(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def revision(obj: Obj) -> int:
    try:
        return int(objects.annotations_of(obj).get(REVISION) or 0)
    except ValueError:
        return 0


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value)


def bounds(deploy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as absolute numbers (Recreate: 0 and 0)."""
    strategy = (deploy.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    wanted = replicas_of(deploy)
    surge = _resolve(rolling.get("maxSurge", "25%"), wanted, True)
    unavailable = _resolve(rolling.get("maxUnavailable", "25%"), wanted, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, wanted)


def rolling_new(deploy: Obj, new: Obj, all_rs: Sequence[Obj]) -> int:
    """The new ReplicaSet's next size: up to `replicas`, never above replicas + maxSurge Pods in total."""
    wanted, current = replicas_of(deploy), replicas_of(new)
    if current >= wanted:
        return wanted
    surge, _ = bounds(deploy)
    room = wanted + surge - sum(replicas_of(rs) for rs in all_rs)
    return current + max(min(room, wanted - current), 0)


def rolling_old(deploy: Obj, new: Obj, old: Sequence[Obj], all_rs: Sequence[Obj]) -> dict[str, int]:
    """Old ReplicaSets' next sizes (by name): unhealthy replicas first, then oldest first, keeping
    `replicas - maxUnavailable` available."""
    if not any(replicas_of(rs) for rs in old):
        return {}
    _, unavailable = bounds(deploy)
    min_available = replicas_of(deploy) - unavailable
    new_unavailable = replicas_of(new) - st(new, "availableReplicas")
    budget = sum(replicas_of(rs) for rs in all_rs) - min_available - new_unavailable
    sizes = {objects.name_of(rs): replicas_of(rs) for rs in old}
    oldest = sorted(old, key=lambda rs: (str(objects.meta(rs).get("creationTimestamp") or ""), objects.name_of(rs)))
    for rs in oldest:  # replicas that are not available cost no availability
        if budget <= 0:
            break
        name = objects.name_of(rs)
        cut = min(budget, max(sizes[name] - st(rs, "availableReplicas"), 0))
        sizes[name] -= cut
        budget -= cut
    available = sum(st(rs, "availableReplicas") for rs in all_rs)
    budget = available - min_available
    for rs in oldest:
        if budget <= 0:
            break
        name = objects.name_of(rs)
        cut = min(budget, sizes[name])
        sizes[name] -= cut
        budget -= cut
    return {name: size for name, size in sizes.items() if size != replicas_of(next(
        rs for rs in old if objects.name_of(rs) == name))}


def recreate_sizes(deploy: Obj, new: Obj, old: Sequence[Obj]) -> tuple[dict[str, int], int]:
    """Recreate: old ReplicaSets to 0; the new one to `replicas` once no old Pod is left."""
    shrink = {objects.name_of(rs): 0 for rs in old if replicas_of(rs)}
    if shrink or any(st(rs, "replicas") for rs in old):
        return shrink, replicas_of(new)
    return {}, replicas_of(deploy)
