"""Readiness, liveness and startup probes: `exec` inside the container, `tcpSocket` and `httpGet` from
inside the Pod's netns (`netprobes`).

A `Prober` holds one `ProbeTrack` per (container id, probe kind) of every running container the
kubelet registers with `track`; its thread runs each probe when due (`initialDelaySeconds`, then
every `periodSeconds`, each attempt bounded by `timeoutSeconds`) and folds the outcomes with the
thresholds (`successThreshold`, `failureThreshold`) into three verdicts the kubelet reads:
`ready` (readiness passes, or the container has no readiness probe), `started` (startup probe
passed, or none) and `unhealthy` (liveness or startup failed `failureThreshold` times in a row).
Readiness and liveness wait for the startup probe, as kubelet's do. When a verdict changes the
Prober calls `on_change(pod key)`, so the kubelet rewrites the status at once. Verdicts live in
memory only: after a restart every probe starts over (kubelet does the same).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcluster.node.netprobes import http_get
from localcluster.node.netprobes import tcp_connect as tcp_connect  # re-exported: the prober's tests use it

log = logging.getLogger("localcluster.kubelet.probes")
KINDS = ("startupProbe", "readinessProbe", "livenessProbe")


@dataclass(frozen=True)
class ProbeTarget:
    """How to reach one running container: its Pod key, netns, IP and an argv-builder for exec."""

    pod_key: Hashable
    container_id: str
    spec: Mapping[str, Any]
    netns_path: str
    pod_ip: str
    exec_argv: Callable[[list[str]], list[str]]


@dataclass
class ProbeTrack:
    """One probe (`kind`: liveness, readiness or startup) of one container: when it runs next, its
    consecutive successes and failures against the thresholds, and the verdict they gave."""

    kind: str
    probe: Mapping[str, Any]
    next_at: float
    successes: int = 0
    failures: int = 0
    passed: bool = False
    failed: bool = False
    last_message: str = ""
    busy: bool = False


@dataclass
class _Container:
    target: ProbeTarget
    tracks: dict[str, ProbeTrack] = field(default_factory=dict)


def run_probe(probe: Mapping[str, Any], target: ProbeTarget) -> str:
    """Run one probe attempt; '' when it passed, else the failure message (as kubelet's event says)."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if "exec" in probe:
        argv = target.exec_argv([str(a) for a in (probe["exec"] or {}).get("command") or []])
        return _exec_probe(argv, timeout)
    if "tcpSocket" in probe:
        tcp = probe["tcpSocket"] or {}
        port = _port(tcp.get("port"), target.spec)
        host = str(tcp.get("host") or target.pod_ip or "127.0.0.1")
        return tcp_connect(target.netns_path, host, port, timeout)
    if "httpGet" in probe:
        action = probe["httpGet"] or {}
        port = _port(action.get("port"), target.spec)
        host = str(action.get("host") or target.pod_ip or "127.0.0.1")
        return http_get(target.netns_path, action, host, port, timeout)
    return "unsupported probe handler (only exec, tcpSocket and httpGet)"


def _exec_probe(argv: list[str], timeout: float) -> str:
    """Run an exec probe in a session of its own; on timeout SIGKILL the whole process group, which
    holds `nsenter` and the command it forked inside the container (killed while `nsenter` is still
    unreaped, so its pid, the group's id, cannot have been reused)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=1)
        proc.kill()
        proc.wait()
        return f"command timed out after {timeout:g}s"
    if proc.returncode == 0:
        return ""
    output = (out + err).decode(errors="replace").strip()
    return f"command failed with exit code {proc.returncode}: {output}"[:512]


def _port(port: Any, container: Mapping[str, Any]) -> int:
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p.get("containerPort", 0))
    return int(str(port)) if str(port).isdigit() else 0


class Prober:
    """Runs the probes of the registered containers (see the module docstring)."""

    def __init__(self, on_change: Callable[[Hashable], None], on_unhealthy: Callable[[ProbeTarget, str, str], None],
                 monotonic: Callable[[], float]) -> None:
        self.on_change = on_change
        self.on_unhealthy = on_unhealthy
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._containers: dict[str, _Container] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet-prober", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def track(self, target: ProbeTarget) -> None:
        """Probe this running container (a no-op when it is tracked already)."""
        with self._lock:
            if target.container_id in self._containers:
                return
            now = self.monotonic()
            entry = _Container(target)
            for kind in KINDS:
                probe = target.spec.get(kind)
                if probe:
                    entry.tracks[kind] = ProbeTrack(kind, probe, now + float(probe.get("initialDelaySeconds") or 0))
            self._containers[target.container_id] = entry

    def untrack_except(self, pod_key: Hashable, keep: set[str]) -> None:
        """Forget the Pod's containers that are no longer running."""
        with self._lock:
            for cid in [c for c, e in self._containers.items() if e.target.pod_key == pod_key and c not in keep]:
                del self._containers[cid]

    def verdicts(self, container_ids: set[str]) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """(ready, started, unhealthy) among `container_ids` (untracked ones count as ready and started)."""
        ready, started, unhealthy = set(), set(), set()
        with self._lock:
            for cid in container_ids:
                entry = self._containers.get(cid)
                tracks = entry.tracks if entry else {}
                startup = tracks.get("startupProbe")
                is_started = startup is None or startup.passed
                readiness = tracks.get("readinessProbe")
                if is_started:
                    started.add(cid)
                    if readiness is None or readiness.passed:
                        ready.add(cid)
                if any(t.failed for k, t in tracks.items() if k != "readinessProbe"):
                    unhealthy.add(cid)
        return frozenset(ready), frozenset(started), frozenset(unhealthy)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            now = self.monotonic()
            with self._lock:
                due = [(e, t) for e in self._containers.values() for t in e.tracks.values()
                       if not t.busy and now >= t.next_at and self._gated(e, t)]
                for _, t in due:
                    t.busy = True
            for entry, t in due:
                threading.Thread(target=self._attempt, args=(entry, t), name="probe", daemon=True).start()

    @staticmethod
    def _gated(entry: _Container, track: ProbeTrack) -> bool:
        startup = entry.tracks.get("startupProbe")
        return track.kind == "startupProbe" or startup is None or startup.passed

    def _attempt(self, entry: _Container, t: ProbeTrack) -> None:
        try:
            message = run_probe(t.probe, entry.target)
        except (ValueError, OSError) as exc:  # the container ended between the check and the probe
            message = f"probe could not run: {exc}"
        changed, fired = self._fold(t, message)
        if fired:
            self.on_unhealthy(entry.target, t.kind, message)
        if changed:
            self.on_change(entry.target.pod_key)

    def _fold(self, t: ProbeTrack, message: str) -> tuple[bool, bool]:
        with self._lock:
            t.busy = False
            t.next_at = self.monotonic() + float(t.probe.get("periodSeconds") or 10)
            before = (t.passed, t.failed)
            if not message:
                t.successes, t.failures = t.successes + 1, 0
                if t.successes >= int(t.probe.get("successThreshold") or 1):
                    t.passed, t.failed = True, False
            else:
                t.successes, t.failures = 0, t.failures + 1
                t.last_message = message
                if t.failures >= int(t.probe.get("failureThreshold") or 3):
                    t.passed = False
                    t.failed = t.kind != "readinessProbe"
            return (t.passed, t.failed) != before, bool(message)
