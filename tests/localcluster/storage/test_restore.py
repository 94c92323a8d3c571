"""Claims that start from a data source on the local platform: restores from VolumeSnapshots (the user
procedure's section 3, with real kubectl), size checks, waiting for readiness, and clones of claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import Cluster, leftovers, settle, volume_dir
from support.apiserver import ApiServer
from support.trees import assert_trees_equal, make_sample_tree, snapshot_tree

from localcluster.storage.driver import StorageDriver

FROM_SNAPSHOT = {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io"}
CONTEXT = "cluster1"


def bound_volume(storage: StorageDriver, cluster: Cluster, namespace: str, name: str, size: str = "2Gi") -> Path:
    cluster.create_pvc(namespace, name, size)
    settle(storage.reconcile_pvc, namespace, name)
    return volume_dir(storage.layout.root, cluster.pvc(namespace, name))


@pytest.mark.kubectl
def test_the_user_procedure_turns_a_snapshot_into_a_usable_claim(
    apiserver: ApiServer, storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    """Section 3 of the procedure: a PVC with `dataSource` VolumeSnapshot and 2Gi, then `kubectl get pvc`."""
    source_claim = f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: source, namespace: {namespace}}}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: gp2-csi
  resources: {{requests: {{storage: 2Gi}}}}
"""
    apiserver.apply_yaml(source_claim, context=CONTEXT)
    settle(storage.reconcile_pvc, namespace, "source")
    source = volume_dir(storage.layout.root, cluster.pvc(namespace, "source"))
    make_sample_tree(source)
    expected = snapshot_tree(source)

    snapshot = f"""
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {{name: latest-image, namespace: {namespace}}}
spec:
  source: {{persistentVolumeClaimName: source}}
"""
    apiserver.apply_yaml(snapshot, context=CONTEXT)
    settle(storage.reconcile_volume_snapshot, namespace, "latest-image")
    ready = apiserver.kubectl(
        "get", "volumesnapshot", "latest-image", "-n", namespace, "-o", "jsonpath={.status.readyToUse}", context=CONTEXT
    )
    assert ready.stdout == "true"

    pvc_yaml = f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: restored
  namespace: {namespace}
spec:
  accessModes:
    - ReadWriteOnce
  dataSource:
    kind: VolumeSnapshot
    apiGroup: snapshot.storage.k8s.io
    name: latest-image
  resources:
    requests:
      storage: 2Gi
"""
    apiserver.kubectl("create", "-f", "-", context=CONTEXT, input=pvc_yaml)
    settle(storage.reconcile_pvc, namespace, "restored")

    out = apiserver.kubectl("get", "pvc", "-n", namespace, context=CONTEXT).stdout
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    uid = cluster.pvc(namespace, "restored")["metadata"]["uid"]
    assert rows["restored"][1:5] == ["Bound", f"pvc-{uid}", "2Gi", "RWO"]
    assert rows["source"][1] == "Bound"
    assert_trees_equal(expected, volume_dir(storage.layout.root, cluster.pvc(namespace, "restored")))


def test_a_restore_smaller_than_the_snapshot_is_refused(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    bound_volume(storage, cluster, namespace, "src", "2Gi")
    cluster.create_vs(namespace, "snap", "src")
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    created = cluster.create_pvc(namespace, "small", "1Gi", data_source={**FROM_SNAPSHOT, "name": "snap"})

    for _ in range(2):
        delay = storage.reconcile_pvc(namespace, "small")
        assert delay is not None and delay > 0  # retried later, not settled, not spinning
    pvc = cluster.pvc(namespace, "small")
    assert pvc["status"]["phase"] == "Pending"
    assert not pvc["spec"].get("volumeName")
    assert cluster.pv(f"pvc-{created['metadata']['uid']}") is None
    assert not volume_dir(storage.layout.root, pvc).exists()
    failed = cluster.event(pvc, "ProvisioningFailed")
    assert failed["type"] == "Warning"
    assert failed["message"] == (
        "requested volume size 1Gi (1073741824 bytes) is less than the size 2Gi (2147483648 bytes) "
        "of the source snapshot snap"
    )
    assert failed["count"] == 2


def test_a_restore_may_be_larger_than_the_snapshot(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    source = bound_volume(storage, cluster, namespace, "src", "2Gi")
    (source / "file").write_text("data")
    cluster.create_vs(namespace, "snap", "src")
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    cluster.create_pvc(namespace, "big", "5Gi", data_source={**FROM_SNAPSHOT, "name": "snap"})
    settle(storage.reconcile_pvc, namespace, "big")
    pvc = cluster.pvc(namespace, "big")
    assert pvc["status"]["capacity"] == {"storage": "5Gi"}
    assert (volume_dir(storage.layout.root, pvc) / "file").read_text() == "data"


def test_a_restore_waits_for_the_snapshot_to_be_ready(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    source = bound_volume(storage, cluster, namespace, "src")
    (source / "file").write_text("eventually")
    created = cluster.create_pvc(namespace, "early", "2Gi", data_source={**FROM_SNAPSHOT, "name": "snap"})
    assert storage.reconcile_pvc(namespace, "early") is not None  # no such snapshot yet
    cluster.create_vs(namespace, "snap", "src")
    assert storage.reconcile_pvc(namespace, "early") is not None  # not ready yet
    assert cluster.pv(f"pvc-{created['metadata']['uid']}") is None
    messages = [e["message"] for e in cluster.events(cluster.pvc(namespace, "early"))]
    assert any('"snap" not found' in m for m in messages)
    assert "snapshot snap is not ready to use yet" in messages

    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    settle(storage.reconcile_pvc, namespace, "early")
    pvc = cluster.pvc(namespace, "early")
    assert pvc["status"]["phase"] == "Bound"
    assert (volume_dir(storage.layout.root, pvc) / "file").read_text() == "eventually"
    assert "ProvisioningSucceeded" in cluster.reasons(pvc)


def test_data_source_ref_works_like_data_source(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    source = bound_volume(storage, cluster, namespace, "src")
    (source / "file").write_text("by ref")
    cluster.create_vs(namespace, "snap", "src")
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    cluster.create_pvc(namespace, "ref", "2Gi", data_source_ref={**FROM_SNAPSHOT, "name": "snap"})
    settle(storage.reconcile_pvc, namespace, "ref")
    assert (volume_dir(storage.layout.root, cluster.pvc(namespace, "ref")) / "file").read_text() == "by ref"


def test_a_clone_copies_a_bound_claim(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    source = bound_volume(storage, cluster, namespace, "src")
    make_sample_tree(source)
    expected = snapshot_tree(source)
    cluster.create_pvc(namespace, "clone", "2Gi", data_source={"kind": "PersistentVolumeClaim", "name": "src"})
    settle(storage.reconcile_pvc, namespace, "clone")
    pvc = cluster.pvc(namespace, "clone")
    assert pvc["status"]["phase"] == "Bound"
    clone = volume_dir(storage.layout.root, pvc)
    assert_trees_equal(expected, clone)

    with (source / "hello.txt").open("r+b") as f:  # independent of its source from then on
        f.write(b"CHANGED")
    assert (clone / "hello.txt").read_bytes() == b"hello world\n"
    assert leftovers(storage.layout.root) == []


def test_a_clone_waits_for_its_source_and_refuses_to_shrink(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    cluster.create_pvc(namespace, "src", "2Gi")
    created = cluster.create_pvc(
        namespace, "small", "1Gi", data_source={"kind": "PersistentVolumeClaim", "name": "src"}
    )
    assert storage.reconcile_pvc(namespace, "small") is not None
    assert "source claim src is not bound yet" in [e["message"] for e in cluster.events(created)]

    settle(storage.reconcile_pvc, namespace, "src")
    assert storage.reconcile_pvc(namespace, "small") is not None
    assert cluster.pv(f"pvc-{created['metadata']['uid']}") is None
    assert (
        "requested volume size 1Gi (1073741824 bytes) is less than the size 2Gi (2147483648 bytes) "
        "of the source volume src"
    ) in [e["message"] for e in cluster.events(created)]


def test_an_unsupported_data_source_is_reported(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    created = cluster.create_pvc(
        namespace, "odd", data_source_ref={"kind": "Backup", "apiGroup": "example.com", "name": "b"}
    )
    assert storage.reconcile_pvc(namespace, "odd") is None
    assert cluster.pv(f"pvc-{created['metadata']['uid']}") is None
    message = cluster.event(created, "ProvisioningFailed")["message"]
    assert "data source Backup 'b' (apiGroup 'example.com') is not supported" in message
