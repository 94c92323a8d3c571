"""Write semantics of one cluster: create, update, patch, delete, as kube-apiserver applies them.

Every write goes through one admission path: metadata rules, defaulting (built-in or from the
CRD schema), pruning of unknown fields, schema validation, the status subresource split,
`metadata.generation`, finalizers and a no-op check, and only then one store commit. Any
rejection raises an `ApiError` before anything is stored.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from apiserver import (
    apiservices,
    applying,
    builtins,
    defaulting,
    endpointaddrs,
    errors,
    metadata,
    patching,
    podlifecycle,
    rbacdefaults,
    schema,
    schemacheck,
    workloaddefaults,
)
from apiserver.authn import Identity
from apiserver.decoding import APPLY, JSON_PATCH, MERGE, STRATEGIC
from apiserver.errors import FORBIDDEN, INVALID, cause
from apiserver.resources import Obj, ResourceType
from apiserver.store import Change, Event, Store

_CR_GENERATION = frozenset({"metadata", "status"})
_RACE_RETRIES = 5


class _Raced(Exception):
    """An off-loop write's object changed between its read and its commit."""


@dataclass
class Options:
    dry_run: bool = False
    field_validation: str = ""  # Strict | Warn | Ignore ("" = Warn, like the apiserver's default)
    field_manager: str = ""
    force: bool = False
    internal: bool = False  # the API server's own write (never set from a request): see endpointaddrs
    user: Identity | None = None  # who asks (admission that judges the requester: RBAC escalation)
    apply_create: bool = False  # set by `patch`: this apply creates (the requester was judged on `patch`)


@dataclass
class Outcome:
    obj: Obj
    created: bool = False
    warnings: list[str] = field(default_factory=list)


def _strip(obj: Obj) -> Obj:
    """The object without fields that change on every write, for no-op detection."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    # a change of field ownership is a change (a second applier of the same values becomes a co-owner)
    meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []]
    out["metadata"] = meta
    return out


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in _CR_GENERATION}


# Admission plugins of a cluster (Service addresses, the ServiceAccount plugin): (type, old or None
# on create, new object to change in place, options); raises an ApiError to refuse the write.
Admission = Callable[[ResourceType, "Obj | None", Obj, Options], None]


class Writer:
    """Applies writes for one cluster's registry and store. `on_event` sees every committed event
    (the collector and the CRD registrar hang off it); `admission` runs after defaulting and the
    namespace check of every create and update."""

    def __init__(
        self, store: Store, rt_lookup: Callable[[str], ResourceType | None], on_commit: Callable[[list[Event]], None],
        admission: Admission | None = None,
    ) -> None:
        self.store = store
        self._rt = rt_lookup
        self._on_commit = on_commit
        self._admission = admission
        self._off_loop = threading.local()  # .loop: set while a write runs in a worker thread

    # -- helpers ----------------------------------------------------------------------------------
    def commit(self, changes: list[Change]) -> list[Event]:
        loop = getattr(self._off_loop, "loop", None)
        if loop is None:
            events = self.store.commit(changes)
            self._on_commit(events)
            return events
        return asyncio.run_coroutine_threadsafe(self._commit_unchanged(changes), loop).result()

    async def off_loop(self, write: Callable[[], Outcome]) -> Outcome:
        """Run `write` (create/update/patch) in a worker thread, so the admission of a large body
        (decoding is done, but defaulting, pruning and schema validation are linear in its size)
        never stalls the event loop that serves every cluster. Its commit hops back to the loop and
        happens only if the objects it read are unchanged (kube's optimistic concurrency); else the
        write is run again on the new state, as kube-apiserver's GuaranteedUpdate does."""
        loop = asyncio.get_running_loop()
        for _ in range(_RACE_RETRIES):
            try:
                return await asyncio.to_thread(self._in_worker, loop, write)
            except _Raced:
                continue
        raise errors.ApiError(409, "Conflict", "the object kept changing while the write was admitted; try again")

    def _in_worker(self, loop: asyncio.AbstractEventLoop, write: Callable[[], Outcome]) -> Outcome:
        self._off_loop.loop = loop
        try:
            return write()
        finally:
            self._off_loop.loop = None

    async def _commit_unchanged(self, changes: list[Change]) -> list[Event]:
        """On the loop: commit, unless a change's object was created, changed or deleted meanwhile."""
        for ch in changes:
            meta = ch.obj.get("metadata") or {}
            current = self.store.get(ch.resource, meta.get("namespace") or "", meta.get("name") or "")
            seen = None if ch.type == "ADDED" else meta.get("resourceVersion")
            if (current or {}).get("metadata", {}).get("resourceVersion") != seen:
                raise _Raced()
        events = self.store.commit(changes)
        self._on_commit(events)
        return events

    def _existing(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, name)
        return obj

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(builtins.NAMESPACE_KEY, "", namespace)
        if ns is None:
            raise errors.not_found("namespaces", "", namespace)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.forbidden(
                rt.plural,
                rt.group,
                name,
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def admit(self, rt: ResourceType, obj: Obj, version: str, opts: Options) -> list[str]:
        """Defaulting, pruning and validation in place; returns warnings, raises 400/422."""
        warnings: list[str] = []
        meta = obj.setdefault("metadata", {})
        for k in ("labels", "annotations", "finalizers", "ownerReferences"):
            if k in meta and not meta[k]:  # ObjectMeta omits empty collections (a removed last label)
                del meta[k]
        if rt.builtin:
            defaulting.apply_defaults(rt, obj)
            warnings += defaulting.warnings(rt, obj)
        else:
            sch = rt.schema(version)
            if sch is not None:
                before = copy.deepcopy(obj) if opts.field_validation in ("Strict", "Warn", "") else None
                schema.prune(obj, sch)
                if before is not None:
                    unknown = _removed_paths(before, obj)
                    if unknown and opts.field_validation == "Strict":
                        raise errors.bad_request(
                            "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown)
                        )
                    warnings += [f'unknown field "{p}"' for p in unknown]
                schema.default(obj, sch)
                problems = schema.validate(obj, sch)
                if problems:
                    raise errors.invalid(rt.kind, rt.group, meta.get("name", ""), problems)
        problems = metadata.validate(meta, namespace_kind=rt.key == builtins.NAMESPACE_KEY, namespaced=rt.namespaced)
        if rt.group == rbacdefaults.GROUP:  # RBAC names are path segments (`system:discovery`)
            problems = rbacdefaults.name_causes(obj, problems)
        if rt.key == apiservices.KEY:  # named `<version>.<group>`, `v1.` for the core group
            problems = apiservices.name_causes(obj, problems)
        if rt.key == builtins.CRD_KEY:
            problems += schemacheck.crd_causes(obj)
        if not opts.internal:
            problems += endpointaddrs.causes(rt.key, obj)
        if problems:
            raise errors.invalid(rt.kind, rt.group, meta.get("name", "") or "", problems)
        return warnings

    def _generation(self, rt: ResourceType, old: Obj | None, new: Obj) -> None:
        meta = new["metadata"]
        if old is None:
            meta["generation"] = 1
            return
        gen = int((old.get("metadata") or {}).get("generation") or 1)
        if _spec_part(old) != _spec_part(new):
            gen += 1
        meta["generation"] = gen

    # -- create -----------------------------------------------------------------------------------
    def create(
        self, rt: ResourceType, namespace: str, body: Obj, version: str, opts: Options, *, applied: bool = False
    ) -> Outcome:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        obj["apiVersion"] = rt.api_version(rt.storage_version)
        obj["kind"] = rt.kind
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace or meta.get("namespace") or ""
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            if not isinstance(meta["generateName"], str):
                problem = cause(INVALID, "metadata.generateName", "must be a string", meta["generateName"])
                raise errors.invalid(rt.kind, rt.group, "", [problem])
            meta["name"] = metadata.generate_name(meta["generateName"])
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields", "resourceVersion"):
            if k != "managedFields" or not applied:  # a create by apply keeps the Apply entry it recorded
                meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = metadata.now()
        if rt.has_status:
            obj.pop("status", None)  # status is the controllers' to write, through /status
        warnings = self.admit(rt, obj, version, opts)
        self._check_namespace(rt, meta.get("namespace", ""), meta["name"])
        if self._admission is not None:
            self._admission(rt, None, obj, opts)
        if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
            raise errors.already_exists(rt.plural, rt.group, meta["name"])
        if rt.key == builtins.CRD_KEY:
            _crd_status(obj, None)
        if not rt.builtin or rt.key in ("apps/deployments", "batch/jobs", builtins.CRD_KEY):
            self._generation(rt, None, obj)
        if opts.dry_run:
            return Outcome(obj, True, warnings)
        self.commit([Change("ADDED", rt.key, obj)])
        return Outcome(obj, True, warnings)

    # -- update (PUT, and the tail of every patch) --------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        version: str,
        opts: Options,
        *,
        subresource: str = "",
        require_rv: bool = True,
    ) -> Outcome:
        old = self._existing(rt, namespace, name)
        new = copy.deepcopy(body)
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if meta.get("name") not in (None, "", name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        rv = meta.get("resourceVersion")
        old_meta = old["metadata"]
        if rv:
            if str(rv) != old_meta.get("resourceVersion"):
                raise errors.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                )
        elif require_rv and not rt.builtin:
            raise errors.invalid(
                rt.kind,
                rt.group,
                name,
                [cause(INVALID, "metadata.resourceVersion", "must be specified for an update", 0)],
            )
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            meta = new["metadata"]
        else:
            if rt.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            meta["name"] = name
            if rt.namespaced:
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
                if k in old_meta:
                    meta[k] = old_meta[k]
                else:
                    meta.pop(k, None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise errors.invalid(
                        rt.kind,
                        rt.group,
                        name,
                        [
                            cause(
                                FORBIDDEN,
                                "metadata.finalizers",
                                "no new finalizers can be added if the object is being deleted",
                                show_value=False,
                            )
                        ],
                    )
        new["apiVersion"] = rt.api_version(rt.storage_version)
        new["kind"] = rt.kind
        meta.pop("selfLink", None)
        if "managedFields" in old_meta and "managedFields" not in meta:
            meta["managedFields"] = old_meta["managedFields"]
        warnings = self.admit(rt, new, version, opts)
        if rt.key == "/pods" and subresource != "status":
            podlifecycle.check_update(old, new)
        elif rt.key in workloaddefaults.WORKLOAD_KINDS and subresource != "status":
            workloaddefaults.check_update(rt, old, new)
        if self._admission is not None and subresource != "status":
            self._admission(rt, old, new, opts)
        if "generation" in old_meta:
            self._generation(rt, old, new)
        else:
            meta.pop("generation", None)
        if rt.key == builtins.CRD_KEY:
            _crd_status(new, old)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if _strip(new) == _strip(old):
            return Outcome(old, False, warnings)
        if opts.dry_run:
            return Outcome(new, False, warnings)
        pending = meta.get("finalizers") or (
            rt.key == builtins.NAMESPACE_KEY and (new.get("spec") or {}).get("finalizers")
        )
        # the last finalizer gone: deleted now, unless still in a graceful deletion (a Pod whose
        # kubelet has not yet confirmed its end with a grace-0 delete), as kube-apiserver's store does
        if meta.get("deletionTimestamp") and not pending and not meta.get("deletionGracePeriodSeconds"):
            self.commit([Change("DELETED", rt.key, new)])
        else:
            self.commit([Change("MODIFIED", rt.key, new)])
        return Outcome(new, False, warnings)

    # -- patch --------------------------------------------------------------------------------------
    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        version: str,
        opts: Options,
        *,
        subresource: str = "",
    ) -> Outcome:
        existing = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if content_type == APPLY:
            if not opts.field_manager:
                raise errors.bad_request("PATCH apply requires a non-empty fieldManager query parameter")
            if not isinstance(patch, dict) or not isinstance(patch.get("metadata", {}), dict):
                raise errors.bad_request("apply patch must be an object with object metadata")
            if existing is None:
                if subresource:
                    raise errors.not_found(rt.plural, rt.group, name)
                body = copy.deepcopy(patch)
                body.setdefault("metadata", {})["name"] = name
                applying.record(body, None, patch, opts.field_manager, rt.api_version(version))
                return self.create(rt, namespace, body, version, replace(opts, apply_create=True), applied=True)
            merged = applying.apply(
                existing, patch, opts.field_manager, opts.force, rt.api_version(version), rt.plural, rt.group, name
            )
            return self.update(rt, namespace, name, merged, version, opts, subresource=subresource, require_rv=False)
        if existing is None:
            raise errors.not_found(rt.plural, rt.group, name)
        base = copy.deepcopy(existing)
        if content_type == MERGE:
            merged = patching.merge_patch(base, patch)
        elif content_type == JSON_PATCH:
            merged = patching.json_patch(base, patch)
        elif content_type == STRATEGIC:
            if rt.key not in builtins.STRATEGIC_KINDS:
                raise errors.unsupported_media_type()
            merged = patching.strategic_merge_patch(base, patch, patching.DEFAULT_MERGE_KEYS)
        else:
            raise errors.unsupported_media_type()
        if not isinstance(merged, dict) or not isinstance(merged.get("metadata") or {}, dict):
            raise errors.bad_request("the patch did not produce an object with object metadata")
        patched_rv = (merged.get("metadata") or {}).get("resourceVersion")
        if patched_rv == existing["metadata"].get("resourceVersion"):
            merged["metadata"].pop("resourceVersion", None)
        return self.update(rt, namespace, name, merged, version, opts, subresource=subresource, require_rv=False)

    # -- delete -----------------------------------------------------------------------------------
    def delete(self, rt: ResourceType, namespace: str, name: str, options: Obj, dry_run: bool) -> tuple[Obj, bool]:
        """Returns (object, finished): finished=False means it is waiting for finalizers."""
        obj = self._existing(rt, namespace, name)
        meta = obj["metadata"]
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(
                rt.plural,
                rt.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
            )
        policy = options.get("propagationPolicy") or ("Orphan" if options.get("orphanDependents") else "")
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Orphan" and "orphan" not in finalizers and self.store.dependents(meta.get("uid", "")):
            finalizers.append("orphan")
        if (
            policy == "Foreground"
            and "foregroundDeletion" not in finalizers
            and self.store.dependents(meta.get("uid", ""))
        ):
            finalizers.append("foregroundDeletion")
        if rt.key == "/pods" and (kept := podlifecycle.graceful_deletion(obj, options)) is not None:
            if kept is not obj and not dry_run:
                self.commit([Change("MODIFIED", rt.key, kept)])
            return kept, False
        is_namespace = rt.key == builtins.NAMESPACE_KEY
        if finalizers or is_namespace:
            if meta.get("deletionTimestamp"):
                return obj, False
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = metadata.now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["finalizers"] = finalizers
            if not finalizers:
                new["metadata"].pop("finalizers")
            if is_namespace:
                new.setdefault("status", {})["phase"] = "Terminating"
            if not dry_run:
                self.commit([Change("MODIFIED", rt.key, new)])
            return new, False
        if not dry_run:
            self.commit([Change("DELETED", rt.key, copy.deepcopy(obj))])
        return obj, True


def _removed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for k, v in before.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if k not in after:
                out.append(path)
            else:
                out += _removed_paths(v, after[k], path)
    elif isinstance(before, list) and isinstance(after, list):
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            out += _removed_paths(b, a, f"{prefix}[{i}]")
    return out


def _crd_status(crd: Obj, old: Obj | None) -> None:
    names = (crd.get("spec") or {}).get("names") or {}
    old_conditions = ((old or {}).get("status") or {}).get("conditions") or []
    now = old_conditions[0].get("lastTransitionTime", metadata.now()) if old_conditions else metadata.now()
    crd["status"] = {
        "acceptedNames": {k: v for k, v in names.items()},
        "storedVersions": [v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")],
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }
