"""The work agent's record on the managed cluster: one AppliedManifestWork per ManifestWork.

`<hub hash>-<work name>` (cluster-scoped) holds `spec.hubHash`, `spec.manifestWorkName`,
`spec.agentID` and `status.appliedResources[]` (group, version, resource, namespace, name, uid), plus
the work's last seen `deleteOption` as an annotation. It is what makes removal exact: a manifest
dropped from the work, a deleted work (also one deleted while the agent was away) and a restart all
go by it, never by what the work says now. Which records are deleted or kept is decided in
`workplan` (pure); this module reads and writes the records and calls the deletions.

A record made under an earlier URL of the same hub (the embedded API server back on another port,
so another hub hash) is carried over into the current hash's record at connect, so it neither
lingers nor keeps the resources it lists alive as "shared".
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kube import objects
from kube.rest import Kube
from localcluster.ocm import workplan
from localcluster.ocm.resources import APPLIED_MANIFEST_WORKS
from localcluster.ocm.workapply import ManifestApplier
from localcluster.ocm.workplan import READ_ONLY, AppliedResource
from localcluster.ocm.workstatus import ManifestOutcome

log = logging.getLogger("localcluster.ocm.work")

Obj = dict[str, Any]


def applied_resources(amw: Obj | None) -> list[AppliedResource]:
    return [AppliedResource.of(e) for e in ((amw or {}).get("status") or {}).get("appliedResources") or []]


def last_delete_option(amw: Obj) -> Obj | None:
    """The deleteOption the agent last saw on the record's work (None when unreadable)."""
    text = objects.annotations_of(amw).get(workplan.DELETE_OPTION_ANNOTATION) or "{}"
    try:
        option = json.loads(text)
    except ValueError:
        return None
    return option if isinstance(option, dict) else None


class AppliedRecords:
    """The AppliedManifestWorks of one agent (`agent_id`) for one hub (`hub_hash`)."""

    def __init__(self, spoke: Kube, applier: ManifestApplier, hub_hash: str, agent_id: str) -> None:
        self.spoke = spoke
        self.applier = applier
        self.hub_hash = hub_hash
        self.agent_id = agent_id

    def name(self, work_name: str) -> str:
        return workplan.applied_work_name(self.hub_hash, work_name)

    def get(self, work_name: str) -> Obj | None:
        """This agent's record of `work_name` (None when absent or another agent's)."""
        amw = self.spoke.get(APPLIED_MANIFEST_WORKS, self.name(work_name))
        return amw if amw is not None and (amw.get("spec") or {}).get("agentID") == self.agent_id else None

    def work_names(self) -> list[str]:
        """The works this agent keeps records of (carrying over records of an earlier hub URL)."""
        items, _ = self.spoke.list(APPLIED_MANIFEST_WORKS)
        names = []
        for amw in items:
            spec = amw.get("spec") or {}
            if spec.get("agentID") != self.agent_id:
                continue
            work_name = str(spec.get("manifestWorkName") or "")
            if spec.get("hubHash") != self.hub_hash:
                self._carry_over(amw, work_name)
            names.append(work_name)
        return names

    def _carry_over(self, old: Obj, work_name: str) -> None:
        current = self.ensure(work_name, last_delete_option(old))
        merged = {(*r.key, r.uid): r for r in [*applied_resources(current), *applied_resources(old)]}
        self.spoke.patch_status(APPLIED_MANIFEST_WORKS, objects.name_of(current),
                                {"appliedResources": [r.to_obj() for r in merged.values()]})
        self.spoke.delete(APPLIED_MANIFEST_WORKS, objects.name_of(old))
        log.info("work %s: record %s carried over to %s", work_name, objects.name_of(old), objects.name_of(current))

    def ensure(self, work_name: str, delete_option: Obj | None) -> Obj:
        """The record of `work_name`, created or brought up to date (spec, last delete option)."""
        desired = workplan.applied_work(self.hub_hash, work_name, self.agent_id, delete_option)
        name = desired["metadata"]["name"]
        current = self.spoke.get(APPLIED_MANIFEST_WORKS, name)
        if current is None:
            return self.spoke.create(APPLIED_MANIFEST_WORKS, desired)
        annotation = workplan.DELETE_OPTION_ANNOTATION
        if current.get("spec") == desired["spec"] and objects.annotations_of(current).get(annotation) == \
                desired["metadata"]["annotations"][annotation]:
            return current
        return self.spoke.patch(APPLIED_MANIFEST_WORKS, name, {"metadata": desired["metadata"],
                                                               "spec": desired["spec"]})

    def _shared(self, except_name: str) -> set[tuple[str, str, str, str, str]]:
        """`(*key, uid)` of what the other works of this hub record (a resource two works apply stays
        while one of them does)."""
        items, _ = self.spoke.list(APPLIED_MANIFEST_WORKS)
        return {(*r.key, r.uid) for amw in items if objects.name_of(amw) != except_name
                and (amw.get("spec") or {}).get("hubHash") == self.hub_hash for r in applied_resources(amw)}

    def _remove(self, gone: list[AppliedResource], delete_option: Obj | None, amw_name: str) -> list[AppliedResource]:
        """Delete what `gone` holds that is ours to delete; the ones still on their way out."""
        if not gone:
            return []
        removal = workplan.plan_removal(gone, delete_option, self._shared(amw_name))
        return [r for r in removal.delete if not self.applier.delete(r)]

    def record(self, amw: Obj, outcomes: list[ManifestOutcome], delete_option: Obj | None) -> list[AppliedResource]:
        """Record what the outcomes applied, delete what the work dropped; those still being deleted.
        A manifest that failed this time is still in the work: its earlier entry stays. While any
        manifest's kind is unresolved (discovery failed, maybe only for now) nothing is deleted and
        every earlier entry stays: which recorded resource that manifest is cannot be told."""
        previous = applied_resources(amw)
        applied = [AppliedResource(o.ident.group, o.ident.version, o.resource, o.ident.namespace, o.ident.name,
                                   objects.uid_of(o.live)) for o in outcomes
                   if o.applied and o.live is not None and o.config.strategy != READ_ONLY]
        now_keys = {r.key for r in applied}
        in_work = {(o.ident.group, o.resource, o.ident.namespace, o.ident.name) for o in outcomes if o.resource}
        unresolved = any(not o.resource for o in outcomes)
        kept = [r for r in previous if r.key not in now_keys and (unresolved or r.key in in_work)]
        dropped = [] if unresolved else [r for r in previous if r.key not in in_work]
        pending = self._remove(dropped, delete_option, objects.name_of(amw))
        records = [r.to_obj() for r in [*applied, *kept, *pending]]
        if records != ((amw.get("status") or {}).get("appliedResources") or []):
            self.spoke.patch_status(APPLIED_MANIFEST_WORKS, objects.name_of(amw), {"appliedResources": records})
        return pending

    def clean_up(self, work_name: str, delete_option: Obj | None) -> bool:
        """Remove what a deleted work applied (per `delete_option`); True once the record is gone."""
        name = self.name(work_name)
        amw = self.spoke.get(APPLIED_MANIFEST_WORKS, name)
        if amw is None:
            return True
        pending = self._remove(applied_resources(amw), delete_option, name)
        if pending:
            self.spoke.patch_status(APPLIED_MANIFEST_WORKS, name, {"appliedResources": [r.to_obj() for r in pending]})
            return False
        self.spoke.delete(APPLIED_MANIFEST_WORKS, name)
        log.info("work %s: applied resources removed (%s)", work_name,
                 (delete_option or {}).get("propagationPolicy") or workplan.FOREGROUND)
        return True
