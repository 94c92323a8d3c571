"""Conflicts: a ReplicaSet being deleted in the foreground is still the Deployment's new one (no
re-create that can only 409), and a key whose reconcile keeps hitting 409 backs off."""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from kube.informing import WorkQueue, reconcile_one
from kube.rest import Obj
from localcluster.controllers import rollout
from localcluster.controllers.deployplan import new_replica_set, plan_deployment
from localcluster.controllers.plans import Create

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
