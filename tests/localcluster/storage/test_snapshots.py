"""VolumeSnapshots on the local platform: contents, status, events, preserved metadata, point-in-time
copies, classes, deletion, restarts at every step, and the races with a source claim going away."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from storage_helpers import Cluster, NewDriver, content_dir, leftovers, settle, settle_concurrently, steps, volume_dir
from support.trees import (
    HARDLINKS,
    LARGE_SIZE,
    OWNER_GID,
    OWNER_UID,
    SPARSE_SIZE,
    assert_trees_equal,
    is_root,
    make_sample_tree,
    mutate_sample_tree,
    snapshot_tree,
)

from localcluster.storage.driver import StorageDriver

SNAPSHOT_STEPS = 6  # with a named class: finalizer, content, bound name, copy, content ready, snapshot ready


def provision(storage: StorageDriver, cluster: Cluster, namespace: str, name: str, size: str = "2Gi") -> Path:
    cluster.create_pvc(namespace, name, size)
    settle(storage.reconcile_pvc, namespace, name)
    pvc = cluster.pvc(namespace, name)
    assert pvc["status"]["phase"] == "Bound"
    return Path(cluster.pv(pvc["spec"]["volumeName"])["spec"]["local"]["path"])  # type: ignore[index]


def getfacl(path: Path) -> str:
    return subprocess.run(["getfacl", "-pn", str(path)], capture_output=True, text=True, check=True).stdout


def snapshot(storage: StorageDriver, cluster: Cluster, namespace: str, name: str, pvc: str) -> dict:  # type: ignore[type-arg]
    cluster.create_vs(namespace, name, pvc)
    settle(storage.reconcile_volume_snapshot, namespace, name)
    vs = cluster.vs(namespace, name)
    assert vs is not None and vs["status"]["readyToUse"] is True, vs
    return vs


def test_a_snapshot_of_a_claim(storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path) -> None:
    source = provision(storage, cluster, namespace, "src")
    make_sample_tree(source)
    before = time.time_ns()
    cluster.create_vs(namespace, "snap", "src")
    assert settle(storage.reconcile_volume_snapshot, namespace, "snap") == SNAPSHOT_STEPS
    after = time.time_ns()

    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    uid = vs["metadata"]["uid"]
    content_name = f"snapcontent-{uid}"
    directory = data_root / "snapshots" / content_name
    assert vs["metadata"]["finalizers"] == ["local.csi.volsync-addon.io/snapshot-protection"]
    assert vs["status"]["boundVolumeSnapshotContentName"] == content_name
    assert vs["status"]["readyToUse"] is True
    assert vs["status"]["restoreSize"] == "2Gi"
    assert "error" not in vs["status"]
    created = datetime.strptime(vs["status"]["creationTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before // 10**9 - 1 <= created.timestamp() <= after / 10**9 + 1

    pvc = cluster.pvc(namespace, "src")
    content = cluster.vsc(content_name)
    assert content is not None
    assert content["spec"] == {
        "deletionPolicy": "Delete",
        "driver": "local.csi.volsync-addon.io",
        "source": {"volumeHandle": pvc["spec"]["volumeName"]},
        "sourceVolumeMode": "Filesystem",
        "volumeSnapshotClassName": "local-csi-snapclass",
        "volumeSnapshotRef": {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "namespace": namespace,
            "name": "snap",
            "uid": uid,
        },
    }
    status = content["status"]
    assert status["readyToUse"] is True
    assert status["restoreSize"] == 2 * 1024**3
    assert before <= status["creationTime"] <= after
    assert status["snapshotHandle"] == str(directory)

    assert directory.is_dir()
    assert_trees_equal(source, directory)
    assert leftovers(data_root) == []
    assert cluster.reasons(vs) == ["CreatingSnapshot", "SnapshotCreated", "SnapshotReady"]
    assert cluster.event(vs, "SnapshotReady")["message"] == f"Snapshot {namespace}/snap is ready to use."

    assert storage.reconcile_volume_snapshot(namespace, "snap") is None  # settled
    assert cluster.vs(namespace, "snap")["metadata"]["resourceVersion"] == vs["metadata"]["resourceVersion"]  # type: ignore[index]


def test_a_snapshot_keeps_every_kind_of_metadata(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    source = provision(storage, cluster, namespace, "src")
    make_sample_tree(source)
    # Beyond the sample tree: a FIFO, a user xattr, nanosecond timestamps and a private volume root.
    os.mkfifo(source / "pipe")
    os.setxattr(source / "hello.txt", "user.comment", b"kept")
    os.utime(source / "modes" / "readonly-0444", ns=(1_000_000_000_000_000_000, 1_000_000_000_123_456_789))
    source.chmod(0o750)
    vs = snapshot(storage, cluster, namespace, "snap", "src")
    copy = content_dir(data_root, vs)

    # The whole-tree comparison covers most of these; spelled out so a failure names the property.
    assert_trees_equal(source, copy)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o750
    assert stat.S_IMODE((copy / "modes" / "private-0600").stat().st_mode) == 0o600
    assert stat.S_IMODE((copy / "modes" / "script-0755").stat().st_mode) == 0o755
    assert stat.S_IMODE((copy / "modes" / "readonly-0444").stat().st_mode) == 0o444
    assert stat.S_IMODE((copy / "modes" / "setgid-dir").stat().st_mode) == 0o2775
    assert (copy / "modes" / "readonly-0444").stat().st_mtime_ns == 1_000_000_000_123_456_789
    if is_root():
        owned = (copy / "owned" / "by-1234.txt").stat()
        assert (owned.st_uid, owned.st_gid) == (OWNER_UID, OWNER_GID)
        assert os.lstat(copy / "links" / "dangling").st_uid == OWNER_UID  # the link itself, not a target
    assert os.readlink(copy / "links" / "relative") == "../hello.txt"
    assert os.readlink(copy / "links" / "absolute") == "/etc/hostname"
    assert os.readlink(copy / "links" / "dangling") == "does/not/exist"
    inodes = {(copy / name).stat().st_ino for name in ["hard/one", *HARDLINKS]}
    assert len(inodes) == 1 and (copy / "hard" / "one").stat().st_nlink == 3
    assert inodes != {(source / "hard" / "one").stat().st_ino}  # a copy, not links to the source
    assert os.getxattr(copy / "hello.txt", "user.comment") == b"kept"
    assert f"user:{OWNER_UID}:rwx" in getfacl(copy / "acl" / "file")
    assert f"default:group:{OWNER_GID}:r-x" in getfacl(copy / "acl" / "dir")
    sparse = (copy / "sparse.img").stat()
    assert sparse.st_size == SPARSE_SIZE
    assert sparse.st_blocks * 512 <= 1024 * 1024  # the holes stayed holes
    assert (copy / "large.bin").stat().st_size == LARGE_SIZE
    assert stat.S_ISFIFO(os.lstat(copy / "pipe").st_mode)
    assert (copy / "日本語" / "データ.txt").read_text() == "こんにちは\n"


def test_a_snapshot_is_a_point_in_time_copy(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    source = provision(storage, cluster, namespace, "src")
    make_sample_tree(source)
    (source / "log").write_text("line 1\n")
    at_snapshot = snapshot_tree(source)
    vs = snapshot(storage, cluster, namespace, "snap", "src")
    copy = content_dir(data_root, vs)

    # Change the source every way there is, including in place (what a hard-link copy would not survive):
    # the sample tree's own mutations, then a few more.
    mutate_sample_tree(source)
    with (source / "hard" / "one").open("r+b") as f:  # still linked to nested/hard-three
        f.write(b"ONE")
    with (source / "log").open("a") as f:
        f.write("line 2\n")
    with (source / "sparse.img").open("r+b") as f:
        f.seek(1024 * 1024)
        f.write(b"filled a hole")
    subprocess.run(["setfacl", "-m", f"u:{OWNER_UID}:---", str(source / "acl" / "file")], check=True)
    (source / "hello.txt").chmod(0o600)

    with pytest.raises(AssertionError):  # the source did change...
        assert_trees_equal(at_snapshot, source)
    assert_trees_equal(at_snapshot, snapshot_tree(copy))  # ...its snapshot did not
    assert (copy / "hello.txt").read_bytes() == b"hello world\n"
    assert (copy / "log").read_text() == "line 1\n"

    cluster.create_pvc(
        namespace,
        "restored",
        "2Gi",
        data_source={"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "snap"},
    )
    settle(storage.reconcile_pvc, namespace, "restored")
    restored = volume_dir(data_root, cluster.pvc(namespace, "restored"))
    assert_trees_equal(at_snapshot, snapshot_tree(restored))

    # The restored volume is independent of the snapshot too.
    with (restored / "hello.txt").open("r+b") as f:
        f.write(b"JELLO")
    assert (copy / "hello.txt").read_bytes() == b"hello world\n"

    later = snapshot(storage, cluster, namespace, "later", "src")
    assert_trees_equal(source, content_dir(data_root, later))
    assert (content_dir(data_root, later) / "hello.txt").read_bytes() == b"HELLO WORLD\n"
    assert not (content_dir(data_root, later) / "modes" / "private-0600").exists()


def test_a_snapshot_waits_for_its_claim_to_be_bound(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    cluster.create_pvc(namespace, "later")
    cluster.create_vs(namespace, "snap", "later")
    for _ in range(3):
        assert storage.reconcile_volume_snapshot(namespace, "snap") is not None
    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    assert not vs["metadata"].get("finalizers")
    assert not vs.get("status")
    assert cluster.vsc(f"snapcontent-{vs['metadata']['uid']}") is None

    settle(storage.reconcile_pvc, namespace, "later")
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    assert cluster.vs(namespace, "snap")["status"]["readyToUse"] is True  # type: ignore[index]


def test_a_snapshot_of_a_missing_claim_reports_an_error(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    cluster.create_vs(namespace, "snap", "nobody")
    assert storage.reconcile_volume_snapshot(namespace, "snap") is not None
    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    assert '"nobody" not found' in vs["status"]["error"]["message"]
    assert cluster.event(vs, "SnapshotContentCreationFailed")["type"] == "Warning"


def test_a_missing_snapshot_class_is_an_error_until_it_exists(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    provision(storage, cluster, namespace, "src")
    klass = f"late-{namespace}"[:63]
    cluster.create_vs(namespace, "snap", "src", klass=klass)
    assert storage.reconcile_volume_snapshot(namespace, "snap") is not None
    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    error = vs["status"]["error"]
    assert error["message"] == (
        f'Failed to get snapshot class with error volumesnapshotclasses.snapshot.storage.k8s.io "{klass}" not found'
    )
    datetime.strptime(error["time"], "%Y-%m-%dT%H:%M:%SZ")
    assert vs["status"]["readyToUse"] is False
    assert not vs["metadata"].get("finalizers")
    assert cluster.vsc(f"snapcontent-{vs['metadata']['uid']}") is None
    event = cluster.event(vs, "GetSnapshotClassFailed")
    assert event["type"] == "Warning" and klass in event["message"]

    assert storage.reconcile_volume_snapshot(namespace, "snap") is not None  # still missing: same error, same time
    assert cluster.vs(namespace, "snap")["status"]["error"] == error  # type: ignore[index]

    cluster.create_snapshot_class(klass)
    try:
        settle(storage.reconcile_volume_snapshot, namespace, "snap")
        vs = cluster.vs(namespace, "snap")
        assert vs is not None
        assert vs["status"]["readyToUse"] is True
        assert "error" not in vs["status"]
        content = cluster.vsc(vs["status"]["boundVolumeSnapshotContentName"])
        assert content is not None and content["spec"]["volumeSnapshotClassName"] == klass
    finally:
        cluster.delete_snapshot_class(klass)


def test_without_a_class_the_default_class_is_written_into_the_snapshot(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    provision(storage, cluster, namespace, "src")
    cluster.create_vs(namespace, "snap", "src", klass=None)
    assert settle(storage.reconcile_volume_snapshot, namespace, "snap") == SNAPSHOT_STEPS + 1
    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    assert vs["spec"]["volumeSnapshotClassName"] == "local-csi-snapclass"
    assert vs["status"]["readyToUse"] is True


def test_pre_provisioned_snapshots_are_reported_unsupported(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "static"},
        "spec": {"source": {"volumeSnapshotContentName": "some-content"}},
    }
    cluster.custom.create_namespaced_custom_object("snapshot.storage.k8s.io", "v1", namespace, "volumesnapshots", body)
    assert storage.reconcile_volume_snapshot(namespace, "static") is None
    vs = cluster.vs(namespace, "static")
    assert vs is not None
    assert "pre-provisioned snapshots" in vs["status"]["error"]["message"]
    assert "not supported" in vs["status"]["error"]["message"]
    assert vs["status"]["readyToUse"] is False
    assert not vs["metadata"].get("finalizers")
    assert cluster.event(vs, "SnapshotContentUnsupported")["type"] == "Warning"


def test_deleting_a_snapshot_removes_its_content(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    source = provision(storage, cluster, namespace, "src")
    (source / "file").write_text("data")
    vs = snapshot(storage, cluster, namespace, "snap", "src")
    directory = content_dir(data_root, vs)
    assert directory.is_dir()

    cluster.delete_vs(namespace, "snap")
    deleting = cluster.vs(namespace, "snap")
    assert deleting is not None and deleting["metadata"]["deletionTimestamp"]  # held by our finalizer
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    assert cluster.vs(namespace, "snap") is None
    assert cluster.vsc(vs["status"]["boundVolumeSnapshotContentName"]) is None
    assert not directory.exists()
    assert leftovers(data_root) == []
    assert (source / "file").read_text() == "data"  # the source is untouched


def test_a_retained_snapshot_keeps_its_content(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    provision(storage, cluster, namespace, "src")
    klass = f"retain-{namespace}"[:63]
    cluster.create_snapshot_class(klass, deletion_policy="Retain")
    try:
        cluster.create_vs(namespace, "snap", "src", klass=klass)
        settle(storage.reconcile_volume_snapshot, namespace, "snap")
        vs = cluster.vs(namespace, "snap")
        assert vs is not None
        content_name = vs["status"]["boundVolumeSnapshotContentName"]
        assert cluster.vsc(content_name)["spec"]["deletionPolicy"] == "Retain"  # type: ignore[index]
        cluster.delete_vs(namespace, "snap")
        settle(storage.reconcile_volume_snapshot, namespace, "snap")
        assert cluster.vs(namespace, "snap") is None
        assert cluster.vsc(content_name) is not None
        assert content_dir(data_root, vs).is_dir()
    finally:
        cluster.delete_snapshot_class(klass)
        cluster.custom.delete_cluster_custom_object(
            "snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", f"snapcontent-{vs['metadata']['uid']}"
        )


def test_a_snapshot_outlives_its_source_claim(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    source = provision(storage, cluster, namespace, "src")
    (source / "file").write_text("survives")
    vs = snapshot(storage, cluster, namespace, "snap", "src")
    pv_name = cluster.pvc(namespace, "src")["spec"]["volumeName"]
    cluster.delete_pvc(namespace, "src")
    settle(storage.reconcile_pv, pv_name)
    assert not source.exists()
    assert (content_dir(data_root, vs) / "file").read_text() == "survives"

    cluster.create_pvc(
        namespace,
        "back",
        "2Gi",
        data_source={"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "snap"},
    )
    settle(storage.reconcile_pvc, namespace, "back")
    assert (volume_dir(data_root, cluster.pvc(namespace, "back")) / "file").read_text() == "survives"


def test_a_claim_deleted_before_the_copy_fails_the_snapshot_cleanly(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    provision(storage, cluster, namespace, "src")
    cluster.create_vs(namespace, "snap", "src")
    steps(storage.reconcile_volume_snapshot, namespace, "snap", count=3)  # finalizer, content, bound name
    vs = cluster.vs(namespace, "snap")
    assert vs is not None and vs["status"]["boundVolumeSnapshotContentName"]
    pv_name = cluster.pvc(namespace, "src")["spec"]["volumeName"]
    cluster.delete_pvc(namespace, "src")
    settle(storage.reconcile_pv, pv_name)

    assert storage.reconcile_volume_snapshot(namespace, "snap") is None
    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    assert vs["status"]["readyToUse"] is False
    assert "went away before the snapshot was taken" in vs["status"]["error"]["message"]
    content = cluster.vsc(vs["status"]["boundVolumeSnapshotContentName"])
    assert content is not None and content["status"]["error"]["message"] == vs["status"]["error"]["message"]
    assert not content_dir(data_root, vs).exists()

    cluster.delete_vs(namespace, "snap")
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    assert cluster.vs(namespace, "snap") is None
    assert cluster.vsc(content["metadata"]["name"]) is None


@pytest.mark.parametrize("done", range(SNAPSHOT_STEPS))
def test_a_restart_after_any_step_finishes_the_snapshot(
    new_driver: NewDriver, cluster: Cluster, namespace: str, data_root: Path, done: int
) -> None:
    first = new_driver()
    source = provision(first, cluster, namespace, "src")
    make_sample_tree(source, large_size=1024 * 1024)
    cluster.create_vs(namespace, "snap", "src")
    steps(first.reconcile_volume_snapshot, namespace, "snap", count=done)

    restarted = new_driver()
    assert settle(restarted.reconcile_volume_snapshot, namespace, "snap") == SNAPSHOT_STEPS - done
    vs = cluster.vs(namespace, "snap")
    assert vs is not None and vs["status"]["readyToUse"] is True
    assert_trees_equal(source, content_dir(data_root, vs))
    assert [p.name for p in (data_root / "snapshots").iterdir()] == [f"snapcontent-{vs['metadata']['uid']}"]
    assert cluster.reasons(vs) == ["CreatingSnapshot", "SnapshotCreated", "SnapshotReady"]


def test_a_crash_while_copying_leaves_no_complete_looking_snapshot(
    new_driver: NewDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    first = new_driver()
    source = provision(first, cluster, namespace, "src")
    (source / "file").write_text("whole")
    cluster.create_vs(namespace, "snap", "src")
    steps(first.reconcile_volume_snapshot, namespace, "snap", count=3)  # up to the copy
    vs = cluster.vs(namespace, "snap")
    assert vs is not None
    staging = data_root / "snapshots" / f".snapcontent-{vs['metadata']['uid']}.tmp"
    staging.mkdir()
    (staging / "fi").write_text("wh")  # half a copy, as a crash leaves it
    assert cluster.vs(namespace, "snap")["status"]["readyToUse"] is False  # type: ignore[index]

    restarted = new_driver()
    settle(restarted.reconcile_volume_snapshot, namespace, "snap")
    assert sorted(p.name for p in content_dir(data_root, vs).iterdir()) == ["file"]
    assert leftovers(data_root) == []


def test_snapshot_deletion_waits_for_a_restore_in_progress(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    source = provision(storage, cluster, namespace, "src")
    (source / "file").write_text("needed")
    vs = snapshot(storage, cluster, namespace, "snap", "src")
    cluster.create_pvc(
        namespace,
        "restore",
        "2Gi",
        data_source={"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "snap"},
    )
    steps(storage.reconcile_pvc, namespace, "restore", count=1)  # the restore has started: its PV exists
    cluster.delete_vs(namespace, "snap")
    assert storage.reconcile_volume_snapshot(namespace, "snap") is not None
    assert content_dir(data_root, vs).is_dir()

    settle(storage.reconcile_pvc, namespace, "restore")
    assert (volume_dir(data_root, cluster.pvc(namespace, "restore")) / "file").read_text() == "needed"
    settle(storage.reconcile_volume_snapshot, namespace, "snap")
    assert cluster.vs(namespace, "snap") is None
    assert not content_dir(data_root, vs).exists()


def test_a_restore_cannot_start_from_a_snapshot_being_deleted(
    storage: StorageDriver, cluster: Cluster, namespace: str
) -> None:
    provision(storage, cluster, namespace, "src")
    snapshot(storage, cluster, namespace, "snap", "src")
    cluster.delete_vs(namespace, "snap")
    created = cluster.create_pvc(
        namespace,
        "late",
        "2Gi",
        data_source={"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "snap"},
    )
    assert storage.reconcile_pvc(namespace, "late") is not None
    assert cluster.pv(f"pvc-{created['metadata']['uid']}") is None
    assert "being deleted" in cluster.event(cluster.pvc(namespace, "late"), "ProvisioningFailed")["message"]
    settle(storage.reconcile_volume_snapshot, namespace, "snap")  # a restore that never started does not hold it
    assert cluster.vs(namespace, "snap") is None


def test_snapshots_are_taken_concurrently(
    storage: StorageDriver, cluster: Cluster, namespace: str, data_root: Path
) -> None:
    names = [f"s{i}" for i in range(6)]
    for name in names:
        source = provision(storage, cluster, namespace, name)
        (source / "name").write_text(name)
        cluster.create_vs(namespace, name, name)
    assert settle_concurrently(storage.reconcile_volume_snapshot, namespace, names) == []
    for name in names:
        vs = cluster.vs(namespace, name)
        assert vs is not None and vs["status"]["readyToUse"] is True
        assert (content_dir(data_root, vs) / "name").read_text() == name
