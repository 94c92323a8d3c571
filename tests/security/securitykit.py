"""Helpers of the security suite: the agent Pod's ServiceAccount token, a GET's status with a bearer token."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from support.hubprocess import Hub
from support.waiting import eventually

TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # the kubelet's projected token


def agent_token(hub: Hub, cluster: str) -> tuple[str, str]:
    """(uid, token) of `cluster`'s running agent Pod: the ServiceAccount token its node projected into it,
    read in the container (`kubectl exec ... cat`), as the agent reads it."""
    pod = eventually(lambda: hub.running_agent(cluster), 120, 0.2, what=f"{cluster}'s agent Pod running")
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    token = hub.kubectl("exec", name, "-n", namespace, "--", "cat", TOKEN_PATH, context=cluster).stdout.strip()
    assert token.count(".") == 2, f"not a JWT: {token[:40]!r}"
    return str(pod["metadata"]["uid"]), token


def status_of(url: str, token: str, ca: Path) -> int:
    """The HTTP status of a GET with a bearer token, the server verified with `ca`."""
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as http:
        return http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
