"""The hub REST API against a real `volsync-hub` process over loopback: HTTPS verified with the hub's CA (the
agent's client too), a chunked flood cannot fill its memory, and schemathesis over HTTPS (agent endpoints with
a valid token) gets no 5xx, no request near a hang, and a prompt /healthz afterwards.

An unauthenticated 256 MiB chunked POST to an agent endpoint is refused (401) before 32 MiB are
read and the hub's peak memory (VmHWM) grows by less than 64 MiB; an authenticated chunked body
over the cap is a 413 as soon as the cap is passed. The agent token is a Secret made as the addon
controller makes it (no agent process is needed for this).
"""

from __future__ import annotations

import base64
import json
import os
import select
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from support.hubprocess import Hub
from support.waiting import eventually

from agent.main import hub_client
from hub.rest import MAX_BODY_BYTES
from hub.tokens import AGENT_TOKEN_SECRET, LABEL_AGENT_TOKEN, new_token
from osutil import certs

pytestmark = pytest.mark.timeout(300)

MIB = 1024 * 1024
FRAME = 64 * 1024


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("hub") / "run").start()
    yield h
    h.stop()


def peak_memory(pid: int) -> int:
    """VmHWM of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def _connect(url: str, ca_file: str | None) -> socket.socket:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=ca_file)
        return ctx.wrap_socket(sock, server_hostname=parts.hostname)
    return sock


def _arrived(sock: socket.socket) -> bytes | None:
    """What the server sent so far, without waiting (b"" at EOF); None when nothing (a TLS 1.3 session
    ticket makes the socket readable with nothing for us)."""
    if not (isinstance(sock, ssl.SSLSocket) and sock.pending()) and not select.select([sock], [], [], 0)[0]:
        return None
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except (ssl.SSLWantReadError, BlockingIOError):
        return None
    finally:
        sock.settimeout(10)


def chunked_flood(url: str, path: str, total: int, *, token: str | None, ca_file: str | None) -> tuple[int, int]:
    """POST `total` bytes as a chunked body until the server answers; (status, bytes of body sent)."""
    sock = _connect(url, ca_file)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    host = urlsplit(url).netloc
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    frame = f"{FRAME:x}\r\n".encode() + b"x" * FRAME + b"\r\n"
    sent, head = 0, b""
    try:
        while sent < total:
            if (data := _arrived(sock)) is not None:
                head = data
                break
            sock.sendall(frame)
            sent += FRAME
    except (BrokenPipeError, ConnectionResetError, TimeoutError, ssl.SSLError):
        pass  # the server closed the connection after answering: its answer is read below
    try:
        while b"\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass  # no (complete) answer: the assertion below says so
    finally:
        sock.close()
    assert head.startswith(b"HTTP/1.1 "), f"no HTTP answer after {sent} bytes: {head[:200]!r}"
    return int(head.split()[1]), sent


def agent_token(hub: Hub, cluster: str) -> str:
    token = new_token()
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": AGENT_TOKEN_SECRET, "namespace": cluster, "labels": {LABEL_AGENT_TOKEN: "true"}},
              "data": {"token": base64.b64encode(token.encode()).decode()}}
    hub.kubectl("apply", "-f", "-", input=json.dumps(secret))
    return token


def test_unauthenticated_chunked_flood_is_refused_before_it_is_read(hub: Hub) -> None:
    pid = hub.proc.pid
    before = peak_memory(pid)
    status, sent = chunked_flood(hub.ready["rest"], "/api/v1/agents/cluster1/reports", 256 * MIB, token=None,
                                 ca_file=hub.ready.get("caFile"))
    assert status == 401, status
    assert sent < 32 * MIB, f"{sent} bytes sent before the answer"
    growth = peak_memory(pid) - before
    print(f"unauthenticated chunked flood: {status} after {sent / MIB:.2f} MiB sent; VmHWM +{growth / MIB:.2f} MiB")
    assert growth < 64 * MIB, f"the hub's peak memory grew by {growth / MIB:.1f} MiB"
    assert hub.rest("/api/v1/summary")["clusters"]["total"] == 2  # still serving


def test_authenticated_chunked_body_over_the_cap_is_413(hub: Hub) -> None:
    token = agent_token(hub, "cluster1")
    ca_file = hub.ready.get("caFile")

    def over_cap() -> tuple[int, int]:
        return chunked_flood(hub.ready["rest"], "/api/v1/agents/cluster1/reports", 256 * MIB, token=token,
                             ca_file=ca_file)

    # the token Secret reaches the hub's informer a moment later: 401 until then
    eventually(lambda: over_cap()[0] != 401, 30, what="the agent token known to the hub")
    pid = hub.proc.pid
    before = peak_memory(pid)
    status, sent = over_cap()
    assert status == 413, status
    assert sent < MAX_BODY_BYTES + 16 * MIB, f"{sent} bytes sent before the answer"
    growth = peak_memory(pid) - before
    print(f"authenticated over-cap chunked body: {status} after"
          f" {sent / MIB:.2f} MiB sent; VmHWM +{growth / MIB:.2f} MiB")
    assert growth < MAX_BODY_BYTES + 32 * MIB, f"the hub's peak memory grew by {growth / MIB:.1f} MiB"


def test_the_rest_api_is_https_verified_with_the_hub_ca(hub: Hub, tmp_path: Path) -> None:
    rest, ca = hub.ready["rest"], Path(hub.ready["caFile"])
    assert rest.startswith("https://127.0.0.1:"), rest
    assert stat.S_IMODE(os.stat(ca.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ca.parent / "serving.key").st_mode) == 0o600
    with hub_client(rest, ca) as client:  # the agent's client, given the hub's CA
        assert client.get("/healthz").status_code == 200
        assert client.post("/api/v1/agents/cluster1/heartbeat", json={}).status_code == 401
    with hub_client(rest, None) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("/healthz")  # the system CAs do not know the hub's private CA
    other = certs.ensure(tmp_path / "other-pki", ["127.0.0.1"]).ca  # a CA of the same shape, not the hub's
    with hub_client(rest, other) as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get("/healthz")
    with httpx.Client(trust_env=False, timeout=10) as plain, pytest.raises(httpx.HTTPError):
        plain.get(rest.replace("https://", "http://") + "/healthz")  # no plain HTTP


def held_open(url: str, path: str, token: str, ca_file: str | None) -> socket.socket:
    """A chunked POST whose body has begun and never ends (a slow client holding its request open)."""
    sock = _connect(url, ca_file)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\nContent-Type: application/json\r\n"
                 f"Authorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "10\r\n{\"agentId\": \"a\",\r\n".encode())  # 16 bytes of a body that never ends
    return sock


def test_one_agent_token_cannot_hold_the_hub(hub: Hub) -> None:
    """Slow posts from one agent token: beyond its in-flight cap they are 429 at once, and meanwhile /healthz,
    another cluster's heartbeat and the admin's reads answer promptly."""
    rest, ca = hub.ready["rest"], hub.ready.get("caFile")
    tokens = {cluster: agent_token(hub, cluster) for cluster in ("cluster1", "cluster2")}
    with requests.Session() as session:
        session.verify, session.trust_env = ca or True, False
        for cluster, token in tokens.items():
            eventually(lambda c=cluster, t=token: session.post(f"{rest}/api/v1/agents/{c}/heartbeat", json={},
                       headers={"Authorization": f"Bearer {t}"}, timeout=10).status_code == 422,
                       30, what=f"the {cluster} agent token known to the hub")
        started = time.monotonic()
        socks = [held_open(rest, "/api/v1/agents/cluster1/reports", tokens["cluster1"], ca) for _ in range(12)]
        try:
            answers: dict[int, bytes] = {}
            deadline = time.monotonic() + 10
            while len(answers) < len(socks) - 2 and time.monotonic() < deadline:
                for i, sock in enumerate(socks):
                    if i not in answers and (data := _arrived(sock)):
                        answers[i] = data
            refused_in = time.monotonic() - started
            statuses = sorted(int(a.split()[1]) for a in answers.values() if a.startswith(b"HTTP/1.1 "))
            assert statuses == [429] * 10, (statuses, answers)
            assert all(b"retry-after: 1" in a.lower() for a in answers.values()), answers
            timings = {}
            for what, call in {
                "healthz": lambda: session.get(f"{rest}/healthz", timeout=5),
                "cluster2 heartbeat": lambda: session.post(
                    f"{rest}/api/v1/agents/cluster2/heartbeat", timeout=5,
                    json={"agentId": "b", "sentAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                    headers={"Authorization": f"Bearer {tokens['cluster2']}"}),
                "summary": lambda: session.get(f"{rest}/api/v1/summary", timeout=5,
                                               headers={"Authorization": f"Bearer {hub.token}"}),
            }.items():
                t0 = time.monotonic()
                assert call().status_code == 200, what
                timings[what] = time.monotonic() - t0
            held = [i for i in range(len(socks)) if i not in answers]
            assert len(held) == 2 and not any(_arrived(socks[i]) for i in held), "the held requests were answered"
        finally:
            for sock in socks:
                sock.close()
    print(f"12 held-open posts of one agent token: 10 refused 429 within {refused_in:.3f}s; meanwhile "
          + ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()))
    assert refused_in < 5 and all(v < 1.0 for v in timings.values()), (refused_in, timings)


def test_schemathesis_over_https_against_the_real_hub(hub: Hub) -> None:
    rest, ca = hub.ready["rest"], hub.ready["caFile"]
    token = agent_token(hub, "cluster2")
    with requests.Session() as session:
        session.verify, session.trust_env = ca, False  # no proxy, no CA bundle from the environment
        eventually(lambda: session.post(f"{rest}/api/v1/agents/cluster2/heartbeat", json={},
                                        headers={"Authorization": f"Bearer {token}"}).status_code == 422,
                   30, what="the agent token known to the hub")
        schema = schemathesis.openapi.from_url(f"{rest}/openapi.json", verify=ca)
        counts = {"requests": 0, "5xx": 0}
        slowest = 0.0

        @settings(max_examples=150, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=schema.as_strategy() | schema.as_strategy(GenerationMode.NEGATIVE), own=st.booleans())
        def call(case: Any, own: bool) -> None:
            nonlocal slowest
            if case.operation.path.startswith("/api/v1/agents/"):
                if own:
                    case.path_parameters["cluster"] = "cluster2"
                headers = {"Authorization": f"Bearer {token}"}
            else:
                headers = {"Authorization": f"Bearer {hub.token}"}
            started = time.monotonic()
            response = case.call(base_url=rest, session=session, headers=headers, timeout=10, verify=ca)
            slowest = max(slowest, time.monotonic() - started)
            counts["requests"] += 1
            counts["5xx"] += response.status_code >= 500
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"

        call()
        started = time.monotonic()
        healthz = session.get(f"{rest}/healthz", timeout=5)
        answered = time.monotonic() - started
    print(f"schemathesis over HTTPS: {counts['requests']} requests, {counts['5xx']} 5xx, slowest {slowest:.3f}s, "
          f"/healthz afterwards {answered:.3f}s")
    assert healthz.status_code == 200 and answered < 1.0, (healthz.status_code, answered)
    assert counts["5xx"] == 0 and slowest < 5.0, (counts, slowest)
    assert hub.proc.poll() is None
