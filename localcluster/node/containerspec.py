"""What one container start is, for the runtime and its callers: the `ContainerLaunch` the kubelet
builds (with its `Mount`s and `Tmpfs`s) and the `ContainerRecord` the runtime reads back from the
start's files. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Mount:
    """A host path (file or directory) bound at `target` inside the container."""

    source: Path
    target: str
    read_only: bool = False
    within: Path | None = None  # a subPath's volume root: `source` must still resolve inside it at start


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
    read_only_root: bool = False  # readOnlyRootFilesystem: the scratch paths no volume covers are read-only too
    termination_message_path: str | None = None  # a writable file there (layout.TERMINATION_LOG on the host)


@dataclass(frozen=True)
class ContainerRecord:
    """What the files say about one container start.

    `running` True: the shim and the sandbox live. `exit_code`/`finished_at` are set once it ended;
    `reason` is `ContainerStatusUnknown` when the shim was lost (exit code 137 then), `StartError`
    when the command could not be started (exit code 128, `message` says why: e.g. bwrap's
    `execvp foo: No such file or directory`), else None (the kubelet derives `Completed`/`Error`
    from the exit code). Neither running nor ended: the start is still being set up. `pid` is the main process (a host
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
    message: str | None = None
