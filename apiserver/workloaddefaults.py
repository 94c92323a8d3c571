"""Defaulting and validation of the workload kinds: Job, Deployment, ReplicaSet, DaemonSet,
ReplicationController, as kube-apiserver's defaulters and create/update strategies do.

A Job gets its generated selector (`batch.kubernetes.io/controller-uid`) and the four template
labels unless `manualSelector`, completions/parallelism 1 when both unset, backoffLimit 6,
completionMode NonIndexed, suspend false, podReplacementPolicy TerminatingOrFailed, and must use
restartPolicy OnFailure or Never. The replicated kinds get replicas 1, their update strategy and
history limits, and a selector that must match the template's labels (422 otherwise).
"""

from __future__ import annotations

from typing import Any

from apiserver import errors, metadata, podshapes, podspecs, podvalidation, quantities
from apiserver.errors import INVALID, NOT_SUPPORTED, REQUIRED, FieldCause, cause
from apiserver.resources import Obj, ResourceType

JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def _template(obj: Obj) -> Obj:
    spec = obj.setdefault("spec", {})
    template: Obj = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    template.setdefault("spec", {})
    return template


def _default_job(job: Obj) -> None:
    spec = job.setdefault("spec", {})
    template = _template(job)
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    meta = job.get("metadata") or {}
    if not spec.get("manualSelector") and meta.get("uid") and not spec.get("selector"):
        uid, name = meta["uid"], meta.get("name", "")
        labels = template["metadata"].get("labels") or {}
        labels.update({JOB_UID_LABEL: uid, "controller-uid": uid, JOB_NAME_LABEL: name, "job-name": name})
        template["metadata"]["labels"] = labels
        spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
    podspecs.default_pod_spec(template["spec"])


def _default_replicated(obj: Obj, kind: str) -> None:
    spec = obj.setdefault("spec", {})
    template = _template(obj)
    if kind == "ReplicationController":
        labels = template["metadata"].get("labels") or {}
        if not spec.get("selector") and labels:
            spec["selector"] = dict(labels)
        if not (obj.get("metadata") or {}).get("labels") and labels:
            obj["metadata"]["labels"] = dict(labels)
    if kind != "DaemonSet":
        spec.setdefault("replicas", 1)
    if kind == "Deployment":
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("progressDeadlineSeconds", 600)
    if kind == "DaemonSet":
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
    if kind in ("Deployment", "DaemonSet"):
        spec.setdefault("revisionHistoryLimit", 10)
    if kind in ("ReplicaSet", "ReplicationController"):
        spec.setdefault("minReadySeconds", 0)
    podspecs.default_pod_spec(template["spec"])


def _go_map(labels: dict[str, Any]) -> str:
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def _selector_matches(selector: Any, labels: dict[str, Any], plain: bool) -> bool:
    if plain:
        return all(labels.get(k) == v for k, v in (selector or {}).items())
    if not isinstance(selector, dict):
        return False
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        present = key in labels
        ok = {"In": present and labels[key] in values, "NotIn": not present or labels[key] not in values,
              "Exists": present, "DoesNotExist": not present}.get(op, False)  # fmt: skip
        if not ok:
            return False
    return True


def _selector_causes(obj: Obj, kind: str) -> list[FieldCause]:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    plain = kind == "ReplicationController"
    if not selector or (not plain and not (selector.get("matchLabels") or selector.get("matchExpressions"))):
        if kind == "Job" and spec.get("manualSelector") is not True:
            return []
        return [cause(REQUIRED, "spec.selector")]
    if not _selector_matches(selector, labels, plain):
        detail = "`selector` does not match template `labels`"
        return [FieldCause("spec.template.metadata.labels", INVALID[0], f"Invalid value: {_go_map(labels)}: {detail}")]
    return []


def _job_causes(job: Obj) -> list[FieldCause]:
    spec = job.get("spec") or {}
    out: list[FieldCause] = []
    policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if policy in ("Always", "", None):  # upstream: Always may be the defaulter's, so it is "Required"
        out.append(cause(REQUIRED, "spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
    elif policy not in ("OnFailure", "Never"):
        detail = 'supported values: "OnFailure", "Never"'
        out.append(cause(NOT_SUPPORTED, "spec.template.spec.restartPolicy", detail, policy))
    uid = (job.get("metadata") or {}).get("uid")
    selector = spec.get("selector")
    generated = spec.get("manualSelector") is not True and uid and isinstance(selector, dict)
    if generated and not _selector_matches(selector, {JOB_UID_LABEL: uid}, plain=False):
        out.append(cause(INVALID, "spec.selector", "`selector` not auto-generated", selector))
    for field in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            out.append(cause(INVALID, f"spec.{field}", "must be greater than or equal to 0", value))
    return out


WORKLOAD_KINDS = frozenset({"batch/jobs", "apps/deployments", "apps/replicasets", "apps/daemonsets",
                            "/replicationcontrollers"})  # fmt: skip


def default_and_validate(rt: ResourceType, obj: Obj) -> None:
    """Defaults in place, then 422 with the field causes kube-apiserver would give."""
    template = (obj.get("spec") or {}).get("template")
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    podshapes.check_pod_spec(rt.kind, pod_spec, "spec.template.spec")
    quantities.check_quantities(rt.kind, pod_spec)
    if rt.key == "batch/jobs":
        _default_job(obj)
    else:
        _default_replicated(obj, rt.kind)
    spec = obj.get("spec") or {}
    causes = _selector_causes(obj, rt.kind)
    causes += podvalidation.template_causes(spec.get("template"), "spec.template")
    if rt.key != "batch/jobs":
        named = {"Deployment": "ReplicaSet"}.get(rt.kind, rt.kind)
        causes += podvalidation.always_restart_causes(spec.get("template"), "spec.template", named)
    if rt.key == "batch/jobs":
        causes += _job_causes(obj)
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas < 0:
        causes.append(cause(INVALID, "spec.replicas", "must be greater than or equal to 0", replicas))
    if causes:  # the metadata's problems first, as upstream's ValidateObjectMeta runs before the spec's
        meta = obj.get("metadata") or {}
        causes = metadata.validate(meta, namespace_kind=False, namespaced=True) + causes
        raise errors.invalid(rt.kind, rt.group, meta.get("name", ""), causes)


def check_update(rt: ResourceType, old: Obj, new: Obj) -> None:
    """422 `field is immutable` when an update changes what upstream makes immutable: the selector of
    the apps/v1 kinds and Jobs, and for a Job also its template (scheduling directives and template
    labels/annotations stay mutable while it is suspended and never started), `completions` (except
    an Indexed Job with completions == parallelism before and after), `completionMode`,
    `podFailurePolicy`, `backoffLimitPerIndex`, `successPolicy` and `managedBy`."""
    if rt.key == "/replicationcontrollers":
        return
    before, after = old.get("spec") or {}, new.get("spec") or {}
    changed = ["selector"] if before.get("selector") != after.get("selector") else []
    if rt.key == "batch/jobs":
        changed += _job_changes(old, before, after)
    if changed:
        problems = [cause(INVALID, f"spec.{field}", "field is immutable", after.get(field)) for field in changed]
        raise errors.invalid(rt.kind, rt.group, (new.get("metadata") or {}).get("name", ""), problems)


_JOB_IMMUTABLE = ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "successPolicy", "managedBy")
_SCHEDULING = ("affinity", "nodeSelector", "tolerations", "schedulingGates")


def _job_changes(old: Obj, before: Obj, after: Obj) -> list[str]:
    """The immutable Job spec fields (besides the selector) an update changes, upstream's order."""
    out = []
    old_template, new_template = before.get("template") or {}, after.get("template") or {}
    if before.get("suspend") is True and not (old.get("status") or {}).get("startTime"):
        old_template, new_template = _unscheduled(old_template), _unscheduled(new_template)
    if old_template != new_template:
        out.append("template")
    if before.get("completions") != after.get("completions") and not _elastic(before, after):
        out.append("completions")
    return out + [f for f in _JOB_IMMUTABLE if before.get(f) != after.get(f)]


def _unscheduled(template: Obj) -> Obj:
    """A template without what a suspended, never started Job may change (upstream's mutable scheduling directives)."""
    meta = {k: v for k, v in (template.get("metadata") or {}).items() if k not in ("labels", "annotations")}
    spec = {k: v for k, v in (template.get("spec") or {}).items() if k not in _SCHEDULING}
    return {**template, "metadata": meta, "spec": spec}


def _elastic(before: Obj, after: Obj) -> bool:
    """An Indexed Job may change `completions` together with `parallelism`, kept equal (elastic Indexed Jobs)."""
    indexed = after.get("completionMode") == "Indexed"
    return indexed and all(isinstance(s.get("completions"), int) and s.get("completions") == s.get("parallelism")
                           for s in (before, after))
