"""The prober's thresholds and gating with real exec attempts (host commands) and a hand-driven clock:
startup gates readiness and liveness, successThreshold/failureThreshold, Unhealthy callbacks."""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from support.waiting import eventually

from kube.clock import FakeClock
from localcluster.node.probes import Prober, ProbeTarget, tcp_connect


def test_startup_gates_then_readiness_and_liveness_follow_their_thresholds(tmp_path: Path) -> None:
    clock = FakeClock()
    changes: list[Hashable] = []
    failures: list[tuple[str, str]] = []
    prober = Prober(changes.append, lambda target, kind, msg: failures.append((kind, msg)), clock.monotonic)
    started, ready, alive = tmp_path / "started", tmp_path / "ready", tmp_path / "alive"

    def check(path: Path) -> dict[str, object]:
        return {"exec": {"command": ["test", "-e", str(path)]}, "periodSeconds": 1, "failureThreshold": 2}

    spec = {"startupProbe": check(started), "readinessProbe": {**check(ready), "successThreshold": 2},
            "livenessProbe": check(alive)}
    prober.track(ProbeTarget(("ns", "p"), "c1", spec, "", "", lambda argv: argv))
    prober.start()
    try:
        assert prober.verdicts({"c1"}) == (frozenset(), frozenset(), frozenset())
        started.touch()
        alive.touch()
        eventually(lambda: prober.verdicts({"c1"})[1] == {"c1"}, what="started")
        ready.touch()
        for _ in range(2):  # two successes in a row make it ready
            clock.advance(1.1)
            eventually(lambda: all(not t.busy and t.next_at > clock.monotonic()
                                   for t in prober._containers["c1"].tracks.values()), what="every probe ran")
        eventually(lambda: prober.verdicts({"c1"})[0] == {"c1"}, what="ready")
        alive.unlink()
        for _ in range(2):
            clock.advance(1.1)
            eventually(lambda: all(not t.busy and t.next_at > clock.monotonic()
                                   for t in prober._containers["c1"].tracks.values()), what="every probe ran")
        assert prober.verdicts({"c1"})[2] == {"c1"}
        assert ("livenessProbe", "command failed with exit code 1: ") in failures
        assert ("ns", "p") in changes
        prober.untrack_except(("ns", "p"), set())
        assert prober.verdicts({"c1"}) == ({"c1"}, {"c1"}, frozenset())  # untracked: no probes, no verdicts
    finally:
        prober.stop()


def test_tcp_connect_reports_a_refused_port() -> None:
    message = tcp_connect("/proc/self/ns/net", "127.0.0.1", 1, 1.0)
    assert message.startswith("dial tcp 127.0.0.1:1:")
