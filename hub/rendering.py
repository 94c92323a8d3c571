"""The agent's manifests for one managed cluster (pure).

`render` returns the objects a deployer puts on the managed cluster: the install Namespace, the
agent's ServiceAccount and cluster-wide RBAC, VolSync's two CRDs (annotated deletion-orphan, so
replications survive an uninstall), the Secret the agent reaches the hub with, and the
`volsync-agent` Deployment, whose `--mover-image` is its own image (the agent's mover Jobs run the
same build). The ClusterRole (`RULES`) is what the agent's informers and mover Jobs need and no
more. The AddOnDeploymentConfig (`adc`) shapes the Deployment as addon-framework does:
nodePlacement, customizedVariables (`OPERAND_IMAGE_VOLSYNC`, and the agent's tuning in
`AGENT_VARIABLES`), registries (mirror rewrite, the last matching rule wins), resourceRequirements
(containerID `deployments:volsync-agent:agent`, `*` wildcards, the last match wins),
agentInstallNamespace and proxyConfig. `adc_reference` says which ADC applies: the MCA's
`spec.configs` entry wins over the ClusterManagementAddOn default.

The MCA's deprecated `spec.installNamespace` is ignored, as VolSync's addon ignores it.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import re
from typing import Any

import yaml

from hub import ocm
from manifests import CRD_DIR

Obj = dict[str, Any]

IMAGE_VARIABLE = "OPERAND_IMAGE_VOLSYNC"
HUB_CA_ANNOTATION = "volsync-addon.io/hub-ca-sha256"  # on the agent's Pod template: a new CA rolls it out
CONTAINER_ID = f"deployments:{ocm.AGENT}:{ocm.AGENT_CONTAINER}"

# The agent's rights on its cluster: exactly the calls under `agent/` (informers list and watch, the
# reconciler's creates/patches/deletes of mover Jobs and what they mount, status patches, the Event
# recorder's get/create/patch) and no more. One resource per rule where verbs differ, so a rule can be
# read (and, in a test, removed) alone. RBAC cannot narrow a rule by label: the informers of Services,
# Jobs, Pods and Secrets are label-selected (`app.kubernetes.io/created-by=volsync`), so the agent
# caches only its own objects, but its `list`/`watch` rights still cover every object of those kinds.
# No PersistentVolumes and no `services/status`: the cluster's storage and load balancer do that work.
RULES: list[Obj] = [
    # the replications: informers and status patches only (the agent never writes their spec)
    {"apiGroups": ["volsync.backube"], "resources": ["replicationsources", "replicationdestinations"],
     "verbs": ["list", "watch"]},
    {"apiGroups": ["volsync.backube"], "resources": ["replicationsources/status", "replicationdestinations/status"],
     "verbs": ["patch"]},
    # what it creates names a replication as owner with blockOwnerDeletion, which kube-apiserver's
    # OwnerReferencesPermissionEnforcement admits only with update on the owner's finalizers
    {"apiGroups": ["volsync.backube"],
     "resources": ["replicationsources/finalizers", "replicationdestinations/finalizers"], "verbs": ["update"]},
    # a destination's receiving claim, a source's point-in-time clone, a restore: made, relabelled, removed
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    # the snapshots of the Snapshot copy method and a destination's latest images
    {"apiGroups": ["snapshot.storage.k8s.io"], "resources": ["volumesnapshots"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    # the mover Jobs (label-selected informer): one per iteration, deleted when it is done; never patched
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch", "create", "delete"]},
    # the movers' Pods (label-selected informer): their state and termination message; never written
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
    # a mover Pod's log tail for `latestMoverStatus.logs`
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    # the destination's Service (label-selected informer): created; its selector patched when it does not
    # select the mover Pods (made by an older agent), and one of the retired agent-loopback class replaced
    {"apiGroups": [""], "resources": ["services"], "verbs": ["list", "watch", "create", "patch", "delete"]},
    # generated ssh keys (label-selected informer, create); `get` reads the Secret a user names in
    # `spec.rsync.sshKeys`, which carries no label of ours. Never updated or deleted (GC owns that)
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create"]},
    # the per-mover ServiceAccount bound to a Role without rules (no `moverServiceAccount` given);
    # binding an empty Role passes the escalation check without `bind`, and ownerReferences let GC delete them
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["create"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["create"]},
    # the Event recorder: get to find a repeated Event, patch to count it
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "create", "patch"]},
]


# -- the AddOnDeploymentConfig ------------------------------------------------------------------------
def adc_reference(mca: Obj, cma: Obj | None) -> tuple[str, str] | None:
    """(namespace, name) of the ADC for this MCA: its own `spec.configs` entry, else the CMA default
    (v1alpha1 `supportedConfigs[].defaultConfig`, or v1beta1-style `defaultConfigs[]`)."""
    for ref in (mca.get("spec") or {}).get("configs") or []:
        if _is_adc(ref) and ref.get("name"):
            namespace = ref.get("namespace") or (mca.get("metadata") or {}).get("namespace") or ""
            return namespace, str(ref["name"])
    spec = (cma or {}).get("spec") or {}
    for supported in spec.get("supportedConfigs") or []:
        default = supported.get("defaultConfig") or {}
        if _is_adc(supported) and default.get("name"):
            return str(default.get("namespace") or ""), str(default["name"])
    for ref in spec.get("defaultConfigs") or []:
        if _is_adc(ref) and ref.get("name"):
            return str(ref.get("namespace") or ""), str(ref["name"])
    return None


def _is_adc(ref: Obj) -> bool:
    return ref.get("group") == ocm.ADDON_GROUP and ref.get("resource") == ocm.ADC_RESOURCE


def install_namespace(adc: Obj | None) -> str:
    """The ADC's agentInstallNamespace; unset, empty or the CRD's own default means ours."""
    value = ((adc or {}).get("spec") or {}).get("agentInstallNamespace") or ""
    return value if value and value != ocm.FRAMEWORK_INSTALL_NAMESPACE else ocm.DEFAULT_INSTALL_NAMESPACE


def mirror_image(image: str, registries: list[Obj]) -> str:
    """addon-framework's rewrite: every rule is tried on the original image and the last match wins;
    an empty source moves every image (its last path segment) under the mirror."""
    result = image
    for rule in registries:
        source = str(rule.get("source") or "").rstrip("/")
        mirror = str(rule.get("mirror") or "").rstrip("/")
        if not source:
            last = image.rsplit("/", 1)[-1]
            result = f"{mirror}/{last}" if mirror else last
        elif image.startswith(source):
            result = mirror + image[len(source):]
    return result


def _matches(pattern: str, container_id: str) -> bool:
    parts, wanted = pattern.split(":"), container_id.split(":")
    if len(parts) != len(wanted):
        return False
    return all(re.fullmatch(".*".join(re.escape(p) for p in part.split("*")), w)
               for part, w in zip(parts, wanted, strict=True))


def resources_for(adc: Obj | None, container_id: str = CONTAINER_ID) -> Obj | None:
    found = None
    for entry in ((adc or {}).get("spec") or {}).get("resourceRequirements") or []:
        if _matches(str(entry.get("containerID") or ""), container_id):
            found = entry.get("resources")
    return copy.deepcopy(found) if found is not None else None


def agent_image(image: str, adc: Obj | None) -> str:
    spec = (adc or {}).get("spec") or {}
    for variable in spec.get("customizedVariables") or []:
        if variable.get("name") == IMAGE_VARIABLE and variable.get("value"):
            image = str(variable["value"])
    return mirror_image(image, spec.get("registries") or [])


# -- the manifests ------------------------------------------------------------------------------------
@functools.cache
def _crds() -> tuple[Obj, ...]:
    docs: list[Obj] = []
    for path in sorted(CRD_DIR.glob("volsync.backube_*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return tuple(docs)


def crds() -> list[Obj]:
    out = []
    for crd in copy.deepcopy(list(_crds())):
        crd.setdefault("metadata", {}).setdefault("annotations", {})[ocm.DELETION_ORPHAN] = ""
        out.append(crd)
    return out


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render(cluster: str, mca: Obj, adc: Obj | None, *, hub_url: str, token: str, ca_bundle: str,
           image: str) -> list[Obj]:
    """The agent's manifests, in apply order. `ca_bundle` is PEM text ("" when the hub URL needs none)."""
    namespace = install_namespace(adc)
    labels = {"app.kubernetes.io/name": ocm.AGENT, "app.kubernetes.io/part-of": ocm.ADDON}
    secret_data = {"token": _b64(token), "url": _b64(hub_url)}
    if ca_bundle:
        secret_data["ca.crt"] = _b64(ca_bundle)
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": {ocm.NAMESPACE_LABEL: "true"}}},
        *crds(),
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": ocm.AGENT, "namespace": namespace, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": ocm.AGENT, "labels": labels}, "rules": copy.deepcopy(RULES)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": ocm.AGENT, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ocm.AGENT},
         "subjects": [{"kind": "ServiceAccount", "name": ocm.AGENT, "namespace": namespace}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": ocm.AGENT_HUB_SECRET, "namespace": namespace, "labels": labels},
         "data": secret_data},
        deployment(cluster, namespace, adc, hub_url=hub_url, image=image, labels=labels, hub_ca=bool(ca_bundle),
                   hub_ca_hash=_digest(ca_bundle) if ca_bundle else ""),
    ]


# AddOnDeploymentConfig customizedVariables that tune the agent, and the flag each one sets.
AGENT_VARIABLES = {"RSYNC_RETRIES": "--rsync-retries", "LOG_LEVEL": "--log-level"}


def agent_flags(adc: Obj | None) -> list[str]:
    """Agent flags from the ADC's customizedVariables (e.g. RSYNC_RETRIES=2 → `--rsync-retries 2`)."""
    out: list[str] = []
    for var in ((adc or {}).get("spec") or {}).get("customizedVariables") or []:
        flag_name = AGENT_VARIABLES.get(str(var.get("name")))
        if flag_name and var.get("value") not in (None, ""):
            out += [flag_name, str(var["value"])]
    return out


def deployment(cluster: str, namespace: str, adc: Obj | None, *, hub_url: str, image: str,
               labels: dict[str, str], hub_ca: bool = False, hub_ca_hash: str = "") -> Obj:
    """The agent Deployment; with `hub_ca` the agent verifies the hub with the Secret's `ca.crt`. Its
    `--mover-image` is the container's image: mover Jobs run the same build as the agent. The agent
    reads that CA once, at start, so `hub_ca_hash` (a digest of it) is an annotation of the Pod
    template: a hub that comes back with another CA rolls its agents out instead of stranding them."""
    spec = (adc or {}).get("spec") or {}
    ca_flag = ["--hub-ca-file", f"{ocm.HUB_SECRET_MOUNT}/ca.crt"] if hub_ca else []
    operand = agent_image(image, adc)
    container: Obj = {
        "name": ocm.AGENT_CONTAINER,
        "image": operand,
        "imagePullPolicy": "IfNotPresent",
        "command": [ocm.AGENT],
        # the movers run the agent's own image (mirror rewrite included), as VolSync's operator does
        "args": ["--cluster-name", cluster, "--mover-image", operand, "--hub-url", hub_url,
                 "--hub-token-file", f"{ocm.HUB_SECRET_MOUNT}/token", *ca_flag, *agent_flags(adc)],
        "volumeMounts": [{"name": "hub", "mountPath": ocm.HUB_SECRET_MOUNT, "readOnly": True}],
    }
    proxy = spec.get("proxyConfig") or {}
    env = [{"name": name, "value": str(proxy[key])}
           for name, key in (("HTTP_PROXY", "httpProxy"), ("HTTPS_PROXY", "httpsProxy"), ("NO_PROXY", "noProxy"))
           if proxy.get(key)]
    if env:
        container["env"] = env
    resources = resources_for(adc)
    if resources is not None:
        container["resources"] = resources
    pod: Obj = {
        "serviceAccountName": ocm.AGENT,
        "containers": [container],
        "volumes": [{"name": "hub", "secret": {"secretName": ocm.AGENT_HUB_SECRET}}],
    }
    placement = spec.get("nodePlacement") or {}
    if placement.get("nodeSelector"):
        pod["nodeSelector"] = dict(placement["nodeSelector"])
    if placement.get("tolerations"):
        pod["tolerations"] = copy.deepcopy(placement["tolerations"])
    selector = {"app.kubernetes.io/name": ocm.AGENT}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": ocm.AGENT, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "Recreate"},  # never two agents for one cluster
            "template": {"metadata": {"labels": dict(labels),
                                      **({"annotations": {HUB_CA_ANNOTATION: hub_ca_hash}} if hub_ca_hash else {})},
                         "spec": pod},
        },
    }
