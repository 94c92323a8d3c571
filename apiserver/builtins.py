"""The built-in kinds the embedded API server serves, their printer columns and their defaulting.

Defaulting here runs on every write (create, update, patch, apply), as kube-apiserver's does:
Secret `stringData` folds into base64 `data`, Service ports get protocol and targetPort and the
Service a cluster IP, Namespaces get their phase and name label, PVCs start `Pending`.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from typing import Any

from apiserver import errors
from apiserver.resources import Column, Obj, ResourceType
from apiserver.tables import age


def _get(obj: Obj, *path: str) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _count(*path: str) -> Callable[[Obj], Any]:
    return lambda o: len(_get(o, *path) or {})


def _join(values: Any) -> str:
    return ",".join(str(v) for v in values) if values else "<none>"


def _access_modes(modes: Any) -> str:
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or []) or ""


def _service_ports(o: Obj) -> str:
    out = []
    for p in _get(o, "spec", "ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        out.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _external_ip(o: Obj) -> str:
    ingress = _get(o, "status", "loadBalancer", "ingress") or []
    ips = [i.get("ip") or i.get("hostname") for i in ingress]
    ips += _get(o, "spec", "externalIPs") or []
    if ips:
        return ",".join(str(i) for i in ips)
    return "<pending>" if _get(o, "spec", "type") == "LoadBalancer" else "<none>"


def _pod_ready(o: Obj) -> str:
    statuses = _get(o, "status", "containerStatuses") or []
    total = len(_get(o, "spec", "containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _restarts(o: Obj) -> int:
    return sum(int(s.get("restartCount", 0)) for s in _get(o, "status", "containerStatuses") or [])


def _deploy_ready(o: Obj) -> str:
    return f"{_get(o, 'status', 'readyReplicas') or 0}/{_get(o, 'spec', 'replicas') or 0}"


def _job_status(o: Obj) -> str:
    for c in _get(o, "status", "conditions") or []:
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed", "Suspended"):
            return str(c["type"])
    return "Running"


def _job_completions(o: Obj) -> str:
    return f"{_get(o, 'status', 'succeeded') or 0}/{_get(o, 'spec', 'completions') or 1}"


def _event_object(o: Obj) -> str:
    io = o.get("involvedObject") or {}
    return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"


def _event_last_seen(o: Obj) -> str:
    ts = o.get("lastTimestamp") or o.get("eventTime") or _get(o, "metadata", "creationTimestamp")
    return age(ts)


def _col(
    name: str, path: str = "", *, type: str = "string", fn: Callable[[Obj], Any] | None = None, priority: int = 0
) -> Column:
    return Column(name, type, path, compute=fn, priority=priority)


AGE = _col("Age", ".metadata.creationTimestamp", type="date")
CREATED_AT = _col("Created At", ".metadata.creationTimestamp", fn=lambda o: _get(o, "metadata", "creationTimestamp"))


def _rt(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    status: bool = False,
    columns: tuple[Column, ...] = (AGE,),
    categories: tuple[str, ...] = (),
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
    )


BUILTINS: tuple[ResourceType, ...] = (
    _rt("", "v1", "Namespace", "namespaces", False, ("ns",), True, (_col("Status", ".status.phase"), AGE)),
    _rt(
        "",
        "v1",
        "Secret",
        "secrets",
        True,
        (),
        False,
        (_col("Type", ".type"), _col("Data", type="integer", fn=_count("data")), AGE),
    ),
    _rt(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        True,
        ("cm",),
        False,
        (_col("Data", type="integer", fn=lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})), AGE),
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
            _col("Type", ".spec.type"),
            _col("Cluster-IP", ".spec.clusterIP"),
            _col("External-IP", fn=_external_ip),
            _col("Port(s)", fn=_service_ports),
            AGE,
            _col(
                "Selector",
                fn=lambda o: _join(f"{k}={v}" for k, v in (_get(o, "spec", "selector") or {}).items()),
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
            _col("Status", ".status.phase"),
            _col("Volume", ".spec.volumeName"),
            _col("Capacity", ".status.capacity.storage"),
            _col("Access Modes", fn=lambda o: _access_modes(_get(o, "status", "accessModes"))),
            _col("StorageClass", ".spec.storageClassName"),
            _col("VolumeAttributesClass", ".spec.volumeAttributesClassName"),
            AGE,
            _col("VolumeMode", ".spec.volumeMode", priority=1),
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
            _col("Capacity", ".spec.capacity.storage"),
            _col("Access Modes", fn=lambda o: _access_modes(_get(o, "spec", "accessModes"))),
            _col("Reclaim Policy", ".spec.persistentVolumeReclaimPolicy"),
            _col("Status", ".status.phase"),
            _col(
                "Claim",
                fn=lambda o: (
                    f"{_get(o, 'spec', 'claimRef', 'namespace')}/{_get(o, 'spec', 'claimRef', 'name')}"
                    if _get(o, "spec", "claimRef")
                    else ""
                ),
            ),
            _col("StorageClass", ".spec.storageClassName"),
            _col("Reason", ".status.reason"),
            AGE,
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
            _col("Last Seen", fn=_event_last_seen),
            _col("Type", ".type"),
            _col("Reason", ".reason"),
            _col("Object", fn=_event_object),
            _col("Message", ".message"),
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
        (_col("Secrets", type="integer", fn=_count("secrets")), AGE),
    ),
    _rt(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        True,
        (
            _col("Ready", fn=_pod_ready),
            _col("Status", ".status.phase"),
            _col("Restarts", type="integer", fn=_restarts),
            AGE,
            _col("IP", ".status.podIP", priority=1),
            _col("Node", ".spec.nodeName", priority=1),
        ),
        ("all",),
    ),
    _rt("", "v1", "Endpoints", "endpoints", True, ("ep",), False, (AGE,)),
    _rt("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), True, (AGE,)),
    _rt("", "v1", "LimitRange", "limitranges", True, ("limits",), False, (AGE,)),
    _rt("", "v1", "Node", "nodes", False, ("no",), True, (_col("Status", fn=lambda o: "Ready"), AGE)),
    _rt(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        ("deploy",),
        True,
        (
            _col("Ready", fn=_deploy_ready),
            _col("Up-to-date", ".status.updatedReplicas", type="integer"),
            _col("Available", ".status.availableReplicas", type="integer"),
            AGE,
        ),
        ("all",),
    ),
    _rt(
        "batch",
        "v1",
        "Job",
        "jobs",
        True,
        (),
        True,
        (_col("Status", fn=_job_status), _col("Completions", fn=_job_completions), AGE),
        ("all",),
    ),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True, (), False, (CREATED_AT,)),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        True,
        (),
        False,
        (_col("Role", fn=lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}"), AGE),
    ),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, (), False, (CREATED_AT,)),
    _rt(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        False,
        (),
        False,
        (_col("Role", fn=lambda o: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}"), AGE),
    ),
    _rt("coordination.k8s.io", "v1", "Lease", "leases", True, (), False, (_col("Holder", ".spec.holderIdentity"), AGE)),
    _rt(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        False,
        ("sc",),
        False,
        (
            _col("Provisioner", ".provisioner"),
            _col("ReclaimPolicy", ".reclaimPolicy"),
            _col("VolumeBindingMode", ".volumeBindingMode"),
            _col("AllowVolumeExpansion", fn=lambda o: "true" if o.get("allowVolumeExpansion") else "false"),
            AGE,
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
        (CREATED_AT,),
    ),
)

CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_KEY = "/namespaces"

# Strategic-merge-patch is allowed only on these (it is a built-in-only patch type).
STRATEGIC_KINDS = frozenset(rt.key for rt in BUILTINS)


def _default_namespace(obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    labels = meta.get("labels") or {}
    labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    meta["labels"] = labels
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Active")


def _default_secret(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        data = obj.get("data") or {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data


class ServiceIPs:
    """Allocates ClusterIPs from 10.96.0.0/16 for Services that do not ask for one (no routing:
    the embedded default's data paths use the local platform's loopback addresses instead)."""

    def __init__(self) -> None:
        self._net = ipaddress.ip_network("10.96.0.0/16")
        self.used: set[str] = set()

    def allocate(self) -> str:
        for host in self._net.hosts():
            ip = str(host)
            if ip.endswith(".0.1") or ip in self.used:
                continue
            self.used.add(ip)
            return ip
        raise RuntimeError("service IP range exhausted")


def _default_service(obj: Obj, ips: ServiceIPs) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
        spec["clusterIP"] = ips.allocate()
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        ips.used.add(spec["clusterIP"])
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _default_pvc(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_pv(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_pod(obj: Obj) -> None:
    obj.setdefault("status", {}).setdefault("phase", "Pending")


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _check_string_map(kind: str, field: str, value: Any, b64: bool) -> None:
    """kube-apiserver decodes into typed structs: a non-string value, or bad base64 for a []byte
    map, is a 400 before anything else runs (`Secret in version "v1" cannot be handled as a Secret`)."""
    prefix = f'{kind} in version "v1" cannot be handled as a {kind}: '
    if value is None:
        return
    if not isinstance(value, dict):
        raise errors.bad_request(prefix + f"json: cannot unmarshal into Go struct field {kind}.{field}")
    for v in value.values():
        if not isinstance(v, str):
            raise errors.bad_request(
                prefix + f"json: cannot unmarshal {type(v).__name__} into Go struct field {kind}.{field} of type string"
            )
        if b64:
            text = v.replace("\r", "").replace("\n", "")
            bad = next((i for i, c in enumerate(text) if c not in _B64), None)
            if bad is None:
                try:
                    base64.b64decode(text, validate=True)
                except ValueError:  # misplaced padding or an incomplete last quantum
                    bad = len(text) // 4 * 4
            if bad is not None:
                raise errors.bad_request(prefix + f"illegal base64 data at input byte {bad}")


def apply_defaults(rt: ResourceType, obj: Obj, ips: ServiceIPs) -> None:
    """Built-in defaulting, in place. Custom resources are defaulted from their schema instead."""
    if rt.key == "/secrets":
        _check_string_map("Secret", "data", obj.get("data"), b64=True)
        _check_string_map("Secret", "stringData", obj.get("stringData"), b64=False)
    elif rt.key == "/configmaps":
        _check_string_map("ConfigMap", "data", obj.get("data"), b64=False)
        _check_string_map("ConfigMap", "binaryData", obj.get("binaryData"), b64=True)
    if rt.key == NAMESPACE_KEY:
        _default_namespace(obj)
    elif rt.key == "/secrets":
        _default_secret(obj)
    elif rt.key == "/services":
        _default_service(obj, ips)
    elif rt.key == "/persistentvolumeclaims":
        _default_pvc(obj)
    elif rt.key == "/persistentvolumes":
        _default_pv(obj)
    elif rt.key == "/pods":
        _default_pod(obj)
