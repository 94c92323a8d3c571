"""Pod facts every workload controller shares: selectors, ownership claims, Pods from a template,
readiness and availability, and which Pods to delete first.

All pure: objects in, facts or patches out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kube import objects
from kube.clock import parse_rfc3339
from kube.rest import PODS, Obj, Resource
from localcluster.controllers.plans import Patch

Selector = Mapping[str, Any]


def selector_matches(selector: Selector | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: None matches nothing, `{}` everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def map_selector(selector: Mapping[str, str] | None) -> Selector | None:
    """A v1 map selector (ReplicationController, Service) as a LabelSelector; empty/None selects nothing."""
    return {"matchLabels": dict(selector)} if selector else None


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in objects.meta(obj).get("ownerReferences") or [] if r.get("controller")), None)


@dataclass(frozen=True)
class Claim:
    """The result of claiming objects for an owner: what it owns now and the patches that make it so."""

    owned: tuple[Obj, ...]
    patches: tuple[Patch, ...]


def claim(candidates: Iterable[Obj], owner: Obj, selector: Selector | None, res: Resource = PODS) -> Claim:
    """Upstream's ClaimPods: keep owned objects that match, adopt matching orphans, release owned
    objects that stopped matching (an owner being deleted adopts and releases nothing)."""
    owner_uid, owner_deleting = objects.uid_of(owner), objects.is_deleting(owner)
    owned: list[Obj] = []
    patches: list[Patch] = []
    for obj in candidates:
        ref = controller_of(obj)
        refs = list(objects.meta(obj).get("ownerReferences") or [])
        matches = selector_matches(selector, objects.labels_of(obj))
        if ref is not None and ref.get("uid") != owner_uid:
            continue
        if ref is not None:
            if matches or owner_deleting:
                owned.append(obj)
            else:
                kept = [r for r in refs if r.get("uid") != owner_uid]
                patches.append(_owner_patch(res, obj, kept))
        elif matches and not owner_deleting and not objects.is_deleting(obj):
            owned.append(obj)
            patches.append(_owner_patch(res, obj, [*refs, objects.owner_ref(owner)]))
    return Claim(tuple(owned), tuple(patches))


def _owner_patch(res: Resource, obj: Obj, refs: list[Obj]) -> Patch:
    meta = objects.meta(obj)
    patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": meta.get("resourceVersion")}}
    return Patch(res, objects.namespace_of(obj), objects.name_of(obj), patch)


def pod_from_template(template: Obj, owner: Obj, *, generate_name: str, extra_labels: Mapping[str, str] = {},
                      node_name: str = "") -> Obj:
    """A Pod to create from a PodTemplateSpec, controlled by `owner`."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "generateName": generate_name,
        "namespace": objects.namespace_of(owner),
        "labels": {**(tmeta.get("labels") or {}), **extra_labels},
        "ownerReferences": [objects.owner_ref(owner)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    spec = copy.deepcopy(template.get("spec") or {})
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": meta, "spec": spec}


# -- state ----------------------------------------------------------------------------------------
def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_finished(pod: Obj) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """Neither finished nor being deleted (upstream's FilterActivePods)."""
    return not is_finished(pod) and not objects.is_deleting(pod)


def ready_condition(pod: Obj) -> Obj | None:
    return objects.condition((pod.get("status") or {}).get("conditions"), "Ready")


def is_ready(pod: Obj) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return parse_rfc3339(cond.get("lastTransitionTime")) or parse_rfc3339(objects.meta(pod).get("creationTimestamp"))


def available_in(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """Seconds until a ready Pod counts as available (0: available now); None if not ready."""
    since = ready_since(pod)
    if since is None:
        return None
    if min_ready_seconds <= 0:
        return 0.0
    return max((since + timedelta(seconds=min_ready_seconds) - now).total_seconds(), 0.0)


def finished_at(pod: Obj) -> datetime | None:
    """When a finished Pod's last container ended (kubelet's `finishedAt`), else its Ready transition."""
    times = [parse_rfc3339(((s.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for s in (pod.get("status") or {}).get("containerStatuses") or []]
    found = [t for t in times if t is not None]
    if found:
        return max(found)
    cond = ready_condition(pod)
    return parse_rfc3339(cond.get("lastTransitionTime")) if cond else None


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order(pods: Sequence[Obj]) -> list[Obj]:
    """Pods in the order upstream deletes them: unscheduled, pending, not ready, ready most recently,
    most restarts, newest first."""

    def rank(pod: Obj) -> tuple[Any, ...]:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        since = ready_since(pod)
        created = str(objects.meta(pod).get("creationTimestamp") or "")
        return (
            bool((pod.get("spec") or {}).get("nodeName")),
            _PHASE_RANK.get(phase(pod), 1),
            is_ready(pod),
            -(since.timestamp() if since else 0.0),
            -sum(int(s.get("restartCount") or 0) for s in statuses),
            tuple(-ord(c) for c in created),
        )

    return sorted(pods, key=rank)
