"""The built-in kinds the embedded API server serves: group, version, names, scope, status
subresource, short names, categories and printer columns (the cells come from `printers.py`).

Defaulting and validation of these kinds on every write live in `defaulting.py`.
"""

from __future__ import annotations

from apiserver import printers as p
from apiserver import workloadprinters as w
from apiserver.resources import Column, ResourceType


def _rt(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    status: bool = False,
    columns: tuple[Column, ...] = (p.AGE,),
    categories: tuple[str, ...] = (),
    subresources: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        versions=(version,),
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short,
        has_status=status,
        columns=columns,
        builtin=True,
        categories=categories,
        subresources=subresources,
    )


BUILTINS: tuple[ResourceType, ...] = (
    _rt("", "v1", "Namespace", "namespaces", False, ("ns",), True, (p.col("Status", ".status.phase"), p.AGE)),
    _rt(
        "",
        "v1",
        "Secret",
        "secrets",
        True,
        (),
        False,
        (p.col("Type", ".type"), p.col("Data", type="integer", fn=p.count("data")), p.AGE),
    ),
    _rt(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        True,
        ("cm",),
        False,
        (p.col("Data", type="integer", fn=lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})), p.AGE),
    ),
    _rt(
        "",
        "v1",
        "Service",
        "services",
        True,
        ("svc",),
        True,
        (
            p.col("Type", ".spec.type"),
            p.col("Cluster-IP", ".spec.clusterIP"),
            p.col("External-IP", fn=p.external_ip),
            p.col("Port(s)", fn=p.service_ports),
            p.AGE,
            p.col(
                "Selector",
                fn=lambda o: p.join(f"{k}={v}" for k, v in (p.get(o, "spec", "selector") or {}).items()),
                priority=1,
            ),
        ),
        ("all",),
    ),
    _rt(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        ("pvc",),
        True,
        (
            p.col("Status", ".status.phase"),
            p.col("Volume", ".spec.volumeName"),
            p.col("Capacity", ".status.capacity.storage"),
            p.col("Access Modes", fn=lambda o: p.access_modes(p.get(o, "status", "accessModes"))),
            p.col("StorageClass", ".spec.storageClassName"),
            p.col("VolumeAttributesClass", ".spec.volumeAttributesClassName"),
            p.AGE,
            p.col("VolumeMode", ".spec.volumeMode", priority=1),
        ),
    ),
    _rt(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        False,
        ("pv",),
        True,
        (
            p.col("Capacity", ".spec.capacity.storage"),
            p.col("Access Modes", fn=lambda o: p.access_modes(p.get(o, "spec", "accessModes"))),
            p.col("Reclaim Policy", ".spec.persistentVolumeReclaimPolicy"),
            p.col("Status", ".status.phase"),
            p.col(
                "Claim",
                fn=lambda o: (
                    f"{p.get(o, 'spec', 'claimRef', 'namespace')}/{p.get(o, 'spec', 'claimRef', 'name')}"
                    if p.get(o, "spec", "claimRef")
                    else ""
                ),
            ),
            p.col("StorageClass", ".spec.storageClassName"),
            p.col("Reason", ".status.reason"),
            p.AGE,
        ),
    ),
    _rt(
        "",
        "v1",
        "Event",
        "events",
        True,
        ("ev",),
        False,
        (
            p.col("Last Seen", fn=p.event_last_seen),
            p.col("Type", ".type"),
            p.col("Reason", ".reason"),
            p.col("Object", fn=p.event_object),
            p.col("Message", ".message"),
        ),
    ),
    _rt(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        True,
        ("sa",),
        False,
        (p.col("Secrets", type="integer", fn=p.count("secrets")), p.AGE),
        (),
        ("token",),  # TokenRequest, answered by server.py / satokens.py
    ),
    _rt("", "v1", "Pod", "pods", True, ("po",), True, w.POD_COLUMNS, ("all",), ("binding",)),
    _rt("", "v1", "Endpoints", "endpoints", True, ("ep",), False, (p.AGE,)),
    _rt("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), True, (p.AGE,)),
    _rt("", "v1", "LimitRange", "limitranges", True, ("limits",), False, (p.AGE,)),
    _rt("", "v1", "Node", "nodes", False, ("no",), True, p.NODE_COLUMNS),
    _rt(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        True,
        ("rc",),
        True,
        w.REPLICA_COLUMNS,
        ("all",),
        ("scale",),
    ),
    _rt("apps", "v1", "Deployment", "deployments", True, ("deploy",), True, w.DEPLOYMENT_COLUMNS, ("all",), ("scale",)),
    _rt("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), True, w.REPLICA_COLUMNS, ("all",), ("scale",)),
    _rt("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), True, w.DAEMONSET_COLUMNS, ("all",)),
    _rt("batch", "v1", "Job", "jobs", True, (), True, w.JOB_COLUMNS, ("all",)),
    _rt("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, (), False, p.ENDPOINTSLICE_COLUMNS),
    _rt(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        False,
        (),
        True,
        p.APISERVICE_COLUMNS,
        ("api-extensions",),
    ),
    _rt("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False, (), False, p.CSIDRIVER_COLUMNS),
    _rt(
        "storage.k8s.io",
        "v1",
        "CSIStorageCapacity",
        "csistoragecapacities",
        True,
        (),
        False,
        p.CSISTORAGECAPACITY_COLUMNS,
    ),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True, (), False, (p.CREATED_AT,)),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        True,
        (),
        False,
        (p.col("Role", fn=lambda o: f"{p.get(o, 'roleRef', 'kind')}/{p.get(o, 'roleRef', 'name')}"), p.AGE),
    ),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, (), False, (p.CREATED_AT,)),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        False,
        (),
        False,
        (p.col("Role", fn=lambda o: f"{p.get(o, 'roleRef', 'kind')}/{p.get(o, 'roleRef', 'name')}"), p.AGE),
    ),
    _rt(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        True,
        (),
        False,
        (p.col("Holder", ".spec.holderIdentity"), p.AGE),
    ),
    _rt(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        False,
        ("sc",),
        False,
        (
            p.col("Provisioner", ".provisioner"),
            p.col("ReclaimPolicy", ".reclaimPolicy"),
            p.col("VolumeBindingMode", ".volumeBindingMode"),
            p.col("AllowVolumeExpansion", fn=lambda o: "true" if o.get("allowVolumeExpansion") else "false"),
            p.AGE,
        ),
    ),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        True,
        (p.CREATED_AT,),
    ),
)

CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_KEY = "/namespaces"

# Strategic-merge-patch is allowed only on these (it is a built-in-only patch type).
STRATEGIC_KINDS = frozenset(rt.key for rt in BUILTINS)
