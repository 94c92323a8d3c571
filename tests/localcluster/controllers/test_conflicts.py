"""Conflicts and expectations: a ReplicaSet being deleted in the foreground is still the Deployment's
new one (no re-create that can only 409), a key whose reconcile keeps hitting 409 backs off, and
neither a deleted owner nor a refused delete leaves expectations behind."""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from kube.controller import Runtime
from kube.informing import WorkQueue, reconcile_one
from kube.rest import PODS, Kube, Obj
from localcluster.controllers import rollout
from localcluster.controllers.deployplan import new_replica_set, plan_deployment
from localcluster.controllers.expectations import Expectations
from localcluster.controllers.plans import Create, Delete, Plan, apply_plan
from localcluster.controllers.replicasets import ReplicaSetController

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _deployment() -> Obj:
    template = {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "m", "image": "busybox"}]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "w", "namespace": "ns", "uid": "d1", "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "w"}}, "template": template}}


def test_a_foreground_deleting_current_replicaset_is_not_recreated() -> None:
    deploy = _deployment()
    current = new_replica_set(deploy, [])
    current["metadata"].update(uid="rs1", creationTimestamp="2026-03-01T11:00:00Z",
                               deletionTimestamp="2026-03-01T11:59:00Z", finalizers=["foregroundDeletion"])
    assert objects_hash(current) == rollout.template_hash(deploy["spec"]["template"])
    plan = plan_deployment(deploy, [current], NOW, lambda _name: False)
    assert not [a for a in plan.actions if isinstance(a, Create)], "the deleting RS is the new one: wait"
    gone = plan_deployment(deploy, [], NOW, lambda _name: False)
    assert [a.obj["metadata"]["name"] for a in gone.actions if isinstance(a, Create)] == [current["metadata"]["name"]]


def objects_hash(rs: Obj) -> str:
    return str(rs["metadata"]["labels"][rollout.HASH_LABEL])


def test_repeated_conflicts_back_off_after_one_quick_retry() -> None:
    queue = WorkQueue(base_delay=0.5)

    def conflict(_key: object) -> None:
        raise ApiException(status=409, reason="Conflict")

    queue.add("k")
    assert queue.get(timeout=1) == "k"
    reconcile_one(queue, "k", conflict, "test")
    assert queue.get(timeout=2) == "k", "the first 409 is retried at once"
    reconcile_one(queue, "k", conflict, "test")
    assert queue.get(timeout=0.3) is None, "the second waits for the rate limiter"
    assert queue.get(timeout=2) == "k"
    queue.forget("k")
    reconcile_one(queue, "k", conflict, "test")
    assert queue.get(timeout=0.3) == "k", "after a success, a conflict is quick again"
    queue.shutdown()


def test_a_deleted_owner_leaves_no_expectations(kube: Kube, namespace: str, runtime: Runtime) -> None:
    controller = ReplicaSetController(runtime, kube)
    key = (namespace, "gone")
    controller.expectations.created(key, "gone-abcde")
    assert controller.reconcile(key) is None
    assert controller.expectations.pending(key, lambda _name: None) is None


def test_a_delete_refused_by_its_uid_precondition_is_not_expected(kube: Kube, namespace: str) -> None:
    successor = kube.create(PODS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "m",
                                                                                        "image": "busybox"}]}},
                            namespace)
    expectations, key = Expectations(), (namespace, "owner")
    apply_plan(kube, Plan((Delete(PODS, namespace, "p", "not-the-uid"),)), expectations, key)
    assert kube.get(PODS, "p", namespace) is not None
    assert expectations.pending(key, lambda _name: successor) is None, "nothing was deleted: nothing to wait for"
