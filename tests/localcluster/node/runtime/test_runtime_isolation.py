"""A container cannot change the host's files: read-only image root, private scratch directories, and
volumes bound where asked, written with the container's uid/gid."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import Node

from localcluster.node.images import ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerRuntime, Mount, Tmpfs

PROJECT_IMAGE = "quay.io/backube/volsync-addon-agent:latest"


def test_busybox_root_is_read_only(node: Node) -> None:
    record = node.run(["sh", "-c", "echo x > /etc/x || echo refused; touch /bin/new || echo refused"])
    assert node.stdout(record) == "refused\nrefused\n"


def test_host_root_is_read_only_and_untouched(node: Node, tmp_path: Path) -> None:
    before = Path("/etc/hosts").read_bytes()
    record = node.run(["sh", "-c", "echo x >> /etc/hosts || echo refused; rm -f /etc/hosts || echo refused; "
                                   "mkdir /opt/new || echo refused"], image=PROJECT_IMAGE)
    assert node.stdout(record) == "refused\nrefused\nrefused\n"
    assert Path("/etc/hosts").read_bytes() == before
    assert not Path("/opt/new").exists()


def test_scratch_directories_are_private(node: Node) -> None:
    marker = f"lcrt-{node.uid}"
    record = node.run(["sh", "-c", f"for d in /tmp /var/tmp /root /run; do echo x > $d/{marker} || exit 1; done"],
                      image=PROJECT_IMAGE)
    assert record.exit_code == 0, node.stdout(record, "stderr")
    for directory in ("/tmp", "/var/tmp", "/root", "/run"):
        assert not (Path(directory) / marker).exists()


def test_node_state_is_hidden_from_host_root_images(node: Node) -> None:
    state = node.runtime.layout.state_dir
    record = node.run(["sh", "-c", f"ls {state}/pods && echo visible"], image=PROJECT_IMAGE)
    assert "visible" not in node.stdout(record)


def test_volume_written_with_the_containers_uid_and_gid(node: Node, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir(mode=0o777)
    volume.chmod(0o777)
    record = node.run(["sh", "-c", "echo hi > /data/sub/file"], mounts=[Mount(volume, "/data/sub")],
                      run_as_user=1000, run_as_group=2000)
    assert record.exit_code == 0, node.stdout(record, "stderr")
    written = volume / "file"
    assert written.read_text() == "hi\n"
    assert (written.stat().st_uid, written.stat().st_gid) == (1000, 2000)


def test_root_can_chown_in_a_volume(node: Node, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    record = node.run(["sh", "-c", "touch /data/f && chown 1234:5678 /data/f && chmod 0640 /data/f"],
                      mounts=[Mount(volume, "/data")])
    assert record.exit_code == 0, node.stdout(record, "stderr")
    stat = (volume / "f").stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (1234, 5678, 0o640)


def test_non_root_cannot_write_a_root_owned_volume(node: Node, tmp_path: Path) -> None:
    volume = tmp_path / "vol"
    volume.mkdir()
    volume.chmod(0o755)
    record = node.run(["sh", "-c", "touch /data/x"], mounts=[Mount(volume, "/data")], run_as_user=1000)
    assert record.exit_code != 0
    assert "Permission denied" in node.stdout(record, "stderr")
    assert list(volume.iterdir()) == []


def test_read_only_volume_and_file_mounts(node: Node, tmp_path: Path) -> None:
    volume = tmp_path / "ro"
    volume.mkdir()
    (volume / "config").write_text("value\n")
    token = tmp_path / "token"
    token.write_text("secret\n")
    record = node.run(["sh", "-c", "cat /cfg/config /var/run/secrets/kubernetes.io/serviceaccount/token; "
                                   "echo y > /cfg/config || echo refused"],
                      mounts=[Mount(volume, "/cfg", read_only=True),
                              Mount(token, "/var/run/secrets/kubernetes.io/serviceaccount/token", read_only=True)],
                      image=PROJECT_IMAGE)
    assert node.stdout(record) == "value\nsecret\nrefused\n"
    assert (volume / "config").read_text() == "value\n"


def test_tmpfs_mount_with_size(node: Node) -> None:
    record = node.run(["sh", "-c", "df -k /cache | tail -1; echo x > /cache/f && cat /cache/f"],
                      tmpfs=[Tmpfs("/cache", 4 * 1024 * 1024)])
    lines = node.stdout(record).splitlines()
    assert lines[0].split()[1] == "4096" and lines[1] == "x"


def test_node_state_and_hidden_paths_are_unreadable_but_volumes_under_them_bound(netns: str) -> None:
    """The node's state dir (outside the scratch paths) is hidden from host-root images, but a Pod's
    volume kept under it is still bound where asked."""
    state = Path(tempfile.mkdtemp(prefix="lcrt-", dir="/srv"))
    secrets = Path(tempfile.mkdtemp(prefix="lcrt-", dir="/srv"))
    try:
        (secrets / "ca.key").write_text("private\n")
        runtime = ContainerRuntime(NodeLayout(state / "node"), ImageMap(), hide=[secrets])
        volume = runtime.layout.pod_dir("p") / "volumes" / "data"
        volume.mkdir(parents=True)
        (volume / "f").write_text("kept\n")
        node = Node(runtime, netns, "p")
        record = node.run(["sh", "-c", f"cat /data/f; ls {state}/node/pods || echo hidden; cat {secrets}/ca.key || "
                                       "echo hidden"], image=PROJECT_IMAGE, mounts=[Mount(volume, "/data")])
        assert node.stdout(record) == "kept\nhidden\nhidden\n"
    finally:
        shutil.rmtree(state)
        shutil.rmtree(secrets)


def test_relative_mount_target_is_refused(node: Node, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        node.runtime.start(node.launch(["true"], mounts=[Mount(tmp_path, "data")]))


def test_dev_shm_and_home_for_a_non_root_user(node: Node) -> None:
    record = node.run(["sh", "-c", 'echo x > /dev/shm/a && cat /dev/shm/a && echo "$HOME" && df -k /dev/shm | tail -1'],
                      run_as_user=1000)
    lines = node.stdout(record).splitlines()
    assert lines[:2] == ["x", "/"], node.stdout(record, "stderr")
    assert lines[2].split()[1] == str(64 * 1024)
