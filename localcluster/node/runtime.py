"""The node's container runtime (the CRI/containerd/conmon role): start, observe, signal and enter
sandboxed containers whose whole state lives in files under `NodeLayout`.

One start of a container = one `ContainerLaunch` (`containerspec.py`) -> one shim process (`shim.py`, detached, its own
session, re-parented to init) -> `[nsenter --net=<netns> --] bwrap ... -- setpriv ... -- argv` (identity,
then capabilities: `privileges.py`). A launch's `termination_message_path` gets a writable file there
(`layout.TERMINATION_LOG` of the start, made 0666 before the shim runs; the kubelet reads it).
The shim writes the CRI log, the pids, the start and finish times and, last, the exit code, so the
runtime itself keeps nothing in memory: a new `ContainerRuntime` over the same `NodeLayout` (after a
`kill -9` of the node process) sees every container as the old one did (ADOPTION).

- `start(launch)` returns once the container's main process runs (or has already ended); it raises
  `ImageError` (reason `ErrImagePull`) when the image cannot be mapped and `ValueError` for a launch
  the node refuses (no `netns_path` without `allow_host_network`, an attempt that already exists,
  a relative mount target), `RuntimeError` when the host cannot run containers at all (`problems`:
  not root, bwrap/nsenter/setpriv/busybox missing; the kubelet reports them on its Node).
- `inspect` reads the files. A shim that died without writing `exit` (kill -9) means the container
  died with it (bwrap `--die-with-parent`): the runtime records exit code 137 and reason
  `ContainerStatusUnknown` (as kubelet reports a container it lost), and kills any straggler.
- `signal` reaches every process of the container (its own PID namespace). bwrap's reaper is pid 1
  there and the command pid 2, so a SIGTERM ends a program without a handler (as `docker --init`
  does), and the whole namespace dies with the command.
- `exec_argv` builds the argv that runs a command inside a running container (its mount, UTS, IPC,
  network and PID namespaces, its root and working directory, its user, capabilities and env).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal as signals
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from localcluster.node import layout as files
from localcluster.node import privileges, procinfo, sandbox
from localcluster.node.containerspec import ContainerLaunch, ContainerRecord, Mount, Tmpfs
from localcluster.node.images import ImageError, ImageMap, RootFs, under
from localcluster.node.layout import NodeLayout
from localcluster.node.shim import replace_file
from osutil.files import open_private, private_dir, write_private

__all__ = ["ContainerLaunch", "ContainerRecord", "ContainerRuntime", "ImageError", "Mount", "Tmpfs"]

SHIM = Path(__file__).with_name("shim.py")
UNKNOWN_EXIT = 137
UNKNOWN_REASON = "ContainerStatusUnknown"


class ContainerRuntime:
    """Starts containers and reads their state back from `layout` (see the module docstring).

    Images that run on the host's root (the project's, python) see the host's files read-only, except
    the scratch paths (private tmpfs), the node's state dir and every path of `hide` (empty there):
    pass the installation's data root(s) so Pods cannot read other components' keys and stores.
    `allow_host_network` lets a launch without `netns_path` share the host's network namespace; it
    exists for the runtime's own tests only (Pods never get the host network)."""

    def __init__(self, layout: NodeLayout, images: ImageMap, *, hide: Sequence[Path] = (),
                 allow_host_network: bool = False) -> None:
        self.layout = layout
        self.images = images
        self.hide = (layout.state_dir, *hide)
        self.allow_host_network = allow_host_network
        self.tools = {name: shutil.which(name) or f"/usr/bin/{name}" for name in ("bwrap", "nsenter")}
        self.problems = host_problems()

    @property
    def ready(self) -> bool:
        """True when this host can run containers with full fidelity (see `problems` otherwise)."""
        return not self.problems

    def start(self, launch: ContainerLaunch) -> ContainerRecord:
        """Start one container; returns once its main process runs (or already ended)."""
        if self.problems:
            raise RuntimeError("this node cannot run containers: " + "; ".join(self.problems))
        if not launch.argv:
            raise ValueError(f"container {launch.name}: no command to run (the node has no image defaults)")
        if launch.netns_path is None and not self.allow_host_network:
            raise ValueError(f"container {launch.name}: no network namespace; Pods never share the host's")
        relative = [t for t in [m.target for m in launch.mounts] + [t.target for t in launch.tmpfs] if t[:1] != "/"]
        if relative:
            raise ValueError(f"container {launch.name}: mount targets must be absolute paths: {', '.join(relative)}")
        rootfs = self.images.resolve(launch.image, self.layout.images_dir)
        _refuse_escapes(launch.mounts)
        directory = self.layout.container_dir(launch.pod_uid, launch.name, launch.attempt)
        if directory.exists():
            raise ValueError(f"container {launch.name} attempt {launch.attempt} of Pod {launch.pod_uid} exists")
        private_dir(directory)
        launch = _with_termination_log(launch, directory)
        argv = self._sandbox_argv(launch, rootfs)
        # not fsynced (the shim's replace_file): after a power loss no container runs anyway
        replace_file(str(directory), files.SANDBOX, "\0".join([launch.argv[0], *argv]) + "\0", newline=False)
        replace_file(str(directory), files.LAUNCH, json.dumps(_launch_json(launch, rootfs)))
        with open_private(directory / "shim.err", "ab") as err:
            shim = subprocess.Popen([sys.executable, "-I", "-S", str(SHIM), str(directory)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err, start_new_session=True, close_fds=True)
        assert shim.stdout is not None
        with shim.stdout:
            answer = shim.stdout.readline().decode().strip()
        shim.wait()
        if not answer:
            raise RuntimeError(f"the shim of {directory} ended without starting: see {directory / 'shim.err'}")
        record = self.inspect(launch.pod_uid, launch.name, launch.attempt)
        assert record is not None
        return record

    def _sandbox_argv(self, launch: ContainerLaunch, rootfs: RootFs) -> list[str]:
        """The shim's argv for `launch`, its mount targets resolved inside the image first."""
        def resolve(target: str) -> str:
            return sandbox.resolve_target(rootfs.root, target, rootfs.scratch)

        launch = replace(launch, mounts=[replace(m, target=resolve(m.target)) for m in launch.mounts],
                         tmpfs=[replace(t, target=resolve(t.target)) for t in launch.tmpfs])
        targets = [t for t in [m.target for m in launch.mounts] + [t.target for t in launch.tmpfs]
                   if not under(t, "/dev")]  # /dev is the sandbox's own tmpfs: nothing to make room for
        return sandbox.bwrap_argv(launch, rootfs, sandbox.root_layout(rootfs, targets), self._hidden(rootfs),
                                  bwrap=self.tools["bwrap"], nsenter=self.tools["nsenter"])

    def _hidden(self, rootfs: RootFs) -> list[str]:
        """Host paths a Pod of a host-root image must not read: the node's own state and `hide`."""
        if rootfs.root != Path("/"):
            return []
        paths = [str(p.resolve()) for p in self.hide if p.exists()]
        # a scratch tmpfs hides a path already, unless a kept path binds it back
        return [p for p in paths
                if not any(under(p, s) for s in rootfs.scratch) or any(under(p, k) for k in rootfs.keep)]

    def inspect(self, pod_uid: str, name: str, attempt: int) -> ContainerRecord | None:
        """The container start's state from its files, None when it was never started. A shim found
        dead without an `exit` file is recorded as lost (137, `ContainerStatusUnknown`)."""
        directory = self.layout.container_dir(pod_uid, name, attempt)
        if not (directory / files.LAUNCH).exists():
            return None
        running = False
        if not (directory / files.EXIT).exists():
            shim = procinfo.read_pid_file(_read(directory / files.SHIM_PID))
            if shim is not None and procinfo.alive(*shim):
                running = True
            elif (shim is not None or _age(directory / files.SANDBOX) > STARTING_SECONDS) \
                    and not (directory / files.EXIT).exists():
                self._record_lost(directory)
        return self._record(pod_uid, name, attempt, directory, running)

    def _record(self, pod_uid: str, name: str, attempt: int, directory: Path, running: bool) -> ContainerRecord:
        main = procinfo.read_pid_file(_read(directory / files.MAIN_PID))
        exit_text = _read(directory / files.EXIT).strip()
        running = running and not exit_text  # the exit may have been recorded since the caller looked
        return ContainerRecord(
            pod_uid=pod_uid, name=name, attempt=attempt, running=running,
            pid=main[0] if main and running else None,
            exit_code=int(exit_text) if exit_text else None,
            started_at=_time(_read(directory / files.STARTED)),
            finished_at=_time(_read(directory / files.FINISHED)) if exit_text else None,
            log_path=directory / files.LOG, reason=_read(directory / files.REASON).strip() or None,
            message=_read(directory / files.MESSAGE).strip() or None)

    def _record_lost(self, directory: Path) -> None:
        """The shim died without recording the end: kill what may remain, record 137."""
        self._kill_namespace(directory, signals.SIGKILL)
        write_private(directory / files.REASON, UNKNOWN_REASON + "\n")
        write_private(directory / files.MESSAGE, "the container's shim ended without recording its exit\n")
        write_private(directory / files.FINISHED, _now() + "\n")
        write_private(directory / files.EXIT, f"{UNKNOWN_EXIT}\n")

    def containers(self, pod_uid: str) -> list[ContainerRecord]:
        """Every start of every container of the Pod, sorted by (name, attempt)."""
        base = self.layout.containers_dir(pod_uid)
        found: list[ContainerRecord] = []
        for name in sorted(os.listdir(base)) if base.is_dir() else []:
            attempts = sorted(int(a) for a in os.listdir(base / name) if a.isdigit())
            for attempt in attempts:
                record = self.inspect(pod_uid, name, attempt)
                if record is not None:
                    found.append(record)
        return found

    def signal(self, record: ContainerRecord, sig: int) -> None:
        """Send `sig` to every process of the container (its PID namespace); no-op once it ended."""
        self._kill_namespace(self.layout.container_dir(record.pod_uid, record.name, record.attempt), sig)

    def _kill_namespace(self, directory: Path, sig: int) -> None:
        namespace = None
        for pid_file in (files.MAIN_PID, files.SANDBOX_PID):
            known = procinfo.read_pid_file(_read(directory / pid_file))
            if known is not None and procinfo.alive(*known):
                namespace = procinfo.pid_namespace(known[0])
                break
        if namespace is None or namespace == procinfo.pid_namespace(os.getpid()):
            return
        for pid in procinfo.in_namespace(namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pods(self) -> list[str]:
        """The uids of every Pod with a directory on this node (running or not)."""
        base = self.layout.pods_dir
        return sorted(os.listdir(base)) if base.is_dir() else []

    def kill_all(self) -> list[ContainerRecord]:
        """SIGKILL every running container of this node (tearing the node down for good: a node
        process that merely stops leaves its containers running for the next one to adopt);
        returns the containers it killed. Their `exit` is written by their shims (137)."""
        killed = [r for uid in self.pods() for r in self.containers(uid) if r.running]
        for record in killed:
            self.signal(record, signals.SIGKILL)
        return killed

    def remove_pod(self, pod_uid: str) -> None:
        """Delete the Pod's directory; refuses (RuntimeError) while one of its containers runs."""
        running = [f"{r.name}/{r.attempt}" for r in self.containers(pod_uid) if r.running]
        if running:
            raise RuntimeError(f"Pod {pod_uid} still runs {', '.join(running)}")
        shutil.rmtree(self.layout.pod_dir(pod_uid), ignore_errors=True)

    def exec_argv(self, record: ContainerRecord, command: list[str]) -> list[str]:
        """argv (run from the host, as root) that runs `command` inside the running container: its
        namespaces, root and working directory via `nsenter`, its user, groups and capability bound
        via `setpriv`, its environment via `env -i`. Raises ValueError when it does not run."""
        directory = self.layout.container_dir(record.pod_uid, record.name, record.attempt)
        main = procinfo.read_pid_file(_read(directory / files.MAIN_PID))
        if not record.running or main is None or not procinfo.alive(*main):
            raise ValueError(f"container {record.name} of Pod {record.pod_uid} is not running")
        spec = json.loads((directory / files.LAUNCH).read_text())
        return sandbox.exec_argv(spec, main[0], command, nsenter=self.tools["nsenter"])

    def shim_of(self, record: ContainerRecord) -> tuple[int, int] | None:
        """(pid, start time) of the running container's shim, which exits once `exit` is written."""
        directory = self.layout.container_dir(record.pod_uid, record.name, record.attempt)
        return procinfo.read_pid_file(_read(directory / files.SHIM_PID)) if record.running else None

    def netns_of(self, record: ContainerRecord) -> str | None:
        """The network namespace path the container was started in."""
        directory = self.layout.container_dir(record.pod_uid, record.name, record.attempt)
        path = json.loads((directory / files.LAUNCH).read_text()).get("netns_path")
        return str(path) if path else None


STARTING_SECONDS = 30.0
REQUIRED_TOOLS = {"bwrap": "bubblewrap", "nsenter": "util-linux", "setpriv": "util-linux", "busybox": "busybox"}


def host_problems() -> list[str]:
    """What keeps this host from running containers as a real node would (empty: nothing). Root is
    needed for bwrap's mount layout without a user namespace, for volumes written with the
    container's uid/gid and ownership preserved, for capabilities and for network namespaces."""
    problems = [f"`{tool}` is missing (Debian package {package})"
                for tool, package in REQUIRED_TOOLS.items() if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append(f"the node runs as uid {os.geteuid()}: sandboxes with per-container uid/gid, capabilities "
                        "and network namespaces need root")
    return problems


def _refuse_escapes(mounts: Sequence[Mount]) -> None:
    """Refuse a subPath bind whose real path left its volume. The kubelet resolved it without
    following links (`volumes.resolve_subpath`); this re-check, the last step before the shim runs
    bwrap, catches a component a running container swapped for a symlink since. Chosen over binding
    `/proc/self/fd/N`: that fd would have to stay open through nsenter and bwrap into the container,
    where `openat(fd, "..")` leaves any root. A swap in the milliseconds between here and bwrap's
    mount remains possible only for a container already running on the same volume."""
    for mount in mounts:
        if mount.within is None:
            continue
        real, base = os.path.realpath(mount.source), os.path.realpath(mount.within)
        if real != base and not real.startswith(base.rstrip("/") + "/"):
            raise ValueError(f"subPath {mount.source} resolves to {real}, outside its volume {base}: refused")


def _with_termination_log(launch: ContainerLaunch, directory: Path) -> ContainerLaunch:
    """The launch with its termination message file bound at `termination_message_path` (made here,
    empty, mode 0666 as the kubelet makes it, so that any user of the container can write it)."""
    if not launch.termination_message_path:
        return launch
    host = directory / files.TERMINATION_LOG
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o666)
    finally:
        os.close(fd)
    return replace(launch, mounts=[*launch.mounts, Mount(host, launch.termination_message_path)])


def _launch_json(launch: ContainerLaunch, rootfs: RootFs) -> dict[str, object]:
    """The launch as recorded for adoption, exec and the kubelet (plus what exec needs of the image)."""
    data = asdict(launch)
    data["mounts"] = [{"source": str(m.source), "target": m.target, "read_only": m.read_only} for m in launch.mounts]
    caps = privileges.capabilities(launch)
    data.update(env=sandbox.container_env(launch, rootfs), kind=rootfs.kind, setpriv=rootfs.setpriv,
                env_path=rootfs.env, capabilities=None if caps is None else sorted(caps))
    return data


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _time(text: str) -> datetime | None:
    """RFC3339 with nine fractional digits -> an aware datetime (microseconds kept)."""
    text = text.strip()
    if not text:
        return None
    seconds, _, fraction = text.rstrip("Z").partition(".")
    parsed = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return parsed.replace(microsecond=int((fraction or "0").ljust(9, "0")[:6]))


def _now() -> str:
    ns = time.time_ns()
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S") \
        + f".{ns % 1_000_000_000:09d}Z"
