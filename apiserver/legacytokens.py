"""Legacy ServiceAccount token Secrets: kube-controller-manager's tokens controller, in the API server.

A Secret of type `kubernetes.io/service-account-token` names its ServiceAccount in the annotation
`kubernetes.io/service-account.name` (required: 422 without it, as upstream's Secret validation).
Per cluster, on every committed batch and once at start (so a kill -9 between a write and its
reaction loses nothing: the reaction is recomputed from the stored objects):
- a token Secret whose ServiceAccount exists (and, when the Secret carries the annotation
  `kubernetes.io/service-account.uid`, has that uid) gets `data.token` (a legacy JWT signed with the
  cluster's key: `satokens.TokenIssuer.mint_legacy`, only when it has none), `data.ca.crt` (the CA
  the cluster publishes in kube-root-ca.crt, once it is known; updated when it changes),
  `data.namespace` and the uid annotation;
- a token Secret whose ServiceAccount does not exist (or has another uid) is deleted, as upstream's
  tokens controller does; deleting a ServiceAccount deletes its token Secrets.

The token authenticates (`satokens.subject`) while its Secret exists and holds exactly it and its
ServiceAccount exists with the uid in its claims. A TokenRequest may bind a token to such a Secret
(`kubectl create token --bound-object-kind Secret`): that token dies with the Secret.
Differences from upstream: no `kubernetes.io/legacy-token-last-used` tracking and no cleaner of
unused tokens; Secrets are filled synchronously after the commit that made them, not by a queue.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from typing import Any

from apiserver import errors
from apiserver.errors import REQUIRED, cause
from apiserver.resources import Obj
from apiserver.satokens import TokenIssuer
from apiserver.store import Event, Store

SECRET_KEY = "/secrets"
SA_KEY = "/serviceaccounts"
CONFIGMAP_KEY = "/configmaps"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"

Replace = Callable[[str, str, Obj], None]  # resource key, namespace, object: update in place
Delete = Callable[[str, str, str], None]  # resource key, namespace, name: delete, ignoring NotFound


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _annotations(obj: Obj) -> dict[str, Any]:
    found = _meta(obj).get("annotations")
    return found if isinstance(found, dict) else {}


def is_token_secret(obj: Obj) -> bool:
    return obj.get("type") == TOKEN_TYPE


def admit_secret(secret: Obj) -> None:
    """Upstream's Secret validation for the token type: the ServiceAccount name annotation is required."""
    if is_token_secret(secret) and not _annotations(secret).get(NAME_ANNOTATION):
        problem = cause(REQUIRED, f"metadata.annotations[{NAME_ANNOTATION}]")
        raise errors.invalid("Secret", "", str(_meta(secret).get("name") or ""), [problem])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class LegacyTokens:
    """The tokens controller of one cluster; `ca` answers the published CA (None until known)."""

    def __init__(self, store: Store, issuer: TokenIssuer, replace: Replace, delete: Delete,
                 ca: Callable[[], str | None]) -> None:
        self.store, self.issuer = store, issuer
        self._replace, self._delete, self._ca = replace, delete, ca

    def resync(self, namespace: str | None = None) -> None:
        """Reconcile every token Secret (of one namespace, or of all)."""
        for _, secret in self.store.items(SECRET_KEY, namespace):
            if is_token_secret(secret):
                self._sync(secret)

    def observe(self, events: Iterable[Event]) -> None:
        """React to committed events: token Secrets written, ServiceAccounts deleted, the CA published."""
        secrets: list[tuple[str, str]] = []
        gone: list[Obj] = []
        namespaces: list[str] = []
        for ev in events:
            meta = _meta(ev.obj)
            if ev.resource == SECRET_KEY and ev.type != "DELETED" and is_token_secret(ev.obj):
                secrets.append((str(meta.get("namespace", "")), str(meta.get("name", ""))))
            elif ev.resource == SA_KEY and ev.type == "DELETED":
                gone.append(ev.obj)
            elif ev.resource == CONFIGMAP_KEY and ev.type != "DELETED" and meta.get("name") == ROOT_CA_CONFIGMAP:
                namespaces.append(str(meta.get("namespace", "")))
        for account in gone:
            self._delete_tokens_of(account)
        for namespace, name in dict.fromkeys(secrets):
            current = self.store.get(SECRET_KEY, namespace, name)
            if current is not None and is_token_secret(current):
                self._sync(current)
        for namespace in dict.fromkeys(namespaces):
            self.resync(namespace)

    def _delete_tokens_of(self, account: Obj) -> None:
        meta = _meta(account)
        namespace, name, uid = str(meta.get("namespace", "")), meta.get("name"), meta.get("uid")
        for _, secret in self.store.items(SECRET_KEY, namespace):
            notes = _annotations(secret)
            if is_token_secret(secret) and notes.get(NAME_ANNOTATION) == name \
                    and notes.get(UID_ANNOTATION) in (None, "", uid):
                self._delete(SECRET_KEY, namespace, str(_meta(secret).get("name", "")))

    def _sync(self, secret: Obj) -> None:
        meta = _meta(secret)
        if meta.get("deletionTimestamp"):
            return
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        notes = _annotations(secret)
        account_name = notes.get(NAME_ANNOTATION)
        if not isinstance(account_name, str) or not account_name:
            return  # refused on write (admit_secret); an old stored one is left alone
        account = self.store.get(SA_KEY, namespace, account_name)
        uid = _meta(account).get("uid") if account is not None else None
        if account is None or notes.get(UID_ANNOTATION) not in (None, "", uid):
            self._delete(SECRET_KEY, namespace, name)
            return
        wanted = self._filled(secret, account, str(uid))
        if wanted is not None:
            self._replace(SECRET_KEY, namespace, wanted)

    def _filled(self, secret: Obj, account: Obj, uid: str) -> Obj | None:
        """The Secret with token, ca.crt, namespace and the uid annotation filled, or None if it has them."""
        meta = _meta(secret)
        data = dict(secret["data"]) if isinstance(secret.get("data"), dict) else {}
        before = dict(data)
        if not data.get("token"):
            data["token"] = _b64(self.issuer.mint_legacy(account, str(meta.get("name", ""))))
        ca = self._ca()
        if ca:
            data["ca.crt"] = _b64(ca)
        data["namespace"] = _b64(str(meta.get("namespace", "")))
        notes = _annotations(secret)
        if data == before and notes.get(UID_ANNOTATION) == uid:
            return None
        return {**secret, "metadata": {**meta, "annotations": {**notes, UID_ANNOTATION: uid}}, "data": data}
