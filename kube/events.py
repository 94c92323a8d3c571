"""Kubernetes Events about an object, aggregated like client-go's recorder.

Repeats of the same (object, type, reason, message) bump `count` and `lastTimestamp` on one Event
instead of creating a new one, so `kubectl describe` shows "x5 over 3m" rather than a flood.
Recording never raises: an Event is a courtesy, losing one must not fail a reconcile.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube import objects
from kube.clock import Clock, SystemClock, rfc3339
from kube.rest import EVENTS, Kube

log = logging.getLogger("kube.events")


class Recorder:
    def __init__(self, kube: Kube, component: str, *, host: str = "", clock: Clock | None = None) -> None:
        self.kube = kube
        self.component = component
        self.host = host
        self.clock = clock or SystemClock()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        ns = objects.namespace_of(obj) or "default"
        digest = hashlib.sha256(f"{objects.uid_of(obj)}/{type_}/{reason}/{message}".encode()).hexdigest()[:10]
        name = objects.short_name(f"{objects.name_of(obj)}.{digest}", 253)
        now = rfc3339(self.clock.now())
        try:
            current = self.kube.get(EVENTS, name, ns)
            if current is not None:
                self.kube.patch(EVENTS, name, {"count": int(current.get("count") or 1) + 1, "lastTimestamp": now}, ns)
                return
            self.kube.create(
                EVENTS,
                {
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": {
                        "apiVersion": obj.get("apiVersion", ""),
                        "kind": obj.get("kind", ""),
                        "name": objects.name_of(obj),
                        "namespace": objects.namespace_of(obj),
                        "uid": objects.uid_of(obj),
                        "resourceVersion": objects.meta(obj).get("resourceVersion", ""),
                    },
                    "reason": reason,
                    "message": message[:1024],
                    "type": type_,
                    "count": 1,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "source": {"component": self.component, "host": self.host},
                    "reportingComponent": self.component,
                    "reportingInstance": self.host,
                },
                ns,
            )
        except (ApiException, OSError) as exc:
            log.warning("could not record event %s/%s on %s: %s", type_, reason, objects.name_of(obj), exc)
