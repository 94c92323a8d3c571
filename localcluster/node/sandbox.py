"""The argv of one sandboxed container, `[nsenter --net=<netns> --] bwrap <layout> -- setpriv ... -- argv`,
and of a command entering it, `nsenter --target=<pid> ... -- setpriv ... env -i ... command`.

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
4. the launch's mounts (`--bind`/`--ro-bind`, a file or a directory) and tmpfs mounts, parents before
   children (`pod_mounts`), with the kept paths a volume covers bound back over it.

Identity and capabilities (`privileges.py`): bwrap gives the sandbox the container's set plus what
the user switch needs; the image's `setpriv` switches uid, gid and groups, then bounds the set, as
runc does; root keeps the bounded set, any other uid none.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from localcluster.node import privileges
from localcluster.node.images import RootFs, under

if TYPE_CHECKING:
    from localcluster.node.runtime import ContainerLaunch

SPECIAL = ("/proc", "/dev", "/sys", "/lost+found")
STATUS_FD = 3
SHM_BYTES = 64 * 1024 * 1024  # Kubernetes' default /dev/shm


def container_env(launch: ContainerLaunch, rootfs: RootFs) -> dict[str, str]:
    """The process environment: the launch's, plus PATH (from the image) and HOSTNAME when missing."""
    env = {"PATH": rootfs.path, "HOSTNAME": launch.hostname,
           "HOME": "/root" if launch.run_as_user in (None, 0) else "/"}  # "/": a user the image does not know
    env.update(launch.env)
    return env


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
    groups = spec["supplementary_groups"]
    return privileges.setpriv_argv(str(spec["setpriv"]), spec["capabilities"], spec["run_as_user"],
                                   spec["run_as_group"], groups if isinstance(groups, list) else [])


def bwrap_argv(launch: ContainerLaunch, rootfs: RootFs, root_layout: list[str], hide: Iterable[str],
               *, bwrap: str = "bwrap", nsenter: str = "nsenter") -> list[str]:
    """The whole argv the shim executes (the status JSON goes to fd `STATUS_FD`)."""
    hide = list(hide)
    argv = [nsenter, f"--net={launch.netns_path}", "--"] if launch.netns_path else []
    argv += [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
             "--hostname", launch.hostname, "--json-status-fd", str(STATUS_FD), "--clearenv"]
    for key, value in container_env(launch, rootfs).items():
        argv += ["--setenv", key, value]
    argv += root_layout
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--perms", "1777", "--tmpfs", "/dev/shm"]
    for path in rootfs.scratch:
        argv += ["--perms", "1777" if path in ("/tmp", "/var/tmp") else "0755", "--tmpfs", path]
    for path in rootfs.image_dirs:
        argv += ["--perms", "0755", "--dir", path]
    for path in rootfs.keep:
        argv += _keep(path)
    for path in hide:
        argv += _hide(path)
    for path in rootfs.masked:
        argv += ["--ro-bind", "/dev/null", path]
    for source, path in rootfs.replaced:
        argv += ["--ro-bind", source, path]
    argv += pod_mounts(launch, rootfs.keep, hide)
    argv += _read_only_scratch(launch, rootfs.scratch) if launch.read_only_root else []
    argv += ["--remount-ro", "/"]
    caps = privileges.capabilities(launch)
    argv += privileges.sandbox_caps(caps)
    argv += ["--chdir", launch.working_dir or "/", "--"]
    switch = privileges.setpriv_argv(rootfs.setpriv, caps, launch.run_as_user, launch.run_as_group,
                                     launch.supplementary_groups)
    return argv + switch + launch.argv


def pod_mounts(launch: ContainerLaunch, keep: Iterable[str], hide: Iterable[str]) -> list[str]:
    """The launch's binds and tmpfs mounts, parents before children (containerd sorts a container's
    mounts by the depth of their targets), with the image's kept installation bound back wherever a
    volume covers it: a real image has its own `/usr`, so a Pod's emptyDir at `/tmp` must not hide
    a virtualenv or checkout that lives under `/tmp` on this host (the node's hidden paths below it
    are hidden again). A volume at or below a kept path still wins, as it is mounted after it."""
    targets = [m.target for m in launch.mounts] + [t.target for t in launch.tmpfs]
    restored = [k for k in keep if any(under(k, t) and k != t for t in targets)]
    entries: list[tuple[str, list[str]]] = [(k, _keep(k)) for k in restored]
    entries += [(h, _hide(h)) for h in hide if any(under(h, k) for k in restored)]
    for mount in launch.mounts:
        bind = "--ro-bind" if mount.read_only else "--bind"
        entries.append((mount.target, [*_parents(mount.target), bind, str(mount.source), mount.target]))
    for tmpfs in launch.tmpfs:
        size = ["--size", str(tmpfs.size_bytes)] if tmpfs.size_bytes else []
        entries.append((tmpfs.target, [*_parents(tmpfs.target), *size, "--perms", "1777", "--tmpfs", tmpfs.target]))
    entries.sort(key=lambda entry: len(PurePosixPath(os.path.normpath(entry[0])).parts))  # stable: ties keep order
    return [arg for _, args in entries for arg in args]


def _read_only_scratch(launch: ContainerLaunch, scratch: Iterable[str]) -> list[str]:
    """`readOnlyRootFilesystem`: the image's writable scratch paths become read-only like the rest of
    the root, except where a volume is mounted at or above one (the volume is what is there)."""
    targets = [m.target for m in launch.mounts] + [t.target for t in launch.tmpfs]
    args: list[str] = []
    for path in scratch:
        if not any(under(path, t) for t in targets):
            args += ["--remount-ro", path]
    return args


def _keep(path: str) -> list[str]:
    return [*_parents(path), "--ro-bind", path, path]


def _hide(path: str) -> list[str]:
    return ["--perms", "0000", "--tmpfs", path, "--remount-ro", path]


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
