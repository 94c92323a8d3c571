"""The DaemonSet planner, pure: one Pod per eligible Node (Ready, matching the template's
`nodeSelector`), placed by setting `spec.nodeName` as the DaemonSet controller's scheduling does;
RollingUpdate (`maxUnavailable`, default 1) or OnDelete when the template changes; status counts.

Pods carry `controller-revision-hash` (the template's hash) and `pod-template-generation` labels;
a Pod whose hash differs from the template's is out of date.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kube import objects
from kube.patches import changes
from kube.rest import DAEMON_SETS, PODS, Obj
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Action, Create, Delete, Patch, Plan, soonest
from localcluster.controllers.rollout import template_hash

REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"


def eligible_nodes(ds: Obj, nodes: Sequence[Obj]) -> list[str]:
    """Ready, not deleting Nodes whose labels match the template's `nodeSelector` (empty: every Node)."""
    node_selector = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    selector = {"matchLabels": dict(node_selector)}
    out = []
    for node in nodes:
        ready = objects.condition((node.get("status") or {}).get("conditions"), "Ready")
        if ready and ready.get("status") == "True" and not objects.is_deleting(node) \
                and podfacts.selector_matches(selector, objects.labels_of(node)):
            out.append(objects.name_of(node))
    return sorted(out)


def _max_unavailable(ds: Obj, desired: int) -> int:
    rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = rolling.get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        return max(-(-int(value[:-1]) * desired // 100), 1)  # a percentage rounds up, as upstream's
    return max(int(value), 1)


def plan_daemonset(ds: Obj, pods: Sequence[Obj], nodes: Sequence[Obj], now: datetime) -> Plan:
    if objects.is_deleting(ds):
        return Plan()
    spec = ds.get("spec") or {}
    ns, name = objects.namespace_of(ds), objects.name_of(ds)
    digest = template_hash(spec.get("template") or {})
    min_ready = int(spec.get("minReadySeconds") or 0)
    eligible = eligible_nodes(ds, nodes)
    active = [p for p in pods if podfacts.is_active(p)]
    by_node: dict[str, list[Obj]] = {}
    for pod in active:
        by_node.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
    doomed: list[Obj] = [p for node, group in by_node.items() if node not in eligible for p in group]
    actions: list[Action] = []
    labels = {REVISION_LABEL: digest, GENERATION_LABEL: str(objects.meta(ds).get("generation") or 1)}
    for group in by_node.values():  # the up-to-date Pod first: it is the one kept
        group.sort(key=lambda p: objects.labels_of(p).get(REVISION_LABEL) != digest)
    for node in eligible:
        group = by_node.get(node, [])
        doomed += group[1:]
        if not group:
            pod = podfacts.pod_from_template(spec.get("template") or {}, ds, generate_name=f"{name}-",
                                             extra_labels=labels, node_name=node)
            actions.append(Create(PODS, pod, announce=ds))
    doomed += _outdated(ds, digest, [by_node[n][0] for n in eligible if by_node.get(n)], len(eligible), min_ready, now)
    actions += [Delete(PODS, ns, objects.name_of(p), objects.uid_of(p), announce=ds) for p in doomed]
    status, requeue = _status(ds, digest, eligible, by_node, min_ready, now)
    if changes(ds.get("status") or {}, status):
        actions.insert(0, Patch(DAEMON_SETS, ns, name, {"status": status}, status=True))
    return Plan(tuple(actions), requeue)


def _outdated(ds: Obj, digest: str, placed: list[Obj], desired: int, min_ready: int, now: datetime) -> list[Obj]:
    """Out-of-date Pods to delete now: unavailable ones freely, available ones within maxUnavailable."""
    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type", "RollingUpdate")
    if strategy != "RollingUpdate":
        return []
    old = [p for p in placed if objects.labels_of(p).get(REVISION_LABEL) != digest]
    unavailable = desired - len(placed) + sum(1 for p in placed if podfacts.available_in(p, min_ready, now) != 0)
    budget = _max_unavailable(ds, desired) - unavailable
    out = [p for p in old if podfacts.available_in(p, min_ready, now) != 0]
    for pod in old:
        if budget <= 0:
            break
        if pod not in out:
            out.append(pod)
            budget -= 1
    return out


def _status(ds: Obj, digest: str, eligible: list[str], by_node: dict[str, list[Obj]], min_ready: int,
            now: datetime) -> tuple[Obj, float | None]:
    placed = [by_node[n] for n in eligible if by_node.get(n)]
    waits = [podfacts.available_in(g[0], min_ready, now) for g in placed]
    available = sum(1 for w in waits if w == 0)
    status: Obj = {
        "desiredNumberScheduled": len(eligible),
        "currentNumberScheduled": len(placed),
        "numberMisscheduled": sum(1 for n, g in by_node.items() if n not in eligible and g),
        "numberReady": sum(1 for g in placed if podfacts.is_ready(g[0])),
        "numberAvailable": available,
        "numberUnavailable": len(eligible) - available,
        "updatedNumberScheduled": sum(1 for g in placed
                                      if any(objects.labels_of(p).get(REVISION_LABEL) == digest for p in g)),
        "observedGeneration": objects.meta(ds).get("generation"),
    }
    return status, soonest(*(w for w in waits if w))
