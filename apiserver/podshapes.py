"""The JSON types of a Pod spec's fields, checked as kube-apiserver's decoder does before anything
else runs: a value of the wrong JSON type is a 400 `Pod in version "v1" cannot be handled as a Pod:
json: cannot unmarshal number into Go struct field Container.spec.containers.name of type string`,
never a 500 from code that expected a list or a map.

Only the fields our defaulting and validation read are described; others pass through unchecked.
"""

from __future__ import annotations

from typing import Any

from apiserver import errors

# "string" | "int32" | "int64" | "bool" | ("list", elem) | ("map",) | ("struct", go_name, fields)
Shape = str | tuple[Any, ...]


def _struct(go_name: str, /, **fields: Shape) -> Shape:
    return ("struct", go_name, fields)


_S, _I32, _I64, _B = "string", "int32", "int64", "bool"
_STRINGS = ("list", _S)
_MAP = ("map",)
_PROBE = _struct("Probe", initialDelaySeconds=_I32, timeoutSeconds=_I32, periodSeconds=_I32,
                 successThreshold=_I32, failureThreshold=_I32, exec=_struct("ExecAction", command=_STRINGS),
                 httpGet=_struct("HTTPGetAction", path=_S, scheme=_S), tcpSocket=_struct("TCPSocketAction"),
                 grpc=_struct("GRPCAction", port=_I32))  # fmt: skip
_SECURITY = _struct("SecurityContext", runAsUser=_I64, runAsGroup=_I64, privileged=_B, readOnlyRootFilesystem=_B,
                    allowPrivilegeEscalation=_B, runAsNonRoot=_B,
                    capabilities=_struct("Capabilities", add=_STRINGS, drop=_STRINGS))  # fmt: skip
_KEY_REF = {"name": _S, "key": _S, "optional": _B}
_ENV = _struct(
    "EnvVar",
    name=_S,
    value=_S,
    valueFrom=_struct(
        "EnvVarSource",
        fieldRef=_struct("ObjectFieldSelector", apiVersion=_S, fieldPath=_S),
        resourceFieldRef=_struct("ResourceFieldSelector", containerName=_S, resource=_S),
        configMapKeyRef=_struct("ConfigMapKeySelector", **_KEY_REF),
        secretKeyRef=_struct("SecretKeySelector", **_KEY_REF),
    ),
)
_CONTAINER = _struct(
    "Container", name=_S, image=_S, command=_STRINGS, args=_STRINGS, workingDir=_S, imagePullPolicy=_S,
    terminationMessagePath=_S, terminationMessagePolicy=_S, restartPolicy=_S, stdin=_B, tty=_B,
    ports=("list", _struct("ContainerPort", name=_S, containerPort=_I32, hostPort=_I32, protocol=_S, hostIP=_S)),
    env=("list", _ENV),
    volumeMounts=("list", _struct("VolumeMount", name=_S, mountPath=_S, subPath=_S, subPathExpr=_S, readOnly=_B)),
    resources=_struct("ResourceRequirements", limits=_MAP, requests=_MAP),
    securityContext=_SECURITY, livenessProbe=_PROBE, readinessProbe=_PROBE, startupProbe=_PROBE,
    lifecycle=_struct("Lifecycle"),
)  # fmt: skip
_VOLUME = _struct(
    "Volume", name=_S, emptyDir=_struct("EmptyDirVolumeSource", medium=_S),
    hostPath=_struct("HostPathVolumeSource", path=_S, type=_S),
    secret=_struct("SecretVolumeSource", secretName=_S, defaultMode=_I32, optional=_B),
    configMap=_struct("ConfigMapVolumeSource", name=_S, defaultMode=_I32, optional=_B),
    persistentVolumeClaim=_struct("PersistentVolumeClaimVolumeSource", claimName=_S, readOnly=_B),
    downwardAPI=_struct("DownwardAPIVolumeSource", defaultMode=_I32),
    projected=_struct("ProjectedVolumeSource", defaultMode=_I32),
)  # fmt: skip
POD_SPEC = _struct(
    "PodSpec", containers=("list", _CONTAINER), initContainers=("list", _CONTAINER), volumes=("list", _VOLUME),
    restartPolicy=_S, dnsPolicy=_S, serviceAccountName=_S, serviceAccount=_S, nodeName=_S, hostname=_S,
    subdomain=_S, priorityClassName=_S, schedulerName=_S, terminationGracePeriodSeconds=_I64,
    activeDeadlineSeconds=_I64, nodeSelector=_MAP, automountServiceAccountToken=_B, enableServiceLinks=_B,
    hostNetwork=_B, tolerations=("list", _struct("Toleration", key=_S, operator=_S, value=_S, effect=_S,
                                                  tolerationSeconds=_I64)),
    securityContext=_struct("PodSecurityContext", runAsUser=_I64, runAsGroup=_I64, fsGroup=_I64, runAsNonRoot=_B,
                            supplementalGroups=("list", _I64)),
)  # fmt: skip
_JSON_KIND = {bool: "bool", int: "number", float: "number", str: "string", list: "array", dict: "object"}


def _go_type(shape: Shape) -> str:
    if isinstance(shape, str):
        return shape
    if shape[0] == "list":
        return "[]" + _go_type(shape[1])
    if shape[0] == "map":
        return "map[string]string"
    return f"v1.{shape[1]}"


def _fits(value: Any, shape: Shape) -> bool:
    kind = type(value)
    if shape == _S:
        return kind is str
    if shape == _B:
        return kind is bool
    if shape in (_I32, _I64):
        return kind is int or (kind is float and value == int(value))
    return kind is (list if shape[0] == "list" else dict)


def mismatch(value: Any, shape: Shape, path: str, struct: str) -> str | None:
    """The decoder's complaint about `value` at the dotted `path` (inside Go struct `struct`), or None."""
    if value is None:
        return None
    if not _fits(value, shape):
        shown = _JSON_KIND.get(type(value), "value")
        if shown == "number" and isinstance(value, float):
            shown = f"number {value}"
        where = f"{struct}.{path}" if struct else path
        return f"json: cannot unmarshal {shown} into Go struct field {where} of type {_go_type(shape)}"
    if isinstance(shape, str) or shape[0] == "map":
        return None
    if shape[0] == "list":
        return next((m for v in value if (m := mismatch(v, shape[1], path, struct))), None)
    _, name, fields = shape
    return next((m for k, s in fields.items() if (m := mismatch(value.get(k), s, f"{path}.{k}", name))), None)


def check_pod_spec(kind: str, spec: Any, path: str) -> None:
    """400, worded as kube-apiserver's decoder, when the spec at `path` (`spec`, `spec.template.spec`)
    has a value of the wrong JSON type."""
    problem = mismatch(spec, POD_SPEC, path, "Pod" if path == "spec" else "PodTemplateSpec")
    if problem is not None:
        raise errors.bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: {problem}')
