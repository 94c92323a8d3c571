"""The workload controllers kube-controller-manager would run, each a `Reconciler` on the cluster
process's one controller `Runtime`: Job, Deployment → ReplicaSet → Pods, ReplicationController,
DaemonSet, EndpointSlice and Endpoints.

    controllers.register(runtime, kube)   # before runtime.start()
"""

from __future__ import annotations

from kube.clock import Clock
from kube.controller import Runtime
from kube.rest import Kube


def register(runtime: Runtime, kube: Kube, *, clock: Clock | None = None) -> None:
    """Register every workload controller on `runtime` (their informers are shared through it)."""
    from localcluster.controllers.jobs import JobController

    for controller in (JobController(runtime, kube, clock),):
        runtime.add(controller)
