"""Helpers for the identity tests: a real `volsync-apiserver` with authentication, two clusters
with their own Service CIDRs and the per-cluster listeners (what the embedded default runs), and
helpers to reach each cluster."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from support.apiserver import ApiServer

CIDRS = {"cluster1": "10.1.128.0/17", "cluster2": "10.2.128.0/17"}
SERVICE_IPS = {"cluster1": "10.1.128.1", "cluster2": "10.2.128.1"}


def identity_server(data_dir: Path) -> ApiServer:
    args = ["--cluster-listeners"]
    for name, cidr in CIDRS.items():
        args += ["--service-cidr", f"{name}={cidr}"]
    return ApiServer(data_dir, clusters=tuple(CIDRS), extra_args=args, auth=True)


@dataclass
class Identity:
    """The running server, its listener ports and admin tokens."""

    server: ApiServer

    @property
    def ports(self) -> dict[str, int]:
        ports: dict[str, int] = json.loads((self.server.data_dir / "listeners.json").read_text())
        return ports

    def http(self) -> httpx.Client:
        return httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(self.server.ca_file)),
                            timeout=30)

    def listener(self, cluster: str) -> str:
        return f"https://127.0.0.1:{self.ports[cluster]}"

    def admin(self, cluster: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.server.tokens()[cluster]}"}

    def get(self, cluster: str, path: str, token: str | None = None) -> httpx.Response:
        headers = self.admin(cluster) if token is None else {"Authorization": f"Bearer {token}"}
        with self.http() as http:
            return http.get(self.listener(cluster) + path, headers=headers)

    def post(self, cluster: str, path: str, body: Any) -> httpx.Response:
        with self.http() as http:
            return http.post(self.listener(cluster) + path, headers=self.admin(cluster), json=body)

