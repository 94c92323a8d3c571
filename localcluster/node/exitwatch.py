"""Wake the kubelet the moment a container ends (the role of kubelet's evented PLEG).

Without it the kubelet sees an exit at its next look at a running Pod (every second, as the generic
PLEG's relist): half a second on average per container, paid twice per mover iteration (the
destination's and the source's Job). `ExitWatch` holds a pidfd of each running container's shim
(`os.pidfd_open` works on any process, and the shim, re-parented to init, is nobody's child here) in
one epoll set; the shim exits right after it wrote the container's `exit` file, so when its pidfd
turns readable the Pod's key goes back on the kubelet's queue and the next sync sees the end. The
one-second look stays as the fallback (a watch that could not be set up costs nothing else).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Hashable

from localcluster.node import procinfo

Shim = tuple[int, int]  # (pid, start time) of a container's shim


class ExitWatch:
    """pidfds of running containers' shims; `notify(key)` once a shim has exited (see the module docstring)."""

    def __init__(self, notify: Callable[[Hashable], None]) -> None:
        self.notify = notify
        self._epoll = select.epoll()
        self._lock = threading.Lock()
        self._by_fd: dict[int, tuple[Shim, Hashable]] = {}
        self._watched: set[Shim] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, shim: Shim | None, key: Hashable) -> None:
        """Notify `key` when `shim` exits (at once when it has already); a no-op when already watched."""
        if shim is None:
            return
        with self._lock:
            if shim in self._watched or self._stop.is_set():
                return
            try:
                fd = os.pidfd_open(shim[0])
            except OSError:  # gone already (or no pidfd on this kernel): the relist sees it
                return
            if not procinfo.alive(*shim):  # the pid was reused: our shim is gone
                os.close(fd)
                return
            self._by_fd[fd] = (shim, key)
            self._watched.add(shim)
            self._epoll.register(fd, select.EPOLLIN)

    def start(self) -> ExitWatch:
        self._thread = threading.Thread(target=self._run, name="kubelet-exits", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching; closes every pidfd (the containers keep running)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            for fd in self._by_fd:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._by_fd.clear()
            self._watched.clear()
            self._epoll.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                events = self._epoll.poll(0.5)  # the timeout only bounds how long a stop waits
            except (OSError, ValueError):  # closed by stop()
                return
            ended = []
            with self._lock:
                for fd, _ in events:
                    entry = self._by_fd.pop(fd, None)
                    if entry is None:
                        continue
                    with contextlib.suppress(OSError):
                        self._epoll.unregister(fd)
                    os.close(fd)
                    self._watched.discard(entry[0])
                    ended.append(entry[1])
            for key in ended:
                self.notify(key)
