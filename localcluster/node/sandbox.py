"""The argv of one sandboxed container, `[nsenter --net=<netns> --] bwrap <layout> -- [setpriv ...] argv`,
and of a command entering it, `nsenter --target=<pid> ... -- [setpriv ...] env -i ... command`.

Why bubblewrap: it builds an arbitrary mount layout in a fresh mount namespace from a list of
arguments (no hand-written mount code, nothing touched on the host), unshares the PID/IPC/UTS
namespaces, drops capabilities, and kills the sandbox when its parent (our shim) dies.

The layout, in order (bwrap applies its arguments in order):
1. the image root, read-only. `/` itself is bwrap's own tmpfs; each top-level entry of the image
   root is bound read-only into it (symlinks recreated), and so is every entry of a directory
   that must gain a mount point the image lacks (e.g. `/data`), so mount points can be created
   without writing the image; `/` is remounted read-only at the end;
2. `/proc` (the container's PID namespace), a minimal `/dev` with a 64 MiB `/dev/shm`, a private
   tmpfs on each scratch path (`/tmp`, `/run`, `/var/tmp`, `/root`, `/home`), the kept interpreter
   paths bound back;
3. `hide`: empty read-only tmpfs over host paths no Pod may read (the node's own state); the
   image's `masked` files (host secrets) read as empty (`/dev/null` bound over them);
4. the launch's mounts (`--bind`/`--ro-bind`) and tmpfs mounts, in the order given.

Capabilities: containerd's default set, minus `cap_drop`, plus `cap_add` (`ALL` allowed in both);
`privileged` keeps every capability. A non-root `run_as_user` switches user with `setpriv` inside the
sandbox, so the process keeps no capability (as on Kubernetes); root keeps the bounded set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from localcluster.node.images import RootFs, under

if TYPE_CHECKING:
    from localcluster.node.runtime import ContainerLaunch

DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
                "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
SPECIAL = ("/proc", "/dev", "/sys", "/lost+found")
STATUS_FD = 3
SHM_BYTES = 64 * 1024 * 1024  # Kubernetes' default /dev/shm


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


def container_env(launch: ContainerLaunch, rootfs: RootFs) -> dict[str, str]:
    """The process environment: the launch's, plus PATH (from the image) and HOSTNAME when missing."""
    env = {"PATH": rootfs.path, "HOSTNAME": launch.hostname,
           "HOME": "/root" if launch.run_as_user in (None, 0) else "/"}  # "/": a user the image does not know
    env.update(launch.env)
    return env


def user_switch(launch: ContainerLaunch, rootfs: RootFs) -> list[str]:
    """`setpriv ... --` when the launch names a user, group or supplementary groups; else nothing."""
    if launch.run_as_user is None and launch.run_as_group is None and not launch.supplementary_groups:
        return []
    uid = launch.run_as_user or 0
    gid = launch.run_as_group if launch.run_as_group is not None else 0
    groups = (["--groups", ",".join(str(g) for g in launch.supplementary_groups)]
              if launch.supplementary_groups else ["--clear-groups"])
    return [rootfs.setpriv, f"--reuid={uid}", f"--regid={gid}", *groups, "--inh-caps=-all", "--"]


def exec_argv(spec: Mapping[str, Any], pid: int, command: list[str], *, nsenter: str = "nsenter") -> list[str]:
    """argv entering the container whose main process is `pid` (`spec`: its recorded launch.json):
    its namespaces, root and cwd (`nsenter --wd` without a path: the main process's cwd; a path
    would be the host's), its capability bound, user and groups (`setpriv`), its env (`env -i`)."""
    argv = [nsenter, f"--target={pid}", "--mount", "--uts", "--ipc", "--net", "--pid", "--root", "--wd", "--"]
    argv += _exec_privileges(spec)
    env = [f"{k}={v}" for k, v in spec["env"].items()]
    return argv + [spec["env_path"], "-i", *env, *command]


def _exec_privileges(spec: Mapping[str, Any]) -> list[str]:
    """setpriv arguments giving an exec'd process the container's user, groups and capability bound."""
    caps = spec["capabilities"]
    user, group = spec["run_as_user"], spec["run_as_group"]
    groups = spec["supplementary_groups"]
    argv = [str(spec["setpriv"])]
    if isinstance(caps, list):
        bound = ",".join(["-all", *(f"+{c.lower()}" for c in caps)])
        argv += [f"--bounding-set={bound}", "--inh-caps=-all"]
    if user is not None or group is not None or groups:
        argv += [f"--reuid={user or 0}", f"--regid={group or 0}"]
        argv += ["--groups", ",".join(str(g) for g in groups)] if isinstance(groups, list) and groups \
            else ["--clear-groups"]
    return argv + ["--"] if len(argv) > 1 else []


def bwrap_argv(launch: ContainerLaunch, rootfs: RootFs, root_layout: list[str], hide: Iterable[str],
               *, bwrap: str = "bwrap", nsenter: str = "nsenter") -> list[str]:
    """The whole argv the shim executes (the status JSON goes to fd `STATUS_FD`)."""
    argv = [nsenter, f"--net={launch.netns_path}", "--"] if launch.netns_path else []
    argv += [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--hostname", launch.hostname, "--json-status-fd", str(STATUS_FD), "--clearenv"]
    for key, value in container_env(launch, rootfs).items():
        argv += ["--setenv", key, value]
    argv += root_layout
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--perms", "1777", "--tmpfs", "/dev/shm"]
    for path in rootfs.scratch:
        argv += ["--perms", "1777" if path in ("/tmp", "/var/tmp") else "0755", "--tmpfs", path]
    for path in rootfs.keep:
        argv += [*_parents(path), "--ro-bind", path, path]
    for path in hide:
        argv += ["--perms", "0000", "--tmpfs", path, "--remount-ro", path]
    for path in rootfs.masked:
        argv += ["--ro-bind", "/dev/null", path]
    for source, path in rootfs.replaced:
        argv += ["--ro-bind", source, path]
    for mount in launch.mounts:
        argv += _parents(mount.target)
        argv += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    for tmpfs in launch.tmpfs:
        argv += _parents(tmpfs.target)
        if tmpfs.size_bytes:
            argv += ["--size", str(tmpfs.size_bytes)]
        argv += ["--perms", "1777", "--tmpfs", tmpfs.target]
    argv += ["--remount-ro", "/"]
    caps = capabilities(launch)
    if caps is not None:
        argv += ["--cap-drop", "ALL"]
        for cap in sorted(caps):
            argv += ["--cap-add", f"CAP_{cap}"]
    argv += ["--chdir", launch.working_dir or "/", "--"]
    return argv + user_switch(launch, rootfs) + launch.argv


def _parents(target: str) -> list[str]:
    """`--dir` for each parent of a mount point: a no-op where it exists, else made 0755 (bwrap would
    create a missing parent 0700, which a non-root user could not traverse)."""
    args: list[str] = []
    for parent in reversed(PurePosixPath(os.path.normpath(target)).parents[:-1]):
        args += ["--dir", str(parent)]
    return args


def resolve_target(root: Path, target: str, scratch: tuple[str, ...] = ()) -> str:
    """`target` with the image's symlinks on its path resolved inside the image root (bwrap would
    resolve an absolute link such as `/var/run -> /run` outside the sandbox and fail); below a
    `scratch` path (a fresh tmpfs in the sandbox) the image's content does not count."""
    parts = list(PurePosixPath(os.path.normpath(target)).parts[1:])
    current = PurePosixPath("/")
    hops = 0
    while parts:
        if any(under(str(current), s) for s in scratch):
            return str(current.joinpath(*parts))
        step = current / parts.pop(0)
        host = root / str(step).lstrip("/")
        if host.is_symlink() and hops < 40:
            hops += 1
            link = os.readlink(host)
            joined = PurePosixPath(link) if link.startswith("/") else current / link
            parts = list(PurePosixPath(os.path.normpath(joined)).parts[1:]) + parts
            current = PurePosixPath("/")
            continue
        current = step
    return str(current)


def root_layout(rootfs: RootFs, targets: Iterable[str]) -> list[str]:
    """bwrap arguments that make the image root appear read-only at `/` while every `target` (mount
    points of the launch) can still be created: directories on a target's path that the image
    lacks are built from tmpfs directories holding read-only binds of their entries. Reads the
    image root's directories (the one I/O of this module)."""
    creatable = tuple(rootfs.scratch) + tuple(targets)
    expand = {"/"}
    for target in targets:
        expand |= _to_expand(rootfs.root, target, creatable)
    return _emit(rootfs.root, "/", expand, rootfs.scratch)


def _to_expand(root: Path, target: str, creatable: tuple[str, ...]) -> set[str]:
    """The sandbox directories to rebuild so that `target` can be created inside the image root."""
    current = PurePosixPath("/")
    parts = PurePosixPath(os.path.normpath(target)).parts[1:]
    for index, part in enumerate(parts):
        step = current / part
        if any(under(str(step), c) for c in creatable if c != target):
            return set()
        host = root / str(step).lstrip("/")
        if host.is_symlink():
            link = os.readlink(host)
            resolved = PurePosixPath(os.path.normpath(link if link.startswith("/") else str(current / link)))
            return _to_expand(root, str(resolved.joinpath(*parts[index + 1:])), creatable)
        if host.is_dir():
            current = step
            continue
        if host.exists():
            return set()  # a file on the way: bwrap reports it
        return {str(p) for p in (current, *current.parents)}
    return set()


def _emit(root: Path, directory: str, expand: set[str], scratch: tuple[str, ...]) -> list[str]:
    args: list[str] = []
    host_dir = root / directory.lstrip("/")
    for entry in sorted(os.listdir(host_dir)):
        path = str(PurePosixPath(directory) / entry)
        host = host_dir / entry
        if path in SPECIAL or path in scratch:
            continue
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), path]
        elif path in expand and host.is_dir():
            args += ["--dir", path] + _emit(root, path, expand, scratch)
        elif host.is_dir() or host.is_file():
            args += ["--ro-bind", str(host), path]
    return args
