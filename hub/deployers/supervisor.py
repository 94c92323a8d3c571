"""Agent processes supervised the way a kubelet supervises containers: one per cluster.

`Supervisor` keeps, per cluster, the wanted command line (set by the local deployer) and the
process running it. A thread polls every `poll` seconds: it reaps an exited agent and schedules its
restart (1 s doubling to 60 s; reset once an agent ran 60 s), starts wanted agents that are due,
replaces an agent whose command line is not the wanted one (stop, then start: never two at once),
and reads a new agent's ready line (`volsync-agent ready {...}`) from its stdout file.

Agents run in their own session (a hub that exits, or is interrupted from a terminal, does not take
them along), with their output in files, so a later hub finds all it needs on disk:

    DIR/<cluster>.pid   the agent's pid (written at start, removed when the agent is stopped)
    DIR/<cluster>.out   its stdout, truncated at each start (the ready line)
    DIR/<cluster>.log   its stderr, appended

The directory is 0700 and every file in it 0600 (logs may name secrets' paths and hold the agents'
own messages; the deployer keeps tokens and kubeconfigs beside them).

On start-up the supervisor ADOPTS an agent whose pidfile names a live process whose
`/proc/<pid>/cmdline` is a volsync-agent for that cluster, and removes any other pidfile (stale).
Every agent it starts carries `VOLSYNC_AGENT_SUPERVISOR=DIR` in its environment, so a live agent of
this directory without a pidfile (a hub killed between spawn and pidfile) is found and stopped.
An exclusive lock on `DIR/.lock` keeps a second supervisor away from the same directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from osutil.files import open_private, private_dir, write_private

log = logging.getLogger("volsync.hub.agents")

READY_PREFIX = "volsync-agent ready "
AGENT_MARKERS = ("agent.main", "volsync-agent")
SUPERVISOR_ENV = "VOLSYNC_AGENT_SUPERVISOR"  # in each agent's environment: the directory supervising it


@dataclass(frozen=True)
class AgentStatus:
    pid: int | None
    ready: dict[str, Any] | None
    restarts: int
    message: str


class _Agent:
    def __init__(self, cluster: str) -> None:
        self.lock = threading.Lock()
        self.cluster = cluster
        self.wanted: list[str] | None = None
        self.pid: int | None = None
        self.argv: list[str] = []  # the running process's command line
        self.started = 0.0
        self.ready: dict[str, Any] | None = None
        self.failures = 0
        self.restarts = 0
        self.restart_at = 0.0
        self.message = ""


def cmdline(pid: int) -> list[str] | None:
    """The command line of a live process (None when it is gone or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] or None


def is_agent(argv: list[str] | None, cluster: str) -> bool:
    """Whether a command line is a volsync-agent for `cluster`."""
    if not argv or not any(a in AGENT_MARKERS or a.endswith("/volsync-agent") for a in argv):
        return False
    pairs = zip(argv, argv[1:], strict=False)
    return any(a == "--cluster-name" and b == cluster for a, b in pairs) or f"--cluster-name={cluster}" in argv


def cluster_of(argv: list[str] | None) -> str | None:
    """The `--cluster-name` of a command line."""
    for arg, value in zip(argv or [], (argv or [])[1:], strict=False):
        if arg == "--cluster-name":
            return value
    named = [a.split("=", 1)[1] for a in argv or [] if a.startswith("--cluster-name=")]
    return named[0] if named else None


def supervisor_of(pid: int) -> str | None:
    """The `SUPERVISOR_ENV` a process was started with (None: unset, gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = SUPERVISOR_ENV.encode() + b"="
    found = [e[len(prefix):] for e in raw.split(b"\0") if e.startswith(prefix)]
    return found[0].decode(errors="replace") if found else None


def _gone(pid: int, cluster: str | None = None) -> bool:
    """Reap our own child if it exited; another process's (an adopted agent) is gone when /proc no
    longer shows it (zombies included) or, given `cluster`, shows something else (a reused pid)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        argv = cmdline(pid)
        return argv is None or (cluster is not None and not is_agent(argv, cluster))


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait (a pidfd when the kernel has them) until `pid` has exited; False at the deadline."""
    deadline = time.monotonic() + timeout
    fd: int | None = None
    with contextlib.suppress(OSError):
        fd = os.pidfd_open(pid)
    try:
        while not _gone(pid):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if fd is not None:
                select.select([fd], [], [], remaining)
            else:
                time.sleep(min(0.05, remaining))
        return True
    finally:
        if fd is not None:
            os.close(fd)


def terminate(pid: int, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    for sig, timeout in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, timeout):
            return
    log.error("agent pid %d survived SIGKILL", pid)


class Supervisor:
    def __init__(
        self,
        directory: Path,
        *,
        poll: float = 0.1,
        backoff: tuple[float, float] = (1.0, 60.0),
        healthy_after: float = 60.0,
        grace: float = 10.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.dir = directory
        private_dir(self.dir)
        self.poll, self.backoff, self.healthy_after, self.grace = poll, backoff, healthy_after, grace
        self.on_change = on_change
        self._lockfile = open_private(self.dir / ".lock", "a")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise RuntimeError(f"another hub supervises the agents in {self.dir}") from None
        self._agents: dict[str, _Agent] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._adopt()

    def path(self, cluster: str, suffix: str) -> Path:
        return self.dir / f"{cluster}.{suffix}"

    # -- the deployer's side ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agent-supervisor", daemon=True)
        self._thread.start()

    def want(self, cluster: str, argv: list[str] | None) -> None:
        """Run `argv` as the cluster's agent (None: no agent); the supervisor converges to it."""
        with self._lock:
            agent = self._agents.setdefault(cluster, _Agent(cluster))
        with agent.lock:
            agent.wanted = list(argv) if argv is not None else None
        self._wake.set()

    def status(self, cluster: str) -> AgentStatus:
        with self._lock:
            agent = self._agents.get(cluster)
        if agent is None:
            return AgentStatus(None, None, 0, "no agent")
        with agent.lock:
            return AgentStatus(agent.pid, agent.ready, agent.restarts, agent.message)

    def clusters(self) -> list[str]:
        with self._lock:
            return sorted(self._agents)

    def stop(self, cluster: str) -> None:
        """Stop the cluster's agent (SIGTERM, SIGKILL after the grace period) and forget it."""
        with self._lock:
            agent = self._agents.pop(cluster, None)
        if agent is None:
            self.path(cluster, "pid").unlink(missing_ok=True)
            return
        with agent.lock:
            agent.wanted = None
            if agent.pid is not None:
                log.info("stopping agent %s (pid %d)", cluster, agent.pid)
                terminate(agent.pid, self.grace)
                agent.pid = None
            self.path(cluster, "pid").unlink(missing_ok=True)

    def close(self, *, stop_agents: bool = True) -> None:
        """End supervision; stop every agent unless `stop_agents` is False (a later hub adopts them)."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if stop_agents:
            with self._lock:
                agents = list(self._agents.values())
            for agent in agents:  # signal all first, then wait for each
                if agent.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(agent.pid, signal.SIGTERM)
            for agent in agents:
                self.stop(agent.cluster)
        self._lockfile.close()  # releases the lock

    # -- supervision --------------------------------------------------------------------------------
    def _adopt(self) -> None:
        for pidfile in sorted(self.dir.glob("*.pid")):
            cluster = pidfile.name[: -len(".pid")]
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = 0
            argv = cmdline(pid) if pid > 0 else None
            if argv is None or not is_agent(argv, cluster):
                log.info("ignoring stale pidfile %s", pidfile)
                pidfile.unlink(missing_ok=True)
                continue
            agent = _Agent(cluster)
            agent.pid, agent.argv, agent.wanted = pid, argv, list(argv)
            agent.started = time.monotonic()
            agent.ready = self._read_ready(cluster)
            agent.message = f"adopted agent pid {pid}"
            self._agents[cluster] = agent
            log.info("adopted the agent of %s (pid %d)", cluster, pid)
        # An agent without a pidfile (a hub killed between spawn and pidfile) is not left beside a new one.
        for pid, cluster in self._strays():
            log.warning("stopping agent pid %d of %s: it has no pidfile in %s", pid, cluster, self.dir)
            terminate(pid, self.grace)

    def _strays(self) -> list[tuple[int, str]]:
        """Live agents started from this directory (`SUPERVISOR_ENV`) that were not adopted."""
        adopted = {a.pid for a in self._agents.values()}
        found = []
        for entry in Path("/proc").iterdir():
            pid = int(entry.name) if entry.name.isdigit() else 0
            argv = cmdline(pid) if pid and pid not in adopted else None
            cluster = cluster_of(argv)
            if cluster and is_agent(argv, cluster) and supervisor_of(pid) == str(self.dir):
                found.append((pid, cluster))
        return found

    def _run(self) -> None:
        while not self._closing:
            self._wake.clear()
            with self._lock:
                agents = list(self._agents.values())
            for agent in agents:
                if self._closing:
                    break
                try:
                    changed = self._step(agent)
                except Exception:  # supervision of the others goes on
                    log.exception("supervising the agent of %s failed", agent.cluster)
                    changed = False
                if changed and self.on_change is not None:
                    self.on_change(agent.cluster)
            self._wake.wait(self.poll)

    def _step(self, agent: _Agent) -> bool:
        """One look at one agent; True when its observable state changed."""
        with agent.lock:
            if self._agents.get(agent.cluster) is not agent:
                return False  # stopped meanwhile
            before = (agent.pid, agent.ready is not None)
            now = time.monotonic()
            if agent.pid is not None and _gone(agent.pid, agent.cluster):
                self._exited(agent, now, f"agent pid {agent.pid} exited")
            if agent.pid is not None and agent.wanted != agent.argv:
                log.info("replacing the agent of %s (pid %d): its arguments changed", agent.cluster, agent.pid)
                terminate(agent.pid, self.grace)
                agent.pid, agent.ready, agent.argv = None, None, []
                agent.restart_at = now
                self.path(agent.cluster, "pid").unlink(missing_ok=True)
            if agent.pid is None and agent.wanted is not None and now >= agent.restart_at:
                self._spawn(agent, agent.wanted, now)
            if agent.pid is not None and agent.ready is None:
                agent.ready = self._read_ready(agent.cluster)
                if agent.ready is not None:
                    agent.message = f"agent pid {agent.pid} ready"
            return (agent.pid, agent.ready is not None) != before

    def _exited(self, agent: _Agent, now: float, what: str) -> None:
        """Schedule the restart of an agent that ended (or could not start): exponential backoff,
        back to the first step once an agent has run `healthy_after` seconds."""
        ran = now - agent.started
        if ran >= self.healthy_after:
            agent.failures = 0
        first, cap = self.backoff
        delay = min(first * 2**agent.failures, cap)
        agent.failures += 1
        agent.restarts += 1
        agent.restart_at = now + delay
        agent.message = f"{what} after {ran:.1f}s; restarting in {delay:g}s"
        log.warning("agent of %s: %s (log: %s)", agent.cluster, agent.message, self.path(agent.cluster, "log"))
        agent.pid, agent.ready, agent.argv = None, None, []
        self.path(agent.cluster, "pid").unlink(missing_ok=True)

    def _spawn(self, agent: _Agent, argv: list[str], now: float) -> None:
        out, err = self.path(agent.cluster, "out"), self.path(agent.cluster, "log")
        with open_private(err, "a") as f:
            f.write(f"--- volsync-hub: starting {' '.join(argv)}\n")
        if out.exists():
            out.chmod(0o600)  # posix_spawn's mode applies only to a file it creates
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_OPEN, 2, str(err), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
        ]
        agent.started = now
        try:
            env = {**os.environ, SUPERVISOR_ENV: str(self.dir)}
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
        except OSError as exc:
            self._exited(agent, now, f"cannot start the agent ({exc})")
            return
        agent.pid, agent.argv, agent.ready = pid, list(argv), None
        agent.message = f"agent pid {pid} starting"
        write_private(self.path(agent.cluster, "pid"), f"{pid}\n")
        log.info("started the agent of %s (pid %d)", agent.cluster, pid)

    def _read_ready(self, cluster: str) -> dict[str, Any] | None:
        try:
            text = self.path(cluster, "out").read_text(errors="replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(READY_PREFIX):
                try:
                    ready = json.loads(line[len(READY_PREFIX):])
                except ValueError:
                    return None
                return ready if isinstance(ready, dict) else None
        return None

