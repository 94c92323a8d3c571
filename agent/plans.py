"""What a reconcile decided: actions on objects and movers, one status patch, when to look again.

The replication state machines (`source.py`, `destination.py`) are pure: they take an observed
view and return a `Plan`. `reconciling.py` applies it: `before` actions in order, then the status
patch once, then `after` actions (so, for example, a new image is published before the previous
one is deleted). Mover actions go to the platform; object actions to the Kubernetes API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kube.rest import Resource

Obj = dict[str, Any]


@dataclass(frozen=True)
class Ensure:
    """Create the object if it does not exist; never overwrite an existing one."""

    resource: Resource
    obj: Obj


@dataclass(frozen=True)
class Patch:
    """Merge-patch an existing object (labels, annotations, owner references)."""

    resource: Resource
    namespace: str
    name: str
    patch: Obj


@dataclass(frozen=True)
class Delete:
    resource: Resource
    namespace: str
    name: str
    resource_version: str = ""  # a precondition when set


@dataclass(frozen=True)
class Emit:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class GenerateKeys:
    """Create the key-authority Secret with a new key pair, if absent (the only non-pure step)."""

    namespace: str
    name: str
    owner: Obj
    labels: Obj


@dataclass(frozen=True)
class StartTransfer:
    """Source side: push the data of `pvc` to `address:port` for this iteration."""

    key: str
    iteration: str
    pvc: str
    namespace: str
    address: str
    port: int
    secret: str


@dataclass(frozen=True)
class ForgetTransfer:
    key: str
    failed: bool = False  # a failure: the next start waits for the retry backoff


@dataclass(frozen=True)
class CancelTransfer:
    key: str


@dataclass(frozen=True)
class Serve:
    """Destination side: sshd up on `address:port`, receiving into `pvc` for this iteration."""

    key: str
    iteration: str
    pvc: str
    namespace: str
    address: str
    port: int
    secret: str


@dataclass(frozen=True)
class StopReceiving:
    """Refuse data for this iteration (the image is being preserved or the object is paused)."""

    key: str
    iteration: str


@dataclass(frozen=True)
class EndIteration:
    """Forget this iteration's completion signal: the next iteration starts clean."""

    key: str
    iteration: str


@dataclass(frozen=True)
class StopServing:
    key: str


@dataclass(frozen=True)
class Began:
    """An iteration started (its status patch landed): logged at INFO."""

    iteration: str
    trigger: str  # what started it, e.g. "manual 'x'", "schedule", "continuous", "initial"


@dataclass(frozen=True)
class Observe:
    """How an iteration (or one attempt of it) ended: metrics when it succeeded, a log line always."""

    duration: float
    missed: bool
    succeeded: bool
    iteration: str = ""
    bytes: int | None = None  # bytes sent, when the mover reports it
    outcome: str = "Successful"  # Successful | Failed (an attempt; the iteration retries)


Action = (
    Ensure
    | Patch
    | Delete
    | Emit
    | GenerateKeys
    | StartTransfer
    | ForgetTransfer
    | CancelTransfer
    | Serve
    | StopReceiving
    | EndIteration
    | StopServing
    | Began
    | Observe
)


@dataclass
class Plan:
    before: list[Action] = field(default_factory=list)
    status: Obj | None = None  # merge patch for .status (None: leave it)
    after: list[Action] = field(default_factory=list)
    requeue_after: float | None = None  # seconds; None: wait for the next change
    error: str | None = None  # a reconcile error: requeued with backoff

    def wait(self, seconds: float) -> Plan:
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)
        return self
