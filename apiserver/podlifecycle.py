"""What kube-apiserver's Pod registry does beyond a plain object: graceful deletion, binding to a
node, and the few fields an update may change.

Graceful deletion: deleting a Pod bound to a node and not yet terminal keeps it, with
`deletionTimestamp` = now + the grace period (the request's `gracePeriodSeconds`, else the Pod's
`terminationGracePeriodSeconds`) and `deletionGracePeriodSeconds`; the kubelet stops the containers
and finishes with `gracePeriodSeconds=0`. A later delete may only shorten the period; 0 removes the
Pod at once. Unbound or terminal Pods go at once, as upstream.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from apiserver import errors
from apiserver.errors import FORBIDDEN, REQUIRED, cause
from apiserver.resources import Obj
from apiserver.tables import parse_time

_TERMINAL = ("Succeeded", "Failed")


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def graceful_deletion(pod: Obj, options: Obj, now: datetime | None = None) -> Obj | None:
    """The Pod to keep for this delete (the same object when nothing changes), or None when the
    delete proceeds at once (finalizers still hold it then, as for any object)."""
    now = now or datetime.now(UTC)
    meta = pod.get("metadata") or {}
    requested = options.get("gracePeriodSeconds")
    current = meta.get("deletionGracePeriodSeconds")
    if meta.get("deletionTimestamp"):
        if current and requested == 0 and meta.get("finalizers"):
            return _marked(pod, now, 0)  # the kubelet's confirmation: gone once the finalizers are
        if not current or requested == 0:
            return None
        if requested is None or requested >= current:
            return pod  # graceful deletion is pending; only a shorter period changes it
        deadline = parse_time(meta["deletionTimestamp"]) or now
        return _marked(pod, deadline - timedelta(seconds=current) + timedelta(seconds=requested), requested)
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    period = requested if requested is not None else spec.get("terminationGracePeriodSeconds") or 0
    if period < 0:
        period = 1  # as upstream: a negative period is treated as 1 (admitted with a warning)
    if not spec.get("nodeName") or status.get("phase") in _TERMINAL:
        period = 0
    if period <= 0:
        return None
    return _marked(pod, now + timedelta(seconds=period), int(period))


def _marked(pod: Obj, deadline: datetime, period: int) -> Obj:
    new = copy.deepcopy(pod)
    new["metadata"]["deletionTimestamp"] = _stamp(deadline)
    new["metadata"]["deletionGracePeriodSeconds"] = period
    return new


def bind(pod: Obj, binding: Any, name: str, now: datetime | None = None) -> Obj:
    """The Pod bound to the binding's node, with `PodScheduled=True`; 400/409/422 like upstream."""
    if not isinstance(binding, dict):
        raise errors.bad_request("the body of the request must be a Binding object")
    meta = binding.get("metadata") or {}
    if meta.get("name") not in (None, "", name):
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = binding.get("target") or {}
    if not isinstance(target, dict) or not target.get("name"):
        raise errors.invalid("Binding", "", name, [cause(REQUIRED, "target.name")])
    if target.get("kind") not in (None, "", "Node"):
        detail = "must be empty or 'Node'"
        raise errors.invalid("Binding", "", name, [cause(errors.NOT_SUPPORTED, "target.kind", detail, target["kind"])])
    pod_meta = pod["metadata"]
    if meta.get("uid") and meta["uid"] != pod_meta.get("uid"):
        why = f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {pod_meta.get('uid')}"
        raise errors.conflict("pods", "", name, why)
    if pod_meta.get("deletionTimestamp"):
        raise errors.conflict("pods/binding", "", name, f"pod {name} is being deleted, cannot be assigned to a host")
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        raise errors.conflict("pods/binding", "", name, f'pod {name} is already assigned to node "{node}"')
    new = copy.deepcopy(pod)
    new.setdefault("spec", {})["nodeName"] = target["name"]
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    stamp = _stamp(now or datetime.now(UTC))
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp})
    status["conditions"] = conditions
    return new


_UPDATABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"
)


def check_update(old: Obj, new: Obj) -> None:
    """422 when an update changes a Pod spec field upstream does not let change (ValidatePodUpdate)."""
    before, after = old.get("spec") or {}, copy.deepcopy(new.get("spec") or {})
    for field in ("containers", "initContainers"):
        olds = {c.get("name"): c for c in before.get(field) or []}
        for c in after.get(field) or []:
            if c.get("name") in olds and "image" in olds[c["name"]]:
                c["image"] = olds[c["name"]]["image"]
    after["activeDeadlineSeconds"] = before.get("activeDeadlineSeconds")
    old_tolerations = before.get("tolerations") or []
    new_tolerations = after.get("tolerations") or []
    if all(t in new_tolerations for t in old_tolerations):
        after["tolerations"] = old_tolerations
    old_grace = before.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and after.get("terminationGracePeriodSeconds") == 1:
        after["terminationGracePeriodSeconds"] = old_grace
    if not (before.get("nodeName") or "") and after.get("nodeName"):
        after["nodeName"] = before.get("nodeName")  # setting the node of an unbound Pod is how a scheduler binds
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if not changed:
        return
    diff = "\n".join(f"  spec.{k}: {before.get(k)!r} -> {after.get(k)!r}" for k in changed)
    detail = f"pod updates may not change fields other than {_UPDATABLE}\n{diff}"
    name = (new.get("metadata") or {}).get("name", "")
    raise errors.invalid("Pod", "", name, [cause(FORBIDDEN, "spec", detail)])
