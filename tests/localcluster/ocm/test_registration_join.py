"""The registration agent and the cluster manager together, in-process against one API server of the
module's own (hub and spoke contexts): joining, denial, lease expiry and recovery, a user's spec
fields, a shortened lease renewed at once, a client URL kept current, an unreachable hub, and kubectl's
ManagedCluster columns.

The cluster manager runs on a real `Runtime` over the hub with a `FakeClock`; the agent's rounds
are driven one by one (`sync_once`) on the same clock, so lease timing needs no waiting."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import kubernetes
import pytest
from support.apiserver import ApiServer
from support.waiting import eventually

from kube import clients
from kube.clock import FakeClock
from kube.controller import Runtime
from kube.objects import condition
from kube.rest import NAMESPACES, NODES, Kube, Obj
from localcluster.ocm import clustermanager
from localcluster.ocm.leaseplan import ACCEPTED, AVAILABLE, DENY_ACCEPT, JOINED, LEASE_STOPPED
from localcluster.ocm.registration import ACCEPT_POLL_SECONDS, SPEC_POLL_SECONDS, RegistrationAgent, with_client_config
from localcluster.ocm.resources import CLUSTER_LEASE, LEASES, MANAGED_CLUSTERS

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """The module's own server: the cluster manager accepts every ManagedCluster it sees."""
    api = ApiServer(tmp_path_factory.mktemp("registration"), clusters=("hub", "spoke")).start()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def hub(server: ApiServer) -> Iterator[Kube]:
    client = server.api_client("hub")
    yield Kube(client, field_manager="registration-test")
    clients.close(client)


@pytest.fixture(scope="module")
def spoke(server: ApiServer) -> Iterator[Kube]:
    client = server.api_client("spoke")
    kube = Kube(client, field_manager="registration-test")
    kube.create(NODES, {"metadata": {"name": "spoke-node"}})
    kube.patch_status(NODES, "spoke-node", {"capacity": {"cpu": "4", "memory": "8Gi"},
                                            "allocatable": {"cpu": "3500m", "memory": "7Gi"}})
    yield kube
    clients.close(client)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def manager(hub: Kube, clock: FakeClock) -> Iterator[Runtime]:
    runtime = Runtime(hub, clock=clock)
    clustermanager.register(runtime, hub)
    runtime.start()
    yield runtime
    runtime.stop()


def agent_for(name: str, hub: Kube, spoke: Kube, clock: FakeClock) -> RegistrationAgent:
    return RegistrationAgent(hub, spoke, name, client_url=f"https://{name}.example:6443", ca_bundle=CA, clock=clock)


def managed(hub: Kube, name: str) -> Obj:
    found = hub.get(MANAGED_CLUSTERS, name)
    assert found is not None
    return found


def status_of(hub: Kube, name: str, type_: str) -> Obj:
    return condition((managed(hub, name).get("status") or {}).get("conditions"), type_) or {}


def joined(name: str, hub: Kube, spoke: Kube, clock: FakeClock) -> RegistrationAgent:
    """An agent whose cluster the manager accepted and which has reported once."""
    agent = agent_for(name, hub, spoke, clock)
    created = hub.get(MANAGED_CLUSTERS, name) is None
    delay = agent.sync_once()
    assert delay == ACCEPT_POLL_SECONDS or not created  # one the test made may be accepted already
    eventually(lambda: status_of(hub, name, ACCEPTED).get("status") == "True", timeout=15, what=f"{name} accepted")
    eventually(lambda: hub.get(NAMESPACES, name), timeout=15, what=f"namespace {name}")
    agent.sync_once()
    return agent


def test_a_cluster_joins_with_conditions_version_capacity_and_lease(
        manager: Runtime, hub: Kube, spoke: Kube, clock: FakeClock) -> None:
    joined("join-1", hub, spoke, clock)
    mc = managed(hub, "join-1")
    assert mc["metadata"]["labels"]["name"] == "join-1"
    assert mc["spec"]["hubAcceptsClient"] is True
    assert mc["spec"]["leaseDurationSeconds"] == 60
    assert mc["spec"]["managedClusterClientConfigs"] == [
        {"url": "https://join-1.example:6443", "caBundle": base64.b64encode(CA).decode()}]
    status = mc["status"]
    for type_, reason in ((JOINED, "ManagedClusterJoined"), (AVAILABLE, "ManagedClusterAvailable")):
        found = condition(status["conditions"], type_) or {}
        assert (found.get("status"), found.get("reason")) == ("True", reason)
    assert status["version"]["kubernetes"].startswith("v1.")
    assert status["capacity"] == {"cpu": "4", "memory": "8Gi"}
    assert status["allocatable"] == {"cpu": "3500m", "memory": "7Gi"}
    lease = hub.get(LEASES, CLUSTER_LEASE, "join-1")
    assert lease is not None and lease["spec"]["leaseDurationSeconds"] == 60
    assert lease["metadata"]["labels"] == {"open-cluster-management.io/cluster-name": "join-1"}
    assert lease["spec"]["renewTime"].startswith(clock.now().strftime("%Y-%m-%dT%H:%M:%S."))
    rv = managed(hub, "join-1")["metadata"]["resourceVersion"]
    agent_for("join-1", hub, spoke, clock).sync_once()  # nothing changed: no status write
    assert managed(hub, "join-1")["metadata"]["resourceVersion"] == rv


def test_a_stale_lease_turns_the_cluster_unknown_and_renewals_bring_it_back(
        manager: Runtime, hub: Kube, spoke: Kube, clock: FakeClock) -> None:
    hub.create(MANAGED_CLUSTERS, {"metadata": {"name": "stale-1"}, "spec": {"leaseDurationSeconds": 2}})
    agent = joined("stale-1", hub, spoke, clock)
    assert agent.sync_once() == 2.0
    assert status_of(hub, "stale-1", AVAILABLE)["status"] == "True"
    clock.advance(11)  # grace 5 × 2 s
    eventually(lambda: status_of(hub, "stale-1", AVAILABLE).get("status") == "Unknown", timeout=15,
               what="Available Unknown")
    unknown = status_of(hub, "stale-1", AVAILABLE)
    assert unknown["reason"] == LEASE_STOPPED and "ago" in unknown["message"]
    assert status_of(hub, "stale-1", JOINED)["status"] == "True"
    agent.sync_once()
    assert status_of(hub, "stale-1", AVAILABLE)["status"] == "True"
    clock.advance(5)  # within the grace of the renewal: stays True
    agent.sync_once()
    assert status_of(hub, "stale-1", AVAILABLE)["status"] == "True"


def test_a_denied_cluster_is_not_joined(manager: Runtime, hub: Kube, spoke: Kube, clock: FakeClock) -> None:
    hub.create(MANAGED_CLUSTERS, {"metadata": {"name": "deny-1", "annotations": {DENY_ACCEPT: "true"}},
                                  "spec": {"hubAcceptsClient": False}})
    agent = agent_for("deny-1", hub, spoke, clock)
    assert agent.sync_once() == ACCEPT_POLL_SECONDS
    eventually(lambda: status_of(hub, "deny-1", ACCEPTED), timeout=15, what="deny-1 decided")
    denied = status_of(hub, "deny-1", ACCEPTED)
    assert (denied["status"], denied["reason"]) == ("False", "HubClusterAdminDenied")
    assert agent.sync_once() == ACCEPT_POLL_SECONDS
    assert status_of(hub, "deny-1", JOINED) == {}
    assert hub.get(LEASES, CLUSTER_LEASE, "deny-1") is None
    assert managed(hub, "deny-1")["spec"]["hubAcceptsClient"] is False


def test_a_users_spec_fields_and_labels_survive(manager: Runtime, hub: Kube, spoke: Kube, clock: FakeClock) -> None:
    configs = [{"url": "https://set-by-user:6443"}]
    hub.create(MANAGED_CLUSTERS, {"metadata": {"name": "user-1", "labels": {"env": "lab"}},
                                  "spec": {"hubAcceptsClient": True, "leaseDurationSeconds": 7,
                                           "managedClusterClientConfigs": configs}})
    agent = joined("user-1", hub, spoke, clock)
    assert agent.sync_once() == 7.0
    mc = managed(hub, "user-1")
    assert mc["metadata"]["labels"] == {"env": "lab"}
    own = {"url": "https://user-1.example:6443", "caBundle": base64.b64encode(CA).decode()}
    assert mc["spec"]["leaseDurationSeconds"] == 7 and mc["spec"]["managedClusterClientConfigs"] == [own, *configs]
    hub.patch(MANAGED_CLUSTERS, "user-1", {"spec": {"leaseDurationSeconds": 3}})
    assert agent.sync_once() == 3.0  # re-read every round
    lease = hub.get(LEASES, CLUSTER_LEASE, "user-1")
    assert lease is not None and lease["spec"]["leaseDurationSeconds"] == 3


def lease_duration(hub: Kube, name: str) -> object:
    lease = hub.get(LEASES, CLUSTER_LEASE, name)
    return None if lease is None else lease["spec"].get("leaseDurationSeconds")


def test_a_shortened_lease_ends_the_wait_and_is_renewed_at_once(
        manager: Runtime, hub: Kube, spoke: Kube, clock: FakeClock) -> None:
    agent = joined("short-1", hub, spoke, clock)
    assert agent.round() == 60.0
    started = time.monotonic()
    agent.wait_round(1.2)  # nothing changed: the whole wait
    assert time.monotonic() - started >= 1.2
    hub.patch(MANAGED_CLUSTERS, "short-1", {"spec": {"leaseDurationSeconds": 2}})
    started = time.monotonic()
    agent.wait_round(60.0)  # one spec poll sees 2 ≠ 60
    assert time.monotonic() - started < SPEC_POLL_SECONDS + 1.0
    assert agent.round() == 2.0 and lease_duration(hub, "short-1") == 2
    hub.patch(MANAGED_CLUSTERS, "short-1", {"spec": {"leaseDurationSeconds": 30}})
    agent.start()  # the same through the agent's own thread, now waiting 30 s between rounds
    try:
        eventually(lambda: lease_duration(hub, "short-1") == 30, timeout=10, what="lease renewed with 30 s")
        hub.patch(MANAGED_CLUSTERS, "short-1", {"spec": {"leaseDurationSeconds": 1}})
        started = time.monotonic()
        eventually(lambda: lease_duration(hub, "short-1") == 1, timeout=10, what="lease renewed with 1 s")
        assert time.monotonic() - started < SPEC_POLL_SECONDS + 1.5
    finally:
        agent.stop(timeout=5)
    assert status_of(hub, "short-1", AVAILABLE)["status"] == "True"


def test_the_agents_client_config_is_kept_current_beside_a_users_entry(
        manager: Runtime, hub: Kube, spoke: Kube, clock: FakeClock) -> None:
    joined("url-1", hub, spoke, clock)
    first = {"url": "https://url-1.example:6443", "caBundle": base64.b64encode(CA).decode()}
    users = {"url": "https://proxy.example:443"}
    hub.patch(MANAGED_CLUSTERS, "url-1", {"spec": {"managedClusterClientConfigs": [first, users]}})
    moved = RegistrationAgent(hub, spoke, "url-1", client_url="https://url-1.example:7443", ca_bundle=CA, clock=clock)
    moved.sync_once()  # the spoke API server back on another port
    moved_entry = {"url": "https://url-1.example:7443", "caBundle": base64.b64encode(CA).decode()}
    assert managed(hub, "url-1")["spec"]["managedClusterClientConfigs"] == [moved_entry, first, users]
    rv = managed(hub, "url-1")["metadata"]["resourceVersion"]
    moved.sync_once()  # already there: no spec write
    assert managed(hub, "url-1")["metadata"]["resourceVersion"] == rv
    new_ca = b"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
    RegistrationAgent(hub, spoke, "url-1", client_url="https://url-1.example:7443", ca_bundle=new_ca,
                      clock=clock).sync_once()
    renewed = {"url": "https://url-1.example:7443", "caBundle": base64.b64encode(new_ca).decode()}
    assert managed(hub, "url-1")["spec"]["managedClusterClientConfigs"] == [renewed, first, users]


def test_with_client_config_merges_without_losing_entries() -> None:
    assert with_client_config(None, "https://a", "Q0E=") == [{"url": "https://a", "caBundle": "Q0E="}]
    assert with_client_config("junk", "https://a", "Q0E=") == [{"url": "https://a", "caBundle": "Q0E="}]
    kept = [{"url": "https://b", "caBundle": "eA=="}, {"url": "https://a", "caBundle": "Q0E="}]
    assert with_client_config(kept, "https://a", "Q0E=") is None
    assert with_client_config([{"url": "https://a"}, "bad"], "https://a", "Q0E=") == [
        {"url": "https://a", "caBundle": "Q0E="}]


def test_an_unreachable_hub_backs_off_without_raising(spoke: Kube, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{port}"
    config.retries = 0
    client = kubernetes.client.ApiClient(config)
    try:
        agent = agent_for("gone-1", Kube(client), spoke, FakeClock())
        delays = [agent.round() for _ in range(6)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
        warnings = [r for r in caplog.records if r.name == "localcluster.ocm.registration" and r.levelname == "WARNING"]
        assert len(warnings) == 1 and "gone-1" in warnings[0].getMessage()  # once per outage
        agent.start()  # the thread survives failing rounds and stops promptly
        agent.stop(timeout=5)
        assert agent._thread is None
    finally:
        clients.close(client)


@pytest.mark.kubectl
def test_kubectl_shows_joined_and_available(manager: Runtime, server: ApiServer, hub: Kube, spoke: Kube,
                                            clock: FakeClock) -> None:
    joined("cols-1", hub, spoke, clock)
    out = server.kubectl("get", "managedclusters", "cols-1", context="hub").stdout.splitlines()
    header, row = out[0].split(), out[1].split()
    assert header[:2] == ["NAME", "HUB"] and "JOINED" in header and "AVAILABLE" in header
    assert row[0] == "cols-1" and row[1] == "true"
    assert row[-3:-1] == ["True", "True"]  # JOINED, AVAILABLE, then AGE
