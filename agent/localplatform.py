"""The local platform: the embedded default's addresses and movers, on this machine.

- Storage is the cluster's: PVCs and VolumeSnapshots are provisioned by its CSI driver (in the
  embedded default `localcluster/storage`, run by the cluster process); the platform only finds a
  claim's directory from its PersistentVolume (`spec.local.path` or `spec.hostPath.path`).
- Addresses: every Service the agent creates gets its own loopback address from the agent's pool
  (`spec.clusterIP`, and `status.loadBalancer.ingress` for LoadBalancer Services), like a cloud
  load balancer handing out IPs, so each destination's sshd listens on port 22 of its own address
  and the source needs only `address` and `sshKeys`, exactly as in the user docs.
- Movers: a destination is a real `sshd` per ReplicationDestination, a source transfer a real
  `rsync` over `ssh`, both processes of the agent. Their state lives in
  `<data root>/movers/<role>-<namespace>-<name>/` so a restarted agent resumes an iteration (the
  destination's completion signal and iteration identity are files there).

Protection of the data on this host: the data root and every directory the agent makes under it
are 0700 and every file holding a Secret 0600; volumes live in the cluster's storage (in the embedded
default a `nosuid,nodev` pool, so replicated setuid files and device nodes are inert). rsync's version
is checked at start-up (`movers.rsyncversion`).

Binding port 22 needs root (or CAP_NET_BIND_SERVICE); without it the destination reports an
Error condition saying so; set `spec.rsync.port` on both sides to a port >= 1024 instead.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.destination import ServerView
from agent.localdestinations import LocalDestinations
from agent.plans import Serve, StartTransfer
from agent.platform import Controller
from agent.source import TransferView
from kube import objects
from kube.clock import Clock, SystemClock
from kube.rest import PVS, SERVICES, Kube
from movers import keys as sshkeys
from movers.errors import MoverError
from movers.rsyncversion import check_rsync
from movers.source import SourceTransfer, TransferResult

log = logging.getLogger("volsync.local")

Obj = dict[str, Any]
RETRY_MAX = 300.0
CLOSE_WAIT = 6.0  # seconds `close` waits for movers to stop
AGENT_LB_CLASS = "volsync-addon.io/agent-loopback"  # the class of the Services whose ingress the agent publishes


def _secret_bytes(secret: Obj) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


@dataclass
class _Transfer:
    iteration: str
    mover: SourceTransfer


class _LoadBalancer:
    """Publishes a LoadBalancer Service's loopback address as its ingress, like a cloud LB would."""

    kinds: tuple[str, ...] = ("svc",)

    def __init__(self, kube: Kube, pool: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
        self.kube = kube
        self.pool = pool

    def reconcile(self, kind: str, namespace: str, name: str) -> float | None:
        svc = self.kube.get(SERVICES, name, namespace)
        if svc is None or (svc.get("spec") or {}).get("type") != "LoadBalancer":
            return None
        ip = (svc.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None" or ipaddress.ip_address(ip) not in self.pool:
            return None
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not any(i.get("ip") == ip for i in ingress):
            self.kube.patch_status(SERVICES, name, {"loadBalancer": {"ingress": [{"ip": ip}]}}, namespace)
        return None


class LocalPlatform:
    def __init__(self, kube: Kube, data_root: Path, *, address_pool: str, clock: Clock | None = None,
                 retries: int = 5, backoff: Sequence[float] = (2, 4, 8, 16, 32), compress: bool = False,
                 poll_interval: float = 0.2, rsync: str = "rsync") -> None:
        check_rsync(rsync)
        self.rsync = rsync
        self.kube = kube
        self.data_root = data_root
        data_root.mkdir(parents=True, exist_ok=True)
        data_root.chmod(0o700)
        self.pool = ipaddress.ip_network(address_pool)
        self.clock = clock or SystemClock()
        self.retries = retries
        self.backoff = tuple(backoff)
        self.compress = compress
        self._lock = threading.RLock()
        self._allocated: set[str] = set()
        self._transfers: dict[str, _Transfer] = {}
        self._failures: dict[str, tuple[int, datetime | None]] = {}
        self.destinations = LocalDestinations(data_root, rsync, self._workdir, self._make_workdir)
        self._callbacks: list[Callable[[str], None]] = []
        self._stop = threading.Event()
        self._poll_interval = poll_interval
        self._poller = threading.Thread(target=self._poll, name="completion-poller", daemon=True)
        self._poller.start()

    # -- wiring -------------------------------------------------------------------------------------
    def controllers(self) -> list[Controller]:
        return [_LoadBalancer(self.kube, self.pool)]

    def on_change(self, callback: Callable[[str], None]) -> None:
        self._callbacks.append(callback)

    def _changed(self, key: str) -> None:
        for cb in self._callbacks:
            cb(key)

    def close(self) -> None:
        """Stop every transfer and server, all at once and within CLOSE_WAIT seconds (the supervisor's
        stop grace is longer)."""
        self._stop.set()
        with self._lock:
            transfers = list(self._transfers.values())
            self._transfers.clear()
        servers = self.destinations.take_all()
        stoppers = [threading.Thread(target=t.mover.cancel, daemon=True) for t in transfers]
        stoppers += [threading.Thread(target=srv.stop, daemon=True) for srv in servers]
        for thread in stoppers:
            thread.start()
        deadline = time.monotonic() + CLOSE_WAIT
        for thread in stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in stoppers):
            log.warning("movers still stopping after %ss; their links are given back at the next start", CLOSE_WAIT)

    # -- addresses ----------------------------------------------------------------------------------
    def prepare_service(self, svc: Obj) -> Obj:
        spec = svc.setdefault("spec", {})
        if spec.get("type") == "LoadBalancer":
            # Its loopback ingress is published by _LoadBalancer below, so the cluster's own cloud
            # load balancer must leave it alone (a real cloud ignores a class it does not own).
            spec.setdefault("loadBalancerClass", AGENT_LB_CLASS)
        if spec.get("clusterIP"):
            return svc
        with self._lock:
            items, _ = self.kube.list(SERVICES)
            used = {str((s.get("spec") or {}).get("clusterIP")) for s in items} | self._allocated
            for host in self.pool.hosts():
                if str(host) not in used:
                    self._allocated.add(str(host))
                    spec["clusterIP"] = str(host)
                    return svc
        raise MoverError(f"the address pool {self.pool} is exhausted")

    # -- volumes ------------------------------------------------------------------------------------
    def volume_path(self, pvc: Obj) -> Path:
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = self.kube.get(PVS, volume) if volume else None
        if pv is None:
            raise MoverError(f"PVC {objects.name_of(pvc)} is not bound to a volume")
        spec = pv.get("spec") or {}
        path = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
        if not path or not Path(path).is_dir():
            raise MoverError(f"volume {volume} has no local directory")
        return Path(path)

    def _workdir(self, key: str) -> Path:
        return self.data_root / "movers" / objects.short_name(key.replace("/", "-"), 200)

    def _make_workdir(self, key: str) -> Path:
        """`_workdir(key)`, created 0700 (with its parent) if missing."""
        work = self._workdir(key)
        for d in (work.parent, work):
            d.mkdir(mode=0o700, exist_ok=True)
            d.chmod(0o700)
        return work

    # -- source side --------------------------------------------------------------------------------
    def transfer(self, key: str) -> TransferView | None:
        with self._lock:
            t = self._transfers.get(key)
        if t is None:
            return None
        result: TransferResult | None = t.mover.poll()
        if result is None:
            return TransferView(t.iteration, running=True)
        return TransferView(t.iteration, running=False, succeeded=result.succeeded, logs=result.logs,
                            exit_code=result.exit_code)

    def retry_state(self, key: str) -> tuple[int, datetime | None]:
        with self._lock:
            return self._failures.get(key, (0, None))

    def start_transfer(self, action: StartTransfer, pvc: Obj, secret: Obj) -> None:
        keys = sshkeys.from_secret_data(_secret_bytes(secret), "source")
        data_dir = self.volume_path(pvc)
        with self._lock:
            current = self._transfers.get(action.key)
            if current is not None and current.iteration == action.iteration and current.mover.poll() is None:
                return
            if current is not None:
                current.mover.cancel()
            workdir = self._make_workdir(action.key)
            mover = SourceTransfer(data_dir=data_dir, address=action.address, port=action.port,
                                   source_key=keys.source, destination_pub=keys.destination_pub, workdir=workdir,
                                   retries=self.retries, backoff=self.backoff, compress=self.compress,
                                   rsync=self.rsync, iteration_id=action.iteration)
            self._transfers[action.key] = _Transfer(action.iteration, mover)
            mover.start()
        threading.Thread(target=self._await_transfer, args=(action.key, mover), daemon=True).start()

    def _await_transfer(self, key: str, mover: SourceTransfer) -> None:
        mover.wait()
        self._changed(key)

    def forget_transfer(self, key: str, failed: bool) -> None:
        with self._lock:
            self._transfers.pop(key, None)
            if failed:
                count = self._failures.get(key, (0, None))[0] + 1
                delay = min(2.0 * 2 ** (count - 1), RETRY_MAX)
                self._failures[key] = (count, self.clock.now() + timedelta(seconds=delay))
            else:
                self._failures.pop(key, None)

    def cancel_transfer(self, key: str) -> None:
        with self._lock:
            t = self._transfers.pop(key, None)
        if t is not None:
            t.mover.cancel()

    # -- destination side (agent.localdestinations) -------------------------------------------------
    def server(self, key: str) -> ServerView | None:
        return self.destinations.server(key)

    def serve(self, action: Serve, pvc: Obj, secret: Obj) -> None:
        keys = sshkeys.from_secret_data(_secret_bytes(secret), "destination")
        self.destinations.serve(action, self.volume_path(pvc), keys)

    def stop_receiving(self, key: str, iteration: str) -> None:
        self.destinations.stop_receiving(key, iteration)

    def end_iteration(self, key: str, iteration: str) -> None:
        self.destinations.end_iteration(key, iteration)

    def stop_serving(self, key: str) -> None:
        self.destinations.stop_serving(key)

    def _poll(self) -> None:
        """Tell the controller when a destination receives its completion signal."""
        while not self._stop.wait(self._poll_interval):
            for key in self.destinations.newly_completed():
                self._changed(key)
