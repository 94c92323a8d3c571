"""The local deployer: the embedded default's kubelet and work agent in one.

`apply` puts the rendered manifests on the managed cluster's API (a `Kube` per cluster from the
embedded kubeconfig, context = the cluster's name): server-side apply with field manager
`volsync-hub`, CRDs first, then Namespaces, then the rest in the order given. Workload kinds the
local platform does not run (Deployment, Pod, Job, ...) are not applied: the agent Deployment is
recorded, and the supervisor (`supervisor.py`) runs it as a `volsync-agent` process with the
arguments the Deployment gives (`--cluster-name`, `--mover-image`, `--hub-url`, `--hub-token-file`,
`--hub-ca-file`, `--log-level`, `--rsync-retries`; the token and the hub's CA are taken from the
Secret the Deployment mounts and written to 0600 files) plus the local ones (`--kubeconfig`,
`--context`). The agent keeps no data of its own (its movers are Jobs on the cluster), so it gets
no data root. Given `agent_kubeconfig`, the agent's kubeconfig is `DIR/agents/<cluster>.kubeconfig`
(0600) holding only its own cluster and a token of the Deployment's ServiceAccount (asked for once
the manifests, which make that ServiceAccount and its RBAC, are applied), never the hub's or the
admin's kubeconfig.

`apply` is cheap when nothing changed: the same manifests are re-applied only every `resync`
seconds (drift repair). It raises when the manifests could not be applied (the controller retries).
The state: `applied` once applied; `available` while the agent process runs and has printed its
ready line (a Deployment scaled to 0 counts as available, as with ManifestWork feedback).
`on_change(cluster)` is called from the supervisor's thread when an agent starts, becomes ready or
exits, so the addon controller can requeue the MCA and recompute its conditions.

`remove` stops the agent, revokes its credential (`revoke_agent`: a leaked agent kubeconfig stops
working with the addon; a re-enabled addon's agent gets a new token) and deletes what was applied
except the objects annotated `addon.open-cluster-management.io/deletion-orphan` (the CRDs), as the
work agent does when a ManifestWork goes; the list of applied objects is kept in `DIR/agents/<cluster>.applied.json`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub import ocm
from hub.deployers import DeployState
from hub.deployers.supervisor import Supervisor
from kube import clients, objects
from kube.rest import Kube, Resource
from osutil.files import write_private

log = logging.getLogger("volsync.hub.local")

Obj = dict[str, Any]
FIELD_MANAGER = "volsync-hub"
WORKLOADS = frozenset({"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Pod", "Job", "CronJob"})
MOUNTED_FLAGS = (("--hub-token-file", "token"), ("--hub-ca-file", "hub-ca.crt"))  # written to a local file
# Deployment args the local agent keeps as they are (`--mover-image`: its mover Jobs run the Deployment's image)
PASSED_FLAGS = ("--mover-image", "--hub-url", "--log-level", "--rsync-retries")


def apply_order(manifest: Obj) -> int:
    kind = manifest.get("kind")
    return 0 if kind == "CustomResourceDefinition" else 1 if kind == "Namespace" else 2


def flag(args: list[str], name: str) -> str | None:
    """The value of `--name value` or `--name=value` in an argument list."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    return None


def agent_container(deployment: Obj) -> Obj:
    containers = ((((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    named = [c for c in containers if c.get("name") == ocm.AGENT_CONTAINER]
    if not named and not containers:
        raise ValueError("the agent Deployment has no container")
    return dict((named or containers)[0])


def mounted_secret_value(deployment: Obj, manifests: list[Obj], path: str) -> str | None:
    """The content of the file `path` in the Deployment's pod, when a Secret volume in `manifests` provides it."""
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    directory, _, filename = path.rpartition("/")
    for mount in agent_container(deployment).get("volumeMounts") or []:
        if str(mount.get("mountPath") or "").rstrip("/") != directory:
            continue
        volume: Obj = next((v for v in pod.get("volumes") or [] if v.get("name") == mount.get("name")), {})
        source = volume.get("secret") or {}
        key = next((i.get("key") for i in source.get("items") or [] if i.get("path") == filename), filename)
        for m in manifests:
            if m.get("kind") == "Secret" and objects.name_of(m) == source.get("secretName"):
                if key in (m.get("stringData") or {}):
                    return str(m["stringData"][key])
                if key in (m.get("data") or {}):
                    try:
                        return base64.b64decode(m["data"][key], validate=True).decode()
                    except (binascii.Error, UnicodeDecodeError):
                        return None
    return None


class LocalDeployer:
    def __init__(
        self,
        kubeconfig: Path,
        data_dir: Path,
        *,
        python: str = sys.executable,
        resync: float = 300.0,
        backoff: tuple[float, float] = (1.0, 60.0),
        healthy_after: float = 60.0,
        grace: float = 10.0,
        poll: float = 0.1,
        on_change: Callable[[str], None] | None = None,
        agent_kubeconfig: Callable[[str, str, str, Path], Path] | None = None,
        revoke_agent: Callable[[str], None] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig.resolve()
        self.data_dir = data_dir.resolve()
        self.python = python
        self.resync = resync
        # (cluster, namespace, service account, path) -> a kubeconfig for that cluster only, as that account
        self.agent_kubeconfig = agent_kubeconfig
        self.revoke_agent = revoke_agent  # cluster -> its agent's credential is revoked (on remove)
        self.supervisor = Supervisor(self.data_dir / "agents", poll=poll, backoff=backoff,
                                     healthy_after=healthy_after, grace=grace, on_change=on_change)
        self._lock = threading.Lock()
        self._kubes: dict[str, Kube] = {}
        self._resources: dict[tuple[str, str, str], Resource] = {}  # (cluster, apiVersion, kind)
        self._applied: dict[str, tuple[str, float]] = {}  # cluster -> (digest of the manifests, when)
        self._deployments: dict[str, Obj] = {}
        self.supervisor.start()

    # -- the Deployer protocol ----------------------------------------------------------------------
    def apply(self, cluster: str, mca: Obj, manifests: list[Obj]) -> DeployState:
        digest = hashlib.sha256(json.dumps(manifests, sort_keys=True).encode()).hexdigest()
        deployment = next((m for m in manifests if m.get("kind") == "Deployment"
                           and objects.name_of(m) == ocm.AGENT), None)
        argv = self._agent_argv(cluster, deployment, manifests) if deployment is not None else None
        with self._lock:
            last = self._applied.get(cluster)
        if last is None or last[0] != digest or time.monotonic() - last[1] >= self.resync:
            self._apply_manifests(cluster, manifests)
            with self._lock:
                self._applied[cluster] = (digest, time.monotonic())
        if argv is not None and deployment is not None:  # its ServiceAccount exists now
            argv += self._cluster_args(cluster, deployment)
        with self._lock:
            if deployment is not None:
                self._deployments[cluster] = deployment
            else:
                self._deployments.pop(cluster, None)
        self.supervisor.want(cluster, argv)
        return self.state(cluster)

    def remove(self, cluster: str) -> None:
        self.supervisor.stop(cluster)
        if self.revoke_agent is not None:  # a leaked agent kubeconfig must not outlive the addon
            self.revoke_agent(cluster)
        self._path(cluster, "token").unlink(missing_ok=True)
        self._path(cluster, "kubeconfig").unlink(missing_ok=True)
        record = self._path(cluster, "applied.json")
        try:
            applied = json.loads(record.read_text())
        except (OSError, ValueError):
            applied = []
        for entry in reversed(applied):
            if entry.get("orphan"):
                continue
            try:
                kube = self._kube(cluster)
                res = self._resource(cluster, kube, entry["apiVersion"], entry["kind"])
                kube.delete(res, entry["name"], entry.get("namespace") or None)
            except Exception as exc:  # the cluster may be gone with the MCA: nothing more to do then
                log.warning("removing %s %s from %s: %s", entry.get("kind"), entry.get("name"), cluster, exc)
        record.unlink(missing_ok=True)
        with self._lock:
            self._applied.pop(cluster, None)
            self._deployments.pop(cluster, None)
            stale = self._kubes.pop(cluster, None)
        if stale is not None:
            clients.close(stale.api)

    # -- more ---------------------------------------------------------------------------------------
    def state(self, cluster: str) -> DeployState:
        with self._lock:
            applied = cluster in self._applied
            deployment = self._deployments.get(cluster)
        if not applied:
            return DeployState(applied=None, available=None, message="not applied yet")
        if deployment is None:
            return DeployState(applied=True, available=None, message="no agent Deployment in the manifests")
        if (deployment.get("spec") or {}).get("replicas") == 0:
            return DeployState(applied=True, available=True, message="the agent Deployment is scaled to 0")
        agent = self.supervisor.status(cluster)
        return DeployState(applied=True, available=agent.pid is not None and agent.ready is not None,
                           message=agent.message if agent.pid is not None or agent.restarts else "agent starting")

    def deployment(self, cluster: str) -> Obj | None:
        """The agent Deployment last recorded for `cluster` (what the agent process runs)."""
        with self._lock:
            return self._deployments.get(cluster)

    def clusters(self) -> list[str]:
        """Clusters with a supervised agent, adopted ones included (a hub may `remove` the unwanted)."""
        return self.supervisor.clusters()

    def close(self, *, stop_agents: bool = True) -> None:
        """Stop supervising; agents keep running for the next hub to adopt only if `stop_agents` is False."""
        self.supervisor.close(stop_agents=stop_agents)
        with self._lock:
            kubes, self._kubes = list(self._kubes.values()), {}
        for kube in kubes:
            clients.close(kube.api)

    # -- applying -----------------------------------------------------------------------------------
    def _path(self, cluster: str, suffix: str) -> Path:
        return self.supervisor.path(cluster, suffix)

    def _kube(self, cluster: str) -> Kube:
        with self._lock:
            kube = self._kubes.get(cluster)
            if kube is None:
                kube = self._kubes[cluster] = Kube(clients.load(str(self.kubeconfig), cluster),
                                                   field_manager=FIELD_MANAGER)
            return kube

    def _resource(self, cluster: str, kube: Kube, api_version: str, kind: str) -> Resource:
        """The resource of a kind, from the cluster's discovery (asked again when a kind is new: a CRD)."""
        key = (cluster, api_version, kind)
        with self._lock:
            found = self._resources.get(key)
        if found is not None:
            return found
        group, _, version = api_version.rpartition("/")
        listing = kube.request("GET", f"/apis/{api_version}" if group else f"/api/{version}")
        with self._lock:
            for entry in listing.get("resources") or []:
                if "/" not in entry.get("name", ""):
                    self._resources[(cluster, api_version, entry.get("kind", ""))] = Resource(
                        group, version, entry["name"], entry.get("kind", ""), bool(entry.get("namespaced")))
            found = self._resources.get(key)
        if found is None:
            raise LookupError(f"{cluster} serves no {kind} in {api_version}")
        return found

    def _apply_manifests(self, cluster: str, manifests: list[Obj]) -> None:
        kube = self._kube(cluster)
        applied: list[Obj] = []
        for manifest in sorted(manifests, key=apply_order):  # sorted() is stable: the given order otherwise
            kind, api_version = str(manifest.get("kind") or ""), str(manifest.get("apiVersion") or "")
            if kind in WORKLOADS:
                continue
            res = self._resource(cluster, kube, api_version, kind)
            kube.apply(res, manifest)
            applied.append({
                "apiVersion": api_version, "kind": kind, "name": objects.name_of(manifest),
                "namespace": objects.namespace_of(manifest) if res.namespaced else "",
                "orphan": ocm.DELETION_ORPHAN in objects.annotations_of(manifest),
            })
        self._write(self._path(cluster, "applied.json"), json.dumps(applied, indent=1))
        log.info("applied %d manifests to %s", len(applied), cluster)

    def _agent_argv(self, cluster: str, deployment: Obj, manifests: list[Obj]) -> list[str] | None:
        if (deployment.get("spec") or {}).get("replicas") == 0:
            return None
        container = agent_container(deployment)
        args = [str(a) for a in (container.get("args") or [])]
        named = flag(args, "--cluster-name")
        if named is not None and named != cluster:
            raise ValueError(f"the agent Deployment for {cluster} names cluster {named!r}")
        argv = [self.python, "-m", "agent.main", "--cluster-name", cluster]
        for name in PASSED_FLAGS:
            value = flag(args, name)
            if value is not None:
                argv += [name, value]
        for name, suffix in MOUNTED_FLAGS:  # files the pod would read from its hub Secret
            mounted = flag(args, name)
            if mounted is None:
                continue
            value = mounted_secret_value(deployment, manifests, mounted)
            if value is None:
                raise ValueError(f"no Secret in the manifests provides the agent's {mounted}")
            local_file = self._path(cluster, suffix)
            self._write(local_file, value)
            argv += [name, str(local_file)]
        return argv

    def _cluster_args(self, cluster: str, deployment: Obj) -> list[str]:
        """How the agent reaches its cluster: as the Deployment's ServiceAccount (`agent_kubeconfig`),
        where the Pod would mount its token."""
        if self.agent_kubeconfig is not None:
            pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
            account = str(pod.get("serviceAccountName") or "default")
            namespace = objects.namespace_of(deployment) or "default"
            kubeconfig = self.agent_kubeconfig(cluster, namespace, account, self._path(cluster, "kubeconfig"))
        else:
            kubeconfig = self.kubeconfig
        return ["--kubeconfig", str(kubeconfig), "--context", cluster]

    @staticmethod
    def _write(path: Path, text: str) -> None:
        """Replace a file's content atomically (0600: the token is a credential); no write when equal."""
        try:
            if path.read_text() == text:
                return
        except OSError:
            pass
        write_private(path, text)
