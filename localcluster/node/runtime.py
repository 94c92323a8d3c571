"""The node's container runtime (the CRI/containerd/conmon role): start, observe, signal and enter
sandboxed containers whose whole state lives in files under `NodeLayout`.

One start of a container = one `ContainerLaunch` -> one shim process (`shim.py`, detached, its own
session, re-parented to init) -> `[nsenter --net=<netns> --] bwrap ... [setpriv ...] -- argv`.
The shim writes the CRI log, the pids, the start and finish times and, last, the exit code, so the
runtime itself keeps nothing in memory: a new `ContainerRuntime` over the same `NodeLayout` (after a
`kill -9` of the node process) sees every container as the old one did (ADOPTION).

- `start(launch)` returns once the container's main process runs (or has already ended); it raises
  `ImageError` (reason `ErrImagePull`) when the image cannot be mapped and `ValueError` for a launch
  the node refuses (no `netns_path` without `allow_host_network`, an attempt that already exists).
- `inspect` reads the files. A shim that died without writing `exit` (kill -9) means the container
  died with it (bwrap `--die-with-parent`): the runtime records exit code 137 and reason
  `ContainerStatusUnknown` (as kubelet reports a container it lost), and kills any straggler.
- `signal` reaches every process of the container (its own PID namespace).
- `exec_argv` builds the argv that runs a command inside a running container (its mount, UTS, IPC,
  network and PID namespaces, its root and working directory, its user, capabilities and env).
"""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from localcluster.node import layout as files
from localcluster.node.images import ImageError, ImageMap
from localcluster.node.layout import NodeLayout
from osutil.files import private_dir, write_private

__all__ = ["ContainerLaunch", "ContainerRecord", "ContainerRuntime", "ImageError", "Mount", "Tmpfs"]

SHIM = Path(__file__).with_name("shim.py")
UNKNOWN_EXIT = 137
UNKNOWN_REASON = "ContainerStatusUnknown"


@dataclass(frozen=True)
class Mount:
    """A host path (file or directory) bound at `target` inside the container."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Tmpfs:
    """A fresh tmpfs at `target` (emptyDir `medium: Memory`); `size_bytes` None = the kernel's default."""

    target: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class ContainerLaunch:
    """Everything the runtime needs to start one container once (`attempt` = its restart count).

    `env` is the final environment (the kubelet resolved it); PATH is added when missing, from the
    image. `argv` is the resolved command + args (the kubelet applies the image's defaults: here an
    empty argv is refused). `netns_path` is the Pod's network namespace (`/run/netns/...`)."""

    pod_uid: str
    name: str
    attempt: int
    argv: list[str]
    env: dict[str, str]
    working_dir: str | None
    image: str
    mounts: list[Mount] = field(default_factory=list)
    tmpfs: list[Tmpfs] = field(default_factory=list)
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplementary_groups: list[int] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    netns_path: str | None = None
    hostname: str = "localhost"
    privileged: bool = False


@dataclass(frozen=True)
class ContainerRecord:
    """What the files say about one container start.

    `running` True: the shim and the sandbox live. `exit_code`/`finished_at` are set once it ended;
    `reason` is `ContainerStatusUnknown` when the shim was lost (exit code 137 then), else None
    (the kubelet derives `Completed`/`Error` from the exit code). `pid` is the main process (a host
    pid) while known."""

    pod_uid: str
    name: str
    attempt: int
    running: bool
    pid: int | None
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    log_path: Path
    reason: str | None = None


class ContainerRuntime:
    """Starts containers and reads their state back from `layout` (see the module docstring).

    `allow_host_network` lets a launch without `netns_path` share the host's network namespace; it
    exists for the runtime's own tests only (Pods never get the host network)."""

    def __init__(self, layout: NodeLayout, images: ImageMap, *, allow_host_network: bool = False) -> None:
        self.layout = layout
        self.images = images
        self.allow_host_network = allow_host_network

    def start(self, launch: ContainerLaunch) -> ContainerRecord:
        """Start one container; returns once its main process runs (or already ended)."""
        raise NotImplementedError

    def inspect(self, pod_uid: str, name: str, attempt: int) -> ContainerRecord | None:
        """The container start's state from its files, None when it was never started."""
        raise NotImplementedError

    def containers(self, pod_uid: str) -> list[ContainerRecord]:
        """Every start of every container of the Pod, sorted by (name, attempt)."""
        raise NotImplementedError

    def signal(self, record: ContainerRecord, sig: int) -> None:
        """Send `sig` to every process of the container (its PID namespace); no-op once it ended."""
        raise NotImplementedError

    def remove_pod(self, pod_uid: str) -> None:
        """Delete the Pod's directory; refuses (RuntimeError) while one of its containers runs."""
        raise NotImplementedError

    def exec_argv(self, record: ContainerRecord, command: list[str]) -> list[str]:
        """argv (run from the host, as root) that runs `command` inside the running container."""
        raise NotImplementedError

    def netns_of(self, record: ContainerRecord) -> str | None:
        """The network namespace path the container was started in."""
        raise NotImplementedError
