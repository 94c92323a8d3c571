"""Fleet-wide replication status through the hub: agents report, users query `GET /api/v1/replications`.

A replication cluster1 → cluster2 set up as in the seed procedure shows both sides with
lastSyncTime and state ok; with the destination gone the source turns `error` and cluster1's addon
`Degraded`; with the hub killed, replication goes on and the reports arrive when it is back.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from support.hubprocess import Hub, replication_hub, replication_rows, trigger_manual
from support.seed import copy_secret, create_destination, create_pvc, create_source, status
from support.trees import make_sample_tree
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

ADDON_WITH_CONFIG = """\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: AddOnDeploymentConfig
metadata: {{name: fast-failures, namespace: {cluster}}}
spec:
  customizedVariables:
  - {{name: RSYNC_RETRIES, value: "1"}}
---
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata: {{name: volsync, namespace: {cluster}}}
spec:
  configs:
  - {{group: addon.open-cluster-management.io, resource: addondeploymentconfigs, name: fast-failures,
     namespace: {cluster}}}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = replication_hub(tmp_path_factory.mktemp("hub") / "run", addon=ADDON_WITH_CONFIG)
    yield h
    h.stop()


def test_replications_report_states_through_the_hub(hub: Hub) -> None:
    address, keys = create_destination(hub, "rd", "LoadBalancer")
    source_dir = create_pvc(hub, "data", "src", "cluster1")
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(hub, keys)
    create_source(hub, "rs", "data", address, keys, "manual: one")
    eventually(lambda: status(hub, "replicationsource", "rs", "src", "cluster1").get(
        "lastManualSync") == "one", 90, what="first sync")

    def both_ok() -> dict[tuple[str, str], dict[str, Any]] | None:
        found = replication_rows(hub)
        src, dst = found.get(("cluster1", "source")), found.get(("cluster2", "destination"))
        if src and dst and src["state"] == "ok" and dst["state"] == "ok" and src["lastSyncTime"]:
            return found
        return None
    found = eventually(both_ok, 30, what="both sides ok over REST")
    src = found[("cluster1", "source")]
    assert src["namespace"] == "src" and src["name"] == "rs" and src["moverResult"] == "Successful"
    assert src["lagSeconds"] is not None and src["lagSeconds"] >= 0
    assert found[("cluster2", "destination")]["latestImage"]["kind"] == "VolumeSnapshot"
    assert set(replication_rows(hub, cluster="cluster1", role="source")) == {("cluster1", "source")}
    summary = hub.rest("/api/v1/summary")
    assert (summary["pairs"], summary["replications"]["ok"]) == (1, 1)  # the pair counts once
    assert (summary["sources"]["ok"], summary["destinations"]["ok"]) == (1, 1)
    assert src["peer"] == {"cluster": "cluster2", "namespace": "dest", "name": "rd", "role": "destination"}

    # The hub is killed: replication goes on (agents and API servers keep running), the reports
    # wait in the agents, and arrive once the hub is back.
    hub.stop(signal.SIGKILL)
    trigger_manual(hub, "two")
    eventually(lambda: status(hub, "replicationsource", "rs", "src", "cluster1").get(
        "lastManualSync") == "two", 90, what="a sync while the hub is down")
    synced_at = status(hub, "replicationsource", "rs", "src", "cluster1")["lastSyncTime"]
    hub.start()
    eventually(lambda: replication_rows(hub).get(("cluster1", "source"), {}).get("lastSyncTime") == synced_at, 30,
               what="the report made while the hub was down")

    # The destination goes away: the next sync fails, the source is in error, cluster1 is Degraded.
    hub.kubectl("delete", "replicationdestination", "rd", "-n", "dest", context="cluster2")
    trigger_manual(hub, "three")
    eventually(lambda: replication_rows(hub, state="error").get(("cluster1", "source")), 120, what="source in error")
    eventually(lambda: hub.addon_condition("cluster1", "Degraded").get("status") == "True", 30,
               what="cluster1 Degraded")
    assert hub.addon_condition("cluster1", "Degraded")["reason"] == "ReplicationsFailing"
    assert hub.addon_condition("cluster2", "Degraded").get("status") == "False"
