"""The DaemonSet controller: one Pod per eligible Ready Node, rolling template updates, status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_kubelet import FakeKubelet
from support.waiting import eventually

from kube.controller import Runtime
from kube.rest import DAEMON_SETS, NODES, Kube, Obj


@pytest.fixture
def nodes(kube: Kube, namespace: str) -> Iterator[list[str]]:
    """Three Nodes labelled for this test; the third NotReady."""
    names = [f"{namespace}-{i}"[:63] for i in "abc"]
    for name in names:
        kube.create(NODES, {"metadata": {"name": name, "labels": {"pool": namespace}}})
        set_ready(kube, name, name != names[2])
    yield names
    for name in names:
        kube.delete(NODES, name)


def set_ready(kube: Kube, name: str, ready: bool) -> None:
    cond = {"type": "Ready", "status": "True" if ready else "False", "reason": "KubeletReady"}
    kube.patch_status(NODES, name, {"conditions": [cond]})


def daemonset(namespace: str, version: str = "v1") -> Obj:
    container = {"name": "agent", "image": "busybox", "command": ["sleep", "3600"],
                 "env": [{"name": "VERSION", "value": version}]}
    template = {"metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"pool": namespace}, "containers": [container]}}
    return {"metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template}}


def status(kube: Kube, ns: str) -> Obj:
    return dict((kube.get(DAEMON_SETS, "agent", ns) or {}).get("status") or {})


def placed(kubelet: FakeKubelet) -> dict[str, Obj]:
    return {p["spec"]["nodeName"]: p for p in kubelet.pods(app="agent") if not p["metadata"].get("deletionTimestamp")}


def test_one_pod_per_ready_node_and_a_rolling_update(kube: Kube, namespace: str, runtime: Runtime,
                                                     kubelet: FakeKubelet, nodes: list[str]) -> None:
    a, b, c = nodes
    created = kube.create(DAEMON_SETS, daemonset(namespace), namespace)
    pods = eventually(lambda: (lambda p: p if sorted(p) == [a, b] else None)(placed(kubelet)))
    for pod in pods.values():
        assert pod["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
        assert pod["metadata"]["generateName"] == "agent-"
        assert pod["metadata"]["labels"]["controller-revision-hash"]
    first_hash = pods[a]["metadata"]["labels"]["controller-revision-hash"]
    kubelet.run(pods[a])
    eventually(lambda: {k: v for k, v in status(kube, namespace).items() if k != "observedGeneration"} == {
        "desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0, "numberReady": 1,
        "numberAvailable": 1, "numberUnavailable": 1, "updatedNumberScheduled": 2})
    with kubelet.serve():
        kubelet.run(pods[b])
        set_ready(kube, c, True)
        eventually(lambda: sorted(placed(kubelet)) == [a, b, c])
        kubelet.run(placed(kubelet)[c])
        eventually(lambda: status(kube, namespace).get("numberAvailable") == 3)
        kube.patch(DAEMON_SETS, "agent", {"spec": daemonset(namespace, "v2")["spec"]}, namespace)

        def rolled() -> bool:
            now = placed(kubelet)
            hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in now.values()}
            return sorted(now) == [a, b, c] and first_hash not in hashes and len(hashes) == 1 \
                and status(kube, namespace).get("numberAvailable") == 3
        eventually(rolled, timeout=20, what="every node runs the new template")
    st = status(kube, namespace)
    assert (st["desiredNumberScheduled"], st["updatedNumberScheduled"], st["numberReady"]) == (3, 3, 3)
    set_ready(kube, b, False)
    eventually(lambda: sorted(placed(kubelet)) == [a, c] and status(kube, namespace).get("desiredNumberScheduled") == 2)
