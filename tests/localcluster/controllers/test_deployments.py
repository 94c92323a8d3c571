"""The Deployment controller over ReplicaSets: template hashes, rollouts, history, conditions."""

from __future__ import annotations

from typing import Any

from fake_kubelet import FakeKubelet
from support.waiting import eventually

from kube.clock import FakeClock
from kube.controller import Runtime
from kube.rest import DEPLOYMENTS, REPLICA_SETS, Kube, Obj
from localcluster.controllers import rollout


def deployment(name: str, replicas: int, **spec: Any) -> Obj:
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template, **spec}}


def get(kube: Kube, ns: str, name: str) -> Obj:
    found = kube.get(DEPLOYMENTS, name, ns)
    assert found is not None
    return found


def cond(d: Obj, type_: str) -> Obj:
    return next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def replica_sets(kube: Kube, ns: str) -> list[Obj]:
    return sorted(kube.list(REPLICA_SETS, ns)[0],
                  key=lambda r: int(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


def rolled_out(kube: Kube, ns: str, name: str, replicas: int) -> Obj:
    def done() -> Obj | None:
        d = get(kube, ns, name)
        st = d.get("status") or {}
        ok = (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("updatedReplicas") == replicas
              and st.get("replicas") == replicas and st.get("availableReplicas") == replicas
              and cond(d, "Progressing").get("reason") == "NewReplicaSetAvailable")
        return d if ok else None

    return eventually(done, timeout=20, what=f"deployment {name} rolled out to {replicas}")


def test_a_deployment_creates_its_replicaset_and_becomes_available(kube: Kube, namespace: str, runtime: Runtime,
                                                                   kubelet: FakeKubelet) -> None:
    with kubelet.serve():
        created = kube.create(DEPLOYMENTS, deployment("web", 3), namespace)
        d = rolled_out(kube, namespace, "web", 3)
    [rs] = replica_sets(kube, namespace)
    digest = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{digest}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": digest}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": digest}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert {k: d["status"][k] for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} \
        == {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    assert d["status"].get("unavailableReplicas", 0) == 0
    available = cond(d, "Available")
    assert (available["status"], available["reason"], available["message"]) == \
        ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    progressing = cond(d, "Progressing")
    assert (progressing["status"], progressing["message"]) == \
        ("True", f'ReplicaSet "web-{digest}" has successfully progressed.')
    assert len(kubelet.pods(**{"pod-template-hash": digest})) == 3


def test_a_template_change_rolls_within_surge_and_keeps_history(kube: Kube, namespace: str, runtime: Runtime,
                                                                kubelet: FakeKubelet) -> None:
    seen: list[int] = []
    with kubelet.serve():
        kube.create(DEPLOYMENTS, deployment("roll", 4, revisionHistoryLimit=1), namespace)
        rolled_out(kube, namespace, "roll", 4)
        for version in ("v2", "v3"):
            env = [{"name": "VERSION", "value": version}]
            patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox",
                                                                    "command": ["sleep", "3600"], "env": env}]}}}}
            kube.patch(DEPLOYMENTS, "roll", patch, namespace)
            eventually(lambda: seen.append(len([p for p in kubelet.pods(app="roll")
                                               if not p["metadata"].get("deletionTimestamp")])) or
                       rolled_out(kube, namespace, "roll", 4), timeout=30)
    assert max(seen) <= 5, "maxSurge 25% of 4 is one Pod above replicas"
    sets = replica_sets(kube, namespace)
    assert len(sets) == 2, "revisionHistoryLimit 1 keeps one old ReplicaSet"
    old, new = sets
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 4)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert get(kube, namespace, "roll")["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


def test_recreate_scales_the_old_replicaset_down_first(kube: Kube, namespace: str, runtime: Runtime,
                                                       kubelet: FakeKubelet) -> None:
    with kubelet.serve():
        kube.create(DEPLOYMENTS, deployment("again", 2, strategy={"type": "Recreate"}), namespace)
        rolled_out(kube, namespace, "again", 2)
        patch = {"spec": {"template": {"metadata": {"labels": {"app": "again", "v": "2"}}}}}
        kube.patch(DEPLOYMENTS, "again", patch, namespace)
        rolled_out(kube, namespace, "again", 2)
    old, new = replica_sets(kube, namespace)
    assert old["spec"]["replicas"] == 0 and new["spec"]["replicas"] == 2
    assert all(p["metadata"]["labels"].get("v") == "2" for p in kubelet.pods(app="again"))


def test_scaling_and_progress_deadline(kube: Kube, namespace: str, runtime: Runtime, kubelet: FakeKubelet,
                                       clock: FakeClock) -> None:
    with kubelet.serve():
        kube.create(DEPLOYMENTS, deployment("scaled", 1, progressDeadlineSeconds=60), namespace)
        rolled_out(kube, namespace, "scaled", 1)
        kube.patch(DEPLOYMENTS, "scaled", {"spec": {"replicas": 3}}, namespace)
        rolled_out(kube, namespace, "scaled", 3)
    kube.patch(DEPLOYMENTS, "scaled", {"spec": {"replicas": 4}}, namespace)  # nobody makes the new Pod ready
    settled = {"replicas": 4, "updatedReplicas": 4, "readyReplicas": 3, "availableReplicas": 3}
    eventually(lambda: (lambda d: cond(d, "Progressing").get("reason") == "ReplicaSetUpdated"
                        and {k: d["status"].get(k) for k in settled} == settled)(get(kube, namespace, "scaled")),
               what="the new Pod counted, not ready")
    d = get(kube, namespace, "scaled")
    assert cond(d, "Available")["status"] == "True", "3 of 4 available, maxUnavailable 25% of 4 is 1"
    clock.advance(61)
    d = eventually(lambda: (lambda d: d if cond(d, "Progressing").get("status") == "False" else None)(
        get(kube, namespace, "scaled")))
    progressing = cond(d, "Progressing")
    assert progressing["reason"] == "ProgressDeadlineExceeded"
    assert progressing["message"].endswith("has timed out progressing.")
    assert cond(d, "Available")["status"] == "True"
    kube.patch(DEPLOYMENTS, "scaled", {"spec": {"replicas": 5}}, namespace)
    eventually(lambda: cond(get(kube, namespace, "scaled"), "Available").get("reason") == "MinimumReplicasUnavailable")


def test_a_replicaset_name_taken_by_another_bumps_the_collision_count(kube: Kube, namespace: str, runtime: Runtime,
                                                                      kubelet: FakeKubelet) -> None:
    created = kube.create(DEPLOYMENTS, deployment("coll", 1, paused=True), namespace)
    digest = rollout.template_hash(created["spec"]["template"])
    other = {"metadata": {"labels": {"app": "other"}},
             "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1"]}]}}
    squatter = {"metadata": {"name": f"coll-{digest}"},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}}, "template": other}}
    kube.create(REPLICA_SETS, squatter, namespace)
    with kubelet.serve():
        kube.patch(DEPLOYMENTS, "coll", {"spec": {"paused": False}}, namespace)
        d = rolled_out(kube, namespace, "coll", 1)
    assert d["status"]["collisionCount"] == 1
    names = {rs["metadata"]["name"] for rs in kube.list(REPLICA_SETS, namespace)[0]}
    assert names == {f"coll-{digest}", f"coll-{rollout.template_hash(created['spec']['template'], 1)}"}
