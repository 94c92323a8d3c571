"""`--auth`: HTTPS with a private CA, and bearer tokens (kube-apiserver's static token file format)
per kubeconfig user. kubectl sends a kubeconfig's credentials only over TLS, hence both together."""

from __future__ import annotations

import csv
import ssl
from pathlib import Path

import httpx
import kubernetes
import yaml
from support.apiserver import ApiServer


def api_client_for(server: ApiServer) -> kubernetes.client.ApiClient:
    return server.api_client("cluster2")


def test_tokens_are_required_and_the_kubeconfig_carries_them(fresh_apiserver: ApiServer) -> None:
    server = fresh_apiserver
    server.extra_args = ["--auth"]
    server.start()
    config = yaml.safe_load(server.kubeconfig.read_text())
    tokens = {u["name"]: u["user"]["token"] for u in config["users"]}
    assert set(tokens) == {"hub-admin", "cluster1-admin", "cluster2-admin"}
    assert len(set(tokens.values())) == 3

    # kubectl uses the kubeconfig's token and just works
    assert "default" in server.kubectl("get", "ns", "-o", "name", context="cluster1").stdout

    assert server.url.startswith("https://127.0.0.1:")
    ca = server.data_dir / "pki" / "ca.crt"
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]
    url = server.cluster_url("hub") + "/api/v1/namespaces"
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(ca))) as http:
        anonymous = http.get(url)
        assert anonymous.status_code == 401
        assert anonymous.json()["reason"] == "Unauthorized" and anonymous.json()["kind"] == "Status"
        assert http.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get(url, headers={"Authorization": f"Bearer {tokens['hub-admin']}"}).status_code == 200

        # a token appended to the file is honoured without a restart (the file is re-read on change)
        token_file: Path = server.data_dir / "tokens" / "hub.csv"  # the hub cluster's own token file
        assert token_file.stat().st_mode & 0o777 == 0o600
        with token_file.open("a", newline="") as fh:
            csv.writer(fh).writerow(["late-token-0123456789", "late-user", "late-uid", "system:masters"])
        assert http.get(url, headers={"Authorization": "Bearer late-token-0123456789"}).status_code == 200

    with api_client_for(server) as api:  # the official Python client reads token and CA from the kubeconfig
        names = [n.metadata.name for n in kubernetes.client.CoreV1Api(api).list_namespace().items]
        assert "default" in names

    # the tokens and the CA survive a restart: the same kubeconfig keeps working
    server.stop()
    server.start()
    again = yaml.safe_load(server.kubeconfig.read_text())
    assert again["users"][0]["user"]["token"] == tokens["hub-admin"]
    assert again["clusters"][0]["cluster"]["certificate-authority-data"] == (
        config["clusters"][0]["cluster"]["certificate-authority-data"])
    assert "default" in server.kubectl("get", "ns", "-o", "name", context="hub").stdout
