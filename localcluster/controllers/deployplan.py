"""The Deployment controller's pure planner: a Deployment and the ReplicaSets it owns in, a Plan out.

One ReplicaSet per template (`<deployment>-<pod-template-hash>`, the hash also a label of its
selector and Pods), revisions in `deployment.kubernetes.io/revision`, RollingUpdate and Recreate
(`rollout.py`), old ReplicaSets beyond `revisionHistoryLimit` deleted once the rollout completed,
status and the conditions `kubectl rollout status` reads (`Available`, `Progressing`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from kube import objects
from kube.clock import parse_rfc3339, rfc3339
from kube.patches import changes
from kube.rest import DEPLOYMENTS, REPLICA_SETS, Obj
from localcluster.controllers import rollout as ro
from localcluster.controllers.conditions import put
from localcluster.controllers.plans import Action, Create, Delete, Emit, Patch, Plan

DEFAULT_PROGRESS_DEADLINE = 600
DEFAULT_HISTORY = 10
# upstream's skipCopyAnnotation: Deployment annotations a ReplicaSet does not inherit
NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", ro.REVISION, ro.DESIRED, ro.MAX_REPLICAS,
                        "deployment.kubernetes.io/revision-history", "deprecated.deployment.rollback.to"})


def copied_annotations(deploy: Obj) -> dict[str, str]:
    """The Deployment's annotations its new ReplicaSet carries (e.g. `kubernetes.io/change-cause`,
    which `kubectl rollout history` shows), as upstream's copyDeploymentAnnotationsToReplicaSet."""
    return {k: v for k, v in objects.annotations_of(deploy).items() if k not in NOT_COPIED}


def new_replica_set(deploy: Obj, old: Sequence[Obj]) -> Obj:
    """The ReplicaSet for the Deployment's current template (not yet created)."""
    spec = deploy.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    digest = ro.template_hash(template, int((deploy.get("status") or {}).get("collisionCount") or 0))
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), ro.HASH_LABEL: digest}
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), ro.HASH_LABEL: digest}
    rev = max((ro.revision(rs) for rs in old), default=0) + 1
    surge, _ = ro.bounds(deploy)
    wanted = ro.replicas_of(deploy)
    rs: Obj = {
        "metadata": {
            "name": objects.short_name(f"{objects.name_of(deploy)}-{digest}", 253),
            "namespace": objects.namespace_of(deploy),
            "labels": dict(tmeta["labels"]),
            "annotations": {**copied_annotations(deploy), ro.REVISION: str(rev), ro.DESIRED: str(wanted),
                            ro.MAX_REPLICAS: str(wanted + surge)},
            "ownerReferences": [objects.owner_ref(deploy)],
        },
        "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        rs["spec"]["replicas"] = 0 if any(ro.replicas_of(r) or ro.st(r, "replicas") for r in old) \
            else ro.replicas_of(deploy)
    else:
        rs["spec"]["replicas"] = ro.rolling_new(deploy, rs, old)
    return rs


def plan_deployment(deploy: Obj, owned: Sequence[Obj], now: datetime,
                    taken: Callable[[str], bool] = lambda _name: False) -> Plan:
    """The Plan for `deploy` over the ReplicaSets it owns; `taken(name)` tells whether a ReplicaSet
    of that name exists that it does not own (a hash collision: `status.collisionCount` goes up)."""
    if objects.is_deleting(deploy):
        return Plan()
    spec = deploy.get("spec") or {}
    template = spec.get("template") or {}
    live = [rs for rs in owned if not objects.is_deleting(rs)]
    digest = ro.template_hash(template, int((deploy.get("status") or {}).get("collisionCount") or 0))
    # as upstream's FindNewReplicaSet, a ReplicaSet being deleted still is the new one: re-creating
    # its name would only conflict (409) until its Pods are gone
    matching = [rs for rs in owned if ro.without_hash((rs.get("spec") or {}).get("template") or {}) == template
                or objects.labels_of(rs).get(ro.HASH_LABEL) == digest]
    new = min(matching, key=lambda rs: str(objects.meta(rs).get("creationTimestamp") or ""), default=None)
    old = [rs for rs in live if rs is not new]
    actions: list[Action] = []
    event = ""
    if new is not None and objects.is_deleting(new):
        return _with_status(deploy, new, old, actions, "", now)  # wait for it to go, then create it anew
    if new is None:
        if spec.get("paused"):
            return _with_status(deploy, None, old, actions, "", now)
        new = new_replica_set(deploy, old)
        if taken(objects.name_of(new)):
            collisions = int((deploy.get("status") or {}).get("collisionCount") or 0) + 1
            patch = {"status": {"collisionCount": collisions}}
            return Plan((Patch(DEPLOYMENTS, objects.namespace_of(deploy), objects.name_of(deploy), patch,
                               status=True),))
        actions.append(Create(REPLICA_SETS, new))
        actions.append(_scaled(deploy, new, 0, ro.replicas_of(new)))
        return _with_status(deploy, new, old, actions, "NewReplicaSetCreated", now)
    actions += _revision(deploy, new, old)
    sizes = _next_sizes(deploy, new, old)
    for rs in [new, *old]:
        name = objects.name_of(rs)
        if name in sizes and sizes[name] != ro.replicas_of(rs):
            annotations = {ro.DESIRED: str(ro.replicas_of(deploy))}
            actions.append(Patch(REPLICA_SETS, objects.namespace_of(rs), name,
                                 {"metadata": {"annotations": annotations}, "spec": {"replicas": sizes[name]}}))
            actions.append(_scaled(deploy, rs, ro.replicas_of(rs), sizes[name]))
            event = "ReplicaSetUpdated"
    if not event and _complete(deploy, new, old):
        actions += _cleanup(deploy, old)
    return _with_status(deploy, new, old, actions, event, now)


def _scaled(deploy: Obj, rs: Obj, before: int, after: int) -> Emit:
    way = "up" if after > before else "down"
    return Emit(deploy, "Normal", "ScalingReplicaSet",
                f"Scaled {way} replica set {objects.name_of(rs)} from {before} to {after}")


def _next_sizes(deploy: Obj, new: Obj, old: Sequence[Obj]) -> dict[str, int]:
    """Next `spec.replicas` per ReplicaSet name (only those that change)."""
    spec = deploy.get("spec") or {}
    name = objects.name_of(new)
    if spec.get("paused"):
        return {} if any(ro.replicas_of(rs) for rs in old) else {name: ro.replicas_of(deploy)}
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        shrink, size = ro.recreate_sizes(deploy, new, old)
        return {**shrink, name: size}
    size = ro.rolling_new(deploy, new, [new, *old])
    if size != ro.replicas_of(new):
        return {name: size}
    return ro.rolling_old(deploy, new, old, [new, *old])


def _revision(deploy: Obj, new: Obj, old: Sequence[Obj]) -> list[Action]:
    """The new ReplicaSet's revision above every old one's (a rollback re-uses an old ReplicaSet) and
    the Deployment's copied annotations on it, and the Deployment's revision annotation equal to it."""
    actions: list[Action] = []
    top = max((ro.revision(rs) for rs in old), default=0)
    rev = ro.revision(new)
    current = objects.annotations_of(new)
    annotations = {k: v for k, v in copied_annotations(deploy).items() if current.get(k) != v}
    if rev <= top:
        rev = top + 1
        annotations[ro.REVISION] = str(rev)
    if annotations:
        actions.append(Patch(REPLICA_SETS, objects.namespace_of(new), objects.name_of(new),
                             {"metadata": {"annotations": annotations}}))
    if objects.annotations_of(deploy).get(ro.REVISION) != str(rev):
        actions.append(Patch(DEPLOYMENTS, objects.namespace_of(deploy), objects.name_of(deploy),
                             {"metadata": {"annotations": {ro.REVISION: str(rev)}}}))
    return actions


def _complete(deploy: Obj, new: Obj, old: Sequence[Obj]) -> bool:
    wanted = ro.replicas_of(deploy)
    return (ro.replicas_of(new) == wanted and ro.st(new, "replicas") == wanted
            and ro.st(new, "availableReplicas") == wanted and not any(ro.st(rs, "replicas") for rs in old))


def _cleanup(deploy: Obj, old: Sequence[Obj]) -> list[Action]:
    limit = int((deploy.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_HISTORY))
    idle = sorted((rs for rs in old if not ro.replicas_of(rs) and not ro.st(rs, "replicas")), key=ro.revision)
    doomed = idle[: max(len(idle) - limit, 0)]
    return [Delete(REPLICA_SETS, objects.namespace_of(rs), objects.name_of(rs), objects.uid_of(rs)) for rs in doomed]


def _with_status(deploy: Obj, new: Obj | None, old: Sequence[Obj], actions: list[Action], event: str,
                 now: datetime) -> Plan:
    """Append the status patch (if it changed) and return the Plan with the progress-deadline requeue."""
    everything = [*([new] if new is not None else []), *old]
    wanted = ro.replicas_of(deploy)
    _, unavailable = ro.bounds(deploy)
    available = sum(ro.st(rs, "availableReplicas") for rs in everything)
    current = deploy.get("status") or {}
    status: Obj = {
        "observedGeneration": objects.meta(deploy).get("generation"),
        "replicas": sum(ro.st(rs, "replicas") for rs in everything),
        "updatedReplicas": ro.st(new, "replicas") if new is not None else 0,
        "readyReplicas": sum(ro.st(rs, "readyReplicas") for rs in everything),
        "availableReplicas": available,
        "unavailableReplicas": max(sum(ro.replicas_of(rs) for rs in everything) - available, 0),
    }
    conditions = list(current.get("conditions") or [])
    stamp = rfc3339(now)
    ok = available >= wanted - unavailable
    message = "Deployment has minimum availability." if ok else "Deployment does not have minimum availability."
    conditions = _set(conditions, "Available", "True" if ok else "False",
                      "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable", message, stamp, False)
    conditions, requeue = _progressing(deploy, new, old, status, current, conditions, event, now)
    status["conditions"] = conditions
    if changes(current, status):
        actions.append(Patch(DEPLOYMENTS, objects.namespace_of(deploy), objects.name_of(deploy), {"status": status},
                             status=True))
    return Plan(tuple(actions), requeue)


def _progressing(deploy: Obj, new: Obj | None, old: Sequence[Obj], status: Obj, current: Obj,
                 conditions: list[Obj], event: str, now: datetime) -> tuple[list[Obj], float | None]:
    stamp = rfc3339(now)
    found = objects.condition(conditions, "Progressing") or {}
    if (deploy.get("spec") or {}).get("paused"):  # no deadline while paused (kubectl rollout pause)
        return _set(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", stamp,
                    False), None
    if found.get("reason") == "DeploymentPaused":
        conditions = _set(conditions, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed",
                          stamp, True)
    if new is None:
        return conditions, None
    rs_name = objects.name_of(new)
    if event == "NewReplicaSetCreated":
        return _set(conditions, "Progressing", "True", event, f'Created new replica set "{rs_name}"', stamp, True), None
    if _complete(deploy, new, old):
        return _set(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.', stamp, False), None
    moved = event or any(int(status.get(f) or 0) > int(current.get(f) or 0)
                         for f in ("updatedReplicas", "readyReplicas", "availableReplicas"))
    moved = moved or int(status["replicas"]) < int(current.get("replicas") or 0)
    found = objects.condition(conditions, "Progressing") or {}
    if moved or found.get("reason") in (None, "NewReplicaSetAvailable", "DeploymentResumed"):
        return _set(conditions, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.',
                    stamp, True), _deadline(deploy)
    if found.get("reason") == "ProgressDeadlineExceeded":
        return conditions, None
    updated = parse_rfc3339(found.get("lastUpdateTime")) or now
    left = (updated + timedelta(seconds=_deadline(deploy)) - now).total_seconds()
    if left > 0:
        return conditions, left
    return _set(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.', stamp, True), None


def _deadline(deploy: Obj) -> float:
    return float((deploy.get("spec") or {}).get("progressDeadlineSeconds") or DEFAULT_PROGRESS_DEADLINE)


def _set(conditions: list[Obj], type_: str, status: str, reason: str, message: str, stamp: str,
         update: bool) -> list[Obj]:
    """A Deployment condition: lastTransitionTime moves with status, lastUpdateTime with progress."""
    new = {"type": type_, "status": status, "reason": reason, "message": message}
    return put(conditions, new, stamp, touch=update, update_time=True)
