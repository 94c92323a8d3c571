"""The status a work agent writes on a ManifestWork, from what applying its manifests gave. Pure.

Per manifest (`status.resourceStatus.manifests[]`): `resourceMeta`, conditions `Applied`
(AppliedManifestComplete / AppliedManifestFailed), `Available` (ResourceAvailable when the object
exists on the cluster / ResourceNotAvailable), `StatusFeedbackSynced` (only with feedback rules:
StatusFeedbackSynced / StatusFeedbackSyncFailed naming each value that could not be read), the
`statusFeedback.values`, and for Deployments `Progressing` and `Degraded`:

- Progressing True (DeploymentProgressing) while the Deployment controller has not observed the
  latest generation, or updated or ready replicas are fewer than `spec.replicas`, or old replicas
  are still running (status.replicas > spec.replicas); False (DeploymentComplete) otherwise;
- Degraded True (ProgressDeadlineExceeded) when the Deployment's own Progressing condition says
  its progress deadline passed; False (DeploymentNotDegraded) otherwise.

The work's conditions aggregate them: `Applied` (AppliedManifestWorkComplete, or
AppliedManifestWorkFailed with the first failure's message), `Available` (ResourcesAvailable /
ResourcesNotAvailable), `Progressing` (ResourcesProgressing / ResourcesNotProgressing) and `Degraded`
(ResourcesDegraded / ResourcesNotDegraded). Every condition carries the work's generation as
`observedGeneration`, and its `lastTransitionTime` moves only when its status does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kube import objects
from localcluster.ocm import feedback, workplan
from localcluster.ocm.workplan import ManifestConfig, ManifestId

Obj = dict[str, Any]


@dataclass(frozen=True)
class ManifestOutcome:
    """What happened to one manifest: applied or why not, and the object as the cluster has it."""

    ordinal: int
    ident: ManifestId
    resource: str  # the plural from discovery ("" when unknown)
    config: ManifestConfig
    applied: bool
    message: str  # why it was not applied ("" when it was)
    live: Obj | None


def _cond(type_: str, ok: bool, reason_ok: str, reason_not: str, message: str, generation: int) -> Obj:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason_ok if ok else reason_not,
            "message": message, "observedGeneration": generation}


def deployment_progress(live: Obj) -> tuple[bool, str, bool, str]:
    """(progressing, why, degraded, why) of a Deployment (see the module docstring)."""
    spec, status = live.get("spec") or {}, live.get("status") or {}
    wanted = int(spec.get("replicas", 1) or 0)
    updated, ready, total = (int(status.get(f) or 0) for f in ("updatedReplicas", "readyReplicas", "replicas"))
    generation = int(objects.meta(live).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        progressing, why = True, f"generation {generation} not yet observed by the Deployment controller"
    elif updated < wanted or ready < wanted or total > wanted:
        progressing, why = True, f"{updated} updated, {ready} ready, {total} total of {wanted} replicas"
    else:
        progressing, why = False, f"{ready}/{wanted} replicas ready and up to date"
    deadline = objects.condition(status.get("conditions"), "Progressing") or {}
    degraded = deadline.get("reason") == "ProgressDeadlineExceeded"
    return progressing, why, degraded, str(deadline.get("message") or "") if degraded else "not degraded"


def _manifest_conditions(out: ManifestOutcome, fb: feedback.Feedback | None, generation: int) -> list[Obj]:
    conds = [
        _cond("Applied", out.applied, "AppliedManifestComplete", "AppliedManifestFailed",
              "Apply manifest complete" if out.applied else out.message, generation),
        _cond("Available", out.live is not None, "ResourceAvailable", "ResourceNotAvailable",
              "Resource is available" if out.live is not None else "Resource is not available", generation),
    ]
    if fb is not None:
        conds.append(_cond("StatusFeedbackSynced", not fb.errors, "StatusFeedbackSynced", "StatusFeedbackSyncFailed",
                           "; ".join(fb.errors) or "all status feedback values are synced", generation))
    if out.live is not None and (out.ident.group, out.ident.kind) == ("apps", "Deployment"):
        progressing, why, degraded, why_degraded = deployment_progress(out.live)
        conds.append(_cond("Progressing", progressing, "DeploymentProgressing", "DeploymentComplete", why, generation))
        conds.append(_cond("Degraded", degraded, "ProgressDeadlineExceeded", "DeploymentNotDegraded", why_degraded,
                           generation))
    return conds


def _merge(old: list[Obj] | None, new: list[Obj], now: str) -> list[Obj]:
    """`new` conditions in order, each keeping its old lastTransitionTime unless its status changed."""
    out: list[Obj] = []
    for cond in new:
        out = [*out, *objects.set_condition(old, cond, now)[-1:]]
    return out


def manifest_status(out: ManifestOutcome, old: Obj | None, generation: int, now: str) -> Obj:
    """One `resourceStatus.manifests[]` entry (`old`: the previous entry for the same manifest)."""
    ident = out.ident
    fb = feedback.collect(out.live, list(out.config.feedback_rules)) if (
        out.live is not None and out.config.feedback_rules) else None
    if fb is None and out.config.feedback_rules:
        fb = feedback.Feedback((), ("the resource does not exist",))
    entry: Obj = {
        "resourceMeta": {"ordinal": out.ordinal, "group": ident.group, "version": ident.version, "kind": ident.kind,
                         "resource": out.resource, "name": ident.name, "namespace": ident.namespace},
        "conditions": _merge((old or {}).get("conditions"), _manifest_conditions(out, fb, generation), now),
    }
    if fb is not None:
        entry["statusFeedback"] = {"values": list(fb.values)}
    return entry


def _old_entry(status: Obj, out: ManifestOutcome) -> Obj | None:
    for entry in (status.get("resourceStatus") or {}).get("manifests") or []:
        meta = entry.get("resourceMeta") or {}
        if (meta.get("ordinal"), meta.get("kind"), meta.get("name")) == (out.ordinal, out.ident.kind, out.ident.name):
            return dict(entry)
    return None


def _any(entries: list[Obj], type_: str) -> list[str]:
    """Names of the manifests whose condition `type_` is True."""
    return [str(e["resourceMeta"]["name"]) for e in entries
            if (objects.condition(e.get("conditions"), type_) or {}).get("status") == "True"]


def _applied_message(failed: list[ManifestOutcome], problems: list[str]) -> str:
    """The work's Applied message: its malformed spec entries (skipped), else the first failed manifest."""
    if problems:
        return f"Invalid spec, entries skipped: {'; '.join(problems)}"
    if failed:
        return (f"Failed to apply manifest {failed[0].ordinal} ({failed[0].ident.kind} {failed[0].ident.name}): "
                f"{failed[0].message}")
    return "Apply manifest work complete"


def work_status(work: Obj, outcomes: list[ManifestOutcome], now: str) -> Obj:
    """The whole `status` of `work` after applying `outcomes` (see the module docstring)."""
    generation = int(objects.meta(work).get("generation") or 0)
    old = work.get("status") or {}
    entries = [manifest_status(out, _old_entry(old, out), generation, now) for out in outcomes]
    failed = [out for out in outcomes if not out.applied]
    problems = workplan.spec_problems(work.get("spec") or {})
    missing = [out for out in outcomes if out.live is None]
    progressing, degraded = _any(entries, "Progressing"), _any(entries, "Degraded")
    conditions = [
        _cond("Applied", not failed and not problems, "AppliedManifestWorkComplete", "AppliedManifestWorkFailed",
              _applied_message(failed, problems), generation),
        _cond("Available", not missing, "ResourcesAvailable", "ResourcesNotAvailable",
              "All resources are available" if not missing else
              f"{len(missing)} of {len(outcomes)} resources are not available", generation),
        _cond("Progressing", bool(progressing), "ResourcesProgressing", "ResourcesNotProgressing",
              f"progressing: {', '.join(progressing)}" if progressing else "no resource is progressing", generation),
        _cond("Degraded", bool(degraded), "ResourcesDegraded", "ResourcesNotDegraded",
              f"degraded: {', '.join(degraded)}" if degraded else "no resource is degraded", generation),
    ]
    kept = [c for c in old.get("conditions") or [] if c.get("type") not in {c["type"] for c in conditions}]
    return {**old, "conditions": [*_merge(old.get("conditions"), conditions, now), *kept],
            "resourceStatus": {"manifests": entries}}
