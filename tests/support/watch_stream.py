"""Read a Kubernetes watch stream over raw HTTP: one JSON event per line, bounded by a deadline."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx

Event = dict[str, Any]


def watch_events(
    client: httpx.Client,
    path: str,
    resource_version: str,
    until: Callable[[list[Event]], bool],
    *,
    timeout: float = 10.0,
    params: dict[str, str] | None = None,
) -> list[Event]:
    """Watch `path` from `resource_version`; return the events once `until(events)` holds.

    The server ends the stream after `timeout` seconds (`timeoutSeconds`), so a condition that
    never holds returns what arrived by then and the caller's assertions say what is missing.
    """
    query = {"watch": "true", "resourceVersion": resource_version, "timeoutSeconds": str(math.ceil(timeout))}
    query.update(params or {})
    events: list[Event] = []
    with client.stream("GET", path, params=query, timeout=httpx.Timeout(timeout + 10.0)) as resp:
        assert resp.status_code == 200, resp.read().decode()
        for line in resp.iter_lines():
            if not line.strip():
                continue
            events.append(json.loads(line))
            if until(events):
                break
    return events


def summary(events: list[Event]) -> list[tuple[str, str]]:
    """(type, name) of each event, for readable assertions."""
    return [(e["type"], (e["object"].get("metadata") or {}).get("name", "")) for e in events]
