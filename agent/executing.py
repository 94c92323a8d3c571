"""The plan executor: performs each action of a `Plan` (see `plans.py`) against the API and the mover Jobs.

`reconciling.py` decides when (`before` actions, the status patch, then `after` actions); this
module knows how: object actions go to the Kubernetes API (a create that finds the object, or a
patch that finds it gone, is not an error), mover actions to the mover Jobs (`jobmovers.py`),
`Emit` to the Event recorder, `Began`/`Observe` to the iteration log lines and metrics.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from kubernetes.client.exceptions import ApiException

from agent.jobmovers import JobMovers
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
from kube import objects
from kube.events import Recorder
from kube.rest import SECRETS, Kube
from movers import keys as sshkeys

log = logging.getLogger("volsync.iterations")

Obj = dict[str, Any]


def labels(role: str, obj: Obj) -> tuple[str, str, str, str]:
    """The metrics labels of a replication object."""
    return (objects.name_of(obj), objects.namespace_of(obj), role, "rsync")


class PlanExecutor:
    """Performs plan actions for the replication controller."""

    def __init__(self, kube: Kube, movers: JobMovers, metrics: Metrics, recorder: Recorder) -> None:
        self.kube = kube
        self.movers = movers
        self.metrics = metrics
        self.recorder = recorder

    def act(self, role: str, obj: Obj, action: Any) -> None:
        ns = objects.namespace_of(obj)
        if isinstance(action, Ensure):
            try:
                self.kube.create(action.resource, action.obj)
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
            self.movers.start_transfer(obj, action)
        elif isinstance(action, Serve):
            self.movers.serve(obj, action)
        elif isinstance(action, ForgetTransfer):
            self.movers.forget_transfer(obj, action.key, action.failed)
            if action.failed:
                self.metrics.failed(labels(role, obj))
        elif isinstance(action, CancelTransfer):
            self.movers.cancel_transfer(obj)
        elif isinstance(action, StopReceiving):
            self.movers.stop_receiving(obj, action.iteration)
        elif isinstance(action, EndIteration):
            self.movers.end_iteration(obj, action.iteration)
        elif isinstance(action, StopServing):
            self.movers.forget(action.key)  # its Job and Service go with it (garbage collection)
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
