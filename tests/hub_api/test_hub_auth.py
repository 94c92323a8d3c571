"""Who may call what: agent tokens on the agent side, the admin token on the user side; no token in the logs."""

from __future__ import annotations

import base64
import logging

import pytest
from hubkit import Hub, report
from support.waiting import eventually

from hub.tokens import AGENT_TOKEN_SECRET, identify
from kube.rest import SECRETS

BOGUS = "token:not-a-real-token-5f3c9a"
USER_PATHS = ("/api/v1/clusters", "/api/v1/clusters/cluster1", "/api/v1/replications", "/api/v1/summary")


@pytest.mark.parametrize(
    ("who", "expected"),
    [("cluster1", 200), ("cluster2", 403), ("admin", 403), (BOGUS, 401), ("token:", 401)],
)
def test_agent_endpoints(shared_hub: Hub, who: str, expected: int) -> None:
    hub = shared_hub
    beat = hub.client.post(
        "/api/v1/agents/cluster1/heartbeat",
        json={"agentId": "a", "sentAt": "2026-01-01T00:00:00Z"},
        headers=hub.auth(who),
    )
    sent = hub.send("cluster1", report("r1", 1), as_=who)
    assert (beat.status_code, sent.status_code) == (expected, expected), (beat.text, sent.text)
    if expected != 200:
        assert isinstance(beat.json()["detail"], str)
    if expected == 401:
        assert beat.headers["www-authenticate"] == "Bearer"


def test_no_authorization_header_or_another_scheme(shared_hub: Hub) -> None:
    hub = shared_hub
    for headers in ({}, {"Authorization": f"Basic {hub.tokens['cluster1']}"}, {"Authorization": "Bearer"}):
        r = hub.client.post("/api/v1/agents/cluster1/reports", json={"agentId": "a", "reports": []}, headers=headers)
        assert r.status_code == 401, r.text
        assert hub.client.get("/api/v1/summary", headers=headers).status_code == 401


def test_authentication_comes_before_body_validation(shared_hub: Hub) -> None:
    hub = shared_hub
    r = hub.client.post("/api/v1/agents/cluster1/reports", json={"junk": True}, headers=hub.auth(BOGUS))
    assert r.status_code == 401
    r = hub.client.post("/api/v1/agents/cluster1/reports", json={"junk": True}, headers=hub.auth("cluster2"))
    assert r.status_code == 403


@pytest.mark.parametrize(("who", "expected"), [("admin", 200), ("cluster1", 403), ("cluster2", 403), (BOGUS, 401)])
def test_user_endpoints(shared_hub: Hub, who: str, expected: int) -> None:
    hub = shared_hub
    for path in USER_PATHS:
        assert hub.get(path, who).status_code == expected, path


def test_operations_endpoints_are_open(shared_hub: Hub) -> None:
    hub = shared_hub
    for path in ("/healthz", "/readyz", "/metrics"):
        assert hub.client.get(path).status_code == 200, path


def test_a_removed_token_stops_working_and_a_rotated_one_starts(hub: Hub) -> None:
    assert hub.heartbeat("cluster2").status_code == 200
    hub.kube.delete(SECRETS, AGENT_TOKEN_SECRET, "cluster2")
    eventually(lambda: hub.heartbeat("cluster2").status_code == 401, what="deleted token refused")
    hub.kube.patch(SECRETS, AGENT_TOKEN_SECRET, {"data": {"token": base64.b64encode(b"rotated").decode()}}, "cluster1")
    eventually(lambda: hub.heartbeat("cluster1").status_code == 401, what="old token refused")
    assert hub.get("/api/v1/summary", "token:rotated").status_code == 403  # an agent token now
    beat = hub.client.post(
        "/api/v1/agents/cluster1/heartbeat", json={"agentId": "a", "sentAt": "2026-01-01T00:00:00Z"},
        headers=hub.auth("token:rotated"),
    )
    assert beat.status_code == 200


def test_tokens_never_reach_the_logs(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hub.restart()  # informers load the Secrets while the logs are captured
    attempts = [
        (BOGUS, "/api/v1/agents/cluster1/heartbeat"),
        ("cluster1", "/api/v1/agents/cluster2/heartbeat"),
        ("admin", "/api/v1/agents/cluster1/heartbeat"),
    ]
    for who, path in attempts:
        r = hub.client.post(path, json={"agentId": "a", "sentAt": "2026-01-01T00:00:00Z"}, headers=hub.auth(who))
        assert r.status_code in (401, 403)
    assert hub.get("/api/v1/summary", "cluster2").status_code == 403
    assert hub.get("/api/v1/summary", BOGUS).status_code == 401
    logged = caplog.text
    assert "401 POST /api/v1/agents/cluster1/heartbeat" in logged and "403 GET /api/v1/summary" in logged
    secrets = [BOGUS.removeprefix("token:"), hub.admin, *hub.tokens.values()]
    secrets += [base64.b64encode(s.encode()).decode() for s in secrets]
    leaked = [s for s in secrets if s in logged]
    assert not leaked, "a token or its base64 form was logged"


def test_identify_compares_every_candidate() -> None:
    agents = {"a": b"tok-a", "b": b"tok-b"}
    assert identify("tok-b", b"admin", agents).cluster == "b"  # type: ignore[union-attr]
    assert identify("admin", b"admin", agents).kind == "admin"  # type: ignore[union-attr]
    assert identify("tok-c", b"admin", agents) is None
    assert identify("", b"admin", {"x": b""}) is None
    assert identify(None, b"admin", agents) is None
