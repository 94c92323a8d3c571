"""The node's kubelet HTTPS API: what the API server proxies `pods/log`, `pods/exec` and
`pods/portforward` to, served from the container runtime's files and processes.

    GET /containerLogs/{ns}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes
    WS  /exec/{ns}/{pod}/{container}?command=..&command=..&stdin&stdout&stderr&tty   (v5/v4.channel.k8s.io)
    WS  /attach/{ns}/{pod}/{container}?stdout&stderr&tty                          (output only: no stdin)
    WS  /portForward/{ns}/{pod}?port=..               (v4/v5.channel.k8s.io: two channels per port, Python client)
    WS  /portForward/{ns}/{pod}                           (SPDY/3.1+portforward.k8s.io: SPDY in WebSocket messages)
    GET /healthz

The app (routing and handlers) is `kubeletapp.KubeletApp`; this module serves it. It listens on
`127.0.0.1:<free port>` and takes only clients with a certificate signed by
`client_ca` (the API server's kubelet client certificate). `{ns}/{pod}` is resolved through the
`pods` callable (the node's Pod cache: `runtime.cache(PODS).get`), then by uid to the runtime's
container records. Refusals are `Status` bodies (400/404), which the API server hands to the client.

Wiring (the cluster process):

    server = KubeletServer(container_runtime, cert=..., key=..., client_ca=ca, pods=runtime.cache(PODS).get)
    node.set_kubelet_port(server.start())
    ...
    server.stop()
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import uvicorn

from localcluster.node.kubeletapp import KubeletApp, Pod, Runtime

__all__ = ["KubeletApp", "KubeletServer", "Runtime"]


class KubeletServer:
    """The kubelet API on `host:port` (0: a free port), HTTPS with client certificates required."""

    def __init__(self, runtime: Runtime, *, cert: Path, key: Path, client_ca: Path,
                 pods: Callable[[str, str], Pod | None], host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = KubeletApp(runtime, pods)
        self._tls = (cert, key, client_ca)
        self._address = (host, port)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, timeout: float = 15.0) -> int:
        """Serve on a thread of its own; returns the port once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self._address)
        sock.listen(128)
        self.port = sock.getsockname()[1]
        cert, key, ca = self._tls
        config = uvicorn.Config(
            self.app, ws="wsproto", lifespan="off", log_level="warning", access_log=False,
            ssl_certfile=str(cert), ssl_keyfile=str(key), ssl_ca_certs=str(ca), ssl_cert_reqs=ssl.CERT_REQUIRED,
            timeout_graceful_shutdown=2, ws_ping_interval=None,
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                        name="kubelet-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the kubelet server did not start")
            time.sleep(0.02)
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = self._thread = None
