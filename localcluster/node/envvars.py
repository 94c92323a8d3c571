"""A container's environment and command line as kubelet builds them (pure, given lookups).

Order and precedence follow kubelet: the service environment first (`KUBERNETES_SERVICE_HOST`,
`KUBERNETES_SERVICE_PORT`, `KUBERNETES_SERVICE_PORT_HTTPS`, `KUBERNETES_PORT...`), then `envFrom`
sources in order (with `prefix`; keys that are not valid names are skipped), then `env` in order,
where a later entry overrides an earlier one and `$(VAR)` refers to the variables defined so far
(`$$(VAR)` escapes; an undefined reference stays as written). `command`/`args` expand against the
final environment. A missing Secret/ConfigMap or key is an `EnvError` unless `optional: true`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Lookup = Callable[[str, str], Mapping[str, str] | None]  # (kind "Secret"/"ConfigMap", name) -> data
_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvError(Exception):
    """A referenced Secret, ConfigMap or key is missing (kubelet: CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodContext:
    """Values the downward API exposes besides the Pod object itself."""

    pod_ip: str
    host_ip: str
    node_name: str


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` is a literal `$`, unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str, ctx: PodContext) -> str:
    """The value of a `fieldRef.fieldPath` (as the downward API resolves it)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName") or ctx.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": ctx.pod_ip, "status.podIPs": ctx.pod_ip, "status.hostIP": ctx.host_ip,
        "status.hostIPs": ctx.host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    m = re.fullmatch(r"metadata\.(labels|annotations)(?:\['([^']*)'\])?", path)
    if m:
        values = meta.get(m.group(1)) or {}
        if m.group(2) is not None:
            return str(values.get(m.group(2), ""))
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    raise EnvError(f"unsupported fieldPath {path!r}")


_UNITS = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "k": 1000, "M": 1000**2, "G": 1000**3}


def quantity(value: str) -> float:
    """A resource quantity as a number (cores for cpu, bytes for memory)."""
    value = str(value)
    if value.endswith("m"):
        return float(value[:-1]) / 1000
    for suffix, factor in _UNITS.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def resource_value(container: Mapping[str, Any], ref: Mapping[str, Any], allocatable: Mapping[str, str]) -> str:
    """`resourceFieldRef`: limits fall back to the node's allocatable, rounded up by the divisor."""
    resource = str(ref.get("resource", ""))
    kind, _, res = resource.partition(".")
    resources = container.get("resources") or {}
    raw = (resources.get(kind) or {}).get(res)
    if raw is None:
        raw = allocatable.get(res, "0") if kind == "limits" else "0"
    divisor = quantity(str(ref.get("divisor") or "1"))
    amount = quantity(str(raw)) / (divisor or 1)
    whole = int(amount) if amount == int(amount) else int(amount) + 1
    return str(max(whole, 1) if res == "cpu" else whole)


def _from_source(ref: Mapping[str, Any], kind: str, lookup: Lookup) -> str | None:
    data = lookup(kind, str(ref.get("name", "")))
    key = str(ref.get("key", ""))
    if data is None or key not in data:
        if ref.get("optional"):
            return None
        what = f"{kind.lower()} {ref.get('name')!r}" if data is None else f"key {key!r} in {kind} {ref.get('name')!r}"
        raise EnvError(f"couldn't find {what}")
    return data[key]


def _env_from(container: Mapping[str, Any], lookup: Lookup, env: dict[str, str]) -> None:
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = source.get(key)
            if not ref:
                continue
            data = lookup(kind, str(ref.get("name", "")))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f"couldn't find {kind.lower()} {ref.get('name')!r}")
            env.update({prefix + k: v for k, v in data.items() if _NAME.match(prefix + k)})


def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], ctx: PodContext, lookup: Lookup,
                  service_env: Mapping[str, str], allocatable: Mapping[str, str]) -> dict[str, str]:
    """The container's environment (see the module docstring)."""
    env: dict[str, str] = dict(service_env)
    _env_from(container, lookup, env)
    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        source = var.get("valueFrom")
        if not source:
            env[name] = expand(str(var.get("value") or ""), env)
            continue
        value: str | None
        if "secretKeyRef" in source:
            value = _from_source(source["secretKeyRef"], "Secret", lookup)
        elif "configMapKeyRef" in source:
            value = _from_source(source["configMapKeyRef"], "ConfigMap", lookup)
        elif "fieldRef" in source:
            value = field_value(pod, str(source["fieldRef"].get("fieldPath", "")), ctx)
        elif "resourceFieldRef" in source:
            value = resource_value(container, source["resourceFieldRef"], allocatable)
        else:
            raise EnvError(f"env {name!r}: unsupported valueFrom")
        if value is not None:
            env[name] = value
    return env


def service_env(host: str, port: int) -> dict[str, str]:
    """The `kubernetes` Service's variables, as kubelet injects them in every container."""
    if not host:
        return {}
    url = f"tcp://{host}:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": url,
        f"KUBERNETES_PORT_{port}_TCP": url, f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": str(port), f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


def command_line(container: Mapping[str, Any], image_cmd: list[str], image_args: list[str],
                 env: Mapping[str, str]) -> list[str]:
    """Docker/Kubernetes entrypoint rules: `command` replaces the image's entrypoint (and drops its
    args), `args` replaces the image's args; both expand `$(VAR)` against `env`."""
    command = container.get("command")
    args = container.get("args")
    argv = [*command, *(args or [])] if command else [*image_cmd, *(args if args is not None else image_args)]
    return [expand(str(a), env) for a in argv]
