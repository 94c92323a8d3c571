"""ServiceAccount tokens: the TokenRequest API and the JWTs it issues, verified on every request.

`POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token` (authentication.k8s.io/v1
TokenRequest, what `kubectl create token` and the kubelet's projected token volumes call) answers
a JWT whose claims are kube-apiserver's: `iss`, `sub` `system:serviceaccount:<ns>:<name>`, `aud`,
`exp`, `iat`, `nbf`, `jti`, and `kubernetes.io` {namespace, serviceaccount {name, uid}, pod or
secret {name, uid} when bound, `warnafter` when extended}. As upstream, a Pod-bound request for
exactly 3607 s (the kubelet's) gets a one-year token with `warnafter`, and the answered
`expirationTimestamp` stays the requested one.

Legacy tokens (what the token controller, `legacytokens.py`, writes into a Secret of type
`kubernetes.io/service-account-token`) carry upstream's legacy claims: `iss`
`kubernetes/serviceaccount`, `sub`, and `kubernetes.io/serviceaccount/{namespace, secret.name,
service-account.name, service-account.uid}`, no `exp` and no `aud` (valid for the API only).

A bound token authenticates while its signature is right, `nbf <= now < exp`, one of its
audiences is the API server's (`https://kubernetes.default.svc.cluster.local`), its
ServiceAccount exists with the same uid, and the Pod or Secret it is bound to still exists with
the same uid (and, if it is being deleted, its deletion time is less than a minute past). A legacy
token authenticates while its signature is right, its Secret exists (not being deleted, without
the label `kubernetes.io/legacy-token-invalid-since`) and holds exactly this token in
`data.token`, and its ServiceAccount exists (not being deleted) with the uid of the claims. What
the identity may then do is RBAC's to say (`rbac.py`, the request authorizer); other components
validate a token through TokenReview.

Differences from kube-apiserver: tokens are HS256, signed with a 32-byte per-installation secret
kept in the data directory (`serviceaccount-signing.key`, 0600), from which each cluster derives
its own key (HMAC of the cluster name), so a token of one cluster is refused by every other; there
is no OIDC discovery (no public key to publish); legacy tokens are not tracked
(`kubernetes.io/legacy-token-last-used`) nor cleaned up after a year unused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apiserver import errors
from apiserver.errors import FieldCause
from apiserver.resources import Obj
from apiserver.store import Store
from osutil.files import write_private

ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
LEGACY_CLAIM = "kubernetes.io/serviceaccount/"  # prefix of the legacy private claims
LEGACY_INVALID_LABEL = "kubernetes.io/legacy-token-invalid-since"
API_AUDIENCES = (ISSUER,)
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
KUBELET_EXPIRATION = 3607  # the projected volume's; extended to a year for Pod-bound tokens
EXTENDED_EXPIRATION = 365 * 24 * 3600
KEY_FILE = "serviceaccount-signing.key"
_DELETED_GRACE_SECONDS = 60


def signing_secret(data_dir: Path) -> bytes:
    """The installation's 32-byte signing secret, made once (0600) and kept across restarts."""
    path = data_dir / KEY_FILE
    if path.exists() and len(raw := path.read_bytes()) == 32:
        return raw
    raw = secrets.token_bytes(32)
    write_private(path, raw)
    return raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Bound:
    """What a token is bound to: kind `Pod` or `Secret`, name, uid."""

    kind: str
    name: str
    uid: str


class TokenIssuer:
    """Signs and checks the tokens of one cluster (its key derived from the installation's secret)."""

    def __init__(self, secret: bytes, cluster: str) -> None:
        self._key = hmac.new(secret, b"serviceaccount-token\0" + cluster.encode(), hashlib.sha256).digest()
        self.kid = hashlib.sha256(self._key).hexdigest()[:16]

    def _sign(self, signing_input: bytes) -> bytes:
        return hmac.new(self._key, signing_input, hashlib.sha256).digest()

    def mint(self, account: Obj, audiences: list[str], seconds: int, bound: Bound | None = None,
             now: float | None = None, warn_after: int | None = None) -> str:
        issued = int(time.time() if now is None else now)
        meta = account.get("metadata") or {}
        private: dict[str, Any] = {"namespace": meta.get("namespace", ""),
                                   "serviceaccount": {"name": meta.get("name", ""), "uid": meta.get("uid", "")}}
        if bound is not None:
            private[bound.kind.lower()] = {"name": bound.name, "uid": bound.uid}
        if warn_after is not None:
            private["warnafter"] = issued + warn_after
        claims = {"aud": audiences, "exp": issued + seconds, "iat": issued, "iss": ISSUER,
                  "jti": str(uuid.uuid4()), "kubernetes.io": private, "nbf": issued,
                  "sub": f"system:serviceaccount:{private['namespace']}:{private['serviceaccount']['name']}"}
        return self._encode(claims)

    def mint_legacy(self, account: Obj, secret_name: str) -> str:
        """A legacy (Secret-held, never expiring) token of `account` for the Secret `secret_name`."""
        meta = account.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        return self._encode({"iss": LEGACY_ISSUER, LEGACY_CLAIM + "namespace": namespace,
                             LEGACY_CLAIM + "secret.name": secret_name,
                             LEGACY_CLAIM + "service-account.name": name,
                             LEGACY_CLAIM + "service-account.uid": str(meta.get("uid", "")),
                             "sub": f"system:serviceaccount:{namespace}:{name}"})

    def _encode(self, claims: dict[str, Any]) -> str:
        header = {"alg": "HS256", "kid": self.kid, "typ": "JWT"}
        signing_input = (_b64(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + _b64(json.dumps(claims, separators=(",", ":")).encode())).encode()
        return signing_input.decode() + "." + _b64(self._sign(signing_input))

    def claims(self, token: str, now: float | None = None,
               audiences: Collection[str] = API_AUDIENCES) -> dict[str, Any] | None:
        """The claims of a token this issuer signed that is valid at `now` for one of `audiences` (by
        default the API's; a TokenReview names others), else None (a legacy token has no time bounds
        and no audience: its Secret is checked by `subject`). The one verification of a token."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
            signature = _unb64(parts[2])
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{parts[0]}.{parts[1]}".encode())):
            return None
        if claims.get("iss") == LEGACY_ISSUER:
            return claims
        at = time.time() if now is None else now
        exp, nbf, aud = claims.get("exp"), claims.get("nbf", 0), claims.get("aud")
        if not isinstance(exp, int) or not isinstance(nbf, int) or not nbf <= at < exp:
            return None
        held = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if claims.get("iss") != ISSUER or not set(held) & set(audiences):
            return None
        return claims


def subject(claims: dict[str, Any], store: Store, token: str | None = None) -> tuple[str, str, str] | None:
    """(namespace, ServiceAccount name, uid) of verified claims whose objects still exist, else None.
    A legacy token's Secret must still hold `token` itself (without it, a legacy token is refused)."""
    if claims.get("iss") == LEGACY_ISSUER:
        return _legacy_subject(claims, store, token)
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict):
        return None
    namespace, account = private.get("namespace"), private.get("serviceaccount") or {}
    if not isinstance(namespace, str) or not isinstance(account, dict):
        return None
    live = store.get("/serviceaccounts", namespace, str(account.get("name", "")))
    if live is None or (live.get("metadata") or {}).get("uid") != account.get("uid"):
        return None
    for kind, key in (("pod", "/pods"), ("secret", "/secrets")):
        ref = private.get(kind)
        if ref is None:
            continue
        obj = store.get(key, namespace, str(ref.get("name", ""))) if isinstance(ref, dict) else None
        if obj is None or (obj.get("metadata") or {}).get("uid") != ref.get("uid") or _deleted_long_ago(obj):
            return None
    return namespace, str(account["name"]), str(account["uid"])


def _legacy_subject(claims: dict[str, Any], store: Store, token: str | None) -> tuple[str, str, str] | None:
    """Upstream's legacy validator with lookup: the Secret holds exactly this token, the account lives."""
    fields = [claims.get(LEGACY_CLAIM + k) for k in ("namespace", "secret.name", "service-account.name",
                                                     "service-account.uid")]
    if token is None or not all(isinstance(f, str) and f for f in fields):
        return None
    namespace, secret_name, name, uid = (str(f) for f in fields)
    secret = store.get("/secrets", namespace, secret_name)
    if secret is None or _terminating(secret) or LEGACY_INVALID_LABEL in (_meta(secret).get("labels") or {}):
        return None
    held = (secret.get("data") or {}).get("token")
    try:
        matches = isinstance(held, str) and hmac.compare_digest(base64.b64decode(held), token.encode())
    except ValueError:
        matches = False
    account = store.get("/serviceaccounts", namespace, name)
    if not matches or account is None or _terminating(account) or _meta(account).get("uid") != uid:
        return None
    return namespace, name, uid


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _terminating(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _deleted_long_ago(obj: Obj) -> bool:
    """A bound object whose deletion time passed more than a minute ago (upstream's grace for a
    terminating Pod's token) no longer backs a token."""
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not isinstance(stamp, str):
        return False
    try:
        deleted = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return deleted + _DELETED_GRACE_SECONDS < time.time()


def _invalid(name: str, value: Any, detail: str) -> errors.ApiError:
    cause = FieldCause("spec.expirationSeconds", "FieldValueInvalid", f"Invalid value: {value}: {detail}")
    return errors.invalid("TokenRequest", "authentication.k8s.io", name, [cause])


def _bound(store: Store, namespace: str, account: str, ref: Any) -> Bound | None:
    if ref is None:
        return None
    if not isinstance(ref, dict):
        raise errors.bad_request("spec.boundObjectRef must be an object")
    kind, name = ref.get("kind"), str(ref.get("name") or "")
    if ref.get("apiVersion", "v1") != "v1" or kind not in ("Pod", "Secret"):
        raise errors.bad_request(f"cannot bind token to object of type {ref.get('apiVersion', '')}, Kind={kind}")
    plural = "pods" if kind == "Pod" else "secrets"
    obj = store.get(f"/{plural}", namespace, name)
    if obj is None:
        raise errors.not_found(plural, "", name)
    if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName") != account:
        raise errors.bad_request(f'cannot bind token for serviceaccount "{account}" to pod running with different '
                                 "serviceaccount name.")
    uid = str((obj.get("metadata") or {}).get("uid", ""))
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict(kind, "", name, f"the UID in the bound object reference ({ref['uid']}) does not match "
                              "the UID in record. The object might have been deleted and then recreated")
    return Bound(kind, name, uid)


def request_token(store: Store, issuer: TokenIssuer, namespace: str, name: str, body: Any,
                  now: float | None = None) -> Obj:
    """A TokenRequest answered (the object to return with 201), or an ApiError."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a TokenRequest object")
    account = store.get("/serviceaccounts", namespace, name)
    if account is None:
        raise errors.not_found("serviceaccounts", "", name)
    spec: dict[str, Any] = body["spec"] if isinstance(body.get("spec"), dict) else {}
    audiences = spec.get("audiences") or list(API_AUDIENCES)
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("spec.audiences must be a list of strings")
    seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request("spec.expirationSeconds must be an integer")
    if seconds < MIN_EXPIRATION:
        raise _invalid(name, seconds, "may not specify a duration less than 10 minutes")
    if seconds > 2**32:
        raise _invalid(name, seconds, "may not specify a duration larger than 2^32 seconds")
    bound = _bound(store, namespace, name, spec.get("boundObjectRef"))
    issued = time.time() if now is None else now
    extend = (bound is not None and bound.kind == "Pod" and seconds == KUBELET_EXPIRATION
              and bool(set(audiences) & set(API_AUDIENCES)))
    token = issuer.mint(account, audiences, EXTENDED_EXPIRATION if extend else seconds, bound, issued,
                        warn_after=seconds if extend else None)
    stamp = datetime.fromtimestamp(int(issued), UTC)
    out_spec: Obj = {"audiences": audiences, "expirationSeconds": seconds}
    if bound is not None:
        out_spec["boundObjectRef"] = {"kind": bound.kind, "apiVersion": "v1", "name": bound.name, "uid": bound.uid}
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": _rfc3339(stamp.timestamp())},
            "spec": out_spec,
            "status": {"token": token, "expirationTimestamp": _rfc3339(int(issued) + seconds)}}


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
