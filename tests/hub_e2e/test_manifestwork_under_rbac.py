"""The real hub's path (`ManifestWorkDeployer`, what a hub on an OCM fleet runs) as ServiceAccount
`volsync-system/volsync-hub` with exactly `manifests/hub`'s RBAC (issue 9, deliverable 3).

The embedded default runs this path end to end (`test_production_path.py`); here the addon
controller runs in-process and stepped, with a token of the shipped ServiceAccount against a real
API server with RBAC on and no work agent, so every request it makes is seen in isolation. Install
(ClusterManagementAddOn, MCA, token Secret, ManifestWork, MCA status, the feature label) and
uninstall on unlabel run without one refused request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.apiserver import ApiServer
from support.hub_controllers import HUB_URL, IMAGE, T0, Hub

from apiserver.authn import kubeconfig, write_kubeconfig
from hub import clusters, ocm
from hub.addons import AddonManager
from hub.deployers.manifestwork import ManifestWorkDeployer
from kube import clients
from kube.clock import FakeClock
from kube.rest import SECRETS, Kube
from manifests import HUB_RBAC

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hub_as_sa(tmp_path: Path) -> Iterator[Hub]:
    server = ApiServer(tmp_path / "api", clusters=("hub", "cluster1"), auth=True).start()
    apis = []
    try:
        for path in HUB_RBAC:
            server.kubectl("apply", "-f", str(path), context="hub")
        token = server.kubectl("create", "token", "volsync-hub", "-n", "volsync-system", context="hub").stdout.strip()
        config = tmp_path / "hub.kubeconfig"
        write_kubeconfig(config, kubeconfig(server.url, ["hub"], {"hub": token}, server.ca_file.read_bytes(),
                                            user="volsync-hub"))
        apis += [clients.load(str(config), "hub"), clients.load(str(server.kubeconfig), "hub")]
        kube = Kube(apis[0], field_manager="volsync-hub")  # the controller's: volsync-hub
        admin = Kube(apis[1], field_manager="test")  # the test's own reads (Hub's helpers)
        clock = FakeClock(T0)

        def make(**options: object) -> AddonManager:
            assert clusters.ensure_cluster_management_addon(kube)  # get + create, as volsync-hub
            return AddonManager(kube, ManifestWorkDeployer(kube), clock=clock, hub_url=HUB_URL, image=IMAGE,
                                workers=0, uninstall_on_unlabel=True, **options)  # type: ignore[arg-type]

        h = Hub(server, admin, clock, make)
        try:
            yield h
        finally:
            for manager in h.managers:
                manager.stop()
    finally:
        for api in apis:
            clients.close(api)
        server.kill()


def test_the_manifestwork_path_runs_under_manifests_hub_rbac(hub_as_sa: Hub, caplog: pytest.LogCaptureFixture) -> None:
    hub = hub_as_sa
    caplog.set_level(logging.WARNING)
    hub.start()
    hub.cluster("cluster1")
    work = hub.until(lambda: hub.work("cluster1"), "ManifestWork written as volsync-hub")
    assert work["metadata"]["ownerReferences"][0]["kind"] == "ManagedClusterAddOn"
    assert hub.kube.get(SECRETS, ocm.TOKEN_SECRET, "cluster1") is not None
    hub.until(lambda: hub.condition("cluster1", "Available") is not None, "MCA status written as volsync-hub")
    hub.until(lambda: hub.feature_label("cluster1") is not None, "feature label set as volsync-hub")

    hub.server.kubectl("label", "managedcluster", "cluster1", f"{ocm.INSTALL_LABEL}-")
    hub.until(lambda: hub.addon("cluster1") is None, "MCA deleted on unlabel as volsync-hub")
    hub.until(lambda: hub.work("cluster1") is None, "ManifestWork gone")
    refused = [r.getMessage() for r in caplog.records if " 403" in r.getMessage() or "403 " in r.getMessage()
               or "forbidden" in r.getMessage().lower()]
    assert not refused, refused
