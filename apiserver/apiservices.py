"""`apiregistration.k8s.io/v1` APIServices: the registrations kube-aggregator keeps.

Each group-version the cluster serves itself is listed as a `Local` APIService (`v1.`, `v1.apps`,
`v1.batch`, and those of the CRDs present at start), always Available, as kube-apiserver's
autoregistration does. A registration of an aggregated API (`spec.service`) is stored and
reported `Available=False` (`FailedDiscoveryCheck`): this server does not proxy to other API
servers.
"""

from __future__ import annotations

from collections.abc import Callable

from apiserver import metadata
from apiserver.errors import INVALID, FieldCause, cause
from apiserver.resources import Obj, Registry

KEY = "apiregistration.k8s.io/apiservices"
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"

# kube-apiserver's priorities for its own groups (higher first in discovery); others get 1000/15.
_PRIORITIES = {"": (18000, 1), "apps": (17800, 15), "batch": (17400, 15), "apiextensions.k8s.io": (16700, 15)}


def name_causes(obj: Obj, problems: list[FieldCause]) -> list[FieldCause]:
    """An APIService's name is `<spec.version>.<spec.group>` (not a DNS subdomain: `v1.` is valid)."""
    spec = obj.get("spec") or {}
    expected = f"{spec.get('version', '')}.{spec.get('group', '')}"
    out = [p for p in problems if p.field != "metadata.name"]
    name = (obj.get("metadata") or {}).get("name")
    if name != expected:
        out.append(cause(INVALID, "metadata.name", f'must be "{expected}"', name))
    return out


def default_status(obj: Obj) -> None:
    """The Available condition derived from the spec, unless a status writer has set one."""
    status = obj.setdefault("status", {})
    if any(c.get("type") == "Available" for c in status.get("conditions") or [] if isinstance(c, dict)):
        return
    local = not (obj.get("spec") or {}).get("service")
    condition = {
        "type": "Available",
        "status": "True" if local else "False",
        "lastTransitionTime": metadata.now(),
        "reason": "Local" if local else "FailedDiscoveryCheck",
        "message": "Local APIServices are always available"
        if local
        else "the embedded API server does not proxy to aggregated API servers",
    }
    status["conditions"] = [condition]


def local_apiservices(registry: Registry) -> list[Obj]:
    """One Local APIService per group-version the registry serves."""
    out = []
    for group, versions in sorted(registry.group_versions().items()):
        for version in versions:
            minimum, priority = _PRIORITIES.get(group, (1000, 15))
            out.append(
                {
                    "apiVersion": "apiregistration.k8s.io/v1",
                    "kind": "APIService",
                    "metadata": {"name": f"{version}.{group}", "labels": {AUTOMANAGED: "onstart"}},
                    "spec": {"group": group, "version": version, "groupPriorityMinimum": minimum,
                             "versionPriority": priority},
                }
            )  # fmt: skip
    return out


def ensure_local(registry: Registry, exists: Callable[[str], bool], create: Callable[[Obj], object]) -> None:
    """Create the Local APIServices that are missing (at start; existing ones are left as they are)."""
    for obj in local_apiservices(registry):
        if not exists(obj["metadata"]["name"]):
            create(obj)
