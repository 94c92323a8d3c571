"""Files of the embedded default are private (issue 7, item 2): after a real `volsync-hub` run with
an agent (a Pod on cluster1's node), no file under its data directory is readable by group or others
and no directory is accessible to them: the SQLite stores (-wal, -shm, lock), logs, tokens,
kubeconfigs, the private CAs and serving keys, the admin token, the cluster processes' state.

One exception, as on a real node: inside a node's own tree (`clusters/<cluster>/node`) the files a
Pod's containers read carry Kubernetes' modes (Secret and projected volumes `defaultMode` 0644, the
termination-log 0666, the image's stand-in `/etc/shadow` 0640), because the container's user may not
be the node's. What keeps them from other users of the host is the node's directories: the node tree,
its `pods` and every Pod's directory are 0700 (the real kubelet's are 0750 under root)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from support.hubprocess import Hub


def _loose(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath).parent.parent == root / "clusters" and Path(dirpath).name == "node":
            dirnames.clear()  # a node's own tree: see the module docstring and `_node_dirs`
            continue
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077:
                found.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(root)}")
    return found


def test_no_file_of_the_run_directory_is_open_to_other_users(enabled_hub: Hub) -> None:
    root = enabled_hub.data_dir
    names = {p.relative_to(root).as_posix() for p in root.rglob("*")}
    # the run holds what the test means to check (so an empty walk cannot pass)
    for expected in ("admin-token", "api/hub.db", "api/hub.db-wal", "api/hub.db-shm", "api/hub.db.lock",
                     "api/apiserver.log", "api/kubeconfig", "api/pki/ca.key", "api/pki/serving.key",
                     "api/tokens/cluster1.csv", "api/hub.kubeconfig", "hub-pki/ca.key", "clusters/cluster1/cluster.log",
                     "clusters/cluster1/ready.json", "clusters/cluster1/node/pods"):
        assert expected in names, f"{expected} missing from the run directory"
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0
    assert _loose(root) == []


def _node_dirs(root: Path) -> list[Path]:
    """Every node tree of the run, its `pods` and `images` directories and each Pod's directory."""
    found = []
    for node in (root / "clusters").glob("*/node"):
        found += [node, *(d for d in (node / "pods", node / "images") if d.is_dir())]
        found += list((node / "pods").iterdir()) if (node / "pods").is_dir() else []
    return found


def test_the_nodes_trees_are_closed_to_other_users(enabled_hub: Hub) -> None:
    dirs = _node_dirs(enabled_hub.data_dir)
    assert any(d.parent.name == "pods" for d in dirs), "no Pod on any node (the agent runs as one)"
    assert [d for d in dirs if stat.S_IMODE(d.stat().st_mode) != 0o700] == []
