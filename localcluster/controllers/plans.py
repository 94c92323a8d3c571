"""The plan every workload controller's pure planner returns, and the one executor that applies it.

A planner takes the controlled object and what the caches hold about it and returns a `Plan`: a
tuple of typed actions (create, patch, delete) plus when to look again. `apply_plan` is the only
place where a controller writes: it tolerates what a level-triggered controller must tolerate (an
object already gone, already created, or changed since the cache saw it: the delete precondition
fails and the next reconcile decides again) and records what it created or deleted in the
`Expectations`, so the next reconcile does not act twice on a cache that has not caught up.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import assert_never

from kubernetes.client.exceptions import ApiException

from kube.events import Recorder
from kube.rest import Kube, Obj, Resource
from localcluster.controllers.expectations import Expectations


@dataclass(frozen=True)
class Create:
    """Create `obj` (its metadata carries the namespace and a name or generateName); with `announce`,
    record `SuccessfulCreate` on that object (the owner), as upstream's controllers do."""

    res: Resource
    obj: Obj
    announce: Obj | None = None


@dataclass(frozen=True)
class Patch:
    """A JSON merge patch of an object, or of its status subresource with `status=True`."""

    res: Resource
    namespace: str
    name: str
    patch: Obj
    status: bool = False


@dataclass(frozen=True)
class Delete:
    """Delete an object; `uid` (when given) is a precondition, so a same-named successor survives;
    with `announce`, record `SuccessfulDelete` on that object (the owner)."""

    res: Resource
    namespace: str
    name: str
    uid: str = ""
    propagation: str = "Background"
    announce: Obj | None = None


@dataclass(frozen=True)
class Emit:
    """An Event about `obj` (Normal or Warning), aggregated by the recorder."""

    obj: Obj
    type: str
    reason: str
    message: str


Action = Create | Patch | Delete | Emit


@dataclass(frozen=True)
class Plan:
    """What one reconcile does: `actions` in order, then look again after `requeue` seconds (None: on change)."""

    actions: tuple[Action, ...] = ()
    requeue: float | None = None


def soonest(*delays: float | None) -> float | None:
    """The earliest of several requeue delays (None: no requeue)."""
    present = [max(d, 0.0) for d in delays if d is not None]
    return min(present) if present else None


def apply_plan(kube: Kube, plan: Plan, expectations: Expectations | None = None,
               key: Hashable | None = None, recorder: Recorder | None = None) -> None:
    """Apply `plan`'s actions in order; 404 on patch/delete (and 409 on a delete's uid precondition)
    are no-ops; a 409 on create raises (the runtime retries soon, on a fresher cache)."""
    for action in plan.actions:
        match action:
            case Create(res=res, obj=obj, announce=owner):
                try:
                    created = kube.create(res, obj)
                except ApiException as exc:
                    if owner is not None and recorder is not None and exc.status != 409:
                        recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {_message(exc)}")
                    raise
                name = str((created.get("metadata") or {}).get("name") or "")
                if expectations is not None and key is not None:
                    expectations.created(key, name)
                if owner is not None and recorder is not None:
                    recorder.event(owner, "Normal", "SuccessfulCreate", f"Created {res.kind.lower()}: {name}")
            case Patch(res=res, namespace=ns, name=name, patch=patch, status=status):
                with _tolerating(404):
                    kube.patch(res, name, patch, ns or None, subresource="status" if status else "")
            case Delete(res=res, name=name, announce=owner):
                if not _delete(kube, action):
                    continue  # the uid precondition refused: a successor holds the name, nothing to expect
                if expectations is not None and key is not None:
                    expectations.deleted(key, name)
                if owner is not None and recorder is not None:
                    recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted {res.kind.lower()}: {name}")
            case Emit(obj=obj, type=type_, reason=reason, message=message):
                if recorder is not None:
                    recorder.event(obj, type_, reason, message)
            case _:
                assert_never(action)


def _delete(kube: Kube, action: Delete) -> bool:
    """Delete as `action` says; False when its uid precondition was refused (409), True when deleted or gone."""
    pre = {"uid": action.uid} if action.uid else None
    try:
        kube.delete(action.res, action.name, action.namespace or None, preconditions=pre,
                    propagation=action.propagation)
    except ApiException as exc:
        if exc.status == 409:
            return False
        if exc.status != 404:
            raise
    return True


def _message(exc: ApiException) -> str:
    """The `message` of a Kubernetes Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    return str(body.get("message")) if isinstance(body, dict) and body.get("message") else f"{exc.status} {exc.reason}"


@contextmanager
def _tolerating(*statuses: int) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        if exc.status not in statuses:
            raise
