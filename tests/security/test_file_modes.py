"""Files of the embedded default are private (issue 7, item 2): after a real `volsync-hub` run with
an agent, no file under its data directory is readable by group or others and no directory is
accessible to them: the SQLite stores (-wal, -shm, lock), logs, pidfiles, tokens, kubeconfigs, the
private CA and serving keys, the admin token, the agents' token and kubeconfig files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from support.hubprocess import Hub


def _loose(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
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
                     "api/tokens/cluster1.csv", "hub/agents/cluster1.pid", "hub/agents/cluster1.log",
                     "hub/agents/cluster1.token", "hub/agents/cluster1.kubeconfig"):
        assert expected in names, f"{expected} missing from the run directory"
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0
    assert _loose(root) == []
