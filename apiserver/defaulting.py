"""Defaulting and validation of the built-in kinds, run on every write (create, update, patch,
apply) as kube-apiserver's does: Secret `stringData` folds into base64 `data`, Service ports get
protocol and targetPort and the Service a cluster IP, Namespaces get their phase and name label,
PVCs start `Pending`. Custom resources are defaulted from their schema instead (`schema.py`).
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from apiserver import errors
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
