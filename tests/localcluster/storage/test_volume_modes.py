"""The data root on the destination host: other local users cannot reach it, and replicated setuid files
and device nodes are inert (a nosuid,nodev mount of the data root; without one, setuid/setgid stripped).

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
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from storage_helpers import Cluster, content_dir, settle, volume_dir
from support.apiserver import ApiServer
from support.waiting import eventually

from agent.localplatform import LocalPlatform
from agent.movers import keys
from agent.movers.errors import MoverError
from agent.plans import Serve, StartTransfer
from agent.storage import mounting
from kube.rest import Kube

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


def _replicate(platform: LocalPlatform, cluster: Cluster, namespace: str, fill: object) -> tuple[Path, Path]:
    """Provision a source and a destination claim, fill the source, run one iteration; returns both dirs."""
    storage = platform.storage
    for name in ("src", "dst"):
        cluster.create_pvc(namespace, name)
        settle(storage.reconcile_pvc, namespace, name)
    src_pvc, dst_pvc = cluster.pvc(namespace, "src"), cluster.pvc(namespace, "dst")
    source = volume_dir(platform.data_root, src_pvc)
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
    return source, volume_dir(platform.data_root, dst_pvc)


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
        platform: LocalPlatform, cluster: Cluster, namespace: str) -> None:
    _, dest = _replicate(platform, cluster, namespace, _dangerous_tree)
    cluster.create_vs(namespace, "image", "dst")
    settle(platform.storage.reconcile_volume_snapshot, namespace, "image")
    image = content_dir(platform.data_root, cluster.vs(namespace, "image") or {})
    assert (image / "dir/secret.txt").read_text() == "volume data"

    trees = {p for p in (*(platform.data_root / "volumes").iterdir(), *(platform.data_root / "snapshots").iterdir())}
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


def test_replicated_setuid_files_and_device_nodes_are_inert(platform: LocalPlatform, cluster: Cluster,
                                                            namespace: str) -> None:
    _, dest = _replicate(platform, cluster, namespace, _dangerous_tree)
    cluster.create_vs(namespace, "image", "dst")
    settle(platform.storage.reconcile_volume_snapshot, namespace, "image")
    image = content_dir(platform.data_root, cluster.vs(namespace, "image") or {})

    for tree in (dest, image):
        if mounting.inert(tree):  # kept as sent (a restore gives them back) but without effect on this host
            assert platform.inert
            assert stat.S_IMODE((tree / "setuid-id").stat().st_mode) == 0o4755
            assert stat.S_ISCHR((tree / "mem").lstat().st_mode)
            with pytest.raises(PermissionError):  # nodev: not even root opens it here
                os.open(tree / "mem", os.O_RDONLY)
        else:  # no mount: the receiver strips setuid/setgid, and the device sits under 0700 directories
            assert stat.S_IMODE((tree / "setuid-id").stat().st_mode) == 0o755
    if mounting.ours(platform.data_root):  # the effect is the agent's mount of its data root, not the machine's
        assert not mounting.self_bound(platform.data_root.parent)


def _mounts_at(path: Path) -> int:
    return sum(1 for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4] == str(path))


def _unmount_all(path: Path) -> None:
    """Test cleanup: whatever a failed assertion left mounted at `path` goes."""
    while _mounts_at(path):
        if subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False).returncode != 0:
            break


@pytest.fixture
def mountable_root(tmp_path: Path) -> Iterator[Path]:
    """A data root on a filesystem where setuid bits count (so the mount's effect shows), unmounted at the end."""
    if mounting.inert(tmp_path):
        pytest.skip(f"{tmp_path} is already on a nosuid,nodev filesystem")
    root = tmp_path / "root"
    try:
        yield root
    finally:
        _unmount_all(root)


def test_the_mount_is_released_at_stop_and_adopted_after_a_kill(api: kubernetes.client.ApiClient,
                                                                 mountable_root: Path) -> None:
    root = mountable_root
    first = LocalPlatform(Kube(api), root, address_pool="127.254.254.0/30")
    if not first.inert:
        first.close()
        pytest.skip("this machine does not let the agent mount (no CAP_SYS_ADMIN)")
    assert mounting.ours(root) and mounting.inert(root)
    assert not mounting.inert(root.parent)  # the agent's own mount, not the machine's
    first._stop.set()  # as after kill -9: the mount stays, nobody releases it

    second = LocalPlatform(Kube(api), root, address_pool="127.254.254.0/30")
    assert second.inert
    assert _mounts_at(root) == 1  # adopted, not stacked
    second.close()

    assert not mounting.self_bound(root)
    assert not mounting.inert(root)


def test_a_mount_the_agent_did_not_make_is_never_released(api: kubernetes.client.ApiClient,
                                                          mountable_root: Path) -> None:
    root = mountable_root
    root.mkdir(mode=0o700)
    for cmd in (["mount", "--bind", str(root), str(root)], ["mount", "-o", "remount,bind,nosuid,nodev", str(root)]):
        if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
            pytest.skip("this machine does not let us mount (no CAP_SYS_ADMIN)")
    # the admin's own nosuid,nodev bind mount of the data root, and a marker from an earlier boot
    (root / mounting.MARKER).write_text(f"an-earlier-boot {Path('/proc/self/mountinfo').read_text().split()[0]}\n")

    platform = LocalPlatform(Kube(api), root, address_pool="127.254.254.0/30")
    assert platform.inert
    platform.close()

    assert mounting.self_bound(root) and mounting.inert(root) and _mounts_at(root) == 1
    assert not (root / mounting.MARKER).exists()


def test_an_agent_failing_after_the_mount_releases_it(apiserver: ApiServer, mountable_root: Path) -> None:
    root = mountable_root
    done = subprocess.run([sys.executable, "-m", "agent.main", "--kubeconfig", str(apiserver.kubeconfig),
                           "--context", "cluster1", "--cluster-name", "cluster1", "--data-root", str(root),
                           "--mover-host", "127.254.254.0/30", "--hub-url", "https://127.0.0.1:9",
                           "--hub-ca-file", str(root.parent / "missing-ca.pem")],
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)

    assert done.returncode == 1 and "--hub-ca-file" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert _mounts_at(root) == 0


def test_an_old_rsync_stops_the_platform_at_start_up(api: kubernetes.client.ApiClient, tmp_path: Path) -> None:
    fake = tmp_path / "rsync"
    fake.write_text("#!/bin/sh\necho 'rsync  version 3.1.3  protocol version 31'\n")
    fake.chmod(0o755)

    with pytest.raises(MoverError, match=rf"^{fake} is version 3.1.3, older than 3.2.3, .*install rsync >= 3.2.3$"):
        LocalPlatform(Kube(api), tmp_path / "root", address_pool="127.254.254.0/30", rsync=str(fake))
    assert not (tmp_path / "root").exists()  # refused before anything was made or mounted
