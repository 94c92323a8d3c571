"""Who is calling: per-cluster agent tokens and the admin token, compared in constant time.

An agent authenticates with its cluster's token: Secret `volsync-agent-token` in the cluster
namespace (created by the addon controller, labelled `volsync-addon.io/agent-token=true`), key
`token`. An Informer on Secrets with that label keeps the tokens in memory, so a disabled cluster's
token stops working as soon as its Secret is gone. The admin token (the user side of the REST API)
is Secret `volsync-hub-admin` in the hub namespace; `ensure_admin_token` creates it at start.

Tokens and Secret data are never logged, and the lookup compares the presented token with every
known token (hmac.compare_digest) so its timing says nothing about which one, or how much, matched.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import Literal

from kubernetes.client.exceptions import ApiException

from hub import ocm
from kube.informing import Informer
from kube.objects import name_of, namespace_of
from kube.rest import NAMESPACES, SECRETS, Kube, Obj, is_conflict

log = logging.getLogger("volsync.hub.tokens")

AGENT_TOKEN_SECRET = ocm.TOKEN_SECRET
LABEL_AGENT_TOKEN = ocm.TOKEN_LABEL
AGENT_TOKEN_SELECTOR = f"{LABEL_AGENT_TOKEN}=true"
ADMIN_SECRET = "volsync-hub-admin"
DEFAULT_HUB_NAMESPACE = "volsync-system"
TOKEN_KEY = "token"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the admin, or the agent of one cluster."""

    kind: Literal["admin", "agent"]
    cluster: str = ""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def secret_token(secret: Obj) -> bytes | None:
    """The decoded `token` of a Secret, or None when it is missing, empty or not base64."""
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    if not isinstance(raw, str):
        return None
    try:
        value = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    return value.strip() or None


def identify(presented: str | None, admin: bytes, agents: dict[str, bytes]) -> Caller | None:
    """Who `presented` belongs to (pure). Every candidate is compared, whatever matched first."""
    if not presented:
        return None
    token = presented.encode("utf-8", "surrogateescape")
    found: Caller | None = None
    if hmac.compare_digest(token, admin):
        found = Caller("admin")
    for cluster, expected in sorted(agents.items()):
        if hmac.compare_digest(token, expected) and found is None:
            found = Caller("agent", cluster)
    return found


class TokenStore:
    def __init__(self, kube: Kube, admin_token: str) -> None:
        if not admin_token:
            raise ValueError("the admin token must not be empty")
        self._admin = admin_token.encode()
        self._lock = threading.Lock()
        self._agents: dict[str, bytes] = {}
        self._informer = Informer(kube, SECRETS, self._on_secret, label_selector=AGENT_TOKEN_SELECTOR)

    def start(self) -> TokenStore:
        self._informer.start()
        return self

    def stop(self) -> None:
        self._informer.stop()

    def synced(self) -> bool:
        return self._informer.wait_synced(0)

    def wait_synced(self, timeout: float | None = None) -> bool:
        return self._informer.wait_synced(timeout)

    def _on_secret(self, event: str, obj: Obj, _prev: Obj | None) -> None:
        if name_of(obj) != AGENT_TOKEN_SECRET:
            return
        cluster = namespace_of(obj)
        token = None if event == "DELETED" else secret_token(obj)
        with self._lock:
            if token is None:
                self._agents.pop(cluster, None)
            else:
                self._agents[cluster] = token
        log.debug("agent token of cluster %s %s", cluster, "removed" if token is None else "loaded")

    def identify(self, presented: str | None) -> Caller | None:
        with self._lock:
            agents = dict(self._agents)
        return identify(presented, self._admin, agents)

    def clusters(self) -> list[str]:
        with self._lock:
            return sorted(self._agents)


def ensure_admin_token(kube: Kube, namespace: str = DEFAULT_HUB_NAMESPACE) -> str:
    """The admin token from Secret `volsync-hub-admin` in `namespace`; created (with the namespace) if absent."""
    existing = kube.get(SECRETS, ADMIN_SECRET, namespace)
    if existing is not None and (token := secret_token(existing)) is not None:
        return token.decode("utf-8", "replace")
    if kube.get(NAMESPACES, namespace) is None:
        try:
            kube.create(NAMESPACES, {"metadata": {"name": namespace}})
        except ApiException as exc:
            if not is_conflict(exc):
                raise
    value = new_token()
    data = {TOKEN_KEY: base64.b64encode(value.encode()).decode()}
    if existing is not None:  # there, but without a usable token: give it one
        kube.patch(SECRETS, ADMIN_SECRET, {"data": data}, namespace)
        log.info("admin token Secret %s/%s had no token; a new one was set", namespace, ADMIN_SECRET)
        return value
    body = {"metadata": {"name": ADMIN_SECRET, "namespace": namespace}, "type": "Opaque", "data": data}
    try:
        kube.create(SECRETS, body)
    except ApiException as exc:
        if not is_conflict(exc):
            raise
        return ensure_admin_token(kube, namespace)  # another hub made it first: use theirs
    log.info("created the admin token Secret %s/%s", namespace, ADMIN_SECRET)
    return value
