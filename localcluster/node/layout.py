"""Where the node keeps its state on disk: pure paths, no I/O.

Everything a running or finished container is known by lives in files, so a node process killed
with `kill -9` adopts its containers on restart by reading them (`ContainerRuntime.inspect`):

```
<state_dir>/
  images/<kind>/                 root filesystems the runtime builds once (e.g. busybox)
  pods/<pod uid>/                 one Pod: the kubelet's own files (volumes, netns path, ...) go here too
    containers/<name>/<attempt>/ one start of one container (attempt 0, 1, ... = restartCount)
      launch.json                 the ContainerLaunch (runtime, before the shim starts)
      sandbox.argv                NUL-terminated: the container's command name, then the argv the shim
                                  runs (runtime, before the shim starts)
      shim.pid                    "<pid> <starttime>" of the shim (the shim, first thing)
      sandbox.pid                 "<pid> <starttime>" of bwrap's init (pid 1 of the container)
      pid                         "<pid> <starttime>" of the container's main process, a host pid
      started                     RFC3339Nano UTC, when the main process was seen running
      finished                    RFC3339Nano UTC, when the sandbox ended
      exit                        the exit code, decimal; written LAST, so its presence = finished
      reason                      optional: `StartError` (exit 128: the command could not be started) or
                                  `ContainerStatusUnknown` (exit 137: the shim died unseen)
      message                     optional: why, with `reason`
      shim.err                    the shim's own stderr (empty unless something went wrong)
      termination-log             the file the container sees at its `terminationMessagePath` (0666,
                                  made by the runtime before the shim starts; the kubelet reads it)
      log                         CRI log lines: `<RFC3339Nano UTC> stdout|stderr F|P <text>\\n`
```

Every small file is replaced atomically (written aside, renamed), so a reader sees either no file or
its whole content; `finished` and `exit` are fsynced too (pids mean nothing after a power loss).
Timestamps always carry nine fractional digits
(`2026-12-07T20:01:02.123456789Z`). A log line longer than 16 KiB is split into `P` (partial) lines
followed by the `F` line that ends it, as containerd writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LAUNCH = "launch.json"
SANDBOX = "sandbox.argv"
SANDBOX_PID = "sandbox.pid"
SHIM_PID = "shim.pid"
MAIN_PID = "pid"
STARTED = "started"
FINISHED = "finished"
EXIT = "exit"
REASON = "reason"
MESSAGE = "message"
LOG = "log"
TERMINATION_LOG = "termination-log"


@dataclass(frozen=True)
class NodeLayout:
    """The node's directory tree under `state_dir` (see the module docstring)."""

    state_dir: Path

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def images_dir(self) -> Path:
        """Root filesystems the runtime builds (one directory per image kind)."""
        return self.state_dir / "images"

    def pod_dir(self, uid: str) -> Path:
        """Everything of one Pod; the kubelet may keep its own files here (e.g. `volumes/`)."""
        _check_segment(uid)
        return self.pods_dir / uid

    def containers_dir(self, uid: str) -> Path:
        return self.pod_dir(uid) / "containers"

    def container_dir(self, uid: str, name: str, attempt: int) -> Path:
        """One start (`attempt` = 0, 1, ...) of container `name` of Pod `uid`."""
        _check_segment(name)
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {attempt}")
        return self.containers_dir(uid) / name / str(attempt)

    def log_path(self, uid: str, name: str, attempt: int) -> Path:
        """The CRI-format log of one container start."""
        return self.container_dir(uid, name, attempt) / LOG

    def termination_log(self, uid: str, name: str, attempt: int) -> Path:
        """The host side of the container's termination message file."""
        return self.container_dir(uid, name, attempt) / TERMINATION_LOG


def _check_segment(value: str) -> None:
    """A Pod uid or container name becomes one path segment: refuse anything that could escape."""
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise ValueError(f"not usable as a path segment: {value!r}")
