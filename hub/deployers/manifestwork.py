"""Deploy through OCM: ManifestWork `addon-volsync-deploy-0` in the cluster namespace.

The work is what addon-framework would write: label `open-cluster-management.io/addon-name=volsync`,
a controller ownerReference to the MCA (so deleting the MCA garbage-collects the work, and the work
agent then removes the agent from the cluster), the manifests, WellKnownStatus feedback for the
`volsync-agent` Deployment, and a SelectivelyOrphan delete option for the objects annotated
`addon.open-cluster-management.io/deletion-orphan` (VolSync's CRDs: replications survive an
uninstall). It is rewritten only when what it should say differs from what it says (so a drifted
work is put back, and an unchanged one costs a GET and no write).

Its status comes back from the work agent: condition Applied → `applied`; Available and the
Deployment's feedback → `available`, healthy when ReadyReplicas == Replicas (VolSync's rule; a
Deployment scaled to 0 counts as healthy). A status older than the work's generation is not known yet.
"""

from __future__ import annotations

import copy
from typing import Any

from hub import ocm
from hub.deployers import DeployState
from kube import objects
from kube.rest import Kube

Obj = dict[str, Any]

_PLURALS = {"CustomResourceDefinition": "customresourcedefinitions", "ClusterRoleBinding": "clusterrolebindings",
            "ClusterRole": "clusterroles", "ServiceAccount": "serviceaccounts"}


def resource_of(manifest: Obj) -> tuple[str, str]:
    """(group, plural resource) of a manifest, for resource identifiers and orphaning rules."""
    api_version = str(manifest.get("apiVersion") or "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    kind = str(manifest.get("kind") or "")
    plural = _PLURALS.get(kind)
    if plural is None:
        lower = kind.lower()
        plural = lower[:-1] + "ies" if lower.endswith("y") else lower + ("es" if lower.endswith("s") else "s")
    return group, plural


def _deployment(manifests: list[Obj]) -> Obj | None:
    return next((m for m in manifests if m.get("kind") == "Deployment" and objects.name_of(m) == ocm.AGENT), None)


def desired_work(cluster: str, mca: Obj, manifests: list[Obj]) -> Obj:
    """The ManifestWork for these manifests (every field the API server would default is spelled out,
    so a stored work compares equal to a freshly computed one)."""
    spec: Obj = {"workload": {"manifests": copy.deepcopy(manifests)}}
    agent = _deployment(manifests)
    if agent is not None:
        spec["manifestConfigs"] = [{
            "resourceIdentifier": {"group": "apps", "resource": "deployments", "name": ocm.AGENT,
                                   "namespace": objects.namespace_of(agent)},
            "feedbackRules": [{"type": "WellKnownStatus"}],
            "feedbackScrapeType": "Poll",
        }]
    rules = []
    for manifest in manifests:
        if ocm.DELETION_ORPHAN in objects.annotations_of(manifest):
            group, resource = resource_of(manifest)
            rules.append({"group": group, "resource": resource, "namespace": objects.namespace_of(manifest),
                          "name": objects.name_of(manifest)})
    if rules:
        spec["deleteOption"] = {"propagationPolicy": "SelectivelyOrphan",
                                "selectivelyOrphans": {"orphaningRules": rules}}
    return {
        "apiVersion": ocm.MANIFEST_WORKS.api_version,
        "kind": ocm.MANIFEST_WORKS.kind,
        "metadata": {"name": ocm.WORK_NAME, "namespace": cluster, "labels": {ocm.ADDON_NAME_LABEL: ocm.ADDON},
                     "ownerReferences": [objects.owner_ref(mca)]},
        "spec": spec,
    }


def _up_to_date(current: Obj, desired: Obj) -> bool:
    labels = objects.labels_of(current)
    refs = objects.meta(current).get("ownerReferences") or []
    return (current.get("spec") == desired["spec"]
            and labels.get(ocm.ADDON_NAME_LABEL) == ocm.ADDON
            and refs == desired["metadata"]["ownerReferences"])


def _feedback(work: Obj, namespace: str) -> dict[str, Any] | None:
    """The agent Deployment's feedback values (name → value), or None when none arrived yet."""
    for manifest in ((work.get("status") or {}).get("resourceStatus") or {}).get("manifests") or []:
        meta = manifest.get("resourceMeta") or {}
        if meta.get("resource") != "deployments" or meta.get("name") != ocm.AGENT:
            continue
        if namespace and meta.get("namespace") not in (None, "", namespace):
            continue
        values = ((manifest.get("statusFeedback") or {}).get("values")) or []
        if not values:
            return None
        out: dict[str, Any] = {}
        for value in values:
            field = value.get("fieldValue") or {}
            kind = str(field.get("type") or "")
            out[str(value.get("name"))] = field.get(kind[:1].lower() + kind[1:]) if kind else None
        return out
    return None


def state_of(work: Obj, manifests: list[Obj]) -> DeployState:
    """What the work's status says about these manifests."""
    status = work.get("status") or {}
    generation = objects.meta(work).get("generation")
    applied = objects.condition(status.get("conditions"), "Applied")
    if applied is None or (generation and (applied.get("observedGeneration") or generation) < generation):
        return DeployState(None, None, "waiting for the work agent to apply the manifests")
    if applied.get("status") != "True":
        return DeployState(False, None, str(applied.get("message") or "the manifests are not applied"))
    available = objects.condition(status.get("conditions"), "Available")
    if available is None:
        return DeployState(True, None, "the work agent has not reported availability yet")
    if available.get("status") != "True":
        return DeployState(True, False, str(available.get("message") or "the work is not available"))
    agent = _deployment(manifests)
    values = _feedback(work, objects.namespace_of(agent) if agent else "")
    if values is None:
        return DeployState(True, None, f"no status feedback from Deployment {ocm.AGENT} yet")
    replicas, ready = values.get("Replicas"), values.get("ReadyReplicas") or 0
    if not isinstance(replicas, int):
        return DeployState(True, False, f"Deployment {ocm.AGENT} reports no replica count")
    if replicas != ready:
        return DeployState(True, False, f"Deployment {ocm.AGENT}: {ready}/{replicas} replicas ready")
    return DeployState(True, True, f"Deployment {ocm.AGENT}: {ready}/{replicas} replicas ready")


class ManifestWorkDeployer:
    """The `Deployer` for a real OCM hub: the klusterlet's work agent applies the manifests."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def apply(self, cluster: str, mca: Obj, manifests: list[Obj]) -> DeployState:
        desired = desired_work(cluster, mca, manifests)
        current = self.kube.get(ocm.MANIFEST_WORKS, ocm.WORK_NAME, cluster)
        if current is None:
            self.kube.create(ocm.MANIFEST_WORKS, desired)
            return DeployState(None, None, "ManifestWork created; waiting for the work agent")
        if objects.is_deleting(current):
            return DeployState(None, None, "waiting for the previous ManifestWork to be deleted")
        if not _up_to_date(current, desired):
            body = copy.deepcopy(current)
            body["spec"] = desired["spec"]
            meta = body["metadata"]
            meta["labels"] = {**objects.labels_of(current), ocm.ADDON_NAME_LABEL: ocm.ADDON}
            meta["ownerReferences"] = desired["metadata"]["ownerReferences"]
            body.pop("status", None)
            current = self.kube.replace(ocm.MANIFEST_WORKS, body)  # resourceVersion: optimistic concurrency
        return state_of(current, manifests)

    def remove(self, cluster: str) -> None:
        self.kube.delete(ocm.MANIFEST_WORKS, ocm.WORK_NAME, cluster)
