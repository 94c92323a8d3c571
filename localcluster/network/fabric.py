"""The fabric: one network namespace per installation that routes between its clusters' Pods.

Every Pod namespace of every embedded cluster of an installation is joined to the fabric by a
routed veth pair (see `podnet`); the Service and load-balancer rules of each cluster are nft tables
inside it (see `proxy`). The fabric has no link to the host's namespace and no default route, so
nothing in it can reach off the machine, and the host's namespace is never changed.

Liveness: every process using a fabric holds a shared flock on
``/run/volsync-addon/fabrics/<name>.lock`` for its lifetime (`Fabric.hold`). Pods outlive the cluster
process that started them (their shims are adopted by the next one), and they hold no lock, so a
fabric is stale only when nobody holds its lock AND no live thread of any process is inside the
fabric's or any of its Pods' network namespaces (the kernel's answer, compared by namespace inode with
``/proc/*/task/*/ns/net``: it needs no cooperation from shims or containers, and a container cannot
forge or drop it). `sweep_stale` deletes such a fabric and its Pods' namespaces.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
from pathlib import Path

from localcluster.network import netcmd
from localcluster.network.addressing import GATEWAY_IP
from osutil.files import private_dir

log = logging.getLogger(__name__)

LOCK_DIR = Path("/run/volsync-addon/fabrics")
FABRIC_TABLE = "vsa_fabric"
_FABRIC_NAME = re.compile(r"^vsa-fab-[0-9a-f]{10}$")

# Only Pod, Service and load-balancer ranges are ever forwarded (defence in depth: there is no
# route off the fabric anyway), and the node's uplink `vsa-egress`, which exists only in a cluster
# run alone in a container with --node-network (`nodenet`).
_FABRIC_PROGRAM = f"""table ip {FABRIC_TABLE}
delete table ip {FABRIC_TABLE}
table ip {FABRIC_TABLE} {{
    chain forward {{
        type filter hook forward priority filter + 10; policy drop;
        ip saddr {{ 10.0.0.0/8, 172.20.0.0/16 }} ip daddr {{ 10.0.0.0/8, 172.20.0.0/16 }} accept
        iifname "vsa-egress" accept
        oifname "vsa-egress" accept
    }}
}}
"""

_held: dict[str, int] = {}
_held_lock = threading.Lock()


class Fabric:
    """One installation's fabric namespace (see the module docstring)."""

    def __init__(self, name: str) -> None:
        if not _FABRIC_NAME.match(name):
            raise ValueError(f"fabric name {name!r} is not of the form vsa-fab-<10 hex digits>")
        self.name = name

    @property
    def netns(self) -> str:
        return self.name

    @property
    def netns_path(self) -> str:
        return str(netcmd.NETNS_DIR / self.name)

    @property
    def pod_prefix(self) -> str:
        """Prefix of the names of this fabric's Pod namespaces."""
        return f"{self.name}-pod-"

    def ensure(self) -> Fabric:
        """Create the fabric if missing (idempotent): lo up, forwarding on, the fabric's nft table."""
        self.hold()
        netcmd.netns_add(self.name)
        netcmd.run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        netcmd.sysctl(self.name, "net.ipv4.ip_forward", "1")
        netcmd.sysctl(self.name, "net.ipv4.conf.all.send_redirects", "0")
        netcmd.sysctl(self.name, "net.ipv4.conf.default.send_redirects", "0")
        self.add_local_address(str(GATEWAY_IP))
        netcmd.nft_apply(self.name, _FABRIC_PROGRAM)
        return self

    def add_local_address(self, ip: str) -> None:
        """Put `ip`/32 on the fabric's lo (idempotent): the Pods' gateway, node IPs, forwarders."""
        current = netcmd.run(["ip", "-n", self.name, "-o", "-4", "addr", "show", "dev", "lo"])
        if f" {ip}/32 " not in current:
            netcmd.run(["ip", "-n", self.name, "addr", "add", f"{ip}/32", "dev", "lo"])

    def hold(self) -> None:
        """Take (once per process) a shared flock on the fabric's lock file, kept until exit."""
        with _held_lock:
            if self.name in _held:
                return
            _held[self.name] = _lock(lock_path(self.name), fcntl.LOCK_SH)

    def lock_fd(self) -> int:
        """The fd of this process's hold. Never hand it to a container: a flock belongs to the open
        file, so any process sharing it could unlock it for everyone (Pods keep their fabric alive by
        being inside its namespaces, see the module docstring)."""
        self.hold()
        with _held_lock:
            return _held[self.name]

    def release(self) -> None:
        """Drop this process's hold (the fabric becomes sweepable once no process holds it)."""
        with _held_lock:
            fd = _held.pop(self.name, None)
        if fd is not None:
            os.close(fd)

    def remove(self) -> None:
        """Delete the fabric and every Pod namespace joined to it, then release the hold."""
        _delete_fabric(self.name)
        self.release()


def lock_path(name: str) -> Path:
    return LOCK_DIR / f"{name}.lock"


def _lock(path: Path, mode: int) -> int:
    """Open and flock `path`; retry when the file was unlinked (swept) while we waited for it."""
    private_dir(path.parent)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            if _is_current(path, fd):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _is_current(path: Path, fd: int) -> bool:
    """Whether `fd` is still the file at `path` (not one a sweeper unlinked while we waited)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _occupied_netns() -> set[int]:
    """The inodes of the network namespaces some live thread of some process is in."""
    found: set[int] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:  # a process or thread may exit at any point of the walk (glob would raise then)
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                found.add(os.stat(f"/proc/{pid}/task/{tid}/ns/net").st_ino)
            except OSError:
                continue
    return found


def _in_use(name: str) -> bool:
    """Whether a live process is inside the fabric's namespace or one of its Pods' namespaces."""
    occupied = _occupied_netns()
    for ns in [name, *(n for n in netcmd.netns_names() if n.startswith(f"{name}-pod-"))]:
        try:
            if os.stat(netcmd.NETNS_DIR / ns).st_ino in occupied:
                return True
        except OSError:
            continue
    return False


def _delete_fabric(name: str) -> None:
    for ns in netcmd.netns_names():
        if ns.startswith(f"{name}-pod-"):
            netcmd.netns_delete(ns)
    netcmd.netns_delete(name)


def sweep_stale() -> list[str]:
    """Delete every fabric (and its Pods' namespaces) that no live process holds or is inside; return
    their names."""
    names = {ns for ns in netcmd.netns_names() if _FABRIC_NAME.match(ns)}
    orphans = {ns.split("-pod-")[0] for ns in netcmd.netns_names() if "-pod-" in ns}
    names |= {ns for ns in orphans if _FABRIC_NAME.match(ns)}
    if LOCK_DIR.is_dir():
        names |= {p.stem for p in LOCK_DIR.glob("*.lock") if _FABRIC_NAME.match(p.stem)}
    swept = []
    for name in sorted(names):
        path = lock_path(name)
        private_dir(LOCK_DIR)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process holds it
            if not _is_current(path, fd):
                continue  # another sweeper unlinked it meanwhile: a new holder may own the new file
            if _in_use(name):
                log.info("fabric %s has no holder but live processes inside (running Pods): kept", name)
                continue
            log.info("sweeping stale fabric %s", name)
            _delete_fabric(name)
            path.unlink(missing_ok=True)
            swept.append(name)
        finally:
            os.close(fd)
    return swept
