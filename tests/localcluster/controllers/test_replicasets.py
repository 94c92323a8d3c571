"""ReplicaSet and ReplicationController controllers: replicas kept, status, adoption and release."""

from __future__ import annotations

from fake_kubelet import FakeKubelet
from support.waiting import eventually

from kube.clock import FakeClock
from kube.controller import Runtime
from kube.rest import EVENTS, PODS, REPLICA_SETS, REPLICATION_CONTROLLERS, Kube, Obj

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}


def rs(name: str, replicas: int, **spec: object) -> Obj:
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE, **spec}}


def status_of(kube: Kube, res: object, ns: str, name: str) -> Obj:
    found = kube.get(res, name, ns)  # type: ignore[arg-type]
    assert found is not None
    return dict(found.get("status") or {})


def generation(kube: Kube, res: object, ns: str, name: str) -> dict[str, int]:
    """`observedGeneration` as the status should carry it (absent while the server keeps no generation)."""
    found = kube.get(res, name, ns)  # type: ignore[arg-type]
    gen = ((found or {}).get("metadata") or {}).get("generation")
    return {"observedGeneration": gen} if gen is not None else {}


def count(kubelet: FakeKubelet, n: int) -> list[Obj]:
    def live() -> list[Obj]:
        return [p for p in kubelet.pods(app="web") if not p["metadata"].get("deletionTimestamp")]

    return eventually(lambda: (lambda p: (p,) if len(p) == n else None)(live()), what=f"{n} pods")[0]


def test_replicaset_keeps_replicas_reports_status_and_deletes_not_ready_first(
        kube: Kube, namespace: str, runtime: Runtime, kubelet: FakeKubelet) -> None:
    created = kube.create(REPLICA_SETS, rs("web", 3), namespace)
    pods = count(kubelet, 3)
    for p in pods:
        assert p["metadata"]["generateName"] == "web-"
        assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                     "uid": created["metadata"]["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]
    not_ready = pods[0]
    for p in pods[1:]:
        kubelet.run(p)
    kubelet.run(not_ready, ready=False)
    want = {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}
    eventually(lambda: status_of(kube, REPLICA_SETS, namespace, "web")
               == {**want, **generation(kube, REPLICA_SETS, namespace, "web")})
    kube.patch(REPLICA_SETS, "web", {"spec": {"replicas": 2}}, namespace)
    left = count(kubelet, 2)
    assert not_ready["metadata"]["uid"] not in {p["metadata"]["uid"] for p in left}
    smaller = {**want, "replicas": 2, "fullyLabeledReplicas": 2}
    eventually(lambda: status_of(kube, REPLICA_SETS, namespace, "web")
               == {**smaller, **generation(kube, REPLICA_SETS, namespace, "web")})
    kube.delete(PODS, left[0]["metadata"]["name"], namespace)
    count(kubelet, 2)


def test_available_after_min_ready_seconds(kube: Kube, namespace: str, runtime: Runtime, kubelet: FakeKubelet,
                                           clock: FakeClock) -> None:
    with kubelet.serve():
        kube.create(REPLICA_SETS, rs("slow", 2, minReadySeconds=30), namespace)
        eventually(lambda: status_of(kube, REPLICA_SETS, namespace, "slow").get("readyReplicas") == 2)
    assert status_of(kube, REPLICA_SETS, namespace, "slow")["availableReplicas"] == 0
    clock.advance(31)
    eventually(lambda: status_of(kube, REPLICA_SETS, namespace, "slow").get("availableReplicas") == 2)


def test_orphans_are_adopted_and_pods_that_stop_matching_released(kube: Kube, namespace: str, runtime: Runtime,
                                                                  kubelet: FakeKubelet) -> None:
    orphan = kube.create(PODS, {"metadata": {"name": "orphan", "labels": {"app": "web"}}, "spec": TEMPLATE["spec"]},
                         namespace)
    created = kube.create(REPLICA_SETS, rs("adopter", 2), namespace)
    pods = count(kubelet, 2)
    assert "orphan" in {p["metadata"]["name"] for p in pods}
    adopted = kube.get(PODS, "orphan", namespace) or {}
    assert [r["uid"] for r in adopted["metadata"]["ownerReferences"]] == [created["metadata"]["uid"]]
    kube.patch(PODS, "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, namespace)
    eventually(lambda: not (kube.get(PODS, "orphan", namespace) or {})["metadata"].get("ownerReferences"),
               what="released")
    count(kubelet, 2)
    assert orphan["metadata"]["uid"] == (kube.get(PODS, "orphan", namespace) or {})["metadata"]["uid"]


def test_replication_controller_with_a_map_selector(kube: Kube, namespace: str, runtime: Runtime,
                                                    kubelet: FakeKubelet) -> None:
    body = {"metadata": {"name": "legacy"}, "spec": {"replicas": 2, "selector": {"app": "web"}, "template": TEMPLATE}}
    with kubelet.serve():
        created = kube.create(REPLICATION_CONTROLLERS, body, namespace)
        pods = count(kubelet, 2)
        eventually(lambda: status_of(kube, REPLICATION_CONTROLLERS, namespace, "legacy").get("readyReplicas") == 2)
    assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {created["metadata"]["uid"]}
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController" for p in pods)
    st = status_of(kube, REPLICATION_CONTROLLERS, namespace, "legacy")
    assert st == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                  **generation(kube, REPLICATION_CONTROLLERS, namespace, "legacy")}


def test_a_pod_the_api_refuses_is_a_failed_create_event(kube: Kube, namespace: str, runtime: Runtime,
                                                        kubelet: FakeKubelet) -> None:
    body = rs("refused", 1)
    body["spec"]["template"] = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "serviceAccountName": "missing"}}
    kube.create(REPLICA_SETS, body, namespace)

    def failed() -> Obj | None:
        return next((e for e in kube.list(EVENTS, namespace)[0]
                     if e["reason"] == "FailedCreate" and e["involvedObject"]["name"] == "refused"), None)

    event = eventually(failed, what="a FailedCreate event on the ReplicaSet")
    assert event["type"] == "Warning" and event["message"].startswith("Error creating: ")
    assert "missing" in event["message"]
    assert kubelet.pods(app="web") == []
