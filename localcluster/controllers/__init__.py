"""The workload controllers kube-controller-manager would run, each a `Reconciler` on the cluster
process's one controller `Runtime`: Job, Deployment → ReplicaSet → Pods, ReplicationController,
DaemonSet, EndpointSlice and Endpoints.

    controllers.register(runtime, kube)   # before runtime.start()

As kube-controller-manager does, a controller whose resources the API server does not serve is
skipped with a warning (its informers could never sync and would hold up every other controller).
"""

from __future__ import annotations

import logging

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock
from kube.controller import Runtime
from kube.rest import (
    DAEMON_SETS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    ENDPOINTS,
    JOBS,
    NODES,
    PODS,
    REPLICA_SETS,
    REPLICATION_CONTROLLERS,
    SERVICES,
    Kube,
    Resource,
)
from localcluster.controllers.daemonsets import DaemonSetController
from localcluster.controllers.deployments import DeploymentController
from localcluster.controllers.endpoints import EndpointsController, EndpointSliceController
from localcluster.controllers.jobs import JobController
from localcluster.controllers.replicasets import ReplicaSetController, ReplicationControllerController

log = logging.getLogger("localcluster.controllers")

Controller = (JobController | ReplicaSetController | DeploymentController | DaemonSetController
              | EndpointSliceController | EndpointsController)


def served(kube: Kube, res: Resource) -> bool:
    """Whether the API server serves `res` (a list of at most one object answers)."""
    try:
        kube.request("GET", res.path(), query={"limit": 1})
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def register(runtime: Runtime, kube: Kube, *, clock: Clock | None = None) -> None:
    """Register every workload controller whose resources are served on `runtime` (informers shared)."""
    known: dict[Resource, bool] = {}

    def ready(*resources: Resource) -> bool:
        for res in resources:
            if res not in known:
                known[res] = served(kube, res)
        return all(known[r] for r in resources)

    wanted: list[tuple[tuple[Resource, ...], type[Controller]]] = [
        ((JOBS, PODS), JobController),
        ((REPLICA_SETS, PODS), ReplicaSetController),
        ((REPLICATION_CONTROLLERS, PODS), ReplicationControllerController),
        ((DEPLOYMENTS, REPLICA_SETS), DeploymentController),
        ((DAEMON_SETS, PODS, NODES), DaemonSetController),
        ((SERVICES, PODS, ENDPOINT_SLICES), EndpointSliceController),
        ((SERVICES, PODS, ENDPOINTS), EndpointsController),
    ]
    for resources, cls in wanted:
        if ready(*resources):
            runtime.add(cls(runtime, kube, clock))
        else:
            log.warning("%s not started: the API server does not serve %s", cls.__name__,
                        ", ".join(r.plural for r in resources if not known[r]))
