"""Per-client caps and odd credentials (issue 7, item 1, last bullet), against a real process:
watches and in-flight requests are capped per identity (user + cluster) with 429 TooManyRequests
and `Retry-After`, other identities unaffected; a bearer token with non-ASCII bytes is 401."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from support.apiserver import ApiServer
from support.waiting import eventually

CAP = 3


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[ApiServer]:
    server = ApiServer(tmp_path / "api", auth=True, extra_args=(
        "--max-watches-per-client", str(CAP), "--max-inflight-per-client", str(CAP)))
    server.start()
    yield server
    server.stop()


def _client(server: ApiServer, context: str) -> httpx.Client:
    return httpx.Client(base_url=server.cluster_url(context), trust_env=False, timeout=10,
                        verify=ssl.create_default_context(cafile=str(server.ca_file)),
                        headers={"Authorization": f"Bearer {server.tokens()[context]}"})


def _assert_too_many(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["kind"] == "Status" and body["reason"] == "TooManyRequests" and body["code"] == 429
    assert "watches" in body["message"] or "requests in flight" in body["message"]
    assert int(resp.headers["Retry-After"]) >= 1


def test_watches_are_capped_per_client_identity(capped: ApiServer) -> None:
    watch = "/api/v1/namespaces/default/configmaps"
    with _client(capped, "cluster1") as c1, _client(capped, "cluster2") as c2, ExitStack() as streams:
        for _ in range(CAP):  # as many watches as allowed, held open
            resp = streams.enter_context(c1.stream("GET", watch, params={"watch": "true"}))
            assert resp.status_code == 200
        _assert_too_many(c1.get(watch, params={"watch": "true"}))
        _assert_too_many(c1.get("/api/v1/watch/namespaces/default/configmaps"))  # the legacy watch path too
        assert c1.get(watch).status_code == 200  # a plain list of the same client is not a watch
        with c2.stream("GET", watch, params={"watch": "true"}) as other:  # another identity is unaffected
            assert other.status_code == 200
        streams.close()  # the watches end: the client may watch again
        eventually(lambda: c1.get(watch, params={"watch": "true", "timeoutSeconds": "1"}).status_code == 200,
                   what="a new watch once the others ended")


def _hold_request(server: ApiServer, token: str) -> ssl.SSLSocket:
    """A POST whose body never completes: the request stays in flight while the socket is open."""
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10),
                           server_hostname="127.0.0.1")
    head = (f"POST /clusters/cluster1/api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{")
    sock.sendall(head.encode())
    return sock


def test_in_flight_requests_are_capped_per_client_identity(capped: ApiServer) -> None:
    token = capped.tokens()["cluster1"]
    held = [_hold_request(capped, token) for _ in range(CAP)]
    try:
        with _client(capped, "cluster1") as c1, _client(capped, "hub") as hub:
            eventually(lambda: c1.get("/api/v1/namespaces").status_code == 429, what="cluster1's cap reached")
            _assert_too_many(c1.get("/api/v1/namespaces"))
            assert hub.get("/api/v1/namespaces").status_code == 200  # the hub's user is not throttled
            held.pop().close()  # one held request ends (the client went away)
            eventually(lambda: c1.get("/api/v1/namespaces").status_code == 200, what="room again")
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("credential", [b"Bearer t\xc3\xb6k\xff", b"Bearer \xff\xfe", "Bearer tök".encode("latin-1")])
def test_a_token_with_non_ascii_bytes_is_401(capped: ApiServer, credential: bytes) -> None:
    with httpx.Client(trust_env=False, verify=ssl.create_default_context(cafile=str(capped.ca_file))) as http:
        resp = http.get(capped.cluster_url("hub") + "/api/v1/namespaces", headers={b"Authorization": credential})
        assert resp.status_code == 401 and resp.json()["reason"] == "Unauthorized"
        assert http.get(capped.url + "/healthz").status_code == 200  # and the server is fine
