"""Provisioning and reclaiming claims on the local platform, against the real embedded API server:
PersistentVolumes, binding, events, directories, restarts at every step, and safe removal."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import kubernetes
import pytest
import urllib3
from storage_helpers import Cluster, NewDriver, leftovers, settle, settle_concurrently, steps, volume_dir

from kube.rest import Kube
from localcluster.storage.copying import Layout, remove
from localcluster.storage.driver import StorageDriver


def test_start_creates_the_driver_and_its_classes_once(new_driver: NewDriver, cluster: Cluster) -> None:
    new_driver()
    sc = cluster.api.sanitize_for_serialization(cluster.storage.read_storage_class("local-csi"))
    assert sc["provisioner"] == "local.csi.volsync-addon.io" == StorageDriver.DRIVER
    assert sc["reclaimPolicy"] == "Delete"
    assert sc["volumeBindingMode"] == "Immediate"
    assert sc["allowVolumeExpansion"] is False
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    gp2 = cluster.api.sanitize_for_serialization(cluster.storage.read_storage_class("gp2-csi"))
    assert gp2["provisioner"] == StorageDriver.DRIVER and "annotations" not in gp2["metadata"]
    snap = ("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses")
    vsc = cluster.custom.get_cluster_custom_object(*snap, "local-csi-snapclass")
    assert vsc["driver"] == "local.csi.volsync-addon.io"
    assert vsc["deletionPolicy"] == "Delete"
    assert vsc["metadata"]["annotations"]["snapshot.storage.kubernetes.io/is-default-class"] == "true"
    for name in ("csi-aws-vsc", "gp2-csi"):
        extra = cluster.custom.get_cluster_custom_object(*snap, name)
        assert extra["driver"] == StorageDriver.DRIVER and "annotations" not in extra["metadata"]
    try:
        driver = cluster.api.sanitize_for_serialization(cluster.storage.read_csi_driver(StorageDriver.DRIVER))
    except kubernetes.client.exceptions.ApiException as exc:  # the API server may not serve csidrivers yet
        assert exc.status == 404
    else:
        assert driver["spec"]["attachRequired"] is False

    cluster.storage.patch_storage_class("gp2-csi", {"metadata": {"labels": {"edited": "by-an-admin"}}})
    gp2 = cluster.api.sanitize_for_serialization(cluster.storage.read_storage_class("gp2-csi"))
    new_driver(pool_size=0)  # another start: nothing is overwritten
    again = cluster.api.sanitize_for_serialization(cluster.storage.read_storage_class("local-csi"))
    assert again["metadata"]["resourceVersion"] == sc["metadata"]["resourceVersion"]
    gp2_again = cluster.api.sanitize_for_serialization(cluster.storage.read_storage_class("gp2-csi"))
    assert gp2_again["metadata"]["labels"] == {"edited": "by-an-admin"}
    assert gp2_again["metadata"]["resourceVersion"] == gp2["metadata"]["resourceVersion"]


def test_provisions_a_claim_of_our_storage_classes(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    created = cluster.create_pvc(namespace, "data", "2Gi", storage_class="gp2-csi")
    uid = created["metadata"]["uid"]
    assert settle(storage.reconcile_pvc, namespace, "data") == 5  # one step per call

    pvc = cluster.pvc(namespace, "data")
    assert pvc["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Gi"}}
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    assert pvc["spec"]["storageClassName"] == "gp2-csi"
    annotations = pvc["metadata"]["annotations"]
    assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
    assert annotations["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert annotations["volume.kubernetes.io/storage-provisioner"] == "local.csi.volsync-addon.io"

    pv = cluster.pv(f"pvc-{uid}")
    assert pv is not None
    directory = data_root / "volumes" / f"pvc-{uid}"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "local.csi.volsync-addon.io"
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    assert pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["local"] == {"path": str(directory)}
    assert "hostPath" not in pv["spec"]
    assert pv["spec"]["nodeAffinity"] == {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["cluster1"]}]}]}}
    assert pv["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": namespace,
        "name": "data",
        "uid": uid,
    }
    assert pv["spec"]["storageClassName"] == "gp2-csi"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["status"]["phase"] == "Bound"

    assert directory.is_dir() and not directory.is_symlink()
    assert list(directory.iterdir()) == []
    assert leftovers(data_root) == []

    assert cluster.reasons(pvc) == ["Provisioning", "ProvisioningSucceeded"]
    assert cluster.event(pvc, "Provisioning")["message"] == (
        f'External provisioner is provisioning volume for claim "{namespace}/data"'
    )
    succeeded = cluster.event(pvc, "ProvisioningSucceeded")
    assert succeeded["type"] == "Normal"
    assert succeeded["message"] == f"Successfully provisioned volume pvc-{uid}"
    assert succeeded["source"]["component"] == "local.csi.volsync-addon.io"

    # Settled: more calls change nothing and say nothing.
    assert storage.reconcile_pvc(namespace, "data") is None
    assert storage.reconcile_pv(f"pvc-{uid}") is None
    assert cluster.pvc(namespace, "data")["metadata"]["resourceVersion"] == pvc["metadata"]["resourceVersion"]
    assert [e["count"] for e in cluster.events(pvc)] == [1, 1]


def test_a_claim_without_a_class_gets_the_default_class(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    cluster.create_pvc(namespace, "plain", "1Gi", storage_class=None)
    settle(storage.reconcile_pvc, namespace, "plain")
    pvc = cluster.pvc(namespace, "plain")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "local-csi"
    pv = cluster.pv(pvc["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["storageClassName"] == "local-csi"


def test_block_volumes_are_refused_with_an_event(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    created = cluster.create_pvc(namespace, "raw", volume_mode="Block")
    assert storage.reconcile_pvc(namespace, "raw") is None  # nothing will change that: no retry
    assert cluster.pv(f"pvc-{created['metadata']['uid']}") is None
    pvc = cluster.pvc(namespace, "raw")
    assert pvc["status"]["phase"] == "Pending"
    failed = cluster.event(pvc, "ProvisioningFailed")
    assert failed["type"] == "Warning"
    assert "volumeMode Block is not supported" in failed["message"]


def test_failures_are_aggregated_into_one_event(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    cluster.create_pvc(namespace, "raw", volume_mode="Block")
    for _ in range(3):
        storage.reconcile_pvc(namespace, "raw")
    [event] = cluster.events(cluster.pvc(namespace, "raw"))
    assert event["reason"] == "ProvisioningFailed"
    assert event["count"] == 3


def test_deleting_a_claim_removes_its_volume(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    cluster.create_pvc(namespace, "gone")
    settle(storage.reconcile_pvc, namespace, "gone")
    pvc = cluster.pvc(namespace, "gone")
    directory = volume_dir(data_root, pvc)
    (directory / "sub").mkdir()
    (directory / "sub" / "file").write_text("bye")
    (directory / "ro").mkdir()
    (directory / "ro" / "inside").write_text("read-only directory")
    (directory / "ro").chmod(0o555)

    cluster.delete_pvc(namespace, "gone")
    assert storage.reconcile_pvc(namespace, "gone") is None
    pv_name = pvc["spec"]["volumeName"]
    assert storage.reconcile_pv(pv_name) is not None
    released = cluster.pv(pv_name)
    assert released is not None and released["status"]["phase"] == "Released"
    settle(storage.reconcile_pv, pv_name)
    assert cluster.pv(pv_name) is None
    assert not directory.exists()
    assert leftovers(data_root) == []
    assert storage.reconcile_pv(pv_name) is None


def test_a_claim_recreated_under_the_same_name_does_not_keep_the_old_volume(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    cluster.create_pvc(namespace, "again")
    settle(storage.reconcile_pvc, namespace, "again")
    old = cluster.pvc(namespace, "again")
    (volume_dir(data_root, old) / "old").write_text("old data")
    cluster.delete_pvc(namespace, "again")
    cluster.create_pvc(namespace, "again")
    settle(storage.reconcile_pvc, namespace, "again")
    new = cluster.pvc(namespace, "again")
    assert new["spec"]["volumeName"] != old["spec"]["volumeName"]
    assert list(volume_dir(data_root, new).iterdir()) == []

    settle(storage.reconcile_pv, old["spec"]["volumeName"])  # the claimRef's uid is no longer there
    assert cluster.pv(old["spec"]["volumeName"]) is None
    assert not volume_dir(data_root, old).exists()
    assert storage.reconcile_pv(new["spec"]["volumeName"]) is None
    assert volume_dir(data_root, new).is_dir()


def test_retain_keeps_the_data_of_a_deleted_claim(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    klass = f"keep-{namespace}"[:63]
    body = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": klass},
        "provisioner": "local.csi.volsync-addon.io",
        "reclaimPolicy": "Retain",
    }
    cluster.storage.create_storage_class(body)
    try:
        cluster.create_pvc(namespace, "kept", storage_class=klass)
        settle(storage.reconcile_pvc, namespace, "kept")
        pvc = cluster.pvc(namespace, "kept")
        pv = cluster.pv(pvc["spec"]["volumeName"])
        assert pv is not None
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert not pv["metadata"].get("finalizers")
        (volume_dir(data_root, pvc) / "precious").write_text("keep me")

        cluster.delete_pvc(namespace, "kept")
        settle(storage.reconcile_pv, pvc["spec"]["volumeName"])
        pv = cluster.pv(pvc["spec"]["volumeName"])
        assert pv is not None and pv["status"]["phase"] == "Released"
        assert (volume_dir(data_root, pvc) / "precious").read_text() == "keep me"
    finally:
        cluster.storage.delete_storage_class(klass)


def test_a_volume_deleted_while_its_claim_exists_waits_for_the_claim(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    cluster.create_pvc(namespace, "busy")
    settle(storage.reconcile_pvc, namespace, "busy")
    pvc = cluster.pvc(namespace, "busy")
    pv_name = pvc["spec"]["volumeName"]
    cluster.delete_pv(pv_name)
    pv = cluster.pv(pv_name)
    assert pv is not None and pv["metadata"]["deletionTimestamp"]  # held by the provisioner's finalizer
    assert storage.reconcile_pv(pv_name) is None
    assert volume_dir(data_root, pvc).is_dir()

    cluster.delete_pvc(namespace, "busy")
    settle(storage.reconcile_pv, pv_name)
    assert cluster.pv(pv_name) is None
    assert not volume_dir(data_root, pvc).exists()


def test_a_bound_claim_whose_volume_vanished_is_lost(storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    cluster.create_pvc(namespace, "lost")
    settle(storage.reconcile_pvc, namespace, "lost")
    pvc = cluster.pvc(namespace, "lost")
    pv_name = pvc["spec"]["volumeName"]
    # Someone forces the PV away (finalizer removed by hand) and the claim is reconciled again.
    cluster.core.patch_persistent_volume(pv_name, {"metadata": {"finalizers": None}})
    cluster.delete_pv(pv_name)
    cluster.core.patch_namespaced_persistent_volume_claim_status(
        "lost", namespace, {"status": {"phase": "Pending"}}, _content_type="application/merge-patch+json"
    )
    assert storage.reconcile_pvc(namespace, "lost") is None
    pvc = cluster.pvc(namespace, "lost")
    assert pvc["status"]["phase"] == "Lost"
    assert cluster.event(pvc, "ClaimLost")["type"] == "Warning"
    assert cluster.pv(pv_name) is None  # not re-created behind the claim's back


@pytest.mark.parametrize("done", range(5))
def test_a_restart_after_any_step_finishes_the_claim(
    new_driver: NewDriver, cluster: Cluster, namespace: str, data_root: Path, done: int
) -> None:
    first = new_driver()
    cluster.create_pvc(namespace, "c", "3Gi")
    steps(first.reconcile_pvc, namespace, "c", count=done)

    restarted = new_driver()  # a new process: nothing but the API and the directories
    assert settle(restarted.reconcile_pvc, namespace, "c") == 5 - done
    pvc = cluster.pvc(namespace, "c")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["status"]["capacity"] == {"storage": "3Gi"}
    pv = cluster.pv(pvc["spec"]["volumeName"])
    assert pv is not None and pv["status"]["phase"] == "Bound"
    assert volume_dir(data_root, pvc).is_dir()
    assert sorted(p.name for p in (data_root / "volumes").iterdir()) == [pvc["spec"]["volumeName"]]
    assert cluster.reasons(pvc) == ["Provisioning", "ProvisioningSucceeded"]


def test_a_crash_while_filling_leaves_no_complete_looking_volume(
    new_driver: NewDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    first = new_driver()
    cluster.create_pvc(namespace, "c")
    steps(first.reconcile_pvc, namespace, "c", count=1)  # the PV exists, the directory not yet
    uid = cluster.pvc(namespace, "c")["metadata"]["uid"]
    # What a crash in the middle of filling leaves: a staging directory, never the final name.
    staging = data_root / "volumes" / f".pvc-{uid}.tmp"
    staging.mkdir()
    (staging / "half-written").write_bytes(b"\0" * 100)

    restarted = new_driver()
    settle(restarted.reconcile_pvc, namespace, "c")
    assert list((data_root / "volumes" / f"pvc-{uid}").iterdir()) == []
    assert leftovers(data_root) == []


def test_claims_are_provisioned_concurrently(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    names = [f"c{i}" for i in range(8)]
    for name in names:
        cluster.create_pvc(namespace, name)
    assert settle_concurrently(storage.reconcile_pvc, namespace, names) == []
    volumes = {cluster.pvc(namespace, n)["spec"]["volumeName"] for n in names}
    assert len(volumes) == 8
    assert {p.name for p in (data_root / "volumes").iterdir()} == volumes


def test_removal_never_follows_symlinks_out_of_the_data_root(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("not ours")
    for name in ("inner", "swapped"):
        cluster.create_pvc(namespace, name)
        settle(storage.reconcile_pvc, namespace, name)
    inner = cluster.pvc(namespace, "inner")
    swapped = cluster.pvc(namespace, "swapped")
    # A link inside a volume pointing out of it; and a volume directory replaced by such a link.
    (volume_dir(data_root, inner) / "escape").symlink_to(outside)
    os.rename(volume_dir(data_root, swapped), data_root / "moved-away")  # same filesystem (the pool)
    volume_dir(data_root, swapped).symlink_to(outside)

    for name, pvc in (("inner", inner), ("swapped", swapped)):
        cluster.delete_pvc(namespace, name)
        settle(storage.reconcile_pv, pvc["spec"]["volumeName"])
        assert cluster.pv(pvc["spec"]["volumeName"]) is None
        assert not os.path.lexists(volume_dir(data_root, pvc))
    assert (outside / "precious").read_text() == "not ours"


def test_a_volume_whose_path_was_changed_is_not_deleted(
    storage: StorageDriver, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("not ours")
    cluster.create_pvc(namespace, "moved")
    settle(storage.reconcile_pvc, namespace, "moved")
    pv_name = cluster.pvc(namespace, "moved")["spec"]["volumeName"]
    cluster.core.patch_persistent_volume(pv_name, {"spec": {"local": {"path": str(elsewhere)}}})
    cluster.delete_pvc(namespace, "moved")

    settle(storage.reconcile_pv, pv_name)
    pv = cluster.pv(pv_name)
    assert pv is not None and pv["status"]["phase"] == "Failed"
    assert "refusing to delete" in cluster.event(pv, "VolumeFailedDelete")["message"]
    assert (elsewhere / "precious").read_text() == "not ours"
    cluster.core.patch_persistent_volume(pv_name, {"metadata": {"finalizers": None}})
    cluster.delete_pv(pv_name)


def test_an_unprivileged_agent_removes_read_only_directories() -> None:
    """rmtree as a user without write (or read) permission on some of a volume's directories, which
    root never runs into: the removal makes them writable as it goes."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        layout = Layout(root / "data")
        layout.ensure()
        volume = layout.volume("pvc-1")
        (volume / "ro" / "deeper").mkdir(parents=True)
        (volume / "ro" / "deeper" / "file").write_text("x")
        (volume / "unreadable" / "sub").mkdir(parents=True)
        (volume / "unreadable" / "sub" / "file").write_text("x")
        for path in (layout.root, *layout.root.rglob("*")):
            os.chown(path, 65534, 65534)
        (volume / "ro" / "deeper").chmod(0o555)
        (volume / "ro").chmod(0o555)
        (volume / "unreadable" / "sub").chmod(0o000)
        (volume / "unreadable").chmod(0o000)
        os.setegid(65534)
        os.seteuid(65534)  # effective ids only: the saved ids let the test become root again
        try:
            with pytest.raises(PermissionError):
                (volume / "ro" / "new").write_text("really read-only for this user")
            assert remove(layout, volume)
        finally:
            os.seteuid(0)
            os.setegid(0)
        assert not volume.exists()


def test_a_claim_deleted_before_it_was_bound_leaves_nothing_behind(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    created = cluster.create_pvc(namespace, "brief")
    steps(storage.reconcile_pvc, namespace, "brief", count=2)  # the PV and the directory, not yet bound
    pv_name = f"pvc-{created['metadata']['uid']}"
    assert cluster.pv(pv_name) is not None and (data_root / "volumes" / pv_name).is_dir()
    assert not cluster.pvc(namespace, "brief")["spec"].get("volumeName")

    cluster.delete_pvc(namespace, "brief")
    assert storage.reconcile_pvc(namespace, "brief") is None
    settle(storage.reconcile_pv, pv_name)  # the name a controller derives from the deleted claim's uid
    assert cluster.pv(pv_name) is None
    assert list((data_root / "volumes").iterdir()) == []


def test_an_unreachable_api_server_means_retry_later_not_an_exception(new_driver: NewDriver) -> None:
    config = kubernetes.client.Configuration()
    config.host = "http://127.0.0.1:9"  # discard port: connection refused
    config.retries = False
    with kubernetes.client.ApiClient(config) as api:
        storage = new_driver(kube=Kube(api), start=False, pool_size=0)
        with pytest.raises(urllib3.exceptions.HTTPError):
            storage.start()  # the classes cannot be ensured: start says so
        for delay in (storage.reconcile_pvc("ns", "c"), storage.reconcile_volume_snapshot("ns", "s")):
            assert delay is not None and delay > 0
        assert storage.reconcile_pv("pvc-1") is not None
