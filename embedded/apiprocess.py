"""The embedded default's platform: an API server process for the hub and the local clusters.

`volsync-hub` with no hub kubeconfig starts `volsync-apiserver` (hub + managed clusters, one
SQLite store each) as a child in its own session, so a hub killed with SIGKILL leaves it running;
the next hub adopts it (its pid in the ready file, `/proc/<pid>/cmdline`) instead of failing on the
store's lock, or stops it when it cannot be adopted.
The API server runs with authentication (HTTPS, an admin token per cluster valid on that cluster
only) and RBAC; the hub's ServiceAccount credential is `embedded/credentials.py`'s, an agent's the
token the node projects into its Pod. Everything written here is 0600 under 0700 directories.
Registration is not done here: each managed cluster's process registers itself (`localcluster/ocm`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from manifests import CRD_DIR
from osutil import procs
from osutil.files import private_dir


@dataclass
class EmbeddedApi:
    url: str
    kubeconfig: Path
    contexts: list[str]
    daemon: procs.Daemon
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.daemon.pid

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The child we started (None when adopted from a previous hub)."""
        return self.daemon.proc

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, and SIGKILL after `timeout`; returns once the process is gone."""
        self.daemon.stop(timeout)


def start_api(data_dir: Path, names: list[str], *, port: int = 0, extra_args: Sequence[str] = (),
              timeout: float = 30.0) -> EmbeddedApi:
    """Start (or adopt) the API server serving `names` from `data_dir` (HTTPS, tokens per cluster).

    A previous hub's API server is adopted when its ready file (written once it was up) names a live
    process running exactly this command; any other API server of `data_dir` (other clusters, other
    flags, or one whose ready file is missing, stale or unreadable: a hub killed before it wrote it)
    is stopped first, so that a new one can take the stores' locks."""
    private_dir(data_dir)
    cmd = [sys.executable, "-m", "apiserver.main", "--data-dir", str(data_dir), "--clusters", ",".join(names),
           "--port", str(port), "--crd-dir", str(CRD_DIR), *extra_args]
    readyfile = data_dir / "apiserver.ready"
    adopted = procs.adopt(readyfile, cmd)
    for pid in _apiservers_of(data_dir):
        if adopted is None or pid != adopted.pid:
            procs.Daemon(pid, {}).stop()  # SIGTERM, SIGKILL after a grace
    daemon = adopted or procs.start(cmd, "volsync-apiserver", readyfile, data_dir / "apiserver.log", timeout=timeout)
    if not str(daemon.ready.get("url", "")).startswith("https://"):
        daemon.stop()
        raise RuntimeError(f"the embedded API server does not serve HTTPS: {daemon.ready}")
    return EmbeddedApi(daemon.ready["url"], Path(daemon.ready["kubeconfig"]), names, daemon, data_dir)


def _apiservers_of(data_dir: Path) -> list[int]:
    """The live `apiserver.main --data-dir data_dir` processes of our user."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmd = procs.cmdline(int(entry.name))
        try:
            ours = entry.stat().st_uid == os.getuid()
        except OSError:
            continue
        if (ours and "apiserver.main" in cmd and "--data-dir" in cmd
                and cmd[cmd.index("--data-dir") + 1:][:1] == [str(data_dir)] and procs.alive(int(entry.name))):
            found.append(int(entry.name))
    return found
