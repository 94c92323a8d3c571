"""The plan executor: performs each action of a `Plan` (see `plans.py`) against the API and the platform.

`reconciling.py` decides when (`before` actions, the status patch, then `after` actions); this
module knows how: object actions go to the Kubernetes API (a create that finds the object, or a
patch that finds it gone, is not an error), mover actions to the platform, `Emit` to the Event
recorder, `Began`/`Observe` to the iteration log lines and metrics.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent.metrics import Metrics
from agent.plans import (
    Began,
    CancelTransfer,
    Delete,
    Emit,
    EndIteration,
    Ensure,
    ForgetTransfer,
    GenerateKeys,
    Observe,
    Patch,
    Serve,
    StartTransfer,
    StopReceiving,
    StopServing,
)
from agent.platform import Platform
from kube import objects
from kube.events import Recorder
from kube.rest import PVCS, SECRETS, SERVICES, Kube, Resource
from movers import keys as sshkeys

log = logging.getLogger("volsync.iterations")

Obj = dict[str, Any]
CacheLookup = Callable[[Resource, str, str | None], Obj | None]


def labels(role: str, obj: Obj) -> tuple[str, str, str, str]:
    """The metrics labels of a replication object."""
    return (objects.name_of(obj), objects.namespace_of(obj), role, "rsync")


class PlanExecutor:
    """Performs plan actions for the replication controller; `cache` reads its informers."""

    def __init__(self, kube: Kube, platform: Platform, metrics: Metrics, recorder: Recorder,
                 cache: CacheLookup) -> None:
        self.kube = kube
        self.platform = platform
        self.metrics = metrics
        self.recorder = recorder
        self._cache = cache

    def act(self, role: str, obj: Obj, action: Any) -> None:
        ns = objects.namespace_of(obj)
        if isinstance(action, Ensure):
            body = action.obj
            if action.resource is SERVICES:
                body = self.platform.prepare_service(body)
            try:
                self.kube.create(action.resource, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        elif isinstance(action, Patch):
            try:
                self.kube.patch(action.resource, action.name, action.patch, action.namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        elif isinstance(action, Delete):
            pre = {"resourceVersion": action.resource_version} if action.resource_version else None
            self.kube.delete(action.resource, action.name, action.namespace, preconditions=pre)
        elif isinstance(action, Emit):
            self.recorder.event(obj, action.type, action.reason, action.message)
        elif isinstance(action, GenerateKeys):
            generated = sshkeys.generate()
            data = {k: base64.b64encode(v).decode() for k, v in generated.main_secret_data().items()}
            secret = {
                "metadata": {
                    "name": action.name,
                    "namespace": action.namespace,
                    "labels": action.labels,
                    "ownerReferences": [objects.owner_ref(action.owner)],
                },
                "type": "Opaque",
                "data": data,
            }
            try:
                self.kube.create(SECRETS, secret)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        elif isinstance(action, StartTransfer):
            pvc, secret = self._require(PVCS, ns, action.pvc), self._require(SECRETS, ns, action.secret)
            self.platform.start_transfer(action, pvc, secret)
        elif isinstance(action, Serve):
            pvc, secret = self._require(PVCS, ns, action.pvc), self._require(SECRETS, ns, action.secret)
            self.platform.serve(action, pvc, secret)
        elif isinstance(action, ForgetTransfer):
            self.platform.forget_transfer(action.key, action.failed)
            if action.failed:
                self.metrics.failed(labels(role, obj))
        elif isinstance(action, CancelTransfer):
            self.platform.cancel_transfer(action.key)
        elif isinstance(action, StopReceiving):
            self.platform.stop_receiving(action.key, action.iteration)
        elif isinstance(action, EndIteration):
            self.platform.end_iteration(action.key, action.iteration)
        elif isinstance(action, StopServing):
            self.platform.stop_serving(action.key)
        elif isinstance(action, Began):
            log.info("iteration %s of %s %s/%s started (%s)", action.iteration, role,
                     ns, objects.name_of(obj), action.trigger)
        elif isinstance(action, Observe):
            self._observe(role, obj, action)
        else:
            raise TypeError(f"unknown action {action!r}")

    def _observe(self, role: str, obj: Obj, done: Observe) -> None:
        """Metrics for a completed iteration, and one INFO line for every end (of an attempt, too)."""
        if done.succeeded:
            self.metrics.completed(labels(role, obj), done.duration, done.missed)
        sent = "unknown" if done.bytes is None else str(done.bytes)
        what = "ended" if done.succeeded else "attempt ended"
        log.info("iteration %s of %s %s/%s %s: outcome=%s duration=%.3fs bytes=%s", done.iteration, role,
                 objects.namespace_of(obj), objects.name_of(obj), what, done.outcome, done.duration, sent)

    def _require(self, res: Resource, ns: str, name: str) -> Obj:
        obj = self._cache(res, ns, name) or self.kube.get(res, name, ns)
        if obj is None:
            raise ApiException(status=404, reason=f"{res.kind} {ns}/{name} not found")
        return obj
