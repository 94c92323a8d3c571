"""Prometheus metrics of the hub's REST API (prometheus_client, in a registry the caller owns).

Request counts and latencies per route template (never the raw path, so cardinality stays bounded),
reports accepted/stale, heartbeats, and fleet gauges (clusters available/total, replications by
RPO state) that are computed from the fleet store when scraped, at the injected clock's time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from api.hub import Summary
from hub import rpo

PREFIX = "volsync_hub"


class FleetCollector(Collector):
    """Fleet gauges, read from `summary(now)` at scrape time."""

    def __init__(self, summary: Callable[[], Summary]) -> None:
        self._summary = summary

    def collect(self) -> Iterable[Metric]:
        s = self._summary()
        total = GaugeMetricFamily(f"{PREFIX}_clusters", "Managed clusters known to the hub")
        total.add_metric([], s.clusters.total)
        yield total
        available = GaugeMetricFamily(
            f"{PREFIX}_clusters_available", "Clusters whose agent renewed its Lease within the stale period"
        )
        available.add_metric([], s.clusters.available)
        yield available
        states = GaugeMetricFamily(f"{PREFIX}_replications", "Replications by RPO state", labels=["state"])
        counts = s.replications.model_dump()
        for state in rpo.STATES:
            states.add_metric([state], counts[state])
        yield states


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests served", ["method", "route", "code"], registry=registry
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.reports = Counter(f"{PREFIX}_reports", "Replication reports received", ["result"], registry=registry)
        self.heartbeats = Counter(f"{PREFIX}_heartbeats", "Agent heartbeats received", registry=registry)
        for result in ("accepted", "stale"):
            self.reports.labels(result)

    def watch_fleet(self, summary: Callable[[datetime | None], Summary], now: Callable[[], datetime]) -> None:
        self.registry.register(FleetCollector(lambda: summary(now())))

    def reported(self, accepted: int, stale: int) -> None:
        self.reports.labels("accepted").inc(accepted)
        self.reports.labels("stale").inc(stale)

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        route = route_of(request)
        code = 500
        try:
            response = await call_next(request)
            code = response.status_code
            return response
        finally:
            self.requests.labels(request.method, route, str(code)).inc()
            self.latency.labels(request.method, route).observe(time.perf_counter() - started)


def route_of(request: Request) -> str:
    """The path template of the route a request matches ("unmatched" for 404s)."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"
