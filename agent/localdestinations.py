"""The local platform's destinations: one `DestinationServer` (a real sshd) per ReplicationDestination,
and the iteration files that let a restarted agent resume the iteration it was in.

Per destination, in its mover work directory: ``iteration.id`` (the iteration the server is open for)
and ``iteration.completed`` (the completion code the source sent, and the source iteration it named,
persisted once the iteration is closed), both written atomically (`osutil.files.write_private`); an
unreadable completion file counts as not completed. One destination's slow steps (ending its
sessions, giving its volume's links back) run under that destination's own lock, never under the
table's lock, which every replication's reconcile and the completion poller take.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from agent.destination import ServerView
from agent.plans import Serve
from movers import keys as sshkeys
from movers import leftovers
from movers.destination import DestinationServer
from movers.errors import MoverError
from osutil.files import write_private

log = logging.getLogger("volsync.local")


def _read_state(path: Path) -> str | None:
    """A small state file's text, or None if there is none (it may go away while we look)."""
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _read_completion(path: Path) -> leftovers.Completion | None:
    """The completion (code, source iteration) persisted in `path`; None (logged) if missing or unreadable."""
    text = _read_state(path)
    if text is None:
        return None
    record = leftovers.parse_completion(text)
    if record is None:
        log.warning("ignoring the unreadable completion file %s (%r): the iteration counts as not completed",
                    path, text[:40])
    return record


class LocalDestinations:
    """The destination servers of one agent; `workdir(key)` is a destination's mover directory (not
    created), `make_workdir(key)` the same, created 0700."""

    def __init__(self, data_root: Path, rsync: str, workdir: Callable[[str], Path],
                 make_workdir: Callable[[str], Path]) -> None:
        self.data_root = data_root
        self.rsync = rsync
        self._workdir = workdir
        self._make_workdir = make_workdir
        self._lock = threading.Lock()
        self._servers: dict[str, DestinationServer] = {}
        self._key_locks: dict[str, threading.Lock] = {}
        self._identities: dict[str, tuple[object, ...]] = {}
        self._server_errors: dict[str, str] = {}
        self._notified: dict[str, str] = {}

    def files(self, key: str) -> tuple[Path, Path]:
        """The destination's ``iteration.id`` and ``iteration.completed``."""
        work = self._workdir(key)
        return work / "iteration.id", work / "iteration.completed"

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def server(self, key: str) -> ServerView | None:
        iteration_file, completed_file = self.files(key)
        with self._lock:
            srv = self._servers.get(key)
            error = self._server_errors.get(key)
        iteration = _read_state(iteration_file)
        if iteration is None:
            return ServerView(iteration=None, error=error) if error else None
        completion = _read_completion(completed_file)
        if completion is None and srv is not None:
            completion = srv.completion_record()
        if completion is None:
            return ServerView(iteration=iteration, error=error)
        return ServerView(iteration=iteration, completion=completion[0], source_iteration=completion[1], error=error)

    def serve(self, action: Serve, data_dir: Path, keys: sshkeys.SshKeys) -> None:
        iteration_file, completed_file = self.files(action.key)
        workdir = self._make_workdir(action.key)
        with self._key_lock(action.key):
            srv = self._live_server(action, workdir, data_dir, keys)
            if srv is None:
                return
            if _read_state(iteration_file) != action.iteration:
                completed_file.unlink(missing_ok=True)
                srv.close_iteration()
                write_private(iteration_file, action.iteration)
                srv.open_iteration()
            elif _read_completion(completed_file) is None and srv.completion() is None and not srv.iteration_open():
                srv.open_iteration()  # e.g. after an agent restart

    def _live_server(self, action: Serve, workdir: Path, data_dir: Path,
                     keys: sshkeys.SshKeys) -> DestinationServer | None:
        """The destination's running sshd, (re)started if missing or its identity changed; None (and the
        error kept for `server`) if it cannot start. Called under the destination's lock."""
        wanted = (action.address, action.port, data_dir, keys.destination, keys.source_pub)
        with self._lock:
            srv = self._servers.get(action.key)
            identity = self._identities.get(action.key)
        if srv is not None and identity == wanted and srv.alive():
            return srv
        if srv is not None:
            srv.stop()
        srv = DestinationServer(workdir=workdir / "sshd", data_dir=data_dir, address=action.address, port=action.port,
                                destination_key=keys.destination, source_pub=keys.source_pub, rsync=self.rsync)
        try:
            srv.start()
        except MoverError as exc:
            with self._lock:
                self._server_errors[action.key] = str(exc)
                self._servers.pop(action.key, None)
            return None
        with self._lock:
            self._servers[action.key] = srv
            self._identities[action.key] = wanted
            self._server_errors.pop(action.key, None)
        return srv

    def stop_receiving(self, key: str, iteration: str) -> None:
        """Refuse data for `iteration` (paused, or complete). A completion the source got before the
        sessions ended is persisted (the image is published when the replication resumes); without one
        the iteration is forgotten and reopened later."""
        iteration_file, completed_file = self.files(key)
        with self._key_lock(key):
            if _read_state(iteration_file) != iteration:
                return
            with self._lock:
                srv = self._servers.get(key)
            keep = None if _read_completion(completed_file) is not None else completed_file
            if srv is not None:
                code = srv.close_iteration(keep=keep)
            else:  # e.g. after an agent restart: a leftover sshd may still be serving the iteration
                code = leftovers.retire(self._workdir(key) / "sshd", keep=keep)
            if keep is not None and code is None:
                iteration_file.unlink(missing_ok=True)  # paused before the source completed

    def end_iteration(self, key: str, iteration: str) -> None:
        iteration_file, completed_file = self.files(key)
        with self._key_lock(key):
            if _read_state(iteration_file) == iteration:
                completed_file.unlink(missing_ok=True)
                iteration_file.unlink(missing_ok=True)
                with self._lock:
                    srv = self._servers.get(key)
                if srv is not None:
                    srv.close_iteration()

    def stop_serving(self, key: str) -> None:
        work = self._workdir(key)
        with self._key_lock(key):
            with self._lock:
                srv = self._servers.pop(key, None)
                self._identities.pop(key, None)
                self._server_errors.pop(key, None)
            if srv is not None:
                srv.stop()
            else:  # e.g. after an agent restart: stop a leftover sshd, give the volume's links back
                leftovers.retire(work / "sshd")
            if work.exists() and work.is_relative_to(self.data_root):
                shutil.rmtree(work, ignore_errors=True)

    def newly_completed(self) -> list[str]:
        """The destinations whose source signalled completion since the last call (per iteration)."""
        with self._lock:
            servers = list(self._servers.items())
        completed = []
        for key, srv in servers:
            code = srv.completion()
            iteration = _read_state(self.files(key)[0])
            if code is None or iteration is None:
                continue
            if self._notified.get(key) != iteration:
                self._notified[key] = iteration
                completed.append(key)
        return completed

    def take_all(self) -> list[DestinationServer]:
        """Forget every server (the agent is stopping) and return them, for the caller to stop."""
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        return servers
