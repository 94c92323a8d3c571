"""A real `volsync-hub` process (embedded API servers, local deployer, REST API) for end-to-end tests."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

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
        self.proc, self.ready = processes.start_ready(cmd, "volsync-hub ready", self.data_dir / "hub.log", ROOT, 60)
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

    def agent_pids(self) -> dict[str, int]:
        out = {}
        for pidfile in (self.data_dir / "hub").glob("**/*.pid"):
            try:
                out[pidfile.stem] = int(pidfile.read_text())
            except ValueError:
                continue
        return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


PLAIN_ADDON = """apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata: {{name: volsync, namespace: {cluster}}}
"""


def replication_hub(run_dir: Path, *extra_args: str, addon: str = PLAIN_ADDON) -> Hub:
    """A started hub whose cluster1 and cluster2 run their agents (addon `Available`), with the
    namespaces the replication tests use: `src` on cluster1, `dest` on cluster2. `addon` is the
    ManagedClusterAddOn YAML, `{cluster}` standing for the cluster's name."""
    hub = Hub(run_dir, *extra_args).start()
    for cluster in ("cluster1", "cluster2"):
        hub.kubectl("apply", "-f", "-", input=addon.format(cluster=cluster))
    for cluster in ("cluster1", "cluster2"):
        eventually(lambda c=cluster: hub.addon_condition(c, "Available").get("status") == "True", 60,
                   what=f"{cluster} available")
    hub.kubectl("create", "ns", "dest", context="cluster2")
    hub.kubectl("create", "ns", "src", context="cluster1")
    return hub


def replication_rows(hub: Hub, **filters: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The hub's replication rows by (cluster, role)."""
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return {(r["cluster"], r["role"]): r for r in hub.rest(f"/api/v1/replications?{query}")}


def trigger_manual(hub: Hub, value: str, name: str = "rs", namespace: str = "src") -> None:
    """Set the source's `spec.trigger.manual` on cluster1."""
    hub.kubectl("patch", "replicationsource", name, "-n", namespace, "--type=merge",
                "-p", f'{{"spec":{{"trigger":{{"manual":"{value}"}}}}}}', context="cluster1")
