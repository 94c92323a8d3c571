"""Decode the Kubernetes protobuf request bodies that kubectl sends into JSON-shaped dicts.

kubectl >= 1.32 POSTs ``application/vnd.kubernetes.protobuf`` for its generator commands
(``create namespace|secret|configmap|service|deployment|job|cronjob|role|...``, ``autoscale``,
``create token``, ``auth can-i``, ``auth whoami``); older kubectl, ``create -f``, ``apply``,
``run`` and ``expose`` send JSON.  The server only speaks JSON internally, so this module turns
such a body into the dict kube-apiserver would have received had the client sent JSON.

Wire format: the 4 magic bytes ``k8s\\x00`` followed by a ``runtime.Unknown`` message
``{typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3, contentType=4}``; ``raw`` holds
the object's own protobuf encoding (gogo-protobuf, proto2 field numbers from k8s.io/api's
``generated.proto``).

JSON shaping rules, mirroring Go's ``encoding/json`` on the k8s types:

* gogo writes every non-pointer field, even when zero.  A zero string/int/bool is dropped
  (``omitempty``) unless the field is marked ``keep`` (pointer fields, and fields whose JSON tag
  has no ``omitempty``, such as ``PodDisruptionBudgetStatus.currentHealthy``).
* A nested message present on the wire is emitted, as ``{}`` when empty (Go never omits a
  struct; a nil pointer is simply absent from the wire).
* ``metav1.Time`` becomes RFC 3339 text, and is dropped when zero (Go writes ``null``).
* ``bytes`` (Secret ``data``, ConfigMap ``binaryData``) become standard base64 strings.
* ``IntOrString`` becomes an int or a str; ``resource.Quantity`` becomes its string.
* Empty lists and maps are never on the wire, so they are absent (Go's ``null`` or omitted).
* Fields marked ``inline`` (embedded Go structs, e.g. ``LocalObjectReference`` in
  ``SecretKeySelector``, ``VolumeSource`` in ``Volume``) are merged into their parent.

Fields not in the tables are skipped (logged at DEBUG), like gogo's own unmarshaller does.
Adding a kind is a table entry: list its messages in ``_MESSAGES`` and map its
``(apiVersion, kind)`` to the top-level message in ``_KINDS``.

Field numbers were checked against bodies captured from kubectl 1.32.4
(``tests/fixtures/protobuf``): every field a kubectl generator sets, plus, via
``create job --from=cronjob``, nearly all of ObjectMeta, JobSpec and the pod template.  The rest
(mostly ``status`` sub-fields and spec fields no generator sets, e.g. ``ServiceSpec.ipFamilies``)
follow k8s.io/api's ``generated.proto``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = ["MAGIC", "PROTOBUF", "ProtobufError", "decode", "supported_kinds"]

PROTOBUF: Final = "application/vnd.kubernetes.protobuf"
MAGIC: Final = b"k8s\x00"

_log = logging.getLogger(__name__)


class ProtobufError(ValueError):
    """The body is not a Kubernetes protobuf envelope this module can decode."""


# --------------------------------------------------------------------------------------------
# Wire reader
# --------------------------------------------------------------------------------------------

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5  # wire types 3/4 (groups) are not used by k8s
_WIRE_NAMES: Final = {0: "varint", 1: "fixed64", 2: "length-delimited", 5: "fixed32"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return (value, next position)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for every field of one message.

    Varints are returned as non-negative ints; length-delimited fields as bytes; fixed32/64
    as their little-endian unsigned value (nothing in the k8s API uses them, they are skipped).
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0 is invalid")
        value: int | bytes
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            if size > end - pos:
                raise ProtobufError(f"field {number}: length {size} exceeds the remaining {end - pos} bytes")
            value = buf[pos : pos + size]
            pos += size
        elif wire in (_FIXED64, _FIXED32):
            width = 8 if wire == _FIXED64 else 4
            if width > end - pos:
                raise ProtobufError(f"field {number}: truncated fixed{width * 8}")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        else:
            raise ProtobufError(f"field {number}: unsupported wire type {wire}")
        yield number, wire, value


# --------------------------------------------------------------------------------------------
# Declarative schema
# --------------------------------------------------------------------------------------------

# Scalar kinds.  Everything else names a message in _MESSAGES.
STRING: Final = "string"
BYTES: Final = "bytes"  # base64 in JSON
INT: Final = "int"  # int32 / int64 (two's complement varint)
BOOL: Final = "bool"
QUANTITY: Final = "quantity"  # resource.Quantity {string=1} -> "500m"
INT_OR_STRING: Final = "intorstring"  # intstr.IntOrString {type=1, intVal=2, strVal=3}
TIME: Final = "time"  # metav1.Time {seconds=1, nanos=2} -> RFC 3339, zero -> absent
RAW_JSON: Final = "rawjson"  # runtime.RawExtension / metav1.FieldsV1 {raw=1} -> parsed JSON

_VARINT_KINDS: Final = frozenset({INT, BOOL})
_SPECIAL_MESSAGES: Final = frozenset({QUANTITY, INT_OR_STRING, TIME, RAW_JSON})
# Kinds whose zero value Go's ``omitempty`` drops; messages (even IntOrString 0 or
# Quantity "0") are structs, which Go always writes once they are on the wire.
_OMITEMPTY: Final = frozenset({STRING, BYTES}) | _VARINT_KINDS


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # JSON name
    kind: str  # a scalar kind above, or a message name from _MESSAGES
    repeated: bool = False
    map_of: bool = False  # map<string, kind>
    keep: bool = False  # emit zero values too (pointer field or JSON tag without omitempty)
    inline: bool = False  # embedded struct: merge the decoded dict into the parent


def _f(name: str, kind: str = STRING, *, keep: bool = False) -> _Field:
    """A singular field."""
    return _Field(name, kind, keep=keep)


def _k(name: str, kind: str = STRING) -> _Field:
    """A singular field that is emitted even when zero (pointer or no ``omitempty``)."""
    return _Field(name, kind, keep=True)


def _r(name: str, kind: str = STRING) -> _Field:
    """A repeated field (JSON list)."""
    return _Field(name, kind, repeated=True)


def _m(name: str, kind: str = STRING) -> _Field:
    """A ``map<string, kind>`` field (JSON object)."""
    return _Field(name, kind, map_of=True)


def _inline(kind: str) -> _Field:
    """An embedded struct whose JSON fields live in the parent object."""
    return _Field("", kind, inline=True)


_Table = dict[int, _Field]

_META: Final[dict[str, _Table]] = {
    "ObjectMeta": {
        1: _f("name"),
        2: _f("generateName"),
        3: _f("namespace"),
        4: _f("selfLink"),
        5: _f("uid"),
        6: _f("resourceVersion"),
        7: _f("generation", INT),
        8: _f("creationTimestamp", TIME),
        9: _f("deletionTimestamp", TIME),
        10: _k("deletionGracePeriodSeconds", INT),
        11: _m("labels"),
        12: _m("annotations"),
        13: _r("ownerReferences", "OwnerReference"),
        14: _r("finalizers"),
        17: _r("managedFields", "ManagedFieldsEntry"),
    },
    "OwnerReference": {
        5: _k("apiVersion"),
        1: _k("kind"),
        3: _k("name"),
        4: _k("uid"),
        6: _k("controller", BOOL),
        7: _k("blockOwnerDeletion", BOOL),
    },
    "ManagedFieldsEntry": {
        1: _f("manager"),
        2: _f("operation"),
        3: _f("apiVersion"),
        4: _f("time", TIME),
        6: _f("fieldsType"),
        7: _f("fieldsV1", RAW_JSON),
        8: _f("subresource"),
    },
    "LabelSelector": {1: _m("matchLabels"), 2: _r("matchExpressions", "LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: _k("key"), 2: _k("operator"), 3: _r("values")},
    "Condition": {
        1: _k("type"),
        2: _k("status"),
        3: _f("observedGeneration", INT),
        4: _k("lastTransitionTime", TIME),
        5: _k("reason"),
        6: _k("message"),
    },
}

_CORE: Final[dict[str, _Table]] = {
    # --- Namespace, Secret, ConfigMap, ServiceAccount, ResourceQuota ---
    "Namespace": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "NamespaceSpec"), 3: _f("status", "NamespaceStatus")},
    "NamespaceSpec": {1: _r("finalizers")},
    "NamespaceStatus": {1: _f("phase")},
    "Secret": {
        1: _f("metadata", "ObjectMeta"),
        5: _k("immutable", BOOL),
        2: _m("data", BYTES),
        4: _m("stringData"),
        3: _f("type"),
    },
    "ConfigMap": {
        1: _f("metadata", "ObjectMeta"),
        4: _k("immutable", BOOL),
        2: _m("data"),
        3: _m("binaryData", BYTES),
    },
    "ServiceAccount": {
        1: _f("metadata", "ObjectMeta"),
        2: _r("secrets", "ObjectReference"),
        3: _r("imagePullSecrets", "LocalObjectReference"),
        4: _k("automountServiceAccountToken", BOOL),
    },
    "ObjectReference": {
        1: _f("kind"),
        2: _f("namespace"),
        3: _f("name"),
        4: _f("uid"),
        5: _f("apiVersion"),
        6: _f("resourceVersion"),
        7: _f("fieldPath"),
    },
    "LocalObjectReference": {1: _f("name")},
    "TypedLocalObjectReference": {1: _k("apiGroup"), 2: _k("kind"), 3: _k("name")},
    "ResourceQuota": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "ResourceQuotaSpec"),
        3: _f("status", "ResourceQuotaStatus"),
    },
    "ResourceQuotaSpec": {1: _m("hard", QUANTITY), 2: _r("scopes"), 3: _f("scopeSelector", "ScopeSelector")},
    "ScopeSelector": {1: _r("matchExpressions", "ScopedResourceSelectorRequirement")},
    "ScopedResourceSelectorRequirement": {1: _k("scopeName"), 2: _k("operator"), 3: _r("values")},
    "ResourceQuotaStatus": {1: _m("hard", QUANTITY), 2: _m("used", QUANTITY)},
    # --- Service ---
    "Service": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "ServiceSpec"), 3: _f("status", "ServiceStatus")},
    "ServiceSpec": {
        1: _r("ports", "ServicePort"),
        2: _m("selector"),
        3: _f("clusterIP"),
        18: _r("clusterIPs"),
        4: _f("type"),
        5: _r("externalIPs"),
        7: _f("sessionAffinity"),
        8: _f("loadBalancerIP"),
        9: _r("loadBalancerSourceRanges"),
        10: _f("externalName"),
        11: _f("externalTrafficPolicy"),
        12: _f("healthCheckNodePort", INT),
        13: _f("publishNotReadyAddresses", BOOL),
        14: _f("sessionAffinityConfig", "SessionAffinityConfig"),
        19: _r("ipFamilies"),
        17: _k("ipFamilyPolicy"),
        20: _k("allocateLoadBalancerNodePorts", BOOL),
        21: _k("loadBalancerClass"),
        22: _k("internalTrafficPolicy"),
        23: _k("trafficDistribution"),
    },
    "ServicePort": {
        1: _f("name"),
        2: _f("protocol"),
        6: _k("appProtocol"),
        3: _k("port", INT),
        4: _f("targetPort", INT_OR_STRING),
        5: _f("nodePort", INT),
    },
    "SessionAffinityConfig": {1: _f("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: _k("timeoutSeconds", INT)},
    "ServiceStatus": {1: _f("loadBalancer", "LoadBalancerStatus"), 2: _r("conditions", "Condition")},
    "LoadBalancerStatus": {1: _r("ingress", "LoadBalancerIngress")},
    "LoadBalancerIngress": {1: _f("ip"), 2: _f("hostname"), 3: _k("ipMode"), 4: _r("ports", "PortStatus")},
    "PortStatus": {1: _k("port", INT), 2: _k("protocol"), 3: _k("error")},
}

_POD: Final[dict[str, _Table]] = {
    "PodTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec")},
    "PodSpec": {
        1: _r("volumes", "Volume"),
        20: _r("initContainers", "Container"),
        2: _r("containers", "Container"),
        3: _f("restartPolicy"),
        4: _k("terminationGracePeriodSeconds", INT),
        5: _k("activeDeadlineSeconds", INT),
        6: _f("dnsPolicy"),
        7: _m("nodeSelector"),
        8: _f("serviceAccountName"),
        9: _f("serviceAccount"),
        21: _k("automountServiceAccountToken", BOOL),
        10: _f("nodeName"),
        11: _f("hostNetwork", BOOL),
        12: _f("hostPID", BOOL),
        13: _f("hostIPC", BOOL),
        27: _k("shareProcessNamespace", BOOL),
        14: _f("securityContext", "PodSecurityContext"),
        15: _r("imagePullSecrets", "LocalObjectReference"),
        16: _f("hostname"),
        17: _f("subdomain"),
        18: _f("affinity", "Affinity"),
        19: _f("schedulerName"),
        22: _r("tolerations", "Toleration"),
        23: _r("hostAliases", "HostAlias"),
        24: _f("priorityClassName"),
        25: _k("priority", INT),
        26: _f("dnsConfig", "PodDNSConfig"),
        28: _r("readinessGates", "PodReadinessGate"),
        29: _k("runtimeClassName"),
        30: _k("enableServiceLinks", BOOL),
        31: _k("preemptionPolicy"),
        32: _m("overhead", QUANTITY),
        33: _r("topologySpreadConstraints", "TopologySpreadConstraint"),
        35: _k("setHostnameAsFQDN", BOOL),
        36: _f("os", "PodOS"),
        37: _k("hostUsers", BOOL),
        38: _r("schedulingGates", "PodSchedulingGate"),
    },
    "Container": {
        1: _k("name"),
        2: _f("image"),
        3: _r("command"),
        4: _r("args"),
        5: _f("workingDir"),
        6: _r("ports", "ContainerPort"),
        19: _r("envFrom", "EnvFromSource"),
        7: _r("env", "EnvVar"),
        8: _f("resources", "ResourceRequirements"),
        23: _r("resizePolicy", "ContainerResizePolicy"),
        24: _k("restartPolicy"),
        9: _r("volumeMounts", "VolumeMount"),
        21: _r("volumeDevices", "VolumeDevice"),
        10: _f("livenessProbe", "Probe"),
        11: _f("readinessProbe", "Probe"),
        22: _f("startupProbe", "Probe"),
        12: _f("lifecycle", "Lifecycle"),
        13: _f("terminationMessagePath"),
        20: _f("terminationMessagePolicy"),
        14: _f("imagePullPolicy"),
        15: _f("securityContext", "SecurityContext"),
        16: _f("stdin", BOOL),
        17: _f("stdinOnce", BOOL),
        18: _f("tty", BOOL),
    },
    "ContainerPort": {
        1: _f("name"),
        2: _f("hostPort", INT),
        3: _k("containerPort", INT),
        4: _f("protocol"),
        5: _f("hostIP"),
    },
    "EnvVar": {1: _k("name"), 2: _f("value"), 3: _f("valueFrom", "EnvVarSource")},
    "EnvVarSource": {
        1: _f("fieldRef", "ObjectFieldSelector"),
        2: _f("resourceFieldRef", "ResourceFieldSelector"),
        3: _f("configMapKeyRef", "ConfigMapKeySelector"),
        4: _f("secretKeyRef", "SecretKeySelector"),
    },
    "ObjectFieldSelector": {1: _f("apiVersion"), 2: _k("fieldPath")},
    "ResourceFieldSelector": {1: _f("containerName"), 2: _k("resource"), 3: _f("divisor", QUANTITY)},
    "ConfigMapKeySelector": {1: _inline("LocalObjectReference"), 2: _k("key"), 3: _k("optional", BOOL)},
    "SecretKeySelector": {1: _inline("LocalObjectReference"), 2: _k("key"), 3: _k("optional", BOOL)},
    "EnvFromSource": {
        1: _f("prefix"),
        2: _f("configMapRef", "ConfigMapEnvSource"),
        3: _f("secretRef", "SecretEnvSource"),
    },
    "ConfigMapEnvSource": {1: _inline("LocalObjectReference"), 2: _k("optional", BOOL)},
    "SecretEnvSource": {1: _inline("LocalObjectReference"), 2: _k("optional", BOOL)},
    "ResourceRequirements": {1: _m("limits", QUANTITY), 2: _m("requests", QUANTITY), 3: _r("claims", "ResourceClaim")},
    "ResourceClaim": {1: _k("name"), 2: _f("request")},
    "ContainerResizePolicy": {1: _k("resourceName"), 2: _k("restartPolicy")},
    "VolumeMount": {
        1: _k("name"),
        2: _f("readOnly", BOOL),
        7: _k("recursiveReadOnly"),
        3: _k("mountPath"),
        4: _f("subPath"),
        5: _k("mountPropagation"),
        6: _f("subPathExpr"),
    },
    "VolumeDevice": {1: _k("name"), 2: _k("devicePath")},
    "Probe": {
        1: _inline("ProbeHandler"),
        2: _f("initialDelaySeconds", INT),
        3: _f("timeoutSeconds", INT),
        4: _f("periodSeconds", INT),
        5: _f("successThreshold", INT),
        6: _f("failureThreshold", INT),
        7: _k("terminationGracePeriodSeconds", INT),
    },
    "ProbeHandler": {
        1: _f("exec", "ExecAction"),
        2: _f("httpGet", "HTTPGetAction"),
        3: _f("tcpSocket", "TCPSocketAction"),
        4: _f("grpc", "GRPCAction"),
    },
    "ExecAction": {1: _r("command")},
    "HTTPGetAction": {
        1: _f("path"),
        2: _f("port", INT_OR_STRING),
        3: _f("host"),
        4: _f("scheme"),
        5: _r("httpHeaders", "HTTPHeader"),
    },
    "HTTPHeader": {1: _k("name"), 2: _k("value")},
    "TCPSocketAction": {1: _f("port", INT_OR_STRING), 2: _f("host")},
    "GRPCAction": {1: _k("port", INT), 2: _k("service")},
    "Lifecycle": {1: _f("postStart", "LifecycleHandler"), 2: _f("preStop", "LifecycleHandler")},
    "LifecycleHandler": {
        1: _f("exec", "ExecAction"),
        2: _f("httpGet", "HTTPGetAction"),
        3: _f("tcpSocket", "TCPSocketAction"),
    },
    "SecurityContext": {
        1: _f("capabilities", "Capabilities"),
        2: _k("privileged", BOOL),
        4: _k("runAsUser", INT),
        8: _k("runAsGroup", INT),
        5: _k("runAsNonRoot", BOOL),
        6: _k("readOnlyRootFilesystem", BOOL),
        7: _k("allowPrivilegeEscalation", BOOL),
        9: _k("procMount"),
        11: _f("seccompProfile", "SeccompProfile"),
    },
    "Capabilities": {1: _r("add"), 2: _r("drop")},
    "SeccompProfile": {1: _k("type"), 2: _k("localhostProfile")},
    "PodSecurityContext": {
        2: _k("runAsUser", INT),
        6: _k("runAsGroup", INT),
        3: _k("runAsNonRoot", BOOL),
        4: _r("supplementalGroups", INT),
        5: _k("fsGroup", INT),
        7: _r("sysctls", "Sysctl"),
        9: _k("fsGroupChangePolicy"),
        10: _f("seccompProfile", "SeccompProfile"),
    },
    "Sysctl": {1: _k("name"), 2: _k("value")},
    "Toleration": {1: _f("key"), 2: _f("operator"), 3: _f("value"), 4: _f("effect"), 5: _k("tolerationSeconds", INT)},
    "HostAlias": {1: _k("ip"), 2: _r("hostnames")},
    "PodDNSConfig": {1: _r("nameservers"), 2: _r("searches"), 3: _r("options", "PodDNSConfigOption")},
    "PodDNSConfigOption": {1: _f("name"), 2: _k("value")},
    "PodReadinessGate": {1: _k("conditionType")},
    "PodOS": {1: _k("name")},
    "PodSchedulingGate": {1: _k("name")},
    "Affinity": {
        1: _f("nodeAffinity", "NodeAffinity"),
        2: _f("podAffinity", "PodAffinity"),
        3: _f("podAntiAffinity", "PodAffinity"),
    },
    "NodeAffinity": {
        1: _f("requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        2: _r("preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm"),
    },
    "NodeSelector": {1: _r("nodeSelectorTerms", "NodeSelectorTerm")},
    "NodeSelectorTerm": {
        1: _r("matchExpressions", "NodeSelectorRequirement"),
        2: _r("matchFields", "NodeSelectorRequirement"),
    },
    "NodeSelectorRequirement": {1: _k("key"), 2: _k("operator"), 3: _r("values")},
    "PreferredSchedulingTerm": {1: _k("weight", INT), 2: _k("preference", "NodeSelectorTerm")},
    # PodAntiAffinity has the same shape as PodAffinity.
    "PodAffinity": {
        1: _r("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        2: _r("preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm"),
    },
    "PodAffinityTerm": {
        1: _f("labelSelector", "LabelSelector"),
        2: _r("namespaces"),
        3: _k("topologyKey"),
        4: _f("namespaceSelector", "LabelSelector"),
        5: _r("matchLabelKeys"),
        6: _r("mismatchLabelKeys"),
    },
    "WeightedPodAffinityTerm": {1: _k("weight", INT), 2: _k("podAffinityTerm", "PodAffinityTerm")},
    "TopologySpreadConstraint": {
        1: _k("maxSkew", INT),
        2: _k("topologyKey"),
        3: _k("whenUnsatisfiable"),
        4: _f("labelSelector", "LabelSelector"),
        5: _k("minDomains", INT),
        6: _k("nodeAffinityPolicy"),
        7: _k("nodeTaintsPolicy"),
        8: _r("matchLabelKeys"),
    },
    # --- volumes ---
    "Volume": {1: _k("name"), 2: _inline("VolumeSource")},
    "VolumeSource": {
        1: _f("hostPath", "HostPathVolumeSource"),
        2: _f("emptyDir", "EmptyDirVolumeSource"),
        6: _f("secret", "SecretVolumeSource"),
        7: _f("nfs", "NFSVolumeSource"),
        10: _f("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        16: _f("downwardAPI", "DownwardAPIVolumeSource"),
        19: _f("configMap", "ConfigMapVolumeSource"),
        26: _f("projected", "ProjectedVolumeSource"),
        28: _f("csi", "CSIVolumeSource"),
        29: _f("ephemeral", "EphemeralVolumeSource"),
    },
    "HostPathVolumeSource": {1: _k("path"), 2: _k("type")},
    "EmptyDirVolumeSource": {1: _f("medium"), 2: _k("sizeLimit", QUANTITY)},
    "SecretVolumeSource": {
        1: _f("secretName"),
        2: _r("items", "KeyToPath"),
        3: _k("defaultMode", INT),
        4: _k("optional", BOOL),
    },
    "KeyToPath": {1: _k("key"), 2: _k("path"), 3: _k("mode", INT)},
    "NFSVolumeSource": {1: _k("server"), 2: _k("path"), 3: _f("readOnly", BOOL)},
    "PersistentVolumeClaimVolumeSource": {1: _k("claimName"), 2: _f("readOnly", BOOL)},
    "DownwardAPIVolumeSource": {1: _r("items", "DownwardAPIVolumeFile"), 2: _k("defaultMode", INT)},
    "DownwardAPIVolumeFile": {
        1: _k("path"),
        2: _f("fieldRef", "ObjectFieldSelector"),
        3: _f("resourceFieldRef", "ResourceFieldSelector"),
        4: _k("mode", INT),
    },
    "ConfigMapVolumeSource": {
        1: _inline("LocalObjectReference"),
        2: _r("items", "KeyToPath"),
        3: _k("defaultMode", INT),
        4: _k("optional", BOOL),
    },
    "ProjectedVolumeSource": {1: _r("sources", "VolumeProjection"), 2: _k("defaultMode", INT)},
    "VolumeProjection": {
        1: _f("secret", "SecretProjection"),
        2: _f("downwardAPI", "DownwardAPIProjection"),
        3: _f("configMap", "ConfigMapProjection"),
        4: _f("serviceAccountToken", "ServiceAccountTokenProjection"),
    },
    "SecretProjection": {1: _inline("LocalObjectReference"), 2: _r("items", "KeyToPath"), 4: _k("optional", BOOL)},
    "ConfigMapProjection": {1: _inline("LocalObjectReference"), 2: _r("items", "KeyToPath"), 4: _k("optional", BOOL)},
    "DownwardAPIProjection": {1: _r("items", "DownwardAPIVolumeFile")},
    "ServiceAccountTokenProjection": {1: _f("audience"), 2: _k("expirationSeconds", INT), 3: _k("path")},
    "CSIVolumeSource": {
        1: _k("driver"),
        2: _k("readOnly", BOOL),
        3: _k("fsType"),
        4: _m("volumeAttributes"),
        5: _f("nodePublishSecretRef", "LocalObjectReference"),
    },
    "EphemeralVolumeSource": {1: _f("volumeClaimTemplate", "PersistentVolumeClaimTemplate")},
    "PersistentVolumeClaimTemplate": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PersistentVolumeClaimSpec")},
    "PersistentVolumeClaimSpec": {
        1: _r("accessModes"),
        4: _f("selector", "LabelSelector"),
        2: _f("resources", "VolumeResourceRequirements"),
        3: _f("volumeName"),
        5: _k("storageClassName"),
        6: _k("volumeMode"),
        7: _f("dataSource", "TypedLocalObjectReference"),
        9: _k("volumeAttributesClassName"),
    },
    "VolumeResourceRequirements": {1: _m("limits", QUANTITY), 2: _m("requests", QUANTITY)},
}

_WORKLOADS: Final[dict[str, _Table]] = {
    # --- apps/v1 ---
    "Deployment": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "DeploymentSpec"),
        3: _f("status", "DeploymentStatus"),
    },
    "DeploymentSpec": {
        1: _k("replicas", INT),
        2: _f("selector", "LabelSelector"),
        3: _f("template", "PodTemplateSpec"),
        4: _f("strategy", "DeploymentStrategy"),
        5: _f("minReadySeconds", INT),
        6: _k("revisionHistoryLimit", INT),
        7: _f("paused", BOOL),
        9: _k("progressDeadlineSeconds", INT),
    },
    "DeploymentStrategy": {1: _f("type"), 2: _f("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: _k("maxUnavailable", INT_OR_STRING), 2: _k("maxSurge", INT_OR_STRING)},
    "DeploymentStatus": {
        1: _f("observedGeneration", INT),
        2: _f("replicas", INT),
        3: _f("updatedReplicas", INT),
        7: _f("readyReplicas", INT),
        4: _f("availableReplicas", INT),
        5: _f("unavailableReplicas", INT),
        8: _k("collisionCount", INT),
    },
    # --- batch/v1 ---
    "Job": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "JobSpec"), 3: _f("status", "JobStatus")},
    "JobSpec": {
        1: _k("parallelism", INT),
        2: _k("completions", INT),
        3: _k("activeDeadlineSeconds", INT),
        7: _k("backoffLimit", INT),
        12: _k("backoffLimitPerIndex", INT),
        13: _k("maxFailedIndexes", INT),
        4: _f("selector", "LabelSelector"),
        5: _k("manualSelector", BOOL),
        6: _f("template", "PodTemplateSpec"),
        8: _k("ttlSecondsAfterFinished", INT),
        9: _k("completionMode"),
        10: _k("suspend", BOOL),
        14: _k("podReplacementPolicy"),
        15: _k("managedBy"),
    },
    "JobStatus": {
        1: _r("conditions", "JobCondition"),
        2: _f("startTime", TIME),
        3: _f("completionTime", TIME),
        4: _f("active", INT),
        5: _f("succeeded", INT),
        6: _f("failed", INT),
        11: _k("terminating", INT),
        7: _f("completedIndexes"),
        10: _k("failedIndexes"),
        9: _k("ready", INT),
    },
    "JobCondition": {
        1: _k("type"),
        2: _k("status"),
        3: _f("lastProbeTime", TIME),
        4: _f("lastTransitionTime", TIME),
        5: _f("reason"),
        6: _f("message"),
    },
    "CronJob": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "CronJobSpec"), 3: _f("status", "CronJobStatus")},
    "CronJobSpec": {
        1: _k("schedule"),
        8: _k("timeZone"),
        2: _k("startingDeadlineSeconds", INT),
        3: _f("concurrencyPolicy"),
        4: _k("suspend", BOOL),
        5: _k("jobTemplate", "JobTemplateSpec"),
        6: _k("successfulJobsHistoryLimit", INT),
        7: _k("failedJobsHistoryLimit", INT),
    },
    "JobTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "JobSpec")},
    "CronJobStatus": {
        1: _r("active", "ObjectReference"),
        4: _f("lastScheduleTime", TIME),
        5: _f("lastSuccessfulTime", TIME),
    },
    # --- autoscaling/v1 ---
    "HorizontalPodAutoscaler": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "HorizontalPodAutoscalerSpec"),
        3: _f("status", "HorizontalPodAutoscalerStatus"),
    },
    "HorizontalPodAutoscalerSpec": {
        1: _k("scaleTargetRef", "CrossVersionObjectReference"),
        2: _k("minReplicas", INT),
        3: _k("maxReplicas", INT),
        4: _k("targetCPUUtilizationPercentage", INT),
    },
    "CrossVersionObjectReference": {1: _k("kind"), 2: _k("name"), 3: _f("apiVersion")},
    "HorizontalPodAutoscalerStatus": {
        1: _k("observedGeneration", INT),
        2: _f("lastScaleTime", TIME),
        3: _k("currentReplicas", INT),
        4: _k("desiredReplicas", INT),
        5: _k("currentCPUUtilizationPercentage", INT),
    },
    # --- policy/v1 ---
    "PodDisruptionBudget": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "PodDisruptionBudgetSpec"),
        3: _f("status", "PodDisruptionBudgetStatus"),
    },
    "PodDisruptionBudgetSpec": {
        1: _k("minAvailable", INT_OR_STRING),
        2: _f("selector", "LabelSelector"),
        3: _k("maxUnavailable", INT_OR_STRING),
        4: _k("unhealthyPodEvictionPolicy"),
    },
    "PodDisruptionBudgetStatus": {
        1: _f("observedGeneration", INT),
        2: _m("disruptedPods", TIME),
        3: _k("disruptionsAllowed", INT),
        4: _k("currentHealthy", INT),
        5: _k("desiredHealthy", INT),
        6: _k("expectedPods", INT),
        7: _r("conditions", "Condition"),
    },
}

_CLUSTER: Final[dict[str, _Table]] = {
    # --- rbac.authorization.k8s.io/v1 ---
    "Role": {1: _f("metadata", "ObjectMeta"), 2: _r("rules", "PolicyRule")},
    "ClusterRole": {
        1: _f("metadata", "ObjectMeta"),
        2: _r("rules", "PolicyRule"),
        3: _f("aggregationRule", "AggregationRule"),
    },
    "PolicyRule": {
        1: _r("verbs"),
        2: _r("apiGroups"),
        3: _r("resources"),
        4: _r("resourceNames"),
        5: _r("nonResourceURLs"),
    },
    "AggregationRule": {1: _r("clusterRoleSelectors", "LabelSelector")},
    "RoleBinding": {1: _f("metadata", "ObjectMeta"), 2: _r("subjects", "Subject"), 3: _k("roleRef", "RoleRef")},
    "Subject": {1: _k("kind"), 2: _f("apiGroup"), 3: _k("name"), 4: _f("namespace")},
    "RoleRef": {1: _k("apiGroup"), 2: _k("kind"), 3: _k("name")},
    # --- scheduling.k8s.io/v1 ---
    "PriorityClass": {
        1: _f("metadata", "ObjectMeta"),
        2: _k("value", INT),
        3: _f("globalDefault", BOOL),
        4: _f("description"),
        5: _k("preemptionPolicy"),
    },
    # --- networking.k8s.io/v1 ---
    "Ingress": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "IngressSpec"), 3: _f("status", "IngressStatus")},
    "IngressSpec": {
        4: _k("ingressClassName"),
        1: _f("defaultBackend", "IngressBackend"),
        2: _r("tls", "IngressTLS"),
        3: _r("rules", "IngressRule"),
    },
    "IngressBackend": {4: _f("service", "IngressServiceBackend"), 3: _f("resource", "TypedLocalObjectReference")},
    "IngressServiceBackend": {1: _k("name"), 2: _f("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: _f("name"), 2: _f("number", INT)},
    "IngressTLS": {1: _r("hosts"), 2: _f("secretName")},
    "IngressRule": {1: _f("host"), 2: _inline("IngressRuleValue")},
    "IngressRuleValue": {1: _f("http", "HTTPIngressRuleValue")},
    "HTTPIngressRuleValue": {1: _r("paths", "HTTPIngressPath")},
    "HTTPIngressPath": {1: _f("path"), 3: _k("pathType"), 2: _k("backend", "IngressBackend")},
    "IngressStatus": {1: _f("loadBalancer", "IngressLoadBalancerStatus")},
    "IngressLoadBalancerStatus": {1: _r("ingress", "IngressLoadBalancerIngress")},
    "IngressLoadBalancerIngress": {1: _f("ip"), 2: _f("hostname"), 4: _r("ports", "IngressPortStatus")},
    "IngressPortStatus": {1: _k("port", INT), 2: _k("protocol"), 3: _k("error")},
    # --- authentication.k8s.io/v1 ---
    "TokenRequest": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "TokenRequestSpec"),
        3: _f("status", "TokenRequestStatus"),
    },
    "TokenRequestSpec": {
        1: _r("audiences"),
        4: _k("expirationSeconds", INT),
        3: _k("boundObjectRef", "BoundObjectReference"),
    },
    "BoundObjectReference": {1: _f("kind"), 2: _f("apiVersion"), 3: _f("name"), 4: _f("uid")},
    "TokenRequestStatus": {1: _k("token"), 2: _k("expirationTimestamp", TIME)},
    "SelfSubjectReview": {1: _f("metadata", "ObjectMeta"), 2: _f("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: _f("userInfo", "UserInfo")},
    "UserInfo": {1: _f("username"), 2: _f("uid"), 3: _r("groups")},
    # --- authorization.k8s.io/v1 ---
    "SelfSubjectAccessReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "SelfSubjectAccessReviewSpec"),
        3: _f("status", "SubjectAccessReviewStatus"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: _k("resourceAttributes", "ResourceAttributes"),
        2: _k("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: _f("namespace"),
        2: _f("verb"),
        3: _f("group"),
        4: _f("version"),
        5: _f("resource"),
        6: _f("subresource"),
        7: _f("name"),
    },
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "SubjectAccessReviewStatus": {
        1: _k("allowed", BOOL),
        4: _f("denied", BOOL),
        2: _f("reason"),
        3: _f("evaluationError"),
    },
    "SelfSubjectRulesReview": {
        1: _f("metadata", "ObjectMeta"),
        2: _f("spec", "SelfSubjectRulesReviewSpec"),
        3: _f("status", "SubjectRulesReviewStatus"),
    },
    "SelfSubjectRulesReviewSpec": {1: _f("namespace")},
    "SubjectRulesReviewStatus": {
        1: _r("resourceRules", "ResourceRule"),
        2: _r("nonResourceRules", "NonResourceRule"),
        3: _k("incomplete", BOOL),
        4: _f("evaluationError"),
    },
    "ResourceRule": {1: _r("verbs"), 2: _r("apiGroups"), 3: _r("resources"), 4: _r("resourceNames")},
    "NonResourceRule": {1: _r("verbs"), 2: _r("nonResourceURLs")},
}

_MESSAGES: Final[dict[str, _Table]] = {**_META, **_CORE, **_POD, **_WORKLOADS, **_CLUSTER}

# (apiVersion, kind) of a top-level object -> its message in _MESSAGES.
_KINDS: Final[dict[tuple[str, str], str]] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Service"): "Service",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "RoleBinding",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
}


def supported_kinds() -> list[tuple[str, str]]:
    """The (apiVersion, kind) pairs :func:`decode` understands."""
    return sorted(_KINDS)


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _signed(value: int) -> int:
    """Reinterpret a varint as a two's complement int64 (how int32/int64 negatives travel)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufError(f"{where}: invalid UTF-8 in string field") from exc


def _timestamp(raw: bytes, where: str) -> str | None:
    if not raw:
        return None  # zero metav1.Time: Go's JSON writes null
    seconds = nanos = 0
    for number, wire, value in _fields(raw):
        if wire == _VARINT and isinstance(value, int):
            if number == 1:
                seconds = _signed(value)
            elif number == 2:
                nanos = _signed(value)
    try:
        moment = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as exc:
        raise ProtobufError(f"{where}: timestamp out of range") from exc
    # metav1.Time marshals as RFC 3339 in UTC with whole seconds; isoformat pads the year to 4 digits.
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _special(kind: str, raw: bytes, where: str) -> Any:
    """Decode one of the small wrapper messages that JSON renders as a scalar."""
    if kind == TIME:
        return _timestamp(raw, where)
    if kind == QUANTITY:
        for number, wire, value in _fields(raw):
            if number == 1 and wire == _LEN and isinstance(value, bytes):
                return _text(value, where)
        return "0"
    if kind == INT_OR_STRING:
        is_string = False
        int_val = 0
        str_val = ""
        for number, _wire, value in _fields(raw):
            if number == 1 and isinstance(value, int):
                is_string = value == 1
            elif number == 2 and isinstance(value, int):
                int_val = _signed(value)
            elif number == 3 and isinstance(value, bytes):
                str_val = _text(value, where)
        return str_val if is_string else int_val
    # RAW_JSON: runtime.RawExtension / metav1.FieldsV1 {raw=1}
    for number, wire, value in _fields(raw):
        if number == 1 and wire == _LEN and isinstance(value, bytes):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise ProtobufError(f"{where}: embedded raw JSON does not parse") from exc
    return None


def _is_zero(value: Any) -> bool:
    return value in ("", 0, False)


def _scalar(kind: str, wire: int, value: int | bytes, where: str) -> Any:
    """Decode one (non-repeated-packed) value of a scalar kind."""
    if kind in _VARINT_KINDS:
        if wire != _VARINT or not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a varint, got {_WIRE_NAMES.get(wire, wire)}")
        return value != 0 if kind == BOOL else _signed(value)
    if wire != _LEN or not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected length-delimited, got {_WIRE_NAMES.get(wire, wire)}")
    if kind == STRING:
        return _text(value, where)
    if kind == BYTES:
        return base64.b64encode(value).decode("ascii")
    if kind in _SPECIAL_MESSAGES:
        return _special(kind, value, where)
    return _message(value, kind, where)


def _packed_varints(raw: bytes, kind: str) -> list[Any]:
    out: list[Any] = []
    pos = 0
    while pos < len(raw):
        value, pos = _varint(raw, pos)
        out.append(value != 0 if kind == BOOL else _signed(value))
    return out


def _map_entry(raw: bytes, kind: str, where: str) -> tuple[str, Any]:
    key = ""
    val: Any = None
    for number, wire, value in _fields(raw):
        if number == 1:
            key = _scalar(STRING, wire, value, where)
        elif number == 2:
            val = _scalar(kind, wire, value, f"{where}[{key!r}]")
    if val is None and kind != TIME:
        # gogo writes the value even when empty, but be lenient with other encoders.
        val = _scalar(kind, _VARINT if kind in _VARINT_KINDS else _LEN, 0 if kind in _VARINT_KINDS else b"", where)
    return key, val


def _message(buf: bytes, type_name: str, where: str) -> dict[str, Any]:
    """Decode ``buf`` as message ``type_name`` into a JSON-shaped dict."""
    table = _MESSAGES[type_name]
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf):
        field = table.get(number)
        if field is None:
            _log.debug("protobuf: skipping unknown field %s.%d (wire type %d) at %s", type_name, number, wire, where)
            continue
        path = f"{where}.{field.name or type_name}"
        if field.map_of:
            if wire != _LEN or not isinstance(value, bytes):
                raise ProtobufError(f"{path}: map entry is not length-delimited")
            key, val = _map_entry(value, field.kind, path)
            if val is not None:
                out.setdefault(field.name, {})[key] = val
        elif field.repeated:
            if field.kind in _VARINT_KINDS and wire == _LEN and isinstance(value, bytes):
                items = _packed_varints(value, field.kind)  # packed encoding (not used by gogo)
            else:
                items = [_scalar(field.kind, wire, value, path)]
            out.setdefault(field.name, []).extend(items)
        elif field.inline:
            out.update(_scalar(field.kind, wire, value, path))
        else:
            decoded = _scalar(field.kind, wire, value, path)
            if decoded is None or (not field.keep and field.kind in _OMITEMPTY and _is_zero(decoded)):
                out.pop(field.name, None)  # proto2: the last occurrence wins
            else:
                out[field.name] = decoded
    return out


def _envelope(body: bytes) -> tuple[str, str, bytes]:
    """Split the ``k8s\\0`` + runtime.Unknown envelope into (apiVersion, kind, raw)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body: missing the 'k8s\\x00' magic prefix")
    api_version = kind = ""
    raw = b""
    encoding = ""
    for number, wire, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            if wire != _LEN or not isinstance(value, bytes):
                raise ProtobufError("envelope: typeMeta is not length-delimited")
            for sub, sub_wire, sub_value in _fields(value):
                if sub in (1, 2):
                    text = _scalar(STRING, sub_wire, sub_value, "envelope.typeMeta")
                    if sub == 1:
                        api_version = text
                    else:
                        kind = text
        elif number == 2:
            if wire != _LEN or not isinstance(value, bytes):
                raise ProtobufError("envelope: raw is not length-delimited")
            raw = value
        elif number == 3:
            encoding = _scalar(STRING, wire, value, "envelope.contentEncoding")
    if encoding:
        raise ProtobufError(f"envelope: unsupported contentEncoding {encoding!r}")
    if not api_version or not kind:
        raise ProtobufError("envelope: typeMeta lacks apiVersion or kind")
    return api_version, kind, raw


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``application/vnd.kubernetes.protobuf`` request body into a JSON-shaped dict.

    The result starts with ``apiVersion`` and ``kind`` and is what the same client would have
    sent as JSON (modulo ``null`` values, which are left out).  Raises :class:`ProtobufError`
    for a bad magic prefix, malformed wire data, or an (apiVersion, kind) not in the tables.
    """
    api_version, kind, raw = _envelope(body)
    type_name = _KINDS.get((api_version, kind))
    if type_name is None:
        raise ProtobufError(f"unsupported kind for protobuf decoding: {api_version}, Kind={kind}")
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    obj.update(_message(raw, type_name, kind))
    return obj
