"""A Pod's mounts go on parents first, and never hide the image: a host-root image's installation that
lives under `/tmp` (a CI clone) is bound back over a Pod's `/tmp` volume, with the node's hidden paths
below it hidden again, while a volume below the installation still wins. A file binds as a file; the
termination message file is writable by any user, also below a volume. `readOnlyRootFilesystem` makes
the scratch paths read-only too (the project image keeps its `/run/sshd`), never a volume."""

from __future__ import annotations

from pathlib import Path

from conftest import Node

from localcluster.node.images import ImageMap
from localcluster.node.layout import NodeLayout
from localcluster.node.runtime import ContainerRuntime, Mount, Tmpfs

PROJECT_IMAGE = "quay.io/volsync-addon/volsync-addon:0.1.0"


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {text}\n")
    path.chmod(0o755)


def test_a_volume_at_tmp_does_not_hide_an_installation_under_tmp(node: Node, tmp_path: Path) -> None:
    venv = tmp_path / "clone" / ".venv"  # under /tmp, as a CI clone's virtualenv
    assert str(venv).startswith("/tmp/")
    _script(venv / "bin" / "mover-here", "installed")
    (venv / "secret").mkdir()
    (venv / "secret" / "key").write_text("node state\n")
    (venv / "opt").mkdir()  # a mount point the image has (a kept path is bound read-only: none can be made)
    other = tmp_path / "other-bin"
    _script(other / "mover-there", "from-volume")
    runtime = ContainerRuntime(NodeLayout(tmp_path / "node"), ImageMap(venv=venv), hide=[venv / "secret"])
    node.runtime = runtime
    script = (f"mover-here; ls -A {venv}/secret | wc -l; echo x > /tmp/written && cat /tmp/written; "
              f"{venv}/opt/mover-there")
    record = node.run(["sh", "-c", script], image=PROJECT_IMAGE, tmpfs=[Tmpfs("/tmp")],
                      mounts=[Mount(other, f"{venv}/opt", read_only=True)])
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert node.stdout(record).split() == ["installed", "0", "x", "from-volume"]


def test_a_file_binds_as_a_file_and_the_termination_log_is_writable(node: Node, tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("setting=1\n")
    record = node.run(["sh", "-c", "cat /etc/app.conf; ls /etc/passwd; echo done > /dev/termination-log"],
                      mounts=[Mount(conf, "/etc/app.conf", read_only=True)], run_as_user=1000,
                      termination_message_path="/dev/termination-log")
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert node.stdout(record) == "setting=1\n/etc/passwd\n"
    assert NodeLayout(tmp_path / "node").termination_log(node.uid, "c", 0).read_text() == "done\n"


def test_a_termination_log_below_a_volume_is_mounted_after_it(node: Node, tmp_path: Path) -> None:
    record = node.run(["sh", "-c", "echo below > /tmp/run/message"], tmpfs=[Tmpfs("/tmp")],
                      termination_message_path="/tmp/run/message")
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert NodeLayout(tmp_path / "node").termination_log(node.uid, "c", 0).read_text() == "below\n"


def test_read_only_root_covers_the_scratch_paths_but_not_volumes(node: Node) -> None:
    script = ("for d in /run /root /var/tmp /home; do touch $d/x 2>/dev/null && echo $d-writable || echo $d-ro; done;"
              " touch /tmp/x && echo tmp-volume; stat -c '%a %u' /run/sshd")
    record = node.run(["sh", "-c", script], image=PROJECT_IMAGE, read_only_root=True, tmpfs=[Tmpfs("/tmp")])
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert node.stdout(record).split("\n") == ["/run-ro", "/root-ro", "/var/tmp-ro", "/home-ro", "tmp-volume",
                                               "755 0", ""]
    writable = node.run(["sh", "-c", "touch /run/x && echo writable"], image=PROJECT_IMAGE, attempt=1)
    assert node.stdout(writable) == "writable\n"  # without readOnlyRootFilesystem
