"""Fleet status that tells the truth (issue 7, item 6), on the hub side.

- a destination whose newest image is older than its source's last completed sync, beyond the grace,
  is `late` and its cluster's addon `Degraded` (ReplicationsLate), on time with no event at all;
- the hub pairs a ReplicationSource with the ReplicationDestination it sends to (address + port, or
  the `volsync-addon.io/peer` annotation when the address cannot tell);
- `paused` is its own state; a pair counts once in the summary; the RPO is settable per replication
  (`volsync-addon.io/rpo-seconds`), a bad value reported, not a crash; `--help` shows the defaults.

Pure judgements first, then the fleet store (REST's queries) and the addon controller on a real API
server with a FakeClock, both fed the report ConfigMaps the REST API writes.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from support.apiserver import ROOT
from support.hub_controllers import T0, Hub
from support.waiting import eventually

from agent.reporting import Reporter
from api.hub import ReplicationReport, ReportBatch
from api.volsync import go_duration
from hub import health, pairing, reports, rpo, views
from hub.apimetrics import ApiMetrics
from hub.fleet import FleetSettings, FleetStore
from kube.clock import FakeClock, rfc3339
from kube.rest import CONFIGMAPS

GRACE = 120.0
SNAP = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap-1"}


def at(seconds: float) -> str:
    return rfc3339(T0 + timedelta(seconds=seconds))


def keys_of(rd: str) -> str:
    """The Secret a destination publishes in `status.rsync.sshKeys` (the seed procedure copies it to the source)."""
    return f"volsync-rsync-dst-src-{rd}"


def source(name: str = "rs", *, synced: float | None = 0, address: str | None = "10.0.0.5", port: int | None = None,
           annotations: dict[str, str] | None = None, keys: str | None = keys_of("rd"), **spec: Any) -> dict[str, Any]:
    rsync: dict[str, Any] = {"address": address} if address else {}
    if port:
        rsync["port"] = port
    if keys:
        rsync["sshKeys"] = keys
    status = {"lastSyncTime": at(synced)} if synced is not None else {}
    return {"role": "source", "namespace": "src", "name": name, "spec": {"rsync": rsync, "trigger": {"manual": "1"},
            **spec}, "status": status, "annotations": annotations or {}}


def destination(name: str = "rd", *, published: float | None = 5, address: str | None = "10.0.0.5",
                annotations: dict[str, str] | None = None, keys: str | None = "", **spec: Any) -> dict[str, Any]:
    """`keys` "" (default): the Secret this destination generates; None: none published."""
    status: dict[str, Any] = {"rsync": {"address": address}} if address else {}
    if address and keys is not None:
        status["rsync"]["sshKeys"] = keys or keys_of(name)
    if published is not None:
        status |= {"lastSyncTime": at(published), "latestImage": SNAP}
    return {"role": "destination", "namespace": "dest", "name": name, "spec": spec, "status": status,
            "annotations": annotations or {}}


def index(*sides: tuple[str, dict[str, Any]]) -> pairing.PeerIndex:
    peers = pairing.PeerIndex()
    for cluster, report in sides:
        found = pairing.side_of(cluster, report)
        assert found is not None
        peers.put(found)
    return peers


def ref(cluster: str, report: dict[str, Any]) -> pairing.Ref:
    return pairing.Ref(cluster, report["role"], report["namespace"], report["name"])


# -- pure: the RPO verdict --------------------------------------------------------------------------------
def test_destination_older_than_its_sources_last_sync_is_late_after_the_grace() -> None:
    src, dst = source(synced=100), destination(published=40)  # the image predates the source's last sync

    def judge(now: float) -> rpo.Verdict:
        return rpo.assess("destination", dst["spec"], dst["status"], T0 + timedelta(seconds=now),
                          source_status=src["status"], grace_seconds=GRACE)

    within = judge(100 + GRACE - 1)
    # it may still be publishing: ok, and look again in 1 s
    assert within.state == "ok" and within.changes_in == pytest.approx(1.0, abs=0.01)
    late = judge(100 + GRACE + 1)
    assert late.state == "late"
    assert late.message is not None and "older than its source's last completed sync" in late.message
    # the same destination judged alone (what the hub did before it knew pairs) was ok for ever
    assert rpo.assess("destination", dst["spec"], dst["status"], T0 + timedelta(days=30)).state == "ok"
    # an image published after the source's sync (or within the clock-skew tolerance) is that sync's
    for published in (101, 100, 100 - rpo.DEFAULT_CLOCK_SKEW_SECONDS):
        fresh = destination(published=published)
        assert rpo.assess("destination", {}, fresh["status"], T0 + timedelta(days=1),
                          source_status=src["status"], grace_seconds=GRACE).state == "ok"
    # a destination that never published although its source synced long ago is late, not "never"
    assert rpo.assess("destination", {}, destination(published=None)["status"], T0 + timedelta(seconds=1000),
                      source_status=src["status"], grace_seconds=GRACE).state == "late"


def precise(seconds: float) -> str:
    """A time with microseconds, as the agents write `status.iteration.startTime`/`endTime`."""
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Iteration k of the source began at 100.2 and its transfer ended at 101.9; the destination, signalled,
# published its image at 101.4 (0.5 s before the source recorded the end), and the source's status patch
# landed 5 s late (a busy machine, a 409 retry, a restarted agent): lastSyncTime 106 (106.9).
SOURCE_OF_K: dict[str, dict[str, Any]] = {
    "completed record": {"lastSyncTime": at(106), "lastSyncDuration": "6.7s",
                         "iteration": {"number": 7, "id": "7-abc", "startTime": precise(100.2),
                                       "endTime": precise(106.9), "completed": 7}},
    "next iteration running": {"lastSyncTime": at(106), "lastSyncDuration": "6.7s", "lastSyncStartTime": at(200),
                               "iteration": {"number": 8, "id": "8-abc", "startTime": precise(200.5), "completed": 7}},
    "no record (an older agent, VolSync)": {"lastSyncTime": at(106), "lastSyncDuration": "6.7s"},
    "no record, start kept": {"lastSyncTime": at(106), "lastSyncStartTime": at(100)},
}
IMAGE_OF_K: dict[str, dict[str, Any]] = {
    "with its record": {"lastSyncTime": at(101), "latestImage": SNAP,
                        "iteration": {"number": 3, "startTime": precise(90), "endTime": precise(101.4)}},
    "next iteration running": {"lastSyncTime": at(101), "latestImage": SNAP,
                               "iteration": {"number": 4, "startTime": precise(101.5)}},
    "whole seconds only": {"lastSyncTime": at(101), "latestImage": SNAP},
}


@pytest.mark.parametrize("image", list(IMAGE_OF_K))
@pytest.mark.parametrize("sync", list(SOURCE_OF_K))
def test_an_image_published_before_the_source_recorded_its_end_is_that_syncs(sync: str, image: str) -> None:
    """Before: the image had to be no older than the source's lastSyncTime - 1 s: 101 < 106 - 1, late for ever
    (until the next sync) although the destination published exactly what the source sent."""
    for after in (GRACE + 10, 3600):
        verdict = rpo.assess("destination", {}, IMAGE_OF_K[image], T0 + timedelta(seconds=106 + after),
                             source_status=SOURCE_OF_K[sync], grace_seconds=GRACE)
        assert (verdict.state, verdict.message) == ("ok", None)


@pytest.mark.parametrize("sync", list(SOURCE_OF_K))
def test_an_image_older_than_the_sync_began_is_still_late(sync: str) -> None:
    """The destination still holds the image of the sync before (published at 60): late after the grace only."""
    previous = {"lastSyncTime": at(60), "latestImage": SNAP, "iteration": {"startTime": precise(50),
                                                                          "endTime": precise(60.3)}}

    def judge(now: float) -> rpo.Verdict:
        return rpo.assess("destination", {}, previous, T0 + timedelta(seconds=now), source_status=SOURCE_OF_K[sync],
                          grace_seconds=GRACE)

    within = judge(106 + GRACE - 1)
    assert within.state == "ok" and within.changes_in == pytest.approx(1.0, abs=0.01)
    late = judge(106 + GRACE + 1)
    assert late.state == "late" and late.message is not None
    newest = (T0 + timedelta(seconds=60.3)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    assert late.message.startswith(f"its newest image is from {newest}Z, older than its source's last completed sync")


def test_the_clock_skew_tolerance_is_a_setting() -> None:
    """An image published within `skew_seconds` before the sync began counts as that sync's (two clusters'
    clocks); a whole-second time may be any instant of its second."""
    source_status = SOURCE_OF_K["completed record"]  # began at 100.2
    now = T0 + timedelta(seconds=106 + GRACE + 1)

    def state(image: dict[str, Any], skew: float) -> str:
        return rpo.assess("destination", {}, image, now, source_status=source_status, grace_seconds=GRACE,
                          skew_seconds=skew).state

    def image_at(seconds: float) -> dict[str, Any]:
        whole = int(seconds)
        return {"lastSyncTime": at(whole), "latestImage": SNAP, "iteration": {"endTime": precise(seconds)}}

    skew = rpo.DEFAULT_CLOCK_SKEW_SECONDS
    assert 0 < skew < 1  # syncs may begin a second apart (manual triggers, back to back)
    assert state(image_at(100.2 - skew + 0.05), skew) == "ok"
    assert state(image_at(100.2 - skew - 0.05), skew) == "late"
    assert state(image_at(100.1), 0) == "late" and state(image_at(100.1), 0.2) == "ok"
    assert state({"lastSyncTime": at(100), "latestImage": SNAP}, 0) == "ok"  # 100.0-100.999: maybe after 100.2
    assert state({"lastSyncTime": at(99), "latestImage": SNAP}, 0) == "late"
    # the destination began its next iteration at 100.1, after publishing: its image is no later than that
    following = {"lastSyncTime": at(100), "latestImage": SNAP, "iteration": {"startTime": precise(100.1)}}
    assert state(following, 0) == "late" and state(following, 0.2) == "ok"
    assert state({**following, "iteration": {"startTime": precise(101.5)}}, 0) == "ok"  # no sooner than 101.0


# Back to back: the source's iteration 2 ended at 100.2, the destination published its image at 100.25 (whole
# seconds: lastSyncTime 100) and the source's iteration 3 began at 100.3 and completed at 102.1. By times the
# image may be sync 3's (100.25 is within the second 100.3 falls in); by iteration ids it is exactly sync 2's.
UID = "0a1b2c3d"
BACK_TO_BACK: dict[str, Any] = {"lastSyncTime": at(102), "lastSyncDuration": "1.8s",
                "iteration": {"number": 3, "id": f"3-{UID}", "startTime": precise(100.3), "endTime": precise(102.1),
                              "completed": 3}}
RUNNING_4 = {**BACK_TO_BACK, "lastSyncStartTime": at(102),
             "iteration": {"number": 4, "id": f"4-{UID}", "startTime": precise(102.2), "completed": 3}}


def image_of(source_iteration: str | None) -> dict[str, Any]:
    image = {"lastSyncTime": at(100), "latestImage": SNAP}
    return image if source_iteration is None else {**image, "latestImageSourceIteration": source_iteration}


def test_back_to_back_syncs_in_the_same_second_are_told_apart() -> None:
    """Before: `ok` for ever (the image's whole-second time could not be told from the next sync's start)."""
    def judge(image: dict[str, Any], source_status: dict[str, Any], seconds: float) -> rpo.Verdict:
        return rpo.assess("destination", {}, image, T0 + timedelta(seconds=seconds), source_status=source_status,
                          grace_seconds=GRACE)

    for source_status in (BACK_TO_BACK, RUNNING_4):  # iteration 3 completed; iteration 4 running after it
        within = judge(image_of(f"2-{UID}"), source_status, 102 + GRACE - 1)
        assert within.state == "ok" and within.changes_in == pytest.approx(1.0, abs=0.01)
        late = judge(image_of(f"2-{UID}"), source_status, 102 + GRACE + 1)
        assert late.state == "late", source_status
        assert late.message is not None and late.message.startswith(
            "its newest image holds its source's iteration 2, older than its source's last completed sync "
            "(iteration 3, completed")
        for held in (f"3-{UID}", f"4-{UID}"):  # the image of sync 3 (or a newer one): never late
            assert judge(image_of(held), source_status, 102 + 3600).state == "ok"
    # without ids on the destination (an older agent), the time-based judgement cannot tell: ok
    assert judge(image_of(None), BACK_TO_BACK, 102 + 3600).state == "ok"


@pytest.mark.parametrize(("held", "source_status"), [
    ("2-ffffffff", BACK_TO_BACK),  # another source object (recreated: another uid) named it
    (f"2-{UID}", {**BACK_TO_BACK, "iteration": {**BACK_TO_BACK["iteration"], "number": 4}}),  # inconsistent record
    (f"2-{UID}", {k: v for k, v in BACK_TO_BACK.items() if k != "iteration"}),  # VolSync's CRD: no record
    ("2:{UID}", BACK_TO_BACK),  # not an iteration id
], ids=["uid-mismatch", "number-not-id", "no-source-record", "malformed"])
def test_ids_that_do_not_match_fall_back_to_times(held: str, source_status: dict[str, Any]) -> None:
    later = T0 + timedelta(seconds=102 + 3600)
    # published in the second the sync began: by times, that sync's (ok), whatever the id says
    assert rpo.assess("destination", {}, image_of(held), later, source_status=source_status,
                      grace_seconds=GRACE).state == "ok"
    # an image clearly older than the sync: late by times, although the id's number is higher
    old = {**image_of(held.replace("2", "9", 1)), "lastSyncTime": at(50)}
    assert rpo.assess("destination", {}, old, later, source_status=source_status, grace_seconds=GRACE).state == "late"


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_extreme_times_and_durations_are_judged_not_raised(text: str) -> None:
    """Reports are agents' input: a time at the edge of the calendar or a huge duration is no exception
    (before: `lastSyncTime - 1 s` at year 1 raised OverflowError, a 500 on every fleet query)."""
    for src in ({"lastSyncTime": text}, {"lastSyncTime": text, "lastSyncDuration": "99999999h"},
                {"lastSyncTime": text, "iteration": {"startTime": text, "endTime": text}}):
        for dst in ({"lastSyncTime": "0001-01-01T00:00:00Z"}, {}, {"lastSyncTime": text, "iteration": "x"}):
            verdict = rpo.assess("destination", {}, dst, T0, source_status=src, grace_seconds=GRACE)
            assert verdict.state in rpo.STATES


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("0s", 0.0), ("6.7s", 6.7), ("1m2.5s", 62.5), ("1h2m3.000001s", 3723.000001), ("500ms", 0.5),
    ("1.5µs", 1.5e-6), ("2us", 2e-6), ("3ns", 3e-9), ("", None), ("1.5", None), ("abc", None), ("-1s", None),
    (None, None), (7, None),
])
def test_go_durations(text: Any, seconds: float | None) -> None:
    assert rpo.go_seconds(text) == (pytest.approx(seconds) if seconds is not None else None)
    if seconds is not None:
        assert rpo.go_seconds(go_duration(seconds)) == pytest.approx(seconds)  # what the agents write


def test_paused_is_its_own_state() -> None:
    now = T0 + timedelta(days=3)
    for role, report in (("source", source(synced=0, paused=True)), ("destination", destination(paused=True))):
        assert rpo.assess(role, report["spec"], report["status"], now).state == "paused"
    continuous = source(synced=0)
    continuous["spec"].pop("trigger")
    assert rpo.assess("source", continuous["spec"], continuous["status"], now).state == "late"
    continuous["spec"]["paused"] = True
    assert rpo.assess("source", continuous["spec"], continuous["status"], now).state == "paused"
    assert set(rpo.STATES) == {"ok", "late", "never", "error", "paused"}
    assert rpo.worse("paused", "late") == "late" and rpo.worse("ok", "paused") == "paused"


@pytest.mark.parametrize(("value", "state", "problem"), [
    ("600", "late", None), ("86400", "ok", None), ("600.5", "late", None),
    ("soon", "ok", "is not a number"), ("-5", "ok", "is not a number"), ("0", "ok", "is not a number"),
    ("nan", "ok", "is not a number"), ("1e3", "ok", "is not a number"), ("9" * 40, "ok", "is not a number"),
])
def test_rpo_per_replication_annotation(value: str, state: str, problem: str | None) -> None:
    """A continuous source synced 1 h ago against the hub's RPO of 2 h, with an annotated RPO."""
    report = source(synced=0, annotations={rpo.ANNOTATION_RPO: value})
    report["spec"].pop("trigger")
    verdict = rpo.assess("source", report["spec"], report["status"], T0 + timedelta(hours=1),
                         annotations=report["annotations"], rpo_seconds=7200)
    assert verdict.state == state
    if problem is None:
        assert verdict.rpo_seconds == float(value)
    else:  # reported, and the hub's default applies
        assert verdict.rpo_seconds == 7200 and verdict.message is not None and problem in verdict.message
        assert rpo.ANNOTATION_RPO in verdict.message


def test_annotated_rpo_applies_to_a_manual_source_too() -> None:
    report = source(synced=0, annotations={rpo.ANNOTATION_RPO: "60"})
    assert rpo.assess("source", report["spec"], report["status"], T0 + timedelta(seconds=30),
                      annotations=report["annotations"]).state == "ok"
    assert rpo.assess("source", report["spec"], report["status"], T0 + timedelta(seconds=61),
                      annotations=report["annotations"]).state == "late"
    assert rpo.assess("source", report["spec"], report["status"], T0 + timedelta(seconds=61)).state == "ok"


# -- pure: pairing --------------------------------------------------------------------------------------
def test_pairs_by_address_and_port_across_clusters() -> None:
    src, dst = source(), destination()
    peers = index(("cluster1", src), ("cluster2", dst), ("cluster3", destination("other", address="10.0.0.6")))
    found = peers.peer(ref("cluster1", src))
    assert found.peer is not None and found.peer.ref == ref("cluster2", dst) and found.problem is None
    back = peers.peer(ref("cluster2", dst)).peer
    assert back is not None and back.ref == ref("cluster1", src)
    assert peers.peer(pairing.Ref("cluster3", "destination", "dest", "other")).peer is None
    # another port is another endpoint; the destination's port is its spec's when its status has none
    assert index(("c1", source(port=2222)), ("c2", dst)).peer(ref("c1", src)).peer is None
    assert index(("c1", source(port=2222)), ("c2", destination(rsync={"port": 2222}))).peer(ref("c1", src)).peer
    # removing a side unpairs
    peers.remove(ref("cluster2", dst))
    assert peers.peer(ref("cluster1", src)).peer is None and len(peers) == 2


def test_an_ambiguous_address_pairs_nothing_and_says_why_and_the_annotation_decides() -> None:
    """Two clusters behind NAT publish the same address: the address cannot tell, the annotation can."""
    src = source()
    a, b = destination(), destination()
    peers = index(("cluster1", src), ("cluster2", a), ("cluster3", b))
    found = peers.peer(ref("cluster1", src))
    assert found.peer is None and found.problem is not None
    assert "2 destinations use 10.0.0.5:22" in found.problem and pairing.ANNOTATION_PEER in found.problem

    named = source(annotations={pairing.ANNOTATION_PEER: "cluster3/dest/rd"})
    peers.put(pairing.side_of("cluster1", named))  # type: ignore[arg-type]
    found = peers.peer(ref("cluster1", named))
    assert found.peer is not None and found.peer.ref == ref("cluster3", b)
    back = peers.peer(ref("cluster3", b)).peer
    assert back is not None and back.ref == ref("cluster1", named)
    assert peers.peer(ref("cluster2", a)).peer is None  # its only candidate source is taken by the annotation


def test_a_destination_elsewhere_at_the_same_private_address_is_not_taken_for_the_missing_one() -> None:
    """The source's own destination (cluster2) is not reported to the hub (no addon there); another cluster's
    destination has the same ClusterIP. Before: paired by address alone, and judged late against a source
    that never sent to it. Now their key Secrets disagree: no pair, and both rows say why."""
    src, elsewhere = source(), destination("backup")
    peers = index(("cluster1", src), ("cluster3", elsewhere))
    mine, theirs = ref("cluster1", src), ref("cluster3", elsewhere)
    for me, them in ((mine, theirs), (theirs, mine)):
        found = peers.peer(me)
        assert found.peer is None and found.problem is not None
        assert "none with the same ssh keys" in found.problem and str(them) in found.problem
        assert "'volsync-rsync-dst-src-rd'" in found.problem and "'volsync-rsync-dst-src-backup'" in found.problem
        assert pairing.ANNOTATION_PEER in found.problem
    late_source = source(synced=100)
    peers.put(pairing.side_of("cluster1", late_source))  # type: ignore[arg-type]
    judged = views.verdict(pairing.side_of("cluster3", elsewhere), peers.peer(ref("cluster3", elsewhere)),  # type: ignore[arg-type]
                           T0 + timedelta(days=1), views.Judging(grace_seconds=GRACE))
    assert judged.state == "ok"  # not late against someone else's source
    # the real destination reports: it pairs, keys and address agreeing
    real = destination()
    peers.put(pairing.side_of("cluster2", real))  # type: ignore[arg-type]
    found = peers.peer(ref("cluster1", src))
    assert found.peer is not None and found.peer.ref == ref("cluster2", real) and found.problem is None
    # the annotation is the explicit override, whatever the keys say
    named = source(annotations={pairing.ANNOTATION_PEER: "cluster3/dest/backup"})
    peers.put(pairing.side_of("cluster1", named))  # type: ignore[arg-type]
    found = peers.peer(ref("cluster1", named))
    assert found.peer is not None and found.peer.ref == ref("cluster3", elsewhere)


def test_the_key_secret_picks_the_destination_behind_a_shared_address() -> None:
    """Two destinations behind one NAT address: the one whose Secret the source uses is its peer, both ways."""
    src, mine, theirs = source(), destination(), destination("other")
    peers = index(("cluster1", src), ("cluster2", mine), ("cluster3", theirs))
    found = peers.peer(ref("cluster1", src))
    assert found.peer is not None and found.peer.ref == ref("cluster2", mine)
    back = peers.peer(ref("cluster2", mine)).peer
    assert back is not None and back.ref == ref("cluster1", src)
    assert peers.peer(ref("cluster3", theirs)).peer is None
    # two destinations named alike publish alike Secrets: the keys cannot tell, the annotation must
    peers.put(pairing.side_of("cluster4", destination()))  # type: ignore[arg-type]
    found = peers.peer(ref("cluster1", src))
    assert found.peer is None and found.problem is not None and "2 destinations use 10.0.0.5:22" in found.problem


@pytest.mark.parametrize(("address", "pairs"), [
    ("10.0.0.5", False), ("172.30.12.7", False), ("192.168.1.20", False), ("127.0.0.1", False),
    ("169.254.3.3", False), ("100.64.0.9", False), ("fd00::5", False), ("[::1]", False),
    ("volsync-rsync-dst-rd.dest.svc.cluster.local", False), ("volsync-rsync-dst-rd.dest.svc", False),
    ("rsync-dest", False), ("nas.internal", False),
    ("52.1.2.3", True), ("2600:1f18::5", True), ("replication.example.com", True),
])
def test_address_only_pairing_needs_a_globally_routable_address(address: str, pairs: bool) -> None:
    """Without key Secrets known on both sides (e.g. the user brought their own keys), only an address that
    names one machine everywhere pairs; a private one says how to pair it."""
    src, dst = source(address=address, keys=None), destination(address=address, keys=None)
    found = index(("cluster1", src), ("cluster2", dst)).peer(ref("cluster1", src))
    assert (found.peer is not None) == pairs
    if not pairs:
        assert found.problem is not None and "private to a network or cluster" in found.problem
        assert pairing.ANNOTATION_PEER in found.problem
    # with the procedure's keys on both sides, any address pairs
    keyed = index(("cluster1", source(address=address)), ("cluster2", destination(address=address)))
    assert keyed.peer(ref("cluster1", src)).peer is not None


def test_keys_the_source_generated_confirm_the_pair_too() -> None:
    """The other direction: the source publishes `status.rsync.sshKeys`, the destination uses it."""
    src = source(keys=None)
    src["status"]["rsync"] = {"sshKeys": "volsync-rsync-src-dest-rs"}
    dst = destination(keys=None, rsync={"sshKeys": "volsync-rsync-src-dest-rs"})
    assert index(("c1", src), ("c2", dst)).peer(ref("c1", src)).peer is not None
    dst["spec"]["rsync"]["sshKeys"] = "my-own-keys"
    found = index(("c1", src), ("c2", dst)).peer(ref("c1", src))
    assert found.peer is None and found.problem is not None and "'my-own-keys'" in found.problem


@pytest.mark.parametrize(("value", "problem"), [
    ("cluster9/dest/rd", "which the hub has no report of"),
    ("not a ref", "is not <cluster>/<namespace>/<name>"),
    ("cluster2/dest/rd\n", "is not <cluster>/<namespace>/<name>"),
])
def test_a_bad_peer_annotation_is_reported(value: str, problem: str) -> None:
    src = source(annotations={pairing.ANNOTATION_PEER: value})
    found = index(("cluster1", src), ("cluster2", destination())).peer(ref("cluster1", src))
    assert found.peer is None and found.problem is not None and problem in found.problem


# -- the fleet store: rows, summary, metrics ---------------------------------------------------------------
def submit(fleet: FleetStore, cluster: str, *reports: dict[str, Any], sequence: int = 1) -> None:
    batch = ReportBatch(agent_id="a", reports=[
        ReplicationReport.model_validate({**r, "sequence": sequence, "observedAt": at(0)}) for r in reports])
    assert fleet.submit(cluster, batch).accepted == len(reports)


@pytest.fixture
def fleet(hub: Hub) -> Any:
    for name in ("cluster1", "cluster2"):
        hub.cluster(name, labelled=False)
    store = FleetStore(hub.kube, clock=hub.clock, settings=FleetSettings(grace_seconds=GRACE)).start()
    assert store.wait_synced(15)
    yield store
    store.stop()


def states(fleet: FleetStore, now: datetime) -> dict[tuple[str, str], str]:
    return {(r.cluster, r.name): r.state for r in fleet.replications(now=now)}


def test_fleet_rows_name_their_peer_and_the_stale_destination_turns_late(fleet: FleetStore) -> None:
    submit(fleet, "cluster1", source(synced=0))
    submit(fleet, "cluster2", destination(published=5))
    rows = {r.cluster: r for r in fleet.replications(now=T0 + timedelta(seconds=10))}
    assert rows["cluster1"].peer is not None and rows["cluster1"].peer.model_dump() == {
        "cluster": "cluster2", "namespace": "dest", "name": "rd", "role": "destination"}
    assert rows["cluster2"].peer is not None and rows["cluster2"].peer.cluster == "cluster1"
    assert {r.state for r in rows.values()} == {"ok"}

    # the source completes another sync; the destination never publishes its image
    submit(fleet, "cluster1", source(synced=100), sequence=2)
    assert states(fleet, T0 + timedelta(seconds=100 + GRACE)) == {("cluster1", "rs"): "ok", ("cluster2", "rd"): "ok"}
    late_at = T0 + timedelta(seconds=100 + GRACE + 1)
    assert states(fleet, late_at) == {("cluster1", "rs"): "ok", ("cluster2", "rd"): "late"}
    summary = fleet.summary(late_at)
    assert summary.pairs == 1
    assert summary.replications.model_dump() == {"ok": 0, "late": 1, "never": 0, "error": 0, "paused": 0}
    assert (summary.sources.ok, summary.destinations.late) == (1, 1)
    cluster2 = fleet.cluster("cluster2", late_at)
    assert cluster2 is not None and cluster2.replications.late == 1

    # it publishes: ok again
    submit(fleet, "cluster2", destination(published=110), sequence=2)
    assert set(states(fleet, late_at).values()) == {"ok"}


def test_an_unreported_destinations_namesake_address_is_not_judged_late(fleet: FleetStore) -> None:
    """cluster2's destination at the same private address but with other keys is not the source's peer."""
    submit(fleet, "cluster1", source(synced=100))
    submit(fleet, "cluster2", destination("backup", published=40))
    rows = {r.cluster: r for r in fleet.replications(now=T0 + timedelta(seconds=100 + GRACE + 1))}
    assert (rows["cluster2"].state, rows["cluster2"].peer) == ("ok", None)
    assert rows["cluster2"].state_message is not None and "ssh keys" in rows["cluster2"].state_message
    assert fleet.summary(T0 + timedelta(seconds=100 + GRACE + 1)).pairs == 0


def both_rows(store: FleetStore, when: datetime) -> bool:
    return len(store.replications(now=when)) == 2


def test_the_fleet_judges_with_the_hubs_clock_skew_setting(hub: Hub) -> None:
    """`--clock-skew-seconds` reaches the judgement: an image published 20 s before the source's sync began
    is that sync's with a 30 s tolerance, not with the default."""
    hub.cluster("cluster1", labelled=False)
    hub.cluster("cluster2", labelled=False)
    when = T0 + timedelta(seconds=100 + GRACE + 1)
    verdicts = {}
    for skew in (rpo.DEFAULT_CLOCK_SKEW_SECONDS, 30.0):
        store = FleetStore(hub.kube, clock=hub.clock,
                           settings=FleetSettings(grace_seconds=GRACE, clock_skew_seconds=skew)).start()
        try:
            assert store.wait_synced(15)
            if skew == rpo.DEFAULT_CLOCK_SKEW_SECONDS:
                submit(store, "cluster1", source(synced=100))  # began 100 at the latest (no duration known)
                submit(store, "cluster2", destination(published=79))  # 79.0-79.999
            eventually(functools.partial(both_rows, store, when), 15, what="both rows")
            verdicts[skew] = {r.role: r.state for r in store.replications(now=when)}
        finally:
            store.stop()
    assert verdicts == {rpo.DEFAULT_CLOCK_SKEW_SECONDS: {"source": "ok", "destination": "late"},
                        30.0: {"source": "ok", "destination": "ok"}}


def test_a_pair_counts_once_and_paused_is_counted_as_such(fleet: FleetStore, hub: Hub) -> None:
    submit(fleet, "cluster1", source(synced=0), source("lone", address="10.9.9.9", synced=0, paused=True))
    submit(fleet, "cluster2", destination(published=5))
    now = T0 + timedelta(seconds=10)
    summary = fleet.summary(now)
    assert summary.pairs == 1
    assert summary.replications.model_dump() == {"ok": 1, "late": 0, "never": 0, "error": 0, "paused": 1}
    assert summary.sources.model_dump() == {"ok": 1, "late": 0, "never": 0, "error": 0, "paused": 1}
    assert summary.destinations.ok == 1
    assert [r.state for r in fleet.replications(views.RowFilter(state="paused"), now)] == ["paused"]
    # a pair with one side paused shows its worse side
    submit(fleet, "cluster2", destination(published=5, paused=True), sequence=2)
    assert fleet.summary(now).replications.model_dump() == {"ok": 0, "late": 0, "never": 0, "error": 0, "paused": 2}
    # metrics count by state, paused included
    registry = CollectorRegistry()
    ApiMetrics(registry).watch_fleet(fleet.summary, lambda: now)
    text = generate_latest(registry).decode()
    assert 'volsync_hub_replications{state="paused"} 2.0' in text
    assert 'volsync_hub_replications{state="ok"} 0.0' in text


def test_a_bad_rpo_annotation_is_reported_in_the_row(fleet: FleetStore) -> None:
    submit(fleet, "cluster1", source(synced=0, annotations={rpo.ANNOTATION_RPO: "fast"}))
    (row,) = fleet.replications(now=T0 + timedelta(seconds=10))
    assert row.state == "ok" and row.state_message is not None and rpo.ANNOTATION_RPO in row.state_message


# -- the addon controller: Degraded on the destination's cluster -------------------------------------------
def put_report(hub: Hub, cluster: str, report: dict[str, Any], sequence: int = 1) -> None:
    body = ReplicationReport.model_validate({**report, "sequence": sequence, "observedAt": rfc3339(hub.clock.now())})
    cm = reports.report_configmap(cluster, body)
    current = hub.kube.get(CONFIGMAPS, cm["metadata"]["name"], cluster)
    if current is None:
        hub.kube.create(CONFIGMAPS, cm)
    else:
        hub.kube.replace(CONFIGMAPS, reports.report_configmap(cluster, body, current["metadata"]["resourceVersion"]))


def degraded(hub: Hub, cluster: str) -> tuple[str, str] | None:
    cond = hub.condition(cluster, "Degraded")
    return (cond["status"], cond["reason"]) if cond else None


def test_the_destinations_cluster_turns_degraded_on_time(hub: Hub) -> None:
    hub.start(grace_seconds=GRACE, resync_seconds=1e6)  # only the controller's own timer can notice
    for cluster in ("cluster1", "cluster2"):
        hub.cluster(cluster)
        hub.until(functools.partial(hub.addon, cluster), f"{cluster} addon")
    now = (hub.clock.now() - T0).total_seconds()
    put_report(hub, "cluster2", destination(published=now - 50))
    put_report(hub, "cluster1", source(synced=now - 10))  # synced after the destination's newest image
    for cluster in ("cluster1", "cluster2"):
        hub.settle(cluster)
        assert degraded(hub, cluster) == ("False", "ReplicationsHealthy")
    hub.clock.advance(GRACE - 11)
    hub.drain()
    assert degraded(hub, "cluster2") == ("False", "ReplicationsHealthy")
    hub.clock.advance(2)  # past the grace: no event, the controller looks again when the state would change
    hub.drain()
    assert degraded(hub, "cluster2") == ("True", "ReplicationsLate")
    message = hub.condition("cluster2", "Degraded")["message"]  # type: ignore[index]
    assert message == "1 of 1 replications late: destination dest/rd"
    assert degraded(hub, "cluster1") == ("False", "ReplicationsHealthy")  # the source did its part

    # the destination publishes: healthy again
    put_report(hub, "cluster2", destination(published=(hub.clock.now() - T0).total_seconds()), sequence=2)
    hub.until(lambda: degraded(hub, "cluster2") == ("False", "ReplicationsHealthy"), "healthy again")


def test_a_source_report_requeues_its_destinations_cluster(hub: Hub) -> None:
    """The change comes from cluster1's agent; the verdict it changes is cluster2's."""
    hub.start(grace_seconds=GRACE, resync_seconds=1e6)
    for cluster in ("cluster1", "cluster2"):
        hub.cluster(cluster)
        hub.until(functools.partial(hub.addon, cluster), f"{cluster} addon")
    now = (hub.clock.now() - T0).total_seconds()
    put_report(hub, "cluster2", destination(published=now - 1000))
    hub.settle("cluster2")
    assert degraded(hub, "cluster2") == ("False", "ReplicationsHealthy")
    put_report(hub, "cluster1", source(synced=now - GRACE - 10))  # long past the grace already
    hub.until(lambda: degraded(hub, "cluster2") == ("True", "ReplicationsLate"), "cluster2 late")
    assert degraded(hub, "cluster1") == ("False", "ReplicationsHealthy")


# -- --help --------------------------------------------------------------------------------------------
def test_help_shows_the_rpo_and_grace_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "hub.main", "--help"], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout
    text = " ".join(out.split())
    assert "--rpo-seconds RPO_SECONDS" in text and "(default: 3600.0s)" in text
    assert rpo.ANNOTATION_RPO in text
    assert "--grace-seconds GRACE_SECONDS" in text and "(default: 300.0s)" in text
    assert "--clock-skew-seconds CLOCK_SKEW_SECONDS" in text
    assert f"(default: {rpo.DEFAULT_CLOCK_SKEW_SECONDS}s)" in text


def test_report_annotations_round_trip_through_the_configmap() -> None:
    body = ReplicationReport.model_validate({**source(annotations={rpo.ANNOTATION_RPO: "60"}), "sequence": 1,
                                             "observedAt": at(0)})
    cm = reports.report_configmap("cluster1", body)
    cm["metadata"]["resourceVersion"] = "1"
    stored = reports.decode_configmap(cm)
    assert stored is not None and stored.report.annotations == {rpo.ANNOTATION_RPO: "60"}
    assert json.loads(cm["data"]["report"])["annotations"] == {rpo.ANNOTATION_RPO: "60"}


def test_the_agent_reports_our_annotations_and_only_those() -> None:
    """The RPO and peer annotations live on the RS/RD: the agent's reports carry them to the hub."""
    batches: list[ReportBatch] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/reports"):
            batches.append(ReportBatch.model_validate_json(request.content))  # what the REST API accepts
            return httpx.Response(200, json={"accepted": 1, "stale": 0})
        return httpx.Response(200, json={"leaseDurationSeconds": 300, "renewIntervalSeconds": 60})

    with httpx.Client(transport=httpx.MockTransport(handle), base_url="http://hub.test") as client:
        reporter = Reporter(client, "cluster1", agent_id="a", clock=FakeClock(T0))
        annotations = {rpo.ANNOTATION_RPO: "600", pairing.ANNOTATION_PEER: "cluster2/dest/rd",
                       "kubectl.kubernetes.io/last-applied-configuration": "{...}"}
        reporter.observe("source", {"metadata": {"namespace": "src", "name": "rs", "annotations": annotations},
                                    "spec": {"trigger": {"manual": "1"}}, "status": {}})
        reporter.tick()
    (report,) = [r for b in batches for r in b.reports]
    assert report.annotations == {rpo.ANNOTATION_RPO: "600", pairing.ANNOTATION_PEER: "cluster2/dest/rd"}


def test_degraded_names_the_replications_at_fault() -> None:
    states: list[rpo.State] = ["ok", "late", "paused", "late", "late", "late", "late"]
    names = [f"destination dest/rd{i}" for i in range(len(states))]
    cond = health.degraded(states, names)
    assert (cond["status"], cond["reason"]) == ("True", "ReplicationsLate")
    assert cond["message"] == ("5 of 7 replications late: destination dest/rd1, destination dest/rd3, "
                               "destination dest/rd4 (+2 more)")
    assert health.degraded(["paused", "ok"], ["a", "b"])["reason"] == "ReplicationsHealthy"  # paused is not a fault
