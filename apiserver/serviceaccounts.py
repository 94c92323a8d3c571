"""ServiceAccounts in every namespace and the ServiceAccount admission plugin for Pods.

What kube-controller-manager and kube-apiserver's admission do for workload identity, done here
inside the API server, per cluster:
- the `default` ServiceAccount in every namespace (serviceaccounts-controller): created for
  every existing namespace at start, for a new namespace right after it is committed, and again
  when it is deleted while its namespace lives;
- the `kube-root-ca.crt` ConfigMap (key `ca.crt`: the cluster's CA in PEM) in every namespace
  (root-ca-cert-publisher), restored when deleted or changed;
- Pod admission (plugin `ServiceAccount`): `spec.serviceAccountName` defaults to `default` and
  `spec.serviceAccount` mirrors it; a missing ServiceAccount is 403 `error looking up service
  account <ns>/<name>: serviceaccount "<name>" not found`; unless `automountServiceAccountToken`
  is false (Pod first, then ServiceAccount), a projected volume `kube-api-access-xxxxx` (token,
  CA, namespace) is mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every
  container and init container that has nothing mounted there yet. A server without TLS
  (`--insecure-no-auth`) has no CA to publish and no token to give: it publishes no
  kube-root-ca.crt and mounts no token volume (the default ServiceAccount is still made).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from apiserver import errors
from apiserver.resources import Obj
from apiserver.store import Event, Store

SA_KEY = "/serviceaccounts"
CONFIGMAP_KEY = "/configmaps"
NAMESPACE_KEY = "/namespaces"
DEFAULT_SA = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apiserver's SimpleNameGenerator

Create = Callable[[str, str, Obj], None]  # resource key, namespace, object: create, ignoring AlreadyExists
Replace = Callable[[str, str, Obj], None]  # resource key, namespace, object: update in place


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _live(ns: Obj | None) -> bool:
    return ns is not None and not _meta(ns).get("deletionTimestamp")


def root_ca_configmap(namespace: str, ca_pem: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                         "annotations": {"kubernetes.io/description": (
                             "Contains a CA bundle that can be used to verify the kube-apiserver when using "
                             "internal endpoints such as the internal service IP or kubernetes.default.svc. "
                             "No other usage is guaranteed across distributions of Kubernetes clusters.")}},
            "data": {"ca.crt": ca_pem}}


class ServiceAccounts:
    """The per-namespace identity objects of one cluster and the Pod admission that uses them."""

    def __init__(self, store: Store, create: Create, replace: Replace) -> None:
        self.store = store
        self._create, self._replace = create, replace
        self.ca_pem: str | None = None

    # -- controllers --------------------------------------------------------------------------------
    def publish(self, ca_pem: str | None) -> None:
        """Ensure the default ServiceAccount (and, once the CA is known, kube-root-ca.crt) everywhere."""
        self.ca_pem = ca_pem
        for _, ns in self.store.items(NAMESPACE_KEY):
            if _live(ns):
                self._ensure_namespace(_meta(ns).get("name", ""))

    def _ensure_namespace(self, namespace: str) -> None:
        if self.store.get(SA_KEY, namespace, DEFAULT_SA) is None:
            self._create(SA_KEY, namespace, {"apiVersion": "v1", "kind": "ServiceAccount",
                                             "metadata": {"name": DEFAULT_SA, "namespace": namespace}})
        if self.ca_pem is None:
            return
        current = self.store.get(CONFIGMAP_KEY, namespace, ROOT_CA_CONFIGMAP)
        wanted = root_ca_configmap(namespace, self.ca_pem)
        if current is None:
            self._create(CONFIGMAP_KEY, namespace, wanted)
        elif (current.get("data") or {}) != wanted["data"]:
            self._replace(CONFIGMAP_KEY, namespace, {**current, "data": wanted["data"]})

    def observe(self, events: Iterable[Event]) -> None:
        """React to committed events: a new namespace, a deleted default SA or a changed root CA."""
        touched: list[str] = []
        for ev in events:
            meta = _meta(ev.obj)
            lost_default = ev.resource == SA_KEY and ev.type == "DELETED" and meta.get("name") == DEFAULT_SA
            root_ca = ev.resource == CONFIGMAP_KEY and meta.get("name") == ROOT_CA_CONFIGMAP
            if ev.resource == NAMESPACE_KEY and ev.type == "ADDED":
                touched.append(meta.get("name", ""))
            elif lost_default or (root_ca and self.ca_pem is not None):
                touched.append(meta.get("namespace", ""))
        for namespace in dict.fromkeys(touched):
            if _live(self.store.get(NAMESPACE_KEY, "", namespace)):
                self._ensure_namespace(namespace)

    # -- admission ----------------------------------------------------------------------------------
    def admit_pod(self, pod: Obj) -> None:
        """The ServiceAccount admission plugin on a Pod create, in place (403 when the SA is missing)."""
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            return
        meta = _meta(pod)
        if _meta(pod).get("annotations", {}).get("kubernetes.io/config.mirror"):
            return
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SA
        if not isinstance(name, str):
            return  # validation's to refuse
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        namespace = meta.get("namespace", "")
        account = self.store.get(SA_KEY, namespace, name)
        if account is None:
            raise errors.forbidden("pods", "", meta.get("name", ""),
                                   f'error looking up service account {namespace}/{name}: serviceaccount "{name}" '
                                   "not found")
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = account.get("automountServiceAccountToken")
        if automount is not False and self.ca_pem is not None:  # no TLS identity (--insecure-no-auth): no token
            mount_token(spec)


def mount_token(spec: dict[str, Any]) -> None:
    """Add the projected token volume and its read-only mount as upstream's plugin does."""
    volumes: list[Any] = spec["volumes"] if isinstance(spec.get("volumes"), list) else []
    existing = next((v["name"] for v in volumes if isinstance(v, dict) and isinstance(v.get("name"), str)
                     and v["name"].startswith(VOLUME_PREFIX)), None)
    volume_name = existing or VOLUME_PREFIX + "".join(random.choice(_NAME_ALPHABET) for _ in range(5))
    needed = False
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            mounts = container.get("volumeMounts")
            mounts = mounts if isinstance(mounts, list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": volume_name, "readOnly": True,
                                                   "mountPath": TOKEN_MOUNT_PATH}]
            needed = True
    if needed and existing is None:
        spec["volumes"] = [*volumes, token_volume(volume_name)]


def token_volume(name: str) -> Obj:
    return {"name": name, "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ], "defaultMode": 420}}
