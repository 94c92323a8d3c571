"""The hub under its own RBAC in the embedded default (issue 9, deliverable 3).

`volsync-hub` runs its controllers with `hub.kubeconfig`: a token of ServiceAccount
`volsync-system/volsync-hub` bound to the rules of `manifests/hub/rbac.yaml` only. The addon
lifecycle works under it (cluster1's agent becomes Available), its token is refused (401) on the
managed clusters, and what the manifests do not grant is 403 on the hub cluster. The user's
kubeconfig stays an admin. A hub killed with SIGKILL finds its credential again on restart: the
token Secret it made is reused (also when the kubeconfig was never written), and a deleted Secret is
minted anew (the old token stays refused), never a hub stuck on 401.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.apiserver import ROOT
from support.hubprocess import Hub
from support.waiting import eventually

from embedded.credentials import CREDENTIAL_LABEL
from manifests import HUB_DIR

pytestmark = pytest.mark.timeout(300)

HUB_USER = "system:serviceaccount:volsync-system:volsync-hub"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("hubrbac") / "run").start()
    yield h
    h.stop()


def _hub_credential(hub: Hub) -> tuple[Path, str, str]:
    path = hub.data_dir / "api" / "hub.kubeconfig"
    config = yaml.safe_load(path.read_text())
    assert [c["name"] for c in config["contexts"]] == ["hub"] and len(config["users"]) == 1
    return path, config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"]


def test_the_hub_runs_the_addon_lifecycle_as_its_service_account(hub: Hub) -> None:
    path, server, token = _hub_credential(hub)
    assert path.stat().st_mode & 0o777 == 0o600
    assert server.endswith("/clusters/hub")
    admin_tokens = {u["user"]["token"] for u in yaml.safe_load(Path(hub.ready["kubeconfig"]).read_text())["users"]}
    assert token not in admin_tokens
    whoami = subprocess.run(["kubectl", "--kubeconfig", str(path), "--context", "hub", "auth", "whoami", "-o",
                             "jsonpath={.status.userInfo.username}"], capture_output=True, text=True, timeout=60)
    assert whoami.stdout == HUB_USER, whoami.stderr
    hub.kubectl("label", "managedcluster", "cluster1", "addons.open-cluster-management.io/volsync=true")
    eventually(lambda: hub.addon_condition("cluster1", "Available").get("status") == "True", 120, 0.2,
               what="cluster1 addon Available with the hub under its RBAC")
    hub_log = (hub.data_dir / "hub.log").read_text(errors="replace")
    assert " 403 " not in hub_log and "forbidden" not in hub_log.lower(), hub_log[-4000:]


def test_the_hub_token_is_refused_elsewhere_and_outside_its_rules(hub: Hub) -> None:
    _, server, token = _hub_credential(hub)
    base = server.rsplit("/clusters/", 1)[0]
    ca = hub.data_dir / "api" / "pki" / "ca.crt"
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(ca)), timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        for cluster in ("cluster1", "cluster2"):
            assert http.get(f"{base}/clusters/{cluster}/api/v1/secrets").status_code == 401
        hub_api = f"{base}/clusters/hub"
        assert http.get(f"{hub_api}/apis/cluster.open-cluster-management.io/v1/managedclusters").status_code == 200
        for method, path in (("GET", "/api/v1/pods"), ("GET", "/api/v1/nodes"),
                             ("DELETE", "/api/v1/namespaces/cluster1/secrets/volsync-agent-token"),
                             ("DELETE", "/apis/cluster.open-cluster-management.io/v1/managedclusters/cluster1"),
                             ("PATCH", "/api/v1/namespaces/volsync-system/secrets/other"),
                             ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")):
            got = http.request(method, f"{hub_api}{path}", json={} if method != "GET" else None,
                               headers={"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {})
            assert got.status_code == 403, f"{method} {path}: {got.status_code} {got.text}"
            assert f'User "{HUB_USER}"' in got.json()["message"]
        # what it holds in its namespace: manifests/hub's ClusterRole and Role plus the self-review defaults
        review = http.post(f"{hub_api}/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                           json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                                 "spec": {"namespace": "volsync-system"}})
        assert review.status_code == 201, review.text
        held = _tuples(review.json()["status"]["resourceRules"])
        shipped = _tuples([r for doc in yaml.safe_load_all((HUB_DIR / "rbac.yaml").read_text())
                           if doc["kind"] in ("ClusterRole", "Role") for r in doc["rules"]])
        assert shipped <= held
        assert {g for g, _, _, _ in held - shipped} <= {"authorization.k8s.io", "authentication.k8s.io"}


def _hub_status(hub: Hub, server: str, token: str) -> int:
    """The status of a list of ManagedClusters on the hub cluster (`server`) with `token`."""
    ca = hub.data_dir / "api" / "pki" / "ca.crt"
    url = f"{server}/apis/cluster.open-cluster-management.io/v1/managedclusters"
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as http:
        return http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code


def _heartbeats(hub: Hub) -> None:
    """cluster1's agent heartbeats reach the restarted hub: its fleet writes the Lease as volsync-hub."""
    eventually(lambda: {c["name"]: c["available"] for c in hub.rest("/api/v1/clusters")}.get("cluster1"), 60, 0.2,
               what="cluster1 available on the restarted hub")


def test_a_hub_killed_around_its_credential_reuses_or_remints_it(hub: Hub) -> None:
    path, server, first = _hub_credential(hub)
    # killed after the Secret was made, before the kubeconfig was written: the same token again
    hub.stop(signal.SIGKILL)
    path.unlink()
    hub.start()
    assert _hub_credential(hub)[2] == first
    _heartbeats(hub)
    # killed, and its token Secret deleted meanwhile: a new Secret, a new token; the old one is refused
    hub.stop(signal.SIGKILL)
    hub.kubectl("delete", "secret", "-n", "volsync-system", "-l", f"{CREDENTIAL_LABEL}=volsync-hub")
    assert _hub_status(hub, server, first) == 401
    hub.start()
    _, _, second = _hub_credential(hub)
    assert second != first
    assert _hub_status(hub, server, second) == 200 and _hub_status(hub, server, first) == 401
    _heartbeats(hub)


def _tuples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(g, r, v, n) for rule in rules for g in rule.get("apiGroups") or [] for r in rule.get("resources") or []
            for v in rule.get("verbs") or [] for n in rule.get("resourceNames") or [""]}


def test_hub_main_without_a_kubeconfig_outside_a_pod_says_what_it_needs(tmp_path: Path) -> None:
    """`python -m hub.main` (the Deployment's command) uses in-cluster credentials; outside a Pod, with
    no kubeconfig to fall back on, it is one line on stderr and exit code 1, not a traceback."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "absent")}
    res = subprocess.run([sys.executable, "-m", "hub.main", "--data-dir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert res.returncode == 1, res.stderr
    assert res.stderr.startswith("volsync-hub: no hub: give --kubeconfig, run in a Pod of the hub cluster"), res.stderr
    assert "Traceback" not in res.stderr
