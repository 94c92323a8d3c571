"""Syncs back to back (issue 7, item 5): no iteration is silently lost, none publishes a stale image.

Real API server, one real agent per cluster, real rsync over a real sshd (the `fleet` fixture):
(a) continuous mode (no trigger) for 30 s, the source changing after every completed iteration;
(b) 10 manual triggers one second apart, each after a change of the source. Afterwards the image in
`latestImage`, restored into a new PVC, equals the last source state, and every iteration the source
completed yielded exactly one destination image, counted twice, independently: from the
`status.iteration.completed` counters and from the agents' INFO lines (one per iteration end, with
unique, consecutive iteration ids).

Iterations there used to be identified by their one-second `lastSyncStartTime` and destination
snapshots named after the second they were pinned in: with iterations this close, `latestImage`
kept pointing at an image several syncs old while the source reported every sync successful.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.agents import Fleet
from support.seed import copy_secret, create_destination, create_pvc, create_source, restore
from support.trees import assert_trees_equal, make_sample_tree, snapshot_tree
from support.waiting import eventually

from agent.kinds import REPLICATION_DESTINATIONS, REPLICATION_SOURCES
from kube import clients
from kube.rest import Kube

pytestmark = pytest.mark.timeout(420)

CONTINUOUS_FOR = 30.0
TRIGGERS = 10


@pytest.fixture(scope="module")
def kubes(fleet: Fleet) -> Iterator[dict[str, Kube]]:
    """Python clients for polling (cheaper than a kubectl process per look)."""
    apis = {c: clients.load(str(fleet.server.kubeconfig), c) for c in ("cluster1", "cluster2")}
    yield {c: Kube(api) for c, api in apis.items()}
    for api in apis.values():
        clients.close(api)


class Pair:
    """A source (cluster1, ns src) and its destination (cluster2, ns dest), seeded as the user does."""

    def __init__(self, fleet: Fleet, kubes: dict[str, Kube], name: str, trigger: str) -> None:
        self.fleet, self.kubes = fleet, kubes
        self.rs, self.rd = f"rs-{name}", f"rd-{name}"
        address, keys = create_destination(fleet, self.rd, "ClusterIP")
        self.dir = create_pvc(fleet, f"data-{name}", "src", "cluster1")
        make_sample_tree(self.dir, large_size=256 << 10, sparse_size=1 << 20)
        copy_secret(fleet, keys)
        create_source(fleet, self.rs, f"data-{name}", address, keys, trigger)

    def source(self) -> dict[str, Any]:
        return (self.kubes["cluster1"].get(REPLICATION_SOURCES, self.rs, "src") or {}).get("status") or {}

    def destination(self) -> dict[str, Any]:
        return (self.kubes["cluster2"].get(REPLICATION_DESTINATIONS, self.rd, "dest") or {}).get("status") or {}

    def completed(self) -> tuple[int, int]:
        """(iterations the source completed, images the destination published)."""
        return (int((self.source().get("iteration") or {}).get("completed") or 0),
                int((self.destination().get("iteration") or {}).get("completed") or 0))

    def change(self, generation: int) -> None:
        """Change the source as an application does, iterations or not: rewrite a file, add one. (Nothing
        is deleted: the local snapshotter's `cp` would fail on a file vanishing under it.)"""
        (self.dir / "generation.txt").write_text(f"generation {generation}\n" * generation)
        (self.dir / "log").mkdir(exist_ok=True)
        (self.dir / "log" / f"entry-{generation:03}.bin").write_bytes(os.urandom(2048 + generation))

    def set_manual(self, value: str) -> None:
        self.kubes["cluster1"].patch(REPLICATION_SOURCES, self.rs, {"spec": {"trigger": {"manual": value}}}, "src")

    def settle(self, manual: str, timeout: float = 180.0) -> tuple[int, int]:
        """Wait until the source has synced for trigger `manual` and the destination has published an
        image for every iteration the source completed; returns the counts."""
        eventually(lambda: self.source().get("lastManualSync") == manual, timeout, interval=0.2,
                   what=f"lastManualSync {manual!r} on {self.rs}")
        source_done = self.completed()[0]
        return eventually(lambda: (lambda c: c if c[1] >= c[0] else None)(self.completed()), 60, interval=0.2,
                          what=f"{self.rd} published an image for each of {source_done} iterations")

    def ends(self, cluster: str, role: str, ns: str, name: str) -> list[int]:
        """The iteration numbers of the INFO end lines the agent logged for one object, in order."""
        text = self.fleet.agents[cluster].log.read_text(errors="replace")
        bytes_sent = r"\d+" if role == "source" else "unknown"  # rsync's count; the receiver has none
        pattern = (rf"iteration (\d+)-\S+ of {role} {ns}/{re.escape(name)} ended: outcome=Successful "
                   rf"duration=\d+\.\d{{3}}s bytes={bytes_sent}\n")
        return [int(n) for n in re.findall(pattern, text)]

    def assert_every_iteration_published(self, counts: tuple[int, int]) -> None:
        source_done, images = counts
        assert images == source_done, f"{source_done} iterations completed, {images} images published"
        source_ends = self.ends("cluster1", "source", "src", self.rs)
        dest_ends = self.ends("cluster2", "destination", "dest", self.rd)
        assert source_ends == list(range(1, source_done + 1)), source_ends  # unique ids, in order, none lost
        assert dest_ends == list(range(1, images + 1)), dest_ends
        latest = self.destination()["latestImage"]
        assert latest["kind"] == "VolumeSnapshot"

    def restored(self, pvc: str) -> Path:
        return restore(self.fleet, self.destination()["latestImage"]["name"], pvc)


def test_continuous_mode_publishes_every_iteration(fleet: Fleet, kubes: dict[str, Kube]) -> None:
    pair = Pair(fleet, kubes, "continuous", "{}")
    seen, generation = -1, 0
    started = time.monotonic()
    while time.monotonic() - started < CONTINUOUS_FOR:
        done = pair.completed()[0]
        if done != seen:  # change the data between iterations
            seen, generation = done, generation + 1
            pair.change(generation)
        time.sleep(0.1)  # the polling interval; nothing relies on it
    pair.change(generation + 1)
    expected = snapshot_tree(pair.dir)
    # End continuous mode with a manual trigger: it runs in an iteration that starts after the change.
    pair.set_manual("final")
    counts = pair.settle("final")
    print(f"\ncontinuous {CONTINUOUS_FOR:.0f}s: {counts[0]} iterations completed, {counts[1]} images published, "
          f"{generation + 1} changes; last duration {pair.source().get('lastSyncDuration')}")
    assert counts[0] >= 5, f"only {counts[0]} iterations in {CONTINUOUS_FOR}s: not back to back"
    pair.assert_every_iteration_published(counts)
    assert_trees_equal(expected, pair.restored("restored-continuous"))
    # What the user sees: the times themselves and the real duration (not <invalid>, not whole seconds).
    out = fleet.kubectl("get", "replicationsource", pair.rs, "-n", "src", context="cluster1").stdout
    header, row = (re.split(r"\s{2,}", line.strip()) for line in out.splitlines())
    cells = dict(zip(header, row, strict=False))
    st = pair.source()
    assert (cells["LAST SYNC"], cells["DURATION"]) == (st["lastSyncTime"], st["lastSyncDuration"]), out
    assert re.fullmatch(r"(\d+m)?\d+\.\d+s|\d+(\.\d+)?ms", cells["DURATION"]), out


def test_manual_triggers_a_second_apart_are_all_synced(fleet: Fleet, kubes: dict[str, Kube]) -> None:
    pair = Pair(fleet, kubes, "manual", "manual: t0")
    pair.settle("t0")
    for n in range(1, TRIGGERS + 1):
        pair.change(n)
        pair.set_manual(f"t{n}")
        time.sleep(1.0)  # the pace the scenario prescribes (one trigger a second), not a wait for a result
    expected = snapshot_tree(pair.dir)
    counts = pair.settle(f"t{TRIGGERS}")
    print(f"\nmanual x{TRIGGERS}: {counts[0]} iterations completed, {counts[1]} images published")
    assert counts[0] >= 2
    pair.assert_every_iteration_published(counts)
    assert_trees_equal(expected, pair.restored("restored-manual"))
