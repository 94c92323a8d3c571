"""The data root on the destination host: other local users cannot reach it, and replicated setuid files
and device nodes are inert (the storage pool is mounted nosuid,nodev; without it, setuid/setgid stripped).

A whole replication through the local platform (real sshd and rsync), then a snapshot of the result.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import kubernetes
import pytest
from storage_helpers import Cluster, content_dir, settle, volume_dir
from support.waiting import eventually

from agent.localplatform import LocalPlatform
from agent.plans import Serve, StartTransfer
from kube.rest import Kube
from localcluster.storage.driver import StorageDriver
from movers import keys
from movers.errors import MoverError

NOBODY = 65534
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, chown, switching to nobody)")


def _endpoint() -> tuple[str, int]:
    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        with socket.socket() as s:
            try:
                s.bind((address, 0))
            except OSError:
                continue
            return address, s.getsockname()[1]
    raise RuntimeError("no free loopback endpoint")


def _replicate(platform: LocalPlatform, storage: StorageDriver, cluster: Cluster, namespace: str,
               fill: object) -> tuple[Path, Path]:
    """Provision a source and a destination claim, fill the source, run one iteration; returns both dirs."""
    for name in ("src", "dst"):
        cluster.create_pvc(namespace, name)
        settle(storage.reconcile_pvc, namespace, name)
    src_pvc, dst_pvc = cluster.pvc(namespace, "src"), cluster.pvc(namespace, "dst")
    source = volume_dir(storage.layout.root, src_pvc)
    fill(source)  # type: ignore[operator]
    pair = keys.generate()
    secret = {"data": {k: base64.b64encode(v).decode() for k, v in pair.main_secret_data().items()}}
    address, port = _endpoint()
    platform.serve(Serve(f"{namespace}/rd", "it-1", "dst", namespace, address, port, "keys"), dst_pvc, secret)
    platform.start_transfer(StartTransfer(f"{namespace}/rs", "it-1", "src", namespace, address, port, "keys"),
                            src_pvc, secret)
    view = eventually(lambda: (v := platform.transfer(f"{namespace}/rs")) is not None and not v.running and v,
                      timeout=60, what="transfer done")
    assert view.succeeded, view.logs
    assert eventually(lambda: platform.server(f"{namespace}/rd").completion == 0, timeout=30)  # type: ignore[union-attr]
    platform.stop_receiving(f"{namespace}/rd", "it-1")
    return source, volume_dir(storage.layout.root, dst_pvc)


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


def test_nothing_outside_the_replicated_trees_is_reachable_by_other_users(
        platform: LocalPlatform, storage: StorageDriver, cluster: Cluster, namespace: str) -> None:
    _, dest = _replicate(platform, storage, cluster, namespace, _dangerous_tree)
    cluster.create_vs(namespace, "image", "dst")
    settle(storage.reconcile_volume_snapshot, namespace, "image")
    image = content_dir(storage.layout.root, cluster.vs(namespace, "image") or {})
    assert (image / "dir/secret.txt").read_text() == "volume data"

    pool = storage.layout.root
    trees = {p for p in (*(pool / "volumes").iterdir(), *(pool / "snapshots").iterdir())}
    exposed = []
    for dirpath, dirnames, filenames in os.walk(platform.data_root):
        for name in (".", *dirnames, *filenames):
            path = Path(dirpath) / name if name != "." else Path(dirpath)
            if any(path.is_relative_to(t) for t in trees) or path.is_symlink():
                continue  # replicated data keeps the source's modes
            if stat.S_IMODE(path.lstat().st_mode) & 0o077:
                exposed.append(f"{path}: {stat.filemode(path.lstat().st_mode)}")
        dirnames[:] = [d for d in dirnames if not any((Path(dirpath) / d).is_relative_to(t) for t in trees)]
    assert exposed == []
    for secret_file in (*platform.data_root.glob("movers/*/sshd/ssh_host_key"),
                        *platform.data_root.glob("movers/*/sshd/authorized_keys"),
                        *platform.data_root.glob("movers/*/source")):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
    assert len(list(platform.data_root.glob("movers/*/source"))) == 1

    for inside in (dest / "dir/secret.txt", image / "dir/secret.txt", dest / "setuid-id"):
        denied = _as_nobody("stat", str(inside))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, inside
    assert _as_nobody("stat", "/etc/hostname").returncode == 0  # the user itself works


def test_replicated_setuid_files_and_device_nodes_are_inert(platform: LocalPlatform, storage: StorageDriver,
                                                            cluster: Cluster, namespace: str) -> None:
    _, dest = _replicate(platform, storage, cluster, namespace, _dangerous_tree)
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
        assert _inert(tree) and not _inert(platform.data_root)


def _inert(path: Path) -> bool:
    flags = os.statvfs(path).f_flag
    return bool(flags & os.ST_NOSUID and flags & os.ST_NODEV)


def test_an_old_rsync_stops_the_platform_at_start_up(api: kubernetes.client.ApiClient, tmp_path: Path) -> None:
    fake = tmp_path / "rsync"
    fake.write_text("#!/bin/sh\necho 'rsync  version 3.1.3  protocol version 31'\n")
    fake.chmod(0o755)

    with pytest.raises(MoverError, match=rf"^{fake} is version 3.1.3, older than 3.2.3, .*install rsync >= 3.2.3$"):
        LocalPlatform(Kube(api), tmp_path / "root", address_pool="127.254.254.0/30", rsync=str(fake))
    assert not (tmp_path / "root").exists()  # refused before anything was made or mounted
