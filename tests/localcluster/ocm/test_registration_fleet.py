"""Registration in a real fleet: the hub cluster's process runs the cluster manager (`--ocm-hub`),
the managed cluster's process its registration agent; the cluster joins by itself, turns Unknown on
the hub when its process is frozen past the lease grace (even across a kill -9 of the hub cluster's
process), and True again once it runs.

One fleet (API server + two cluster processes) for the module. cluster1's ManagedCluster is made
before its process starts, with `leaseDurationSeconds: 1` (the agent keeps a spec someone set), so
the grace is 5 s."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from support.apiserver import ApiServer
from support.waiting import eventually

from kube.rest import Obj
from localcluster.launcher import Fleet
from localcluster.ocm.leaseplan import AVAILABLE, JOINED, LEASE_STOPPED
from localcluster.ocm.resources import CLUSTER_LEASE

NAMES = ("hub", "cluster1")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, Fleet]]:
    base = tmp_path_factory.mktemp("registration-fleet")
    api_dir = base / "api"
    api_dir.mkdir()
    clusters = Fleet(base / "clusters", list(NAMES), api_dir / "kubeconfig", api_dir / "pki", hub="hub")
    api = ApiServer(api_dir, clusters=NAMES, auth=True, extra_args=tuple(clusters.apiserver_args())).start()
    try:
        api.apply_yaml("apiVersion: cluster.open-cluster-management.io/v1\nkind: ManagedCluster\n"
                       "metadata: {name: cluster1}\nspec: {hubAcceptsClient: false, leaseDurationSeconds: 1}\n")
        clusters.start()
        try:
            yield api, clusters
        finally:
            clusters.stop()
    finally:
        api.stop()


def available(api: ApiServer) -> Obj:
    found = api.get("managedcluster", "cluster1")
    return next((c for c in (found.get("status") or {}).get("conditions") or [] if c["type"] == AVAILABLE), {})


def test_a_managed_cluster_joins_by_itself(fleet: tuple[ApiServer, Fleet]) -> None:
    api, _ = fleet
    eventually(lambda: available(api).get("status") == "True", timeout=60, what="cluster1 available")
    found = api.get("managedcluster", "cluster1")
    assert found["spec"]["hubAcceptsClient"] is True and found["spec"]["leaseDurationSeconds"] == 1
    assert found["spec"]["managedClusterClientConfigs"][0]["url"].startswith("https://")
    assert any(c["type"] == JOINED and c["status"] == "True" for c in found["status"]["conditions"])
    assert found["status"]["version"]["kubernetes"].startswith("v1.")
    assert found["status"]["capacity"]["cpu"] not in ("", "0")
    assert api.get("namespace", "cluster1")["metadata"]["name"] == "cluster1"
    assert api.get("lease", CLUSTER_LEASE, "-n", "cluster1")["spec"]["leaseDurationSeconds"] == 1


def test_a_frozen_cluster_turns_unknown_and_comes_back(fleet: tuple[ApiServer, Fleet]) -> None:
    """The hub cluster's process is killed (-9) meanwhile: its successor's cluster manager expires the
    lease from what the API holds, not from timers the killed one had."""
    api, clusters = fleet
    eventually(lambda: available(api).get("status") == "True", timeout=60, what="cluster1 available")
    pid = clusters.daemons["cluster1"].pid
    hub_pid = clusters.daemons["hub"].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(hub_pid, signal.SIGKILL)
        eventually(lambda: clusters.daemons["hub"].pid != hub_pid, timeout=30, what="hub cluster process restarted")
        eventually(lambda: available(api).get("status") == "Unknown", timeout=30, what="cluster1 Unknown")
        assert available(api)["reason"] == LEASE_STOPPED
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: available(api).get("status") == "True", timeout=30, what="cluster1 available again")
