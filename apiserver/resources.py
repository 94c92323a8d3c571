"""Resource types the embedded API server serves, and the registry that finds them.

A `ResourceType` is what discovery advertises and what every handler needs to know about a kind:
group, versions, names, scope, subresources, printer columns and (for custom resources) the
structural schema of each served version. Built-ins come from `builtins.py`; custom resources are
registered from `CustomResourceDefinition` objects, both the ones we ship in `manifests/crds/` and
the ones users create at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Column:
    """A Table column: either a JSONPath into the object or a function computing the cell."""

    name: str
    type: str = "string"
    json_path: str = ""
    compute: Callable[[Obj], Any] | None = None
    format: str = ""
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    group: str
    versions: tuple[str, ...]  # served versions; the first is the storage (and preferred) version
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    subresources: tuple[str, ...] = ()  # besides status: scale, binding, log, exec, ...
    columns: tuple[Column, ...] = ()
    schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # version -> openAPIV3Schema
    builtin: bool = False
    verbs: tuple[str, ...] = ALL_VERBS
    list_kind: str = ""

    @property
    def key(self) -> str:
        """Storage identity of the resource, independent of version: `group/plural`."""
        return f"{self.group}/{self.plural}"

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"

    def schema(self, version: str) -> Mapping[str, Any] | None:
        return self.schemas.get(version)


class Registry:
    """Resource types by (group, version, plural), plus lookups by kind and by `group/plural`."""

    def __init__(self) -> None:
        self._by_key: dict[str, ResourceType] = {}
        self.generation = 0  # bumped on every change so discovery caches can be invalidated

    def add(self, rt: ResourceType) -> None:
        self._by_key[rt.key] = rt
        self.generation += 1

    def remove(self, key: str) -> None:
        if self._by_key.pop(key, None) is not None:
            self.generation += 1

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(sorted(self._by_key.values(), key=lambda r: (r.group, r.plural)))

    def by_key(self, key: str) -> ResourceType | None:
        return self._by_key.get(key)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self._by_key.get(f"{group}/{plural}")
        if rt is None or version not in rt.versions:
            return None
        return rt

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self._by_key.values():
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first (core group is '')."""
        out: dict[str, list[str]] = {}
        for rt in self:
            versions = out.setdefault(rt.group, [])
            for v in rt.versions:
                if v not in versions:
                    versions.append(v)
        for group, versions in out.items():
            out[group] = sorted(versions, key=_version_priority)
        return out


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor)


def from_crd(crd: Mapping[str, Any]) -> ResourceType:
    """Build a ResourceType from a `CustomResourceDefinition` (apiextensions.k8s.io/v1) body."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec.get("versions", []) if v.get("served", True)]
    storage = [v for v in served if v.get("storage")] or served[:1]
    ordered = storage + [v for v in served if v not in storage]
    schemas: dict[str, Mapping[str, Any]] = {}
    has_status = False
    columns: tuple[Column, ...] = ()
    for v in ordered:
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        if schema is not None:
            schemas[v["name"]] = schema
        if "status" in (v.get("subresources") or {}):
            has_status = True
    if ordered:
        cols = ordered[0].get("additionalPrinterColumns")
        if cols is None:
            columns = (Column("Age", "date", ".metadata.creationTimestamp"),)
        else:
            columns = tuple(
                Column(
                    c["name"],
                    c.get("type", "string"),
                    c.get("jsonPath", ""),
                    format=c.get("format", ""),
                    description=c.get("description", ""),
                    priority=int(c.get("priority", 0)),
                )
                for c in cols
            )
    return ResourceType(
        group=spec["group"],
        versions=tuple(v["name"] for v in ordered),
        kind=names["kind"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        has_status=has_status,
        columns=columns,
        schemas=schemas,
        list_kind=names.get("listKind", ""),
    )
