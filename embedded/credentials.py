"""The ServiceAccount credential of the hub process of the embedded default.

On a real cluster the hub runs in a Pod and reads a projected ServiceAccount token (so does the
agent, in the embedded default too: the node projects it into the agent's Pod); in the embedded
default the hub is a process of the composition root, so the platform (cluster admin) gives it a
kubeconfig holding a token of its own ServiceAccount, from a legacy token Secret
(`kubernetes.io/service-account-token`, annotation `kubernetes.io/service-account.name`) that the
API server's tokens controller fills. The token
authenticates while the Secret exists: deleting the Secret revokes it (from the next request on),
and a new Secret (a new, generated name) gets a new token. Whatever the component may do is decided
by the RBAC bound to its ServiceAccount, never by this module.

Everything here is state in API objects or 0600 files: a platform killed with SIGKILL finds the
Secret (and its token) again on the next start.
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path
from typing import Any

import yaml

from apiserver.authn import kubeconfig, write_kubeconfig
from kube.rest import NAMESPACES, SECRETS, Kube, Resource

Obj = dict[str, Any]
TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
CREDENTIAL_LABEL = "volsync-addon.io/embedded-credential"  # value: the component the Secret is for

_RBAC = "rbac.authorization.k8s.io"
KINDS: dict[str, Resource] = {r.kind: r for r in (
    NAMESPACES,
    SECRETS,
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False),
    Resource(_RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    Resource(_RBAC, "v1", "roles", "Role"),
    Resource(_RBAC, "v1", "rolebindings", "RoleBinding"),
)}


def apply_files(kube: Kube, files: tuple[Path, ...] | list[Path]) -> int:
    """Server-side apply every document of `files` (Namespaces, ServiceAccounts, RBAC, Secrets), in
    order; the number applied."""
    count = 0
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            res = KINDS.get(str(doc.get("kind")))
            if res is None:
                raise ValueError(f"{path}: the embedded platform does not apply a {doc.get('kind')}")
            kube.apply(res, doc)
            count += 1
    return count


def service_account_token(kube: Kube, namespace: str, service_account: str, component: str, *,
                          timeout: float = 30.0, poll: float = 0.05) -> str:
    """The token of the legacy token Secret made for `component` as `service_account` in `namespace`:
    the one there (the oldest, if a crash left two), else a new one (labelled `CREDENTIAL_LABEL=component`,
    named `<service_account>-token-<random>`), its `data.token` awaited (polled, `timeout`).

    A fresh name per Secret is what makes deletion a revocation: a legacy token's claims are only the
    account (name, uid) and the Secret's name, so a Secret re-created under the same name would carry
    the very token that deleting the previous one revoked."""
    deadline = time.monotonic() + timeout
    while True:
        secret = _made_for(kube, namespace, service_account, component)
        if secret is None:
            secret = kube.create(SECRETS, {
                "metadata": {"generateName": f"{service_account}-token-", "namespace": namespace,
                             "labels": {CREDENTIAL_LABEL: component},
                             "annotations": {SA_NAME_ANNOTATION: service_account}},
                "type": TOKEN_TYPE})
        token = _token_of(secret)
        if token:
            return token
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the token Secret {namespace}/{(secret.get('metadata') or {}).get('name')} of "
                               f"ServiceAccount {service_account} got no token within {timeout:.0f}s")
        time.sleep(poll)  # polling the API server for the tokens controller's write, with a deadline


def _made_for(kube: Kube, namespace: str, service_account: str, component: str) -> Obj | None:
    """The oldest token Secret of `service_account` labelled for `component` in `namespace`, if any."""
    items, _ = kube.list(SECRETS, namespace, label_selector=f"{CREDENTIAL_LABEL}={component}")
    mine = [s for s in items if s.get("type") == TOKEN_TYPE and not (s.get("metadata") or {}).get("deletionTimestamp")
            and ((s.get("metadata") or {}).get("annotations") or {}).get(SA_NAME_ANNOTATION) == service_account]
    mine.sort(key=lambda s: (str(s["metadata"].get("creationTimestamp")), str(s["metadata"].get("name"))))
    return mine[0] if mine else None


def _token_of(secret: Obj | None) -> str:
    try:
        return base64.b64decode(((secret or {}).get("data") or {}).get("token") or "", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ""


def write_token_kubeconfig(path: Path, base_url: str, cluster: str, token: str, ca: bytes, user: str) -> Path:
    """A kubeconfig (0600) with one cluster (`cluster`, its context named alike) and `token`; written
    only when its content changed."""
    config = kubeconfig(base_url, [cluster], {cluster: token}, ca, user=user)
    try:
        current = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        current = None
    if current != config:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_kubeconfig(path, config)
    return path
