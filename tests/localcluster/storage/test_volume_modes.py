"""Replicated volumes on the storage host: other local users cannot reach them, and replicated setuid
files and device nodes are inert (the storage pool is mounted nosuid,nodev; without it, setuid/setgid
stripped).

One iteration of the real movers (our sshd and rsync, as a mover Pod runs them) between two claims'
volume directories, then a snapshot of the result.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from storage_helpers import Cluster, content_dir, settle, volume_dir
from support.endpoints import free_endpoint

from localcluster.storage.driver import StorageDriver
from movers import keys
from movers.destination import DestinationServer
from movers.source import SourceTransfer

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, switching to nobody)")


def _replicate(storage: StorageDriver, cluster: Cluster, namespace: str, fill: object,
               work: Path) -> tuple[Path, Path]:
    """Provision a source and a destination claim, fill the source, run one iteration; returns both dirs."""
    for name in ("src", "dst"):
        cluster.create_pvc(namespace, name)
        settle(storage.reconcile_pvc, namespace, name)
    source = volume_dir(storage.layout.root, cluster.pvc(namespace, "src"))
    dest = volume_dir(storage.layout.root, cluster.pvc(namespace, "dst"))
    fill(source)  # type: ignore[operator]
    pair = keys.generate()
    endpoint = free_endpoint()
    address, port = endpoint.address, endpoint.port
    server = DestinationServer(workdir=work / "sshd", data_dir=dest, address=address, port=port,
                               destination_key=pair.destination, source_pub=pair.source_pub)
    server.start()
    try:
        server.open_iteration()
        push = SourceTransfer(data_dir=source, address=address, port=port, source_key=pair.source,
                              destination_pub=pair.destination_pub, workdir=work / "source", retries=1)
        push.start()
        result = push.wait(timeout=60)
        assert result is not None and result.succeeded, result
        assert server.close_iteration() == 0
    finally:
        server.stop()
    return source, dest


def _dangerous_tree(root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir/secret.txt").write_text("volume data")
    shutil.copy("/usr/bin/id", root / "setuid-id")
    os.chmod(root / "setuid-id", 0o4755)
    os.mknod(root / "mem", 0o666 | stat.S_IFCHR, os.makedev(1, 1))  # /dev/mem's numbers
    os.chmod(root, 0o755)


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv],
                          capture_output=True, text=True, timeout=30, check=False)


def test_replicated_trees_are_not_reachable_by_other_users(storage: StorageDriver, cluster: Cluster,
                                                           namespace: str, tmp_path: Path) -> None:
    _, dest = _replicate(storage, cluster, namespace, _dangerous_tree, tmp_path)
    cluster.create_vs(namespace, "image", "dst")
    settle(storage.reconcile_volume_snapshot, namespace, "image")
    image = content_dir(storage.layout.root, cluster.vs(namespace, "image") or {})
    assert (image / "dir/secret.txt").read_text() == "volume data"

    for inside in (dest / "dir/secret.txt", image / "dir/secret.txt", dest / "setuid-id"):
        denied = _as_nobody("stat", str(inside))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, inside
    assert _as_nobody("stat", "/etc/hostname").returncode == 0  # the user itself works


def test_replicated_setuid_files_and_device_nodes_are_inert(storage: StorageDriver, cluster: Cluster,
                                                            namespace: str, tmp_path: Path) -> None:
    _, dest = _replicate(storage, cluster, namespace, _dangerous_tree, tmp_path)
    cluster.create_vs(namespace, "image", "dst")
    settle(storage.reconcile_volume_snapshot, namespace, "image")
    image = content_dir(storage.layout.root, cluster.vs(namespace, "image") or {})

    for tree in (dest, image):
        if _inert(tree):  # kept as sent (a restore gives them back) but without effect on this host
            assert stat.S_IMODE((tree / "setuid-id").stat().st_mode) == 0o4755
            assert stat.S_ISCHR((tree / "mem").lstat().st_mode)
            with pytest.raises(PermissionError):  # nodev: not even root opens it here
                os.open(tree / "mem", os.O_RDONLY)
        else:  # no mount: the receiver strips setuid/setgid, and the device sits under 0700 directories
            assert stat.S_IMODE((tree / "setuid-id").stat().st_mode) == 0o755
    if storage.pool is not None and storage.pool.reflink:  # the pool's mount, not the machine's
        assert _inert(tree) and not _inert(tmp_path)


def _inert(path: Path) -> bool:
    flags = os.statvfs(path).f_flag
    return bool(flags & os.ST_NOSUID and flags & os.ST_NODEV)
