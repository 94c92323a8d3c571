"""The pure planners and their arithmetic, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kube import objects
from kube.rest import PODS, Obj
from localcluster.controllers import daemonplan, endpointplan, jobindex, jobplan, rollout
from localcluster.controllers import pods as podfacts
from localcluster.controllers.plans import Create, Delete, Emit, Patch

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def deploy(replicas: int, **strategy: object) -> Obj:
    return {"metadata": {"name": "d"}, "spec": {"replicas": replicas, "strategy": strategy}}


def rs(name: str, replicas: int, available: int, created: str = "2026-01-01T00:00:00Z") -> Obj:
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available}}


def test_surge_and_unavailability_resolve_like_upstream() -> None:
    assert rollout.bounds(deploy(4)) == (1, 1)
    assert rollout.bounds(deploy(3)) == (1, 0), "surge rounds up, unavailability down"
    zero = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    assert rollout.bounds(deploy(3, **zero)) == (0, 1)
    assert rollout.bounds(deploy(3, type="Recreate")) == (0, 0)


def test_a_rolling_step_surges_then_scales_old_down_keeping_availability() -> None:
    d, old = deploy(4), rs("old", 4, 4)
    new = rs("new", 0, 0)
    assert rollout.rolling_new(d, new, [new, old]) == 1
    new = rs("new", 1, 0)
    assert rollout.rolling_old(d, new, [old], [new, old]) == {"old": 3}
    new = rs("new", 1, 1)
    assert rollout.rolling_new(d, new, [new, rs("old", 3, 3)]) == 2
    assert rollout.rolling_old(d, rs("new", 4, 4), [rs("old", 0, 0)], []) == {}


def test_template_hash_is_stable_and_safe() -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "m"}]}}
    first = rollout.template_hash(template)
    assert first == rollout.template_hash({"spec": template["spec"], "metadata": template["metadata"]})
    assert first != rollout.template_hash(template, collisions=1)
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_selectors_and_deletion_order() -> None:
    sel = {"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]},
                                                              {"key": "old", "operator": "DoesNotExist"}]}
    assert podfacts.selector_matches(sel, {"app": "x", "tier": "a"})
    assert not podfacts.selector_matches(sel, {"app": "x", "tier": "a", "old": "1"})
    assert not podfacts.selector_matches(None, {"app": "x"}) and podfacts.selector_matches({}, {})
    ready = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    pods = [{"metadata": {"name": "ready"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running",
                                                                                  "conditions": [ready]}},
            {"metadata": {"name": "running"}, "spec": {"nodeName": "n"}, "status": {"phase": "Running"}},
            {"metadata": {"name": "pending"}, "spec": {"nodeName": "n"}, "status": {"phase": "Pending"}},
            {"metadata": {"name": "unscheduled"}, "spec": {}, "status": {"phase": "Pending"}}]
    assert [p["metadata"]["name"] for p in podfacts.deletion_order(pods)] == [
        "unscheduled", "pending", "running", "ready"]


def job(**spec: object) -> Obj:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "m"}]}}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": {"template": template, **spec}, "status": {"startTime": "2026-03-01T11:00:00Z"}}


def failed_pod(name: str, finished: datetime) -> Obj:
    stamp = finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {"name": name, "uid": name, "finalizers": ["batch.kubernetes.io/job-tracking"]}  # not counted yet
    return {"metadata": meta, "status": {"phase": "Failed", "containerStatuses": [
        {"name": "m", "state": {"terminated": {"exitCode": 1, "finishedAt": stamp}}}]}}


def test_pod_failure_backoff_doubles_and_is_capped() -> None:
    assert [jobplan.backoff(n) for n in (1, 2, 3, 6, 7, 20)] == [10, 20, 40, 320, 360, 360]
    plan = jobplan.plan_job(job(), [failed_pod("a", NOW - timedelta(seconds=15)),
                                    failed_pod("b", NOW - timedelta(seconds=5))], NOW)
    assert plan.requeue == 15.0, "second failure: 20 s after the last one finished"
    assert not any(isinstance(a, Create) for a in plan.actions)
    later = jobplan.plan_job(job(), [failed_pod("a", NOW - timedelta(seconds=35)),
                                     failed_pod("b", NOW - timedelta(seconds=25))], NOW)
    assert [a.res for a in later.actions if isinstance(a, Create)] == [PODS]


def test_restarts_count_towards_the_backoff_limit_with_on_failure() -> None:
    spec = job(backoffLimit=2)
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    running = {"metadata": {"name": "p", "uid": "p"},
               "status": {"phase": "Running", "containerStatuses": [{"name": "m", "restartCount": 3}]}}
    plan = jobplan.plan_job(spec, [running], NOW)
    [status] = [a for a in plan.actions if isinstance(a, Patch)]
    target = next(c for c in status.patch["status"]["conditions"] if c["type"] == "FailureTarget")
    assert target["reason"] == "BackoffLimitExceeded"
    assert [a.name for a in plan.actions if isinstance(a, Delete)] == ["p"]
    assert not any(isinstance(a, Emit) and a.reason == "BackoffLimitExceeded" for a in plan.actions), \
        "Failed (and its event) only once no Pod is left"


def test_target_ports_by_number_name_and_unresolved() -> None:
    pod = {"spec": {"containers": [{"ports": [{"name": "web", "containerPort": 8080},
                                              {"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]}}
    assert endpointplan.target_port({"port": 80, "targetPort": 9000}, pod) == 9000
    assert endpointplan.target_port({"port": 80, "targetPort": "web"}, pod) == 8080
    assert endpointplan.target_port({"port": 53, "targetPort": "dns", "protocol": "UDP"}, pod) == 53
    assert endpointplan.target_port({"port": 53, "targetPort": "dns"}, pod) is None, "protocol must match"
    assert endpointplan.target_port({"port": 81}, pod) == 81


def test_completed_index_ranges() -> None:
    assert jobindex.format_ranges([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
    assert jobindex.parse_ranges("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert jobindex.parse_ranges("") == set() and jobindex.format_ranges([]) == ""


def test_expectations_hold_until_the_cache_shows_the_writes() -> None:
    from localcluster.controllers.expectations import Expectations

    seen: dict[str, Obj] = {}
    exp = Expectations(expiry=5.0)
    exp.created("k", "pod-a")
    exp.deleted("k", "pod-b")
    seen["pod-b"] = {"metadata": {"name": "pod-b"}}
    wait = exp.pending("k", seen.get)
    assert wait is not None and 0 < wait <= 5.0
    seen["pod-a"] = {"metadata": {"name": "pod-a"}}
    assert exp.pending("k", seen.get) is not None, "pod-b still live"
    seen["pod-b"] = {"metadata": {"name": "pod-b", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert exp.pending("k", seen.get) is None
    gone = Expectations(expiry=0.0)
    gone.created("k", "never-seen")
    assert gone.pending("k", seen.get) is None, "an expired expectation holds nothing back"


def test_max_unavailable_zero_waits_for_the_new_pod_before_removing_an_old_one() -> None:
    d = deploy(2, type="RollingUpdate", rollingUpdate={"maxSurge": 1, "maxUnavailable": 0})
    old = rs("old", 2, 2)
    assert rollout.rolling_new(d, rs("new", 0, 0), [rs("new", 0, 0), old]) == 1
    assert rollout.rolling_new(d, rs("new", 1, 0), [rs("new", 1, 0), old]) == 1, "no room above the surge"
    assert rollout.rolling_old(d, rs("new", 1, 0), [old], [rs("new", 1, 0), old]) == {}
    assert rollout.rolling_old(d, rs("new", 1, 1), [old], [rs("new", 1, 1), old]) == {"old": 1}


def _on_failure_job(limit: int, restarts: int) -> tuple[Obj, list[Obj]]:
    spec = job(backoffLimit=limit)
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    running = {"metadata": {"name": "p", "uid": "p"},
               "status": {"phase": "Running", "containerStatuses": [{"name": "m", "restartCount": restarts}]}}
    return spec, [running]


def _fails(limit: int, restarts: int) -> bool:
    plan = jobplan.plan_job(*_on_failure_job(limit, restarts), NOW)
    return any(c["type"] == "FailureTarget" for a in plan.actions if isinstance(a, Patch)
               for c in a.patch["status"].get("conditions") or [])


def test_on_failure_restarts_fail_the_job_at_the_backoff_limit_as_upstream() -> None:
    """Upstream's pastBackoffLimitOnFailure: restarts >= backoffLimit (> 0 when the limit is 0)."""
    assert not _fails(2, 1)
    assert _fails(2, 2), "the second restart reaches backoffLimit 2"
    assert not _fails(0, 0)
    assert _fails(0, 1)


def _daemonset(max_unavailable: object = 1) -> Obj:
    template = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "m"}]}}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "ds", "namespace": "ns", "uid": "ds1", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template,
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}}}


def _node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {}}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def _ds_pod(name: str, node: str, digest: str) -> Obj:
    return {"metadata": {"name": name, "uid": name, "labels": {"app": "a", daemonplan.REVISION_LABEL: digest}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                                                           "lastTransitionTime": "2026-03-01T11:00:00Z"}]}}


def test_a_node_with_an_old_and_a_new_daemon_pod_keeps_the_new_one_only() -> None:
    ds = _daemonset()
    digest = rollout.template_hash(ds["spec"]["template"])
    pods = [_ds_pod("old", "n1", "stale"), _ds_pod("new", "n1", digest)]
    plan = daemonplan.plan_daemonset(ds, pods, [_node("n1")], NOW)
    assert [a.name for a in plan.actions if isinstance(a, Delete)] == ["old"], "the old Pod, deleted once"


def test_daemonset_percentage_max_unavailable_rounds_up() -> None:
    ds = _daemonset("10%")
    nodes = [_node(f"n{i}") for i in range(5)]
    plan = daemonplan.plan_daemonset(ds, [_ds_pod(f"p{i}", f"n{i}", "stale") for i in range(5)], nodes, NOW)
    assert len([a for a in plan.actions if isinstance(a, Delete)]) == 1
    ds = _daemonset("30%")
    plan = daemonplan.plan_daemonset(ds, [_ds_pod(f"p{i}", f"n{i}", "stale") for i in range(5)], nodes, NOW)
    assert len([a for a in plan.actions if isinstance(a, Delete)]) == 2, "30% of 5 is 1.5: 2, as upstream"


def _backend_pod(name: str, ready: bool, deleting: bool) -> Obj:
    meta: Obj = {"name": name, "uid": name, "labels": {"app": "s"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-03-01T11:59:00Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "m"}]},
            "status": {"phase": "Running", "podIP": f"10.1.0.{len(name)}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_endpoint_conditions_follow_upstream() -> None:
    """serving = Pod Ready; ready = publishNotReadyAddresses or (Ready and not terminating)."""
    pods = [_backend_pod("r", True, False), _backend_pod("nr", False, False), _backend_pod("rterm", True, True)]
    for publish in (False, True):
        svc = {"spec": {"selector": {"app": "s"}, "publishNotReadyAddresses": publish,
                        "ports": [{"port": 80}]}}
        got = {objects.name_of(b.pod): (b.ready, b.serving, b.terminating) for b in endpointplan.backends(svc, pods)}
        assert got == {"r": (True, True, False), "nr": (publish, False, False), "rterm": (publish, True, True)}
        kept = [a["targetRef"]["name"] for s in endpointplan.subsets(endpointplan.backends(svc, pods))
                for a in s.get("addresses") or []]
        assert sorted(kept) == (["nr", "r", "rterm"] if publish else ["r"])
