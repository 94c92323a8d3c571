"""The spoke-side I/O of the work agent: discovery, applying one manifest, deleting applied resources.

`Update` (the default strategy) is server-side apply with field manager `work-agent` and `force`
(the agent is the authority over what the work says; fields other managers set and the work does
not are left alone); `ServerSideApply` uses the configured field manager and `force`, so a conflict
with another manager fails the manifest with the API's message; `CreateOnly` creates the object when
absent and then never touches it; `ReadOnly` only reads it (for availability and feedback).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.rest import Kube, Resource
from localcluster.ocm.workplan import (
    CREATE_ONLY,
    READ_ONLY,
    SERVER_SIDE_APPLY,
    STRATEGIES,
    AppliedResource,
    ManifestConfig,
    ManifestId,
    config_for,
    deletable,
)
from localcluster.ocm.workstatus import ManifestOutcome

log = logging.getLogger("localcluster.ocm.work")

Obj = dict[str, Any]


def api_message(exc: BaseException) -> str:
    """The `message` of a Kubernetes Status in an ApiException's body, else the exception itself."""
    if isinstance(exc, ApiException):
        try:
            body = json.loads(exc.body or "{}")
        except (TypeError, ValueError):
            body = {}
        message = body.get("message") if isinstance(body, dict) else None
        return str(message or f"{exc.status} {exc.reason}")
    return str(exc) or type(exc).__name__


class Discovery:
    """Kind → Resource from the cluster's discovery documents (`/api/v1`, `/apis/<group>/<version>`),
    cached per group/version and fetched again when a kind is missing (a CRD applied just before)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, Resource]] = {}

    def _fetch(self, group: str, version: str) -> dict[str, Resource]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            doc = self.kube.request("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return {}
            raise
        return {str(r["kind"]): Resource(group, version, str(r["name"]), str(r["kind"]), bool(r.get("namespaced")))
                for r in doc.get("resources") or [] if "/" not in str(r.get("name") or "/")}

    def resource(self, group: str, version: str, kind: str) -> Resource | None:
        gv = f"{group}/{version}"
        with self._lock:
            found = self._known.get(gv, {}).get(kind)
        if found is not None:
            return found
        fresh = self._fetch(group, version)
        with self._lock:
            self._known[gv] = fresh
        return fresh.get(kind)

    def by_plural(self, group: str, version: str, plural: str) -> Resource | None:
        with self._lock:
            known = dict(self._known.get(f"{group}/{version}") or {})
        found = next((r for r in known.values() if r.plural == plural), None)
        if found is None:
            found = next((r for r in self._fetch(group, version).values() if r.plural == plural), None)
        return found


class ManifestApplier:
    """Applies the manifests of a work to the spoke, one `ManifestOutcome` each."""

    def __init__(self, spoke: Kube, discovery: Discovery) -> None:
        self.spoke = spoke
        self.discovery = discovery
        self._managers: dict[str, Kube] = {spoke.field_manager: spoke}

    def _as(self, field_manager: str) -> Kube:
        kube = self._managers.get(field_manager)
        if kube is None:
            kube = self._managers[field_manager] = Kube(self.spoke.api, field_manager=field_manager)
        return kube

    def apply_all(self, spec: Obj) -> list[ManifestOutcome]:
        manifests = (spec.get("workload") or {}).get("manifests") or []
        return [self.apply_one(i, m if isinstance(m, dict) else {}, spec) for i, m in enumerate(manifests)]

    def apply_one(self, ordinal: int, manifest: Obj, spec: Obj) -> ManifestOutcome:
        ident = ManifestId.of(manifest)
        problem = ident.problem()
        res = None
        if not problem:
            try:
                res = self.discovery.resource(ident.group, ident.version, ident.kind)
            except Exception as exc:  # the spoke's API failing: this manifest fails, the rest is tried
                problem = f"discovery of {ident.group}/{ident.version} failed: {api_message(exc)}"
            else:
                if res is None:
                    problem = f"the cluster serves no kind {ident.kind} in {ident.group or 'core'}/{ident.version}"
        if res is None:
            return ManifestOutcome(ordinal, ident, "", ManifestConfig(), False, problem, None)
        if res.namespaced and not ident.namespace:
            ident = ManifestId(ident.group, ident.version, ident.kind, "default", ident.name)
        elif not res.namespaced and ident.namespace:
            ident = ManifestId(ident.group, ident.version, ident.kind, "", ident.name)
        config = config_for(spec, ident.group, res.plural, ident.namespace, ident.name)
        body = copy.deepcopy(manifest)
        body["metadata"] = dict(body.get("metadata") or {})
        body["metadata"].pop("namespace", None)
        if ident.namespace:
            body["metadata"]["namespace"] = ident.namespace
        try:
            applied, live = self._write(res, body, ident, config)
        except Exception as exc:
            live = self._read(res, ident)
            return ManifestOutcome(ordinal, ident, res.plural, config, False, api_message(exc), live)
        return ManifestOutcome(ordinal, ident, res.plural, config, applied, "" if applied else "not applied", live)

    def refresh(self, outcomes: Iterable[ManifestOutcome]) -> list[ManifestOutcome]:
        """The same outcomes with their objects read again: a status-only pass that writes nothing."""
        out = []
        for old in outcomes:
            res = self.discovery.resource(old.ident.group, old.ident.version, old.ident.kind)
            live = self.spoke.get(res, old.ident.name, old.ident.namespace or None) if res is not None else None
            out.append(dataclasses.replace(old, live=live))
        return out

    def _read(self, res: Resource, ident: ManifestId) -> Obj | None:
        try:
            return self.spoke.get(res, ident.name, ident.namespace or None)
        except Exception:
            return None

    def _write(self, res: Resource, body: Obj, ident: ManifestId, config: ManifestConfig) -> tuple[bool, Obj | None]:
        if config.strategy not in STRATEGIES:
            raise ValueError(f"unknown updateStrategy type {config.strategy!r} (one of {', '.join(STRATEGIES)})")
        if config.strategy == READ_ONLY:
            live = self.spoke.get(res, ident.name, ident.namespace or None)
            if live is None:
                raise LookupError(f"{ident.kind} {ident.name} does not exist (ReadOnly)")
            return True, live
        if config.strategy == CREATE_ONLY:
            live = self.spoke.get(res, ident.name, ident.namespace or None)
            return True, live if live is not None else self.spoke.create(res, body, ident.namespace or None)
        if config.strategy == SERVER_SIDE_APPLY:
            return True, self._as(config.field_manager).apply(res, body, force=config.force)
        return True, self.spoke.apply(res, body, force=True)

    def delete(self, applied: AppliedResource) -> bool:
        """Delete one applied resource if it is still ours; True once it is gone (or no longer ours)."""
        res = self.discovery.by_plural(applied.group, applied.version, applied.resource)
        if res is None:
            return True  # its kind is gone (CRD deleted): so is the object
        live = self.spoke.get(res, applied.name, applied.namespace or None)
        if not deletable(live, applied):
            return True
        if not (live or {}).get("metadata", {}).get("deletionTimestamp"):
            log.info("deleting %s %s/%s", res.kind, applied.namespace, applied.name)
            self.spoke.delete(res, applied.name, applied.namespace or None, preconditions={"uid": applied.uid})
        return not deletable(self.spoke.get(res, applied.name, applied.namespace or None), applied)
