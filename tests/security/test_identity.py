"""Identity in the embedded default (issue 7, item 2): authentication is on unless explicitly
turned off, every credential is valid on its own cluster only, the user's kubeconfig has one user
per context, and an agent (a Pod) runs as its ServiceAccount with a token good on its own cluster only."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import yaml
from securitykit import agent_token, status_of
from support.apiserver import ROOT, ApiServer
from support.hubprocess import Hub

CLUSTERS = ("hub", "cluster1", "cluster2")


def _namespaces(base: str, cluster: str) -> str:
    return f"{base}/clusters/{cluster}/api/v1/namespaces"


def test_volsync_apiserver_authenticates_by_default(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "api", auth=True).start()  # auth=True: no flag at all, the server's default
    try:
        assert server.url.startswith("https://127.0.0.1:")
        with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(server.ca_file))) as http:
            anonymous = http.get(_namespaces(server.url, "hub"))
        assert anonymous.status_code == 401 and anonymous.json()["reason"] == "Unauthorized"
        assert "default" in server.kubectl("get", "ns", "-o", "name", context="cluster2").stdout
    finally:
        server.stop()


def test_insecure_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "apiserver.main", "--data-dir", str(tmp_path / "api"), "--clusters", "hub",
           "--insecure-no-auth", "--host", "0.0.0.0"]  # refused before anything binds
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "--insecure-no-auth" in res.stderr and "loopback" in res.stderr
    assert "ready" not in res.stdout


def test_each_token_works_on_its_own_cluster_only(tmp_path: Path) -> None:
    server = ApiServer(tmp_path / "api", auth=True).start()
    try:
        tokens = server.tokens()
        assert set(tokens) == set(CLUSTERS) and len(set(tokens.values())) == 3
        for owner, token in tokens.items():
            for cluster in CLUSTERS:
                expected = 200 if cluster == owner else 401
                got = status_of(_namespaces(server.url, cluster), token, server.ca_file)
                assert got == expected, f"{owner}'s token on {cluster}: {got}"
        # kubectl with cluster1's credentials pointed at the hub's server is refused too
        res = server.kubectl("get", "ns", "--server", server.cluster_url("hub"), context="cluster1", check=False)
        assert res.returncode != 0 and "must be logged in" in res.stderr
    finally:
        server.stop()


def test_the_hub_runs_the_api_with_one_credential_per_cluster(enabled_hub: Hub) -> None:
    config = yaml.safe_load(Path(enabled_hub.ready["kubeconfig"]).read_text())
    assert all(c["cluster"]["server"].startswith("https://") for c in config["clusters"])
    users = {c["name"]: c["context"]["user"] for c in config["contexts"]}
    assert set(users) == set(CLUSTERS) and len(set(users.values())) == 3  # one user per context
    tokens = {u["name"]: u["user"]["token"] for u in config["users"]}
    base = config["clusters"][0]["cluster"]["server"].rsplit("/clusters/", 1)[0]
    ca = enabled_hub.data_dir / "api" / "pki" / "ca.crt"
    for owner in CLUSTERS:
        for cluster in CLUSTERS:
            got = status_of(_namespaces(base, cluster), tokens[users[owner]], ca)
            assert got == (200 if cluster == owner else 401), f"{owner}'s token on {cluster}: {got}"
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(ca))) as http:
        assert http.get(_namespaces(base, "cluster1")).status_code == 401  # no anonymous access
    assert "cluster1" in enabled_hub.kubectl("get", "managedclusters", "-o", "name").stdout


def test_the_agent_runs_as_its_service_account_with_a_token_for_its_own_cluster_only(enabled_hub: Hub) -> None:
    pod = enabled_hub.running_agent("cluster1")
    assert pod is not None
    assert pod["spec"]["serviceAccountName"] == "volsync-agent"
    assert "--kubeconfig" not in pod["spec"]["containers"][0].get("args", [])  # in-cluster config, nothing else
    _, token = agent_token(enabled_hub, "cluster1")
    user_tokens = {u["user"]["token"] for u in yaml.safe_load(Path(enabled_hub.ready["kubeconfig"]).read_text())[
        "users"]}
    assert token not in user_tokens  # the agent's own credential, not the user's
    base = yaml.safe_load(Path(enabled_hub.ready["kubeconfig"]).read_text())["clusters"][0]["cluster"]["server"]
    base = base.rsplit("/clusters/", 1)[0]
    ca = enabled_hub.data_dir / "api" / "pki" / "ca.crt"
    volumes = "api/v1/persistentvolumeclaims"  # granted by the agent's ClusterRole (namespaces are not: 403)
    assert status_of(f"{base}/clusters/cluster1/{volumes}", token, ca) == 200
    assert status_of(_namespaces(base, "cluster1"), token, ca) == 403
    assert status_of(f"{base}/clusters/hub/{volumes}", token, ca) == 401
    assert status_of(f"{base}/clusters/cluster2/{volumes}", token, ca) == 401
