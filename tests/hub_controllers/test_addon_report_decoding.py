"""The addon controller reads report ConfigMaps as the REST API does (`hub/reports.decode_configmap`): one that
is not a valid report (no sequence, no observedAt, a status of the wrong shape) is ignored by both, so the
addon's Degraded condition never names a replication `GET /api/v1/replications` does not list."""

from __future__ import annotations

import json
from typing import Any

from support.hub_controllers import Hub

from hub import ocm
from kube.rest import CONFIGMAPS


def damaged(hub: Hub, name: str, report: dict[str, Any]) -> None:
    hub.kube.create(CONFIGMAPS, {
        "metadata": {"name": f"volsync-status-{name}", "namespace": "cluster1",
                     "labels": {ocm.REPORT_LABEL: "true", "volsync-addon.io/role": "source"}},
        "data": {"report": json.dumps(report)}})


def test_a_report_configmap_the_rest_api_would_not_list_does_not_degrade_the_addon(hub: Hub) -> None:
    hub.start()
    hub.cluster("cluster1")
    hub.until(lambda: hub.work("cluster1"), "ManifestWork written")
    failed = {"latestMoverStatus": {"result": "Failed", "logs": "x"}}
    # valid JSON, not a valid report: no sequence nor observedAt; a name that is no DNS-1123 name
    damaged(hub, "unsequenced", {"role": "source", "namespace": "apps", "name": "unsequenced", "status": failed})
    damaged(hub, "badname", {"role": "source", "namespace": "apps", "name": "Bad_Name", "sequence": 1,
                             "observedAt": "2026-01-01T00:00:00Z", "status": failed})
    damaged(hub, "badstatus", {"role": "source", "namespace": "apps", "name": "badstatus", "sequence": 1,
                               "observedAt": "2026-01-01T00:00:00Z",
                               "status": {**failed, "conditions": "not a list"}})
    hub.report("cluster1", "real", failed)  # the one valid report

    def degraded() -> str | None:
        cond = hub.condition("cluster1", "Degraded")
        return cond["message"] if cond and cond["reason"] == "ReplicationsFailing" else None

    assert hub.until(degraded, "Degraded by the valid report") == "1 of 1 replications failing: source apps/real"
