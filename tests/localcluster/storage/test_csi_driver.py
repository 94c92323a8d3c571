"""The driver as a cluster runs it: a started Runtime reconciles claims and snapshots on their events,
copies in the pool are reflinks independent of their source, clones and restores through
`dataSource` and `dataSourceRef`, other provisioners' claims and other drivers' snapshots untouched,
the pool adopted after a crash and released at stop, the plain-directory fallback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import Cluster, NewDriver, content_dir, volume_dir
from support.trees import assert_trees_equal, make_sample_tree
from support.waiting import eventually

from kube.rest import CSI_STORAGE_CAPACITIES, Kube
from localcluster.storage import pool
from localcluster.storage.common import to_bytes
from localcluster.storage.driver import StorageDriver

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[3]
SNAP = {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io"}
CLAIM = {"kind": "PersistentVolumeClaim"}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the pool needs root (loop mount)")


def bound(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return eventually(lambda: (lambda p: p if p["status"].get("phase") == "Bound" else None)(
        cluster.pvc(namespace, name)), 30, what=f"claim {name} Bound")


def ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return eventually(lambda: (lambda v: v if v and (v.get("status") or {}).get("readyToUse") else None)(
        cluster.vs(namespace, name)), 30, what=f"snapshot {name} ready")


def used_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_a_reflink_snapshot_shares_blocks_and_stays_independent_of_in_place_writes(
        running: StorageDriver, cluster: Cluster, namespace: str, data_root: Path) -> None:
    assert running.pool is not None and running.pool.reflink
    cluster.create_pvc(namespace, "src", "1Gi")
    source = volume_dir(data_root, bound(cluster, namespace, "src"))
    original = os.urandom(MiB) * 64
    (source / "big").write_bytes(original)
    os.sync()
    before = used_bytes(data_root)

    cluster.create_vs(namespace, "snap", "src")
    image = content_dir(data_root, ready(cluster, namespace, "snap"))
    os.sync()
    assert used_bytes(data_root) - before < 8 * MiB  # 64 MiB copied, a few MiB of metadata at most

    with open(source / "big", "r+b") as f:  # in place: same inode, same blocks until copy-on-write
        f.seek(10 * MiB)
        f.write(b"\xff" * MiB)
    assert (image / "big").read_bytes() == original
    assert (source / "big").read_bytes() != original
    assert os.stat(image / "big").st_ino != os.stat(source / "big").st_ino


@pytest.mark.parametrize("field", ["dataSource", "dataSourceRef"])
def test_clone_and_restore_through_the_runtime(running: StorageDriver, cluster: Cluster, namespace: str,
                                               data_root: Path, field: str) -> None:
    cluster.create_pvc(namespace, "src", "1Gi")
    source = volume_dir(data_root, bound(cluster, namespace, "src"))
    make_sample_tree(source, large_size=4 * MiB)
    cluster.create_vs(namespace, "snap", "src")
    image = content_dir(data_root, ready(cluster, namespace, "snap"))
    (source / "after-the-snapshot").write_text("only in the source and its clone")

    ref = "data_source_ref" if field == "dataSourceRef" else "data_source"
    cluster.create_pvc(namespace, "restored", "1Gi", **{ref: {**SNAP, "name": "snap"}})
    cluster.create_pvc(namespace, "cloned", "1Gi", **{ref: {**CLAIM, "name": "src"}})
    restored = volume_dir(data_root, bound(cluster, namespace, "restored"))
    cloned = volume_dir(data_root, bound(cluster, namespace, "cloned"))

    assert_trees_equal(source, cloned)
    assert_trees_equal(image, restored)
    assert not (restored / "after-the-snapshot").exists()
    (source / "after-the-snapshot").unlink()
    assert (cloned / "after-the-snapshot").exists()  # the clone is its own copy


def test_claims_and_snapshots_of_other_drivers_are_left_alone(running: StorageDriver, cluster: Cluster,
                                                              namespace: str) -> None:
    foreign = f"ebs-{namespace}"[:63]
    cluster.storage.create_storage_class({"metadata": {"name": foreign}, "provisioner": "ebs.csi.aws.com"})
    snapshot_class = f"ebs-snap-{namespace}"[:63]
    cluster.custom.create_cluster_custom_object(
        "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses",
        {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
         "metadata": {"name": snapshot_class}, "driver": "ebs.csi.aws.com", "deletionPolicy": "Delete"})
    try:
        cluster.create_pvc(namespace, "theirs", storage_class=foreign)
        cluster.create_pvc(namespace, "nowhere", storage_class=f"missing-{namespace}"[:63])
        cluster.create_pvc(namespace, "ours")
        bound(cluster, namespace, "ours")
        cluster.create_vs(namespace, "their-snap", "ours", klass=snapshot_class)
        cluster.create_vs(namespace, "our-snap", "ours")
        ready(cluster, namespace, "our-snap")  # the runtime has seen and processed everything before it
        for name in ("theirs", "nowhere"):  # and asked once more, directly: nothing to do
            assert running.reconcile_pvc(namespace, name) is None
        assert running.reconcile_volume_snapshot(namespace, "their-snap") is None

        for name in ("theirs", "nowhere"):
            pvc = cluster.pvc(namespace, name)
            assert pvc["status"].get("phase") == "Pending"
            assert not pvc["spec"].get("volumeName")
            assert not pvc["metadata"].get("annotations")
            assert cluster.events(pvc) == []
            assert cluster.pv(f"pvc-{pvc['metadata']['uid']}") is None
        theirs = cluster.vs(namespace, "their-snap")
        assert theirs is not None and not theirs.get("status") and not theirs["metadata"].get("finalizers")
        assert cluster.vsc(f"snapcontent-{theirs['metadata']['uid']}") is None
    finally:
        cluster.storage.delete_storage_class(foreign)
        cluster.custom.delete_cluster_custom_object("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses",
                                                    snapshot_class)


def _mounts_at(path: Path) -> int:
    return sum(1 for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4] == str(path))


def test_the_pool_is_adopted_after_a_crash_and_released_at_stop(new_driver: NewDriver, cluster: Cluster,
                                                                namespace: str, data_root: Path) -> None:
    first = new_driver()
    assert first.pool is not None and first.pool.reflink and not first.pool.adopted
    assert _mounts_at(data_root) == 1 and len(pool.loop_devices(first.pool.image)) == 1
    flags = os.statvfs(data_root).f_flag
    assert flags & os.ST_NOSUID and flags & os.ST_NODEV
    cluster.create_pvc(namespace, "kept")
    first.runtime.start()
    volume = volume_dir(data_root, bound(cluster, namespace, "kept"))
    (volume / "file").write_text("survives")
    first.runtime.stop()
    first.stop(release=False)  # as a kill -9 leaves it: mounted, attached

    second = new_driver()
    assert second.pool is not None and second.pool.adopted
    assert _mounts_at(data_root) == 1 and len(pool.loop_devices(second.pool.image)) == 1  # adopted, not stacked
    assert (volume / "file").read_text() == "survives"
    second.stop(release=True)
    assert _mounts_at(data_root) == 0 and pool.loop_devices(second.pool.image) == []

    third = new_driver()  # the image exists, unmounted: mounted again, not made anew
    assert third.pool is not None and third.pool.reflink and not third.pool.adopted
    assert (volume / "file").read_text() == "survives"


def test_without_a_pool_the_driver_falls_back_to_full_copies(new_driver: NewDriver, cluster: Cluster, namespace: str,
                                                             data_root: Path, storage_root: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="localcluster.storage.pool"):
        driver = new_driver(pool_size=0)
    assert driver.pool is not None and not driver.pool.reflink
    assert "plain directory" in caplog.text and "full copies" in caplog.text
    assert not (storage_root / pool.IMAGE).exists() and _mounts_at(data_root) == 0
    driver.runtime.start()
    cluster.create_pvc(namespace, "src")
    source = volume_dir(data_root, bound(cluster, namespace, "src"))
    (source / "file").write_text("copied in full")
    cluster.create_vs(namespace, "snap", "src")
    image = content_dir(data_root, ready(cluster, namespace, "snap"))
    assert (image / "file").read_text() == "copied in full"


def test_a_plain_directory_with_volumes_is_never_hidden_under_a_new_pool(
        new_driver: NewDriver, cluster: Cluster, namespace: str, data_root: Path, storage_root: Path) -> None:
    plain = new_driver(pool_size=0)
    plain.runtime.start()
    cluster.create_pvc(namespace, "src")
    volume = volume_dir(data_root, bound(cluster, namespace, "src"))
    (volume / "file").write_text("still here")
    plain.runtime.stop()

    again = new_driver()  # a pool could be made now, but the directory holds volumes
    assert again.pool is not None and not again.pool.reflink and _mounts_at(data_root) == 0
    assert (volume / "file").read_text() == "still here"


def test_the_pools_free_space_is_published_per_storage_class(running: StorageDriver, api: Any) -> None:
    kube = Kube(api)
    name = "local-local-csi"

    def published() -> dict[str, Any] | None:
        return kube.get(CSI_STORAGE_CAPACITIES, name, "kube-system")

    assert running.pool is not None
    total, _ = pool.free_bytes(running.pool)

    def this_pools() -> dict[str, Any] | None:  # an earlier test's driver may have published another pool's
        found = published()
        return found if found and 0 < to_bytes(found["capacity"]) <= total else None

    eventually(lambda: this_pools() is not None or not running._capacity_served, 15, what="capacity reconciled")
    if not running._capacity_served:
        pytest.skip("the API server does not serve csistoragecapacities")
    found = this_pools()
    assert found is not None
    assert found["storageClassName"] == "local-csi"
    assert found["nodeTopology"] == {"matchLabels": {"kubernetes.io/hostname": "cluster1"}}
    assert to_bytes(found["maximumVolumeSize"]) == total


_CHILD = """
import sys
from pathlib import Path
from kube import clients
from kube.controller import Runtime
from kube.rest import Kube
from localcluster.storage.driver import StorageDriver
kube = Kube(clients.load(sys.argv[1], "cluster1"))
runtime = Runtime(kube)
driver = StorageDriver(runtime, kube, Path(sys.argv[2]), node_name="cluster1", pool_size=4 << 30).start()
runtime.start()
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_driver_killed_with_sigkill_leaves_its_pool_to_the_next_one(
        new_driver: NewDriver, apiserver: Any, storage_root: Path, data_root: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(apiserver.kubeconfig), str(storage_root)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        (data_root / "volumes" / "marker").write_text("made by the killed process")
    finally:
        child.kill()
        child.communicate()  # reaps it and closes its pipes
    assert _mounts_at(data_root) == 1  # nobody released it

    adopting = new_driver()
    assert adopting.pool is not None and adopting.pool.adopted and _mounts_at(data_root) == 1
    assert (data_root / "volumes" / "marker").read_text() == "made by the killed process"
