"""Pure decisions of the work agent: what each manifest of a ManifestWork is and how it is applied,
what the AppliedManifestWork records, and which applied resources are deleted or kept.

Frozen views in, immutable answers out; the I/O is in `workapply` and `workagent`.

- A manifest's identity is (group, version, kind, namespace, name); its plural `resource` comes
  from the cluster's discovery (`workapply.Discovery`), so `manifestConfigs[].resourceIdentifier`
  ({group, resource, name, namespace}, `*` matching anything) is matched once the plural is known.
- `updateStrategy.type`: `Update` (the default), `ServerSideApply`, `CreateOnly`, `ReadOnly`.
- Deletion: a resource is deleted only if the AppliedManifestWork recorded it (same uid), no other
  AppliedManifestWork of the same hub records it too (a resource shared by two works stays while one
  of them still applies it), the `deleteOption` does not orphan it, and it has no ownerReference
  (an owned object belongs to its owner's lifecycle, not to ours).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from localcluster.ocm.resources import APPLIED_MANIFEST_WORKS

Obj = dict[str, Any]

UPDATE, SERVER_SIDE_APPLY, CREATE_ONLY, READ_ONLY = "Update", "ServerSideApply", "CreateOnly", "ReadOnly"
STRATEGIES = (UPDATE, SERVER_SIDE_APPLY, CREATE_ONLY, READ_ONLY)
FOREGROUND, ORPHAN, SELECTIVELY_ORPHAN = "Foreground", "Orphan", "SelectivelyOrphan"
DEFAULT_FIELD_MANAGER = "work-agent"
# the deleteOption the agent last saw, kept on the AppliedManifestWork for a work deleted while it was away
DELETE_OPTION_ANNOTATION = "work.open-cluster-management.io/last-delete-option"


def hub_hash(hub_url: str) -> str:
    """OCM's hub hash: the SHA-256 of the hub's API server URL (the prefix of AppliedManifestWork names)."""
    return hashlib.sha256(hub_url.encode()).hexdigest()


def applied_work_name(hash_: str, work_name: str) -> str:
    return f"{hash_}-{work_name}"


@dataclass(frozen=True)
class ManifestId:
    """Who a manifest is, from its apiVersion/kind/metadata (empty strings where it says nothing)."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    @staticmethod
    def of(manifest: Obj) -> ManifestId:
        api_version = str(manifest.get("apiVersion") or "")
        group, _, version = api_version.rpartition("/")
        raw = manifest.get("metadata")
        meta: Obj = raw if isinstance(raw, dict) else {}
        return ManifestId(group, version, str(manifest.get("kind") or ""), str(meta.get("namespace") or ""),
                          str(meta.get("name") or ""))

    def problem(self) -> str:
        """Why this manifest cannot be applied at all ("" when it can be tried)."""
        missing = [what for what, value in (("apiVersion", self.version), ("kind", self.kind), ("metadata.name",
                                                                                               self.name)) if not value]
        return f"the manifest has no {', '.join(missing)}" if missing else ""


@dataclass(frozen=True)
class AppliedResource:
    """One entry of an AppliedManifestWork's `status.appliedResources`."""

    group: str
    version: str
    resource: str
    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.group, self.resource, self.namespace, self.name)

    def to_obj(self) -> Obj:
        return {"group": self.group, "version": self.version, "resource": self.resource,
                "namespace": self.namespace, "name": self.name, "uid": self.uid}

    @staticmethod
    def of(entry: Obj) -> AppliedResource:
        return AppliedResource(*(str(entry.get(f) or "") for f in ("group", "version", "resource", "namespace",
                                                                    "name", "uid")))


@dataclass(frozen=True)
class ManifestConfig:
    """What `spec.manifestConfigs[]` says about one manifest."""

    strategy: str = UPDATE
    field_manager: str = DEFAULT_FIELD_MANAGER
    force: bool = False
    feedback_rules: tuple[Obj, ...] = ()


def _matches(identifier: Obj, group: str, resource: str, namespace: str, name: str) -> bool:
    wanted = (str(identifier.get("group") or ""), str(identifier.get("resource") or ""),
              str(identifier.get("namespace") or ""), str(identifier.get("name") or ""))
    return all(w == "*" or w == have for w, have in zip(wanted, (group, resource, namespace, name), strict=True))


def _dict(value: object) -> Obj:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def spec_problems(spec: Obj) -> list[str]:
    """What in `manifestConfigs[]` and `deleteOption` is not an object where one belongs (such entries
    are skipped; the work reports them as not applied)."""
    problems: list[str] = []
    for i, entry in enumerate(_list(spec.get("manifestConfigs"))):
        if not isinstance(entry, dict):
            problems.append(f"manifestConfigs[{i}] is not an object: {entry!r}")
            continue
        for field in ("resourceIdentifier", "updateStrategy"):
            if entry.get(field) is not None and not isinstance(entry.get(field), dict):
                problems.append(f"manifestConfigs[{i}].{field} is not an object: {entry.get(field)!r}")
        problems += [f"manifestConfigs[{i}].feedbackRules[{j}] is not an object: {rule!r}"
                     for j, rule in enumerate(_list(entry.get("feedbackRules"))) if not isinstance(rule, dict)]
    orphans = _dict(_dict(spec.get("deleteOption")).get("selectivelyOrphans")).get("orphaningRules")
    problems += [f"deleteOption.selectivelyOrphans.orphaningRules[{j}] is not an object: {rule!r}"
                 for j, rule in enumerate(_list(orphans)) if not isinstance(rule, dict)]
    return problems


def config_for(spec: Obj, group: str, resource: str, namespace: str, name: str) -> ManifestConfig:
    """The first `manifestConfigs[]` entry whose resourceIdentifier matches (the defaults otherwise;
    entries that are not objects are skipped, `spec_problems` names them)."""
    for entry in _list(spec.get("manifestConfigs")):
        if not isinstance(entry, dict) or not _matches(_dict(entry.get("resourceIdentifier")), group, resource,
                                                       namespace, name):
            continue
        strategy = _dict(entry.get("updateStrategy"))
        ssa = _dict(strategy.get("serverSideApply"))
        return ManifestConfig(strategy=str(strategy.get("type") or UPDATE),
                              field_manager=str(ssa.get("fieldManager") or DEFAULT_FIELD_MANAGER),
                              force=bool(ssa.get("force", False)),
                              feedback_rules=tuple(r for r in _list(entry.get("feedbackRules")) if isinstance(r, dict)))
    return ManifestConfig()


def applied_work(hash_: str, work_name: str, agent_id: str, delete_option: Obj | None) -> Obj:
    """The AppliedManifestWork body (without status) this agent keeps for one work."""
    return {"apiVersion": APPLIED_MANIFEST_WORKS.api_version, "kind": APPLIED_MANIFEST_WORKS.kind,
            "metadata": {"name": applied_work_name(hash_, work_name),
                         "annotations": {DELETE_OPTION_ANNOTATION: json.dumps(delete_option or {}, sort_keys=True)}},
            "spec": {"hubHash": hash_, "manifestWorkName": work_name, "agentID": agent_id}}


def orphaned(resource: AppliedResource, delete_option: Obj | None) -> bool:
    """Whether `deleteOption` keeps this resource on the cluster (default Foreground: it does not)."""
    option = _dict(delete_option)
    policy = option.get("propagationPolicy") or FOREGROUND
    if policy == ORPHAN:
        return True
    if policy != SELECTIVELY_ORPHAN:
        return False
    rules = [r for r in _list(_dict(option.get("selectivelyOrphans")).get("orphaningRules")) if isinstance(r, dict)]
    return any((str(r.get("group") or ""), str(r.get("resource") or ""), str(r.get("namespace") or ""),
                str(r.get("name") or "")) == resource.key for r in rules)


@dataclass(frozen=True)
class Removal:
    """What to do with resources the work no longer applies: delete some, forget the rest."""

    delete: tuple[AppliedResource, ...]
    forget: tuple[AppliedResource, ...]


def plan_removal(gone: list[AppliedResource], delete_option: Obj | None,
                 shared: set[tuple[str, str, str, str, str]]) -> Removal:
    """Split `gone` (recorded, no longer applied) into resources to delete and resources merely
    dropped from the record: orphaned by the delete option, or recorded by another work (`shared`
    holds `(*key, uid)` of every resource another AppliedManifestWork records)."""
    delete: list[AppliedResource] = []
    forget: list[AppliedResource] = []
    for res in gone:
        keep = orphaned(res, delete_option) or (*res.key, res.uid) in shared
        (forget if keep else delete).append(res)
    return Removal(tuple(delete), tuple(forget))


def deletable(live: Obj | None, res: AppliedResource) -> bool:
    """Whether the live object is the one we applied and no one else owns it."""
    if live is None:
        return False
    meta = live.get("metadata") or {}
    return str(meta.get("uid") or "") == res.uid and not meta.get("ownerReferences")
