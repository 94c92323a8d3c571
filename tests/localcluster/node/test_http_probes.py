"""httpGet probes as kubelet makes them, against a small real HTTP and HTTPS server on 127.0.0.1 of
the test's own namespace (the probe enters `/proc/self/ns/net`): the status decides (200 and 3xx
pass, unfollowed; 503 fails), named ports, the default and given headers, HTTPS without verifying
the certificate, the timeout, and a fresh netns that does not reach the host's loopback."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.loopnet import loopback_netns

from localcluster.node.netprobes import USER_AGENT, http_get
from localcluster.node.probes import ProbeTarget, run_probe
from osutil import certs

HOST_NETNS = "/proc/self/ns/net"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers.items())))
        if self.path == "/slow":
            self.server.release.wait(30)  # held until the test ends: the probe's timeout must act
        status, extra = {"/fail": (503, {}), "/moved": (301, {"Location": "http://elsewhere.invalid/"})}.get(
            self.path, (200, {}))
        body = b"x" * (64 * 1024 if self.path == "/big" else 2)
        self.send_response(status)
        for name, value in {**extra, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a probe that closed after its 10 KiB or its timeout: nothing to report

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _serve(server: _Server) -> Iterator[_Server]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def plain() -> Iterator[_Server]:
    yield from _serve(_Server())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    made = certs.ensure(tmp_path_factory.mktemp("probe-tls"), ["127.0.0.1"])  # a CA the probe never sees
    server = _Server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(made.cert, made.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from _serve(server)


def _target(port: int, netns: str = HOST_NETNS) -> ProbeTarget:
    spec = {"ports": [{"name": "web", "containerPort": port}]}
    return ProbeTarget(("ns", "p"), "c1", spec, netns, "127.0.0.1", lambda argv: argv)


@pytest.mark.parametrize(("path", "expected"), [
    ("/big", ""),  # 200; only 10 KiB of the 64 KiB body is read
    ("/fail", "HTTP probe failed with statuscode: 503"),
    ("/moved", ""),  # a redirect passes, and is not followed
])
def test_the_status_decides(plain: _Server, path: str, expected: str) -> None:
    before = len(plain.seen)
    assert run_probe({"httpGet": {"path": path, "port": "web"}}, _target(plain.port)) == expected
    assert [p for p, _ in plain.seen[before:]] == [path]  # one request, by the named port


def test_default_headers_and_given_ones(plain: _Server) -> None:
    probe = {"httpGet": {"port": plain.port, "httpHeaders": [
        {"name": "X-Probe", "value": "yes"}, {"name": "accept", "value": "application/json"}]}}
    assert run_probe(probe, _target(0)) == ""
    path, headers = plain.seen[-1]
    assert path == "/"  # the default path
    assert headers["User-Agent"] == USER_AGENT == "kube-probe/1.32"
    assert headers["X-Probe"] == "yes" and headers["accept"] == "application/json" and "Accept" not in headers
    assert headers["Host"] == f"127.0.0.1:{plain.port}" and headers["Connection"] == "close"


def test_https_does_not_verify_the_certificate(tls: _Server, plain: _Server) -> None:
    assert run_probe({"httpGet": {"path": "/ok", "port": "web", "scheme": "HTTPS"}}, _target(tls.port)) == ""
    assert tls.seen[-1][0] == "/ok"
    assert run_probe({"httpGet": {"path": "/fail", "port": tls.port, "scheme": "HTTPS"}}, _target(0)) == \
        "HTTP probe failed with statuscode: 503"
    spoke_tls_to_plain = run_probe({"httpGet": {"port": plain.port, "scheme": "HTTPS"}}, _target(0))
    assert spoke_tls_to_plain.startswith(f'Get "https://127.0.0.1:{plain.port}/": ')


def test_a_slow_answer_times_out(plain: _Server) -> None:
    begin = time.monotonic()
    message = http_get(HOST_NETNS, {"path": "/slow"}, "127.0.0.1", plain.port, 0.5)
    assert message == (f'Get "http://127.0.0.1:{plain.port}/slow": context deadline exceeded '
                       "(Client.Timeout exceeded while awaiting headers)")
    assert time.monotonic() - begin < 2


def test_a_refused_port_and_another_netns(plain: _Server) -> None:
    assert run_probe({"httpGet": {"port": 1}}, _target(0)) == \
        'Get "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: Connection refused'
    with loopback_netns("httpprobe") as netns:  # its own loopback: the host's server is not there
        message = run_probe({"httpGet": {"port": "web"}}, _target(plain.port, netns))
    assert message == f'Get "http://127.0.0.1:{plain.port}/": dial tcp 127.0.0.1:{plain.port}: Connection refused'
    assert run_probe({"httpGet": {"port": "web", "scheme": "FTP"}}, _target(plain.port)) == \
        "unsupported scheme 'FTP' (HTTP or HTTPS)"


def test_a_missing_netns_is_reported(plain: _Server, tmp_path: Path) -> None:
    message = run_probe({"httpGet": {"port": "web"}}, _target(plain.port, str(tmp_path / "gone")))
    assert message.startswith("probe could not run: ")
