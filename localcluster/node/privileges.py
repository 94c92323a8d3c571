"""A container's identity and capabilities, set in runc's order: user and groups first, capabilities after.

runc switches uid, gid and supplementary groups while it still holds every capability, and only then
sets the capability sets; so a container that keeps nothing but, say, DAC_READ_SEARCH still starts as
`runAsUser: 0` (setgroups alone needs CAP_SETGID). The node does the same in two steps:
1. bwrap (running as root) gives the sandbox the container's set C plus what the switch itself needs
   (`SWITCH_CAPS`: SETUID, SETGID for the ids and groups, SETPCAP for the bounding set);
2. `setpriv` inside the sandbox (the image's own) bounds the set to C, switches uid, gid and groups
   and clears the inheritable set (and with it the ambient set), then executes the command.
On that exec the kernel leaves, as the CRI does (containerd: bounding = effective = permitted = C,
inheritable and ambient empty):
- uid 0: permitted = effective = bounding = C;
- any other uid: bounding = C and nothing else (no ambient capabilities; a binary's file capabilities
  are limited by the bound, as on Kubernetes).
`privileged` (C = None) keeps every capability in the bound; a non-root user gets none of them.
The same `setpriv` arguments give a process `exec`'d into the container the container's privileges.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localcluster.node.containerspec import ContainerLaunch

DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
"""containerd's default capability set."""
SWITCH_CAPS = ("SETGID", "SETPCAP", "SETUID")
"""What `setpriv` needs while it switches identity and bounds the set (dropped before the command runs)."""


def capabilities(launch: ContainerLaunch) -> frozenset[str] | None:
    """The container's capability names (no `CAP_` prefix); None means all of them."""
    if launch.privileged:
        return None
    add = {_cap_name(c) for c in launch.cap_add}
    drop = {_cap_name(c) for c in launch.cap_drop}
    if "ALL" in add:
        return None
    caps = set() if "ALL" in drop else set(DEFAULT_CAPS) - drop
    return frozenset(caps | add)


def _cap_name(name: str) -> str:
    upper = name.strip().upper()
    return upper[4:] if upper.startswith("CAP_") else upper


def sandbox_caps(caps: frozenset[str] | None) -> list[str]:
    """bwrap's capability arguments: C plus `SWITCH_CAPS` (nothing for all: bwrap as root keeps every one)."""
    if caps is None:
        return []
    argv = ["--cap-drop", "ALL"]
    for cap in sorted(caps | set(SWITCH_CAPS)):
        argv += ["--cap-add", f"CAP_{cap}"]
    return argv


def setpriv_argv(setpriv: str, caps: Iterable[str] | None, user: int | None, group: int | None,
                 groups: Sequence[int]) -> list[str]:
    """`setpriv ... --`: bound the capabilities to `caps` (None: keep the bound), become `user`:`group`
    (root when not named, as an image without USER) with exactly `groups`, clear inheritable and ambient."""
    argv = [setpriv]
    if caps is not None:
        argv.append("--bounding-set=" + ",".join(["-all", *(f"+{c.lower()}" for c in sorted(caps))]))
    argv += [f"--reuid={user or 0}", f"--regid={group or 0}"]
    argv += ["--groups", ",".join(str(g) for g in groups)] if groups else ["--clear-groups"]
    return [*argv, "--inh-caps=-all", "--"]
