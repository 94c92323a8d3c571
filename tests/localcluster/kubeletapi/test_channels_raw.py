"""The exec channel protocol spoken directly (websocket-client) through the API server: a TTY with a
resize, v4.channel.k8s.io, the error channel's Status for an exit code, and the refusal of an
upgrade without a protocol the kubelet speaks."""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlencode

import pytest
import websocket
from conftest import CLUSTER, Cluster, running


@pytest.fixture
def shell_pod(cluster: Cluster, namespace: str) -> str:
    pod = cluster.create_pod(namespace, "shell", ["main"])
    cluster.start(pod, "main", ["sleep", "3600"])
    cluster.set_status(pod, [running("main")])
    return namespace


def _connect(cluster: Cluster, namespace: str, protocol: str, **query: Any) -> websocket.WebSocket:
    url = cluster.api.cluster_url(CLUSTER).replace("https://", "wss://")
    params = [("command", c) for c in query.pop("command")] + [(k, str(v).lower()) for k, v in query.items()]
    token = cluster.api.tokens()[CLUSTER]
    return websocket.create_connection(
        f"{url}/api/v1/namespaces/{namespace}/pods/shell/exec?{urlencode(params)}",
        header=[f"Authorization: Bearer {token}"], subprotocols=[protocol],
        sslopt={"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(cluster.api.ca_file)}, timeout=30)


def _drain(ws: websocket.WebSocket) -> tuple[bytes, dict[str, Any]]:
    """stdout until the error channel's Status arrives."""
    out = b""
    while True:
        frame = ws.recv()
        data = frame if isinstance(frame, bytes) else frame.encode()
        if data[:1] == b"\x01":
            out += data[1:]
        elif data[:1] == b"\x03":
            return out, json.loads(data[1:])


def test_tty_with_resize_and_exit_code(cluster: Cluster, shell_pod: str) -> None:
    ws = _connect(cluster, shell_pod, "v5.channel.k8s.io", command=["sh"], stdin=True, stdout=True, tty=True)
    try:
        assert ws.subprotocol == "v5.channel.k8s.io"
        ws.send_binary(b"\x04" + json.dumps({"Width": 100, "Height": 30}).encode())
        ws.send_binary(b"\x00stty size; exit 7\n")
        out, status = _drain(ws)
    finally:
        ws.close()
    assert b"30 100" in out
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


def test_v4_protocol_and_success_status(cluster: Cluster, shell_pod: str) -> None:
    ws = _connect(cluster, shell_pod, "v4.channel.k8s.io", command=["echo", "v4 works"], stdout=True)
    try:
        assert ws.subprotocol == "v4.channel.k8s.io"
        out, status = _drain(ws)
    finally:
        ws.close()
    assert out == b"v4 works\n"
    assert status == {"metadata": {}, "status": "Success"}


def test_an_unknown_protocol_is_refused(cluster: Cluster, shell_pod: str) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        _connect(cluster, shell_pod, "base64.channel.k8s.io", command=["true"], stdout=True)
    assert refused.value.status_code == 400
    assert b"v5.channel.k8s.io" in (refused.value.resp_body or b"")
