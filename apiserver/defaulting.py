"""Defaulting and validation of the built-in kinds, run on every write (create, update, patch,
apply) as kube-apiserver's does: Secret `stringData` folds into base64 `data`, Service ports get
protocol and targetPort and the Service a cluster IP, Namespaces get their phase and name label,
PVCs start `Pending`. Custom resources are defaulted from their schema instead (`schema.py`).
"""

from __future__ import annotations

import base64
from typing import Any

from apiserver import (
    apiservices,
    errors,
    metadata,
    podshapes,
    podspecs,
    podvalidation,
    quantities,
    workloaddefaults,
)
from apiserver.builtins import NAMESPACE_KEY
from apiserver.resources import Obj, ResourceType


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


def _default_service(obj: Obj) -> None:
    """Ports and policies; the addresses (clusterIP, nodePorts) are allocated by `serviceips.py`."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
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


def _default_endpointslice(obj: Obj) -> None:
    """Each port gets `name: ""` and `protocol: TCP`, as upstream's EndpointPort defaulter."""
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("name", "")
            port.setdefault("protocol", "TCP")


def _default_pod(obj: Obj) -> None:
    """Defaults, then ValidatePodCreate's spec part: a 422 names the metadata's problems first, as upstream."""
    podshapes.check_pod_spec("Pod", obj.get("spec"), "spec")
    quantities.check_quantities("Pod", obj.get("spec"))
    podspecs.default_pod(obj)
    causes = podvalidation.pod_causes(obj)
    if causes:
        meta = obj.get("metadata") or {}
        causes = metadata.validate(meta, namespace_kind=False, namespaced=True) + causes
        raise errors.invalid("Pod", "", meta.get("name", ""), causes)


def warnings(rt: ResourceType, obj: Obj) -> list[str]:
    """What kube-apiserver admits a Pod or a workload's template with, but warns about."""
    if rt.key == "/pods":
        return podvalidation.spec_warnings(obj.get("spec"), "spec")
    if rt.key in workloaddefaults.WORKLOAD_KINDS:
        template = (obj.get("spec") or {}).get("template") or {}
        return podvalidation.spec_warnings(template.get("spec"), "spec.template.spec")
    return []


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


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
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
        _default_service(obj)
    elif rt.key == "/persistentvolumeclaims":
        _default_pvc(obj)
    elif rt.key == "/persistentvolumes":
        _default_pv(obj)
    elif rt.key == "/pods":
        _default_pod(obj)
    elif rt.key == "discovery.k8s.io/endpointslices":
        _default_endpointslice(obj)
    elif rt.key == apiservices.KEY:
        apiservices.default_status(obj)
    elif rt.key in workloaddefaults.WORKLOAD_KINDS:
        workloaddefaults.default_and_validate(rt, obj)
