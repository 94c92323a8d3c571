"""A real `volsync-hub` process (the embedded fleet, the hub's controllers and REST API) for end-to-end tests.

The agents are Pods of the rendered `volsync-agent` Deployment on their clusters' nodes (applied by
each cluster's work agent from the hub's ManifestWork): `Hub.agent_pods` lists them through kubectl.
`cluster_processes` finds every host process of a cluster (its cluster process, that process's
children, and the processes of its node's Pods) for tests that freeze a cluster with SIGSTOP."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from hub.ocm import AGENT
from hub.ocm import DEFAULT_INSTALL_NAMESPACE as AGENT_NAMESPACE
from support import processes
from support.apiserver import ROOT
from support.waiting import eventually


class Hub:
    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.proc: Any = None
        self.ready: dict[str, Any] = {}

    def start(self) -> Hub:
        cmd = [sys.executable, "-m", "embedded.main", "--data-dir", str(self.data_dir),
               "--stale-seconds", "4", "--renew-seconds", "0.5", "--log-level", "info", *self.extra_args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc, self.ready = processes.start_ready(cmd, "volsync-hub ready", self.data_dir / "hub.log", ROOT, 120)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            processes.stop(self.proc, sig, 30)
            self.proc = None

    @property
    def token(self) -> str:
        return Path(self.ready["adminTokenFile"]).read_text().strip()

    def rest(self, path: str) -> Any:
        ca = self.ready.get("caFile")  # the REST API is HTTPS: verify it with the hub's CA
        with httpx.Client(trust_env=False, timeout=10, verify=ssl.create_default_context(cafile=ca)) as http:
            resp = http.get(self.ready["rest"] + path, headers={"Authorization": f"Bearer {self.token}"})
            resp.raise_for_status()
            return resp.json()

    def kubectl(self, *args: str, context: str = "hub", input: str | None = None, check: bool = True) -> Any:
        cmd = ["kubectl", "--kubeconfig", self.ready["kubeconfig"], "--context", context,
               "--cache-dir", str(self.data_dir.with_name(self.data_dir.name + "-kcache")), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr}")
        return res

    def get(self, *args: str, context: str = "hub") -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", context=context).stdout)

    def addon_condition(self, cluster: str, type_: str) -> dict[str, Any]:
        mca = self.get("managedclusteraddon", "volsync", "-n", cluster)
        return next((c for c in (mca.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})

    def agent_pods(self, cluster: str) -> list[dict[str, Any]]:
        """The agent Pods on `cluster` (its install namespace, the rendered name label), deleting ones too."""
        found = self.get("pods", "-n", AGENT_NAMESPACE, "-l", f"app.kubernetes.io/name={AGENT}", context=cluster)
        return list(found["items"])

    def running_agent(self, cluster: str) -> dict[str, Any] | None:
        """`cluster`'s one agent Pod, once it is the only one and Running with its container ready."""
        pods = self.agent_pods(cluster)
        if len(pods) != 1 or pods[0]["metadata"].get("deletionTimestamp"):
            return None
        status = pods[0].get("status") or {}
        ready = all(c.get("ready") for c in status.get("containerStatuses") or [{}])
        return pods[0] if status.get("phase") == "Running" and ready else None

    def cluster_state(self, cluster: str) -> Path:
        """`cluster`'s cluster-process state directory (node, network, storage; its ready file)."""
        return self.data_dir.resolve() / "clusters" / cluster


def cluster_processes(state_dir: Path) -> list[int]:
    """Every live host process of the cluster whose state directory is `state_dir`: its cluster process
    (the pid in `ready.json`, what the launcher announced) and that process's descendants, and the
    processes of every Pod of its node (`pod_processes`)."""
    ready = json.loads((state_dir / "ready.json").read_text())
    found = set(descendants(int(ready["pid"])))
    for pod_dir in (state_dir / "node" / "pods").glob("*"):  # no directory yet: no Pod ever ran
        found.update(pod_processes(state_dir, pod_dir.name))
    return sorted(pid for pid in found if alive(pid))


def pod_processes(state_dir: Path, uid: str) -> list[int]:
    """The live host processes of Pod `uid` on the node of the cluster whose state directory is
    `state_dir`, found through the node's files (`localcluster/node/layout.py`): each container
    start's `shim.pid` and `sandbox.pid` ("<pid> <starttime>", checked against /proc so a reused pid
    is not taken), and every process in the sandbox's PID namespace (`/proc/<pid>/ns/pid`), which holds
    the container's command and whatever it started."""
    found, namespaces = set(), set()
    for pidfile in (state_dir / "node" / "pods" / uid).glob("containers/*/*/*.pid"):
        try:
            pid, started = (int(v) for v in pidfile.read_text().split()[:2])
        except (OSError, ValueError):
            continue
        if _start_time(pid) != started:
            continue  # that start is over (or the pid was reused)
        found.add(pid)
        if pidfile.name == "sandbox.pid" and (ns := _pid_namespace(pid)):
            namespaces.add(ns)
    if namespaces:
        found.update(pid for pid in _all_pids() if _pid_namespace(pid) in namespaces)
    return sorted(pid for pid in found if alive(pid))


def _all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def descendants(root: int) -> list[int]:
    """`root` and every live process under it (by parent pid)."""
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


PLAIN_ADDON = """apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata: {{name: volsync, namespace: {cluster}}}
"""


def wait_available(hub: Hub, cluster: str, timeout: float = 120.0) -> None:
    """Until `cluster`'s addon is Available (its agent Pod ready and heartbeating to the hub)."""
    def available() -> bool:
        return hub.addon_condition(cluster, "Available").get("status") == "True"

    eventually(available, timeout, what=f"{cluster} addon available")


def replication_hub(run_dir: Path, *extra_args: str, addon: str = PLAIN_ADDON) -> Hub:
    """A started hub whose cluster1 and cluster2 run their agents (addon `Available`), with the
    namespaces the replication tests use: `src` on cluster1, `dest` on cluster2. `addon` is the
    ManagedClusterAddOn YAML, `{cluster}` standing for the cluster's name."""
    hub = Hub(run_dir, *extra_args).start()
    try:
        for cluster in ("cluster1", "cluster2"):
            hub.kubectl("apply", "-f", "-", input=addon.format(cluster=cluster))
        for cluster in ("cluster1", "cluster2"):
            wait_available(hub, cluster)
        hub.kubectl("create", "ns", "dest", context="cluster2")
        hub.kubectl("create", "ns", "src", context="cluster1")
    except BaseException:
        hub.stop()  # no fixture will: the hub and its fleet would outlive the failed test
        raise
    return hub


def replication_rows(hub: Hub, **filters: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The hub's replication rows by (cluster, role)."""
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return {(r["cluster"], r["role"]): r for r in hub.rest(f"/api/v1/replications?{query}")}


def trigger_manual(hub: Hub, value: str, name: str = "rs", namespace: str = "src") -> None:
    """Set the source's `spec.trigger.manual` on cluster1."""
    hub.kubectl("patch", "replicationsource", name, "-n", namespace, "--type=merge",
                "-p", f'{{"spec":{{"trigger":{{"manual":"{value}"}}}}}}', context="cluster1")
