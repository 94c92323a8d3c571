"""A destination whose address cannot be bound says so, and recovers once it can."""

from __future__ import annotations

import socket

import pytest
from support.harness import FIRST_ADDRESS, Harness

from agent.kinds import REPLICATION_DESTINATIONS

pytestmark = pytest.mark.timeout(120)


def test_bind_failure_is_an_error_condition_until_the_port_is_free(harness: Harness) -> None:
    h = harness
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((FIRST_ADDRESS, 22))  # the address the platform hands to the first Service
    blocker.listen(1)
    try:
        h.server.kubectl("create", "ns", "dest", context="cluster1")
        h.kube.create(REPLICATION_DESTINATIONS, {"metadata": {"name": "rd", "namespace": "dest"}, "spec": {
            "rsync": {"copyMethod": "Direct", "capacity": "1Gi", "accessModes": ["ReadWriteOnce"]}}})

        def error() -> str:
            cond = (h.status("rd", "dest", "rd").get("conditions") or [{}])[0]
            return str(cond.get("message", "")) if cond.get("reason") == "Error" else ""
        message = h.until(error, "Error condition")
        assert FIRST_ADDRESS in message and "22" in message
        assert h.status("rd", "dest", "rd")["rsync"]["address"] == FIRST_ADDRESS
    finally:
        blocker.close()
    # The error is retried with backoff (real time): the destination comes up once the port is free.
    h.until(lambda: (h.status("rd", "dest", "rd").get("conditions") or [{}])[0].get("reason") == "SyncInProgress",
            "listening after the port was freed", timeout=30)
    with socket.create_connection((FIRST_ADDRESS, 22), timeout=5) as conn:
        assert conn.recv(64).startswith(b"SSH-2.0-OpenSSH")
