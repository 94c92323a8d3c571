"""Container validation, the common part of kube-apiserver's `validateContainerCommon` (v1.32): name,
image, termination message policy, ports, env, volume mounts and subPath, pull policy, resources and
the securityContext's user and group ids, with upstream's field paths, reasons and wording.

`containers_causes` takes the volumes that validated (`volumes`: name → source); a mount naming any
other volume is `Not found`, as upstream (a volume with its own errors is not in the map either).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from apiserver import quantities
from apiserver.errors import DUPLICATE, FORBIDDEN, INVALID, NOT_FOUND, NOT_SUPPORTED, REQUIRED, FieldCause, cause
from apiserver.metadata import name_causes

MAX_INT32 = 2**31 - 1
_ENV_NAME_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"
_ENV_SOURCES = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
                "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")  # fmt: skip


def _quoted(values: tuple[str, ...] | list[str]) -> str:
    return "supported values: " + ", ".join(f'"{v}"' for v in values)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id_causes(value: Any, path: str) -> list[FieldCause]:
    """A user or group id: 0 to MaxInt32, as IsValidUserID/IsValidGroupID."""
    number = _int(value)
    if number is not None and not 0 <= number <= MAX_INT32:
        return [cause(INVALID, path, f"must be between 0 and {MAX_INT32}, inclusive", number)]
    return []


def security_context_causes(sc: Any, path: str) -> list[FieldCause]:
    """The user and group ids of a container's or a Pod's securityContext."""
    sc = _dict(sc)
    out: list[FieldCause] = []
    if "fsGroup" in sc:
        out += _id_causes(sc["fsGroup"], f"{path}.fsGroup")
    for field in ("runAsUser", "runAsGroup"):
        out += _id_causes(sc.get(field), f"{path}.{field}")
    for i, gid in enumerate(_list(sc.get("supplementalGroups"))):
        out += _id_causes(gid, f"{path}.supplementalGroups[{i}]")
    return out


def _port_name_messages(name: str) -> list[str]:
    out = ["must be no more than 15 characters"] if len(name) > 15 else []
    if not re.fullmatch(r"[-a-z0-9]+", name):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        out.append("must contain at least one letter (a-z)")
    if "--" in name:
        out.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        out.append("must not begin or end with a hyphen")
    return out


def _port_causes(ports: Any, path: str) -> list[FieldCause]:
    out: list[FieldCause] = []
    names: set[str] = set()
    for i, port in enumerate(_list(ports)):
        where, port = f"{path}[{i}]", _dict(port)
        name = port.get("name")
        if isinstance(name, str) and name:
            messages = _port_name_messages(name)
            out += [cause(INVALID, f"{where}.name", m, name) for m in messages]
            if not messages and name in names:
                out.append(cause(DUPLICATE, f"{where}.name", value=name))
            names.add(name)
        number = _int(port.get("containerPort"))
        if not number:
            out.append(cause(REQUIRED, f"{where}.containerPort"))
        elif not 1 <= number <= 65535:
            out.append(cause(INVALID, f"{where}.containerPort", "must be between 1 and 65535, inclusive", number))
        host = _int(port.get("hostPort"))
        if host and not 1 <= host <= 65535:
            out.append(cause(INVALID, f"{where}.hostPort", "must be between 1 and 65535, inclusive", host))
        protocol = port.get("protocol")
        if not protocol:
            out.append(cause(REQUIRED, f"{where}.protocol"))
        elif protocol not in ("SCTP", "TCP", "UDP"):
            out.append(cause(NOT_SUPPORTED, f"{where}.protocol", _quoted(("SCTP", "TCP", "UDP")), protocol))
    return out


def _value_from_causes(env: dict[str, Any], path: str) -> list[FieldCause]:
    source = env.get("valueFrom")
    if source is None:
        return []
    source = _dict(source)
    out: list[FieldCause] = []
    given = [k for k in _ENV_SOURCES if source.get(k) is not None]
    for kind in ("configMapKeyRef", "secretKeyRef"):
        ref = _dict(source.get(kind))
        if kind in given and not ref.get("key"):
            out.append(cause(REQUIRED, f"{path}.{kind}.key"))
    field_ref = _dict(source.get("fieldRef"))
    if "fieldRef" in given and not field_ref.get("fieldPath"):
        out.append(cause(REQUIRED, f"{path}.fieldRef.fieldPath"))
    elif "fieldRef" in given and "[" not in str(field_ref["fieldPath"]) and field_ref["fieldPath"] not in _FIELD_PATHS:
        out.append(cause(NOT_SUPPORTED, f"{path}.fieldRef.fieldPath", _quoted(sorted(_FIELD_PATHS)),
                         field_ref["fieldPath"]))  # fmt: skip
    if not given:
        detail = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        out.append(cause(INVALID, path, detail, ""))
    elif env.get("value"):
        out.append(cause(INVALID, path, "may not be specified when `value` is not empty", ""))
    elif len(given) > 1:
        out.append(cause(INVALID, path, "may not have more than one field specified at a time", ""))
    return out


def _env_causes(env_list: Any, path: str) -> list[FieldCause]:
    """Env names as v1.32 checks them (RelaxedEnvironmentVariableValidation, beta and on): printable
    ASCII other than '='; then the one source of `valueFrom`."""
    out: list[FieldCause] = []
    for i, env in enumerate(_list(env_list)):
        where, env = f"{path}[{i}]", _dict(env)
        name = env.get("name")
        if not name:
            out.append(cause(REQUIRED, f"{where}.name"))
        elif not isinstance(name, str) or any(ord(ch) > 127 or not ch.isprintable() or ch == "=" for ch in name):
            out.append(cause(INVALID, f"{where}.name", _ENV_NAME_MSG, name))
        out += _value_from_causes(env, f"{where}.valueFrom")
    return out


def _descending_path_causes(target: str, path: str) -> list[FieldCause]:
    """validateLocalDescendingPath: relative, and no `..` element."""
    out = [cause(INVALID, path, "must be a relative path", target)] if posixpath.isabs(target) else []
    if ".." in target.split("/"):
        out.append(cause(INVALID, path, "must not contain '..'", target))
    return out


def _mount_causes(mounts: Any, volumes: dict[str, Any], path: str) -> list[FieldCause]:
    """Upstream's ValidateVolumeMounts. Its subPath errors name `volumeMounts.subPath` without the
    index (upstream passes the list's path there), so ours do too."""
    out: list[FieldCause] = []
    seen: set[Any] = set()
    for i, mount in enumerate(_list(mounts)):
        where, mount = f"{path}[{i}]", _dict(mount)
        name, mount_path = mount.get("name") or "", mount.get("mountPath") or ""
        if not name:
            out.append(cause(REQUIRED, f"{where}.name"))
        if name not in volumes:
            out.append(cause(NOT_FOUND, f"{where}.name", value=name))
        if not mount_path:
            out.append(cause(REQUIRED, f"{where}.mountPath"))
        if mount_path in seen:
            out.append(cause(INVALID, f"{where}.mountPath", "must be unique", mount_path))
        seen.add(mount_path)
        sub_path, expr = mount.get("subPath") or "", mount.get("subPathExpr") or ""
        if isinstance(sub_path, str) and sub_path:
            out += _descending_path_causes(sub_path, f"{path}.subPath")
        if isinstance(expr, str) and expr:
            if sub_path:
                detail = "subPathExpr and subPath are mutually exclusive"
                out.append(cause(INVALID, f"{where}.subPathExpr", detail, expr))
            out += _descending_path_causes(expr, f"{path}.subPathExpr")
    return out


def _probe_causes(probe: Any, path: str, single_success: bool) -> list[FieldCause]:
    if probe is None:
        return []
    probe = _dict(probe)
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(h) is not None]
    out = [cause(FORBIDDEN, f"{path}.{h}", "may not specify more than 1 handler type") for h in handlers[1:]]
    if not handlers:
        out.append(cause(REQUIRED, path, "must specify a handler type"))
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        number = _int(probe.get(field))
        if number is not None and number < 0:
            out.append(cause(INVALID, f"{path}.{field}", "must be greater than or equal to 0", number))
    if single_success and _int(probe.get("successThreshold")) not in (None, 1):
        out.append(cause(INVALID, f"{path}.successThreshold", "must be 1", probe["successThreshold"]))
    return out


def _common_causes(c: dict[str, Any], volumes: dict[str, Any], path: str) -> list[FieldCause]:
    """validateContainerCommon, upstream's order."""
    out: list[FieldCause] = []
    name = c.get("name")
    if not name:
        out.append(cause(REQUIRED, f"{path}.name"))
    else:
        out += name_causes(str(name), label=True, path=f"{path}.name")
    if not c.get("image"):
        out.append(cause(REQUIRED, f"{path}.image"))
    policy = c.get("terminationMessagePolicy")
    if not policy:
        out.append(cause(REQUIRED, f"{path}.terminationMessagePolicy"))
    elif policy not in ("File", "FallbackToLogsOnError"):
        detail = _quoted(("File", "FallbackToLogsOnError"))
        out.append(cause(NOT_SUPPORTED, f"{path}.terminationMessagePolicy", detail, policy))
    out += _port_causes(c.get("ports"), f"{path}.ports")
    out += _env_causes(c.get("env"), f"{path}.env")
    out += _mount_causes(c.get("volumeMounts"), volumes, f"{path}.volumeMounts")
    pull = c.get("imagePullPolicy")
    if not pull:
        out.append(cause(REQUIRED, f"{path}.imagePullPolicy"))
    elif pull not in ("Always", "IfNotPresent", "Never"):
        out.append(cause(NOT_SUPPORTED, f"{path}.imagePullPolicy", _quoted(("Always", "IfNotPresent", "Never")), pull))
    out += quantities.resource_causes(c.get("resources"), f"{path}.resources")
    out += security_context_causes(c.get("securityContext"), f"{path}.securityContext")
    return out


def _host_port_causes(containers: list[Any], path: str) -> list[FieldCause]:
    """Two ports of the same protocol, host IP and hostPort conflict (AccumulateUniqueHostPorts)."""
    out: list[FieldCause] = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, port in enumerate(_list(_dict(c).get("ports"))):
            port = _dict(port)
            if not _int(port.get("hostPort")):
                continue
            key = f"{port.get('protocol') or ''}/{port.get('hostIP') or ''}/{port['hostPort']}"
            if key in seen:
                out.append(cause(DUPLICATE, f"{path}[{ci}].ports[{pi}].hostPort", value=key))
            seen.add(key)
    return out


def containers_causes(spec: dict[str, Any], volumes: dict[str, Any], path: str) -> list[FieldCause]:
    """`containers` then `initContainers` of a Pod spec at `path`, as validateContainers and
    validateInitContainers (names unique across both lists)."""
    containers = _list(spec.get("containers"))
    if not containers:
        return [cause(REQUIRED, f"{path}.containers")] + _init_causes(spec, [], volumes, path)
    out: list[FieldCause] = []
    names: set[Any] = set()
    for i, c in enumerate(containers):
        where, c = f"{path}.containers[{i}]", _dict(c)
        out += _common_causes(c, volumes, where)
        if c.get("name") in names:
            out.append(cause(DUPLICATE, f"{where}.name", value=c.get("name")))
        names.add(c.get("name"))
        out += _probe_causes(c.get("livenessProbe"), f"{where}.livenessProbe", True)
        out += _probe_causes(c.get("readinessProbe"), f"{where}.readinessProbe", False)
        out += _probe_causes(c.get("startupProbe"), f"{where}.startupProbe", True)
        if c.get("restartPolicy") is not None:
            out.append(cause(FORBIDDEN, f"{where}.restartPolicy", "may not be set for non-init containers"))
    out += _host_port_causes(containers, f"{path}.containers")
    return out + _init_causes(spec, containers, volumes, path)


def _init_causes(spec: dict[str, Any], regular: list[Any], volumes: dict[str, Any], path: str) -> list[FieldCause]:
    out: list[FieldCause] = []
    names = {_dict(c).get("name") for c in regular}
    for i, c in enumerate(_list(spec.get("initContainers"))):
        where, c = f"{path}.initContainers[{i}]", _dict(c)
        out += _common_causes(c, volumes, where)
        policy = c.get("restartPolicy")
        if policy is not None and policy != "Always":
            out.append(cause(NOT_SUPPORTED, f"{where}.restartPolicy", _quoted(("Always",)), policy))
        if c.get("name") in names:
            out.append(cause(DUPLICATE, f"{where}.name", value=c.get("name")))
        elif c.get("name"):
            names.add(c.get("name"))
        out += _host_port_causes([c], f"{path}.initContainers")
        if policy != "Always":
            for probe in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(probe) is not None:
                    detail = "may not be set for init containers without restartPolicy=Always"
                    out.append(cause(FORBIDDEN, f"{where}.{probe}", detail))
    return out
