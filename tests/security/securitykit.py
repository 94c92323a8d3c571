"""Helpers of the security suite: an agent's command line, a GET's status with a bearer token."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from support.hubprocess import Hub


def agent_argv(hub: Hub, cluster: str) -> list[str]:
    """The command line of the running agent of `cluster` (from its pidfile)."""
    pid = hub.agent_pids()[cluster]
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def status_of(url: str, token: str, ca: Path) -> int:
    """The HTTP status of a GET with a bearer token, the server verified with `ca`."""
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as http:
        return http.get(url, headers={"Authorization": f"Bearer {token}"}).status_code
