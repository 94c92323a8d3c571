"""The embedded default's platform: an API server process for the hub and the local clusters.

`volsync-hub` with no hub kubeconfig starts `volsync-apiserver` (hub + managed clusters, one
SQLite store each) as a child in its own session, so a hub killed with SIGKILL leaves it running;
the next hub adopts it (its pid in the ready file, `/proc/<pid>/cmdline`) instead of failing on the
store's lock, or stops it when it cannot be adopted.
The API server runs with authentication (HTTPS, a token per cluster valid on that cluster only);
`agent_kubeconfig` gives each cluster's agent a kubeconfig of its own holding only that cluster's
server and an agent token valid only there, and `revoke_agent` revokes that token when the addon
is removed. Everything written here is 0600 under 0700 directories.
Each managed cluster is then registered on the hub the way OCM's registration would leave it:
a `ManagedCluster` (accepted, joined, available, its API URL in `managedClusterClientConfigs`) and
its namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from apiserver.authn import ensure_tokens, kubeconfig, revoke_tokens, token_file, write_kubeconfig
from hub import ocm
from kube import objects
from kube.clock import Clock, rfc3339
from kube.rest import NAMESPACES, Kube
from manifests import CRD_DIR
from osutil.files import open_private, private_dir, write_private

READY = b"volsync-apiserver ready "
AGENT_USER = "volsync-agent"


@dataclass
class EmbeddedApi:
    url: str
    kubeconfig: Path
    contexts: list[str]
    pid: int
    proc: subprocess.Popen[bytes] | None  # None when adopted from a previous hub
    data_dir: Path

    def agent_kubeconfig(self, cluster: str, path: Path) -> Path:
        """Write (when it changed) the kubeconfig of `cluster`'s agent: that cluster's server only, and
        a token of the agent's own from the cluster's token file, so it is valid on that cluster only."""
        token = ensure_tokens(token_file(self.data_dir, cluster), [AGENT_USER])[AGENT_USER]
        config = kubeconfig(self.url, [cluster], {cluster: token}, (self.data_dir / "pki" / "ca.crt").read_bytes(),
                            user=AGENT_USER)
        try:
            current = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            current = None
        if current != config:
            private_dir(path.parent)
            write_kubeconfig(path, config)
        return path

    def revoke_agent(self, cluster: str) -> None:
        """Revoke `cluster`'s agent token (the addon was removed): it is refused from the next request on,
        and a re-enabled addon's agent gets a new one from `agent_kubeconfig`, never this one."""
        revoke_tokens(token_file(self.data_dir, cluster), [AGENT_USER])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, and SIGKILL after `timeout`; returns once the process is gone."""
        if self.proc is None or self.proc.poll() is None:  # never signal a reaped child's pid (reused)
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            else:
                self._wait_or_kill(timeout)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def _wait_or_kill(self, timeout: float) -> None:
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return
        if not _gone(self.pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _gone(self.pid, timeout)  # its stores' locks are free once it is gone


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def start_api(data_dir: Path, names: list[str], *, port: int = 0, timeout: float = 30.0) -> EmbeddedApi:
    """Start (or adopt) the API server serving `names` from `data_dir` (HTTPS, tokens per cluster)."""
    private_dir(data_dir)
    readyfile = data_dir / "apiserver.ready"
    adopted = _adopt(data_dir, names, readyfile)
    if adopted is not None:
        return adopted
    cmd = [sys.executable, "-m", "apiserver.main", "--data-dir", str(data_dir), "--clusters", ",".join(names),
           "--port", str(port), "--crd-dir", str(CRD_DIR)]
    with open_private(data_dir / "apiserver.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, start_new_session=True, umask=0o077)
    assert proc.stdout is not None
    line = _read_line(proc.stdout, timeout)
    if not line.startswith(READY):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the embedded API server did not start: {line!r} (see {data_dir / 'apiserver.log'})")
    ready: dict[str, Any] = json.loads(line[len(READY):])
    write_private(readyfile, json.dumps({**ready, "pid": proc.pid}))  # atomic: the next hub reads all or nothing
    return EmbeddedApi(ready["url"], Path(ready["kubeconfig"]), names, proc.pid, proc, data_dir)


def _adopt(data_dir: Path, names: list[str], readyfile: Path) -> EmbeddedApi | None:
    """The API server a previous hub left running for `data_dir`, when its ready file (written once it
    was up) names it and says it serves `names` over HTTPS.

    Any other API server of `data_dir` (serving other clusters, without authentication, or one whose
    ready file is missing, stale or unreadable: a hub killed before it wrote it) is stopped, so that
    a new one can take the stores' locks."""
    previous = _read_ready_file(readyfile)
    adopted = None
    for pid in _apiservers_of(data_dir):
        if (adopted is None and previous is not None and previous.get("pid") == pid
                and previous.get("contexts") == names and str(previous.get("url")).startswith("https://")
                and isinstance(previous.get("kubeconfig"), str)):
            adopted = EmbeddedApi(previous["url"], Path(previous["kubeconfig"]), names, pid, None, data_dir)
        else:
            EmbeddedApi("", Path(), names, pid, None, data_dir).stop()  # SIGTERM, SIGKILL after a grace
    return adopted


def _apiservers_of(data_dir: Path) -> list[int]:
    """The live `apiserver.main --data-dir data_dir` processes of our user."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cmd = _cmdline(int(entry.name))
        try:
            ours = entry.stat().st_uid == os.getuid()
        except OSError:
            continue
        if (ours and "apiserver.main" in cmd and "--data-dir" in cmd
                and cmd[cmd.index("--data-dir") + 1:][:1] == [str(data_dir)] and _alive(int(entry.name))):
            found.append(int(entry.name))
    return found


def _read_ready_file(path: Path) -> dict[str, Any] | None:
    try:
        ready = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return ready if isinstance(ready, dict) else None


def _read_line(stream: Any, timeout: float) -> bytes:
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            if not sel.select(max(deadline - time.monotonic(), 0)):
                break
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    finally:
        sel.close()
    return line


def register_cluster(kube: Kube, name: str, url: str, clock: Clock) -> None:
    """A ManagedCluster as OCM's registration leaves an accepted, joined, available cluster, plus its namespace."""
    if kube.get(NAMESPACES, name) is None:
        try:
            kube.create(NAMESPACES, {"metadata": {"name": name}})
        except ApiException as exc:
            if exc.status != 409:  # 409: created concurrently, fine
                raise
    mc = kube.get(ocm.MANAGED_CLUSTERS, name)
    if mc is None:
        mc = kube.create(ocm.MANAGED_CLUSTERS, {
            "metadata": {"name": name, "labels": {"name": name}},
            "spec": {"hubAcceptsClient": True, "managedClusterClientConfigs": [{"url": url}]},
        })
    now = rfc3339(clock.now())
    conditions = (mc.get("status") or {}).get("conditions") or []
    for type_, reason, message in (
        ("HubAcceptedManagedCluster", "HubClusterAdminAccepted", "Accepted by hub cluster admin"),
        ("ManagedClusterJoined", "ManagedClusterJoined", "Managed cluster joined"),
        ("ManagedClusterConditionAvailable", "ManagedClusterAvailable", "Managed cluster is available"),
    ):
        conditions = objects.set_condition(conditions, {"type": type_, "status": "True", "reason": reason,
                                                        "message": message}, now)
    if conditions != (mc.get("status") or {}).get("conditions"):
        kube.patch_status(ocm.MANAGED_CLUSTERS, name, {"conditions": conditions,
                                                       "version": {"kubernetes": "v1.32.0"}})
