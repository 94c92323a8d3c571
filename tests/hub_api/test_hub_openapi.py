"""The REST contract: the OpenAPI document is pinned, and requests generated from it never get a 5xx."""

from __future__ import annotations

import difflib
import json
import os
import time
from pathlib import Path
from typing import Any

import kubernetes
import schemathesis
from hubkit import AppClient, Hub
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from schemathesis import GenerationMode

from hub.fleet import FleetStore
from hub.limits import RestLimits
from hub.rest import create_app
from hub.tokens import TokenStore
from kube.clock import FakeClock, rfc3339
from kube.rest import Kube

PINNED = Path(__file__).with_name("openapi.json")


def current_document() -> dict[str, Any]:
    kube = Kube(kubernetes.client.ApiClient())  # never used: nothing is started
    clock = FakeClock()
    app = create_app(FleetStore(kube, clock=clock), TokenStore(kube, "unused"), clock=clock,
                     metrics_registry=CollectorRegistry())
    return app.openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def test_openapi_document_is_pinned() -> None:
    current = render(current_document())
    if os.environ.get("UPDATE_OPENAPI") == "1":
        PINNED.write_text(current)
    pinned = PINNED.read_text() if PINNED.exists() else ""
    if current != pinned:
        diff = "".join(difflib.unified_diff(
            pinned.splitlines(keepends=True), current.splitlines(keepends=True),
            fromfile=f"{PINNED.name} (pinned)", tofile="app.openapi() (current)", n=2,
        ))
        raise AssertionError(
            "The hub's REST contract changed. If that is intended, regenerate the pinned document with\n"
            "  UPDATE_OPENAPI=1 .venv/bin/python -m pytest tests/hub_api/test_hub_openapi.py -k pinned\n"
            f"and review the change in git. Diff:\n{diff}"
        )


def test_generated_requests_never_get_a_server_error(hub: Hub, record_property: Any) -> None:
    """Schemathesis over every operation (valid and negative cases), agent endpoints with valid tokens and
    random bodies, on an app with small caps so the 413/429 paths are reached: no 5xx, no request slow
    enough to be a hang, and /healthz answers promptly afterwards."""
    app = create_app(hub.fleet, hub.token_store, clock=hub.clock, metrics_registry=CollectorRegistry(),
                     limits=RestLimits(max_replications=5, max_report_bytes=2048))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: dict[str, set[int]] = {}
    counts = {"requests": 0, "5xx": 0}
    slowest = 0.0

    cases = schema.as_strategy() | schema.as_strategy(GenerationMode.NEGATIVE)

    @settings(max_examples=500, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases, own_cluster=st.sampled_from([None, "cluster1", "cluster2"]))
    def call(case: Any, own_cluster: str | None) -> None:
        nonlocal slowest
        path = case.operation.path
        if path.startswith("/api/v1/agents/"):
            if own_cluster is not None:  # two thirds of the time: past authorization, into validation and the store
                case.path_parameters["cluster"] = own_cluster
                if path.endswith("/heartbeat") and isinstance(case.body, dict) and "sentAt" in case.body:
                    case.body["sentAt"] = rfc3339(hub.clock.now())  # a fresh one, to reach the Lease too
            headers = hub.auth(own_cluster or "cluster1")
        else:
            headers = hub.auth("admin")
        started = time.monotonic()
        response = case.call(headers=headers)
        slowest = max(slowest, time.monotonic() - started)
        counts["requests"] += 1
        counts["5xx"] += response.status_code >= 500
        seen.setdefault(f"{case.method} {path}", set()).add(response.status_code)
        where = f"{case.method} {case.formatted_path}"
        assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"

    call()
    started = time.monotonic()
    healthz = AppClient(app).get("/healthz")
    answered = time.monotonic() - started
    record_property("schemathesis", {**counts, "slowest_s": round(slowest, 3), "healthz_after_s": round(answered, 3)})
    print(f"schemathesis: {counts['requests']} requests, {counts['5xx']} 5xx, slowest {slowest:.3f}s, "
          f"/healthz afterwards {answered:.3f}s; statuses {sorted(seen.items())}")
    assert healthz.status_code == 200 and answered < 1.0, (healthz.status_code, answered)
    assert counts["5xx"] == 0 and slowest < 5.0, (counts, slowest)
    operations = {f"{op.method.upper()} {op.path}" for op in (r.ok() for r in schema.get_all_operations())}
    assert set(seen) == operations, f"operations never exercised: {operations - set(seen)}"
    assert 200 in seen["POST /api/v1/agents/{cluster}/reports"], seen
