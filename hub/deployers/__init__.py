"""How the agent's manifests reach a managed cluster: the `Deployer` protocol.

A deployer takes the rendered manifests of one cluster and makes them so, then says what it knows
of the result (`DeployState`). There is one: `manifestwork.py` writes an OCM ManifestWork and reads
its status back, on a real OCM hub (the klusterlet's work agent applies it) as on the embedded
default (its managed clusters run an OCM-style work agent, `localcluster/ocm`). The protocol stays
the seam the addon controller (`hub/addons.py`) is written against, so its tests can step a
deployer of their own. The controller calls `apply` on every reconcile of an MCA, so `apply` must
be cheap and write nothing when nothing changed, and `remove` when the MCA is gone. `apply` raises
when it could not hand the manifests over at all (the MCA then says ManifestApplied=False,
ManifestWorkApplyFailed, and the controller retries)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]


@dataclass(frozen=True)
class DeployState:
    """What a deployer knows: None means "not known yet" (no report from the cluster so far)."""

    applied: bool | None = None  # the manifests are applied on the cluster
    available: bool | None = None  # the agent Deployment is ready (ReadyReplicas == Replicas)
    message: str = ""


class Deployer(Protocol):
    def apply(self, cluster: str, mca: Obj, manifests: list[Obj]) -> DeployState:
        """Make `manifests` the agent's deployment on `cluster` (owned by `mca`); what is known of it."""
        ...

    def remove(self, cluster: str) -> None:
        """The addon is gone from `cluster`: stop and remove the agent (idempotent)."""
        ...
