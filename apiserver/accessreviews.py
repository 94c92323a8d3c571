"""The review APIs: create-only virtual resources answered at once (201, `status` filled), never stored.

- `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`), SubjectAccessReview,
  LocalSubjectAccessReview (namespaced: `spec.resourceAttributes.namespace` must be the path's) and
  SelfSubjectRulesReview (`kubectl auth can-i --list`, from `cluster.rbac.rules_for`), judged by the
  cluster's authorizer chain (`authorization.py`): `status.allowed`, `reason`, `evaluationError`
  as upstream (RBAC never answers an explicit `denied`).
- `authentication.k8s.io/v1` TokenReview: the token is authenticated as the server's own
  authenticator would on this cluster, for `spec.audiences` (default: the API server's): the
  answer's `status.audiences` is the intersection of the token's and the requested audiences;
  none in common means unauthenticated. SelfSubjectReview (`kubectl auth whoami`) is here too.

`REVIEW_TYPES` are registered in every cluster's registry so discovery (aggregated and legacy, so
`kubectl api-resources`) lists them with verb `create` only; `server.py` answers their paths
before the generic handlers, so no other verb reaches the store (405).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from apiserver import errors
from apiserver.authn import Identity
from apiserver.authorization import Authorizer
from apiserver.errors import FieldCause
from apiserver.requestinfo import RequestInfo
from apiserver.resources import Obj, ResourceType
from apiserver.satokens import ISSUER, TokenIssuer

AUTHZ, AUTHN = "authorization.k8s.io", "authentication.k8s.io"
_REVIEWS = (  # group, kind, plural, namespaced
    (AUTHZ, "SelfSubjectAccessReview", "selfsubjectaccessreviews", False),
    (AUTHZ, "SubjectAccessReview", "subjectaccessreviews", False),
    (AUTHZ, "LocalSubjectAccessReview", "localsubjectaccessreviews", True),
    (AUTHZ, "SelfSubjectRulesReview", "selfsubjectrulesreviews", False),
    (AUTHN, "TokenReview", "tokenreviews", False),
    (AUTHN, "SelfSubjectReview", "selfsubjectreviews", False),
)
REVIEW_TYPES = tuple(ResourceType(group=g, versions=("v1",), kind=k, plural=p, singular=k.lower(), namespaced=n,
                                  builtin=True, verbs=("create",)) for g, k, p, n in _REVIEWS)
_PATH = re.compile(r"/apis/(authorization\.k8s\.io|authentication\.k8s\.io)/v1/(?:namespaces/([^/]+)/)?([a-z]+)/?")
_KINDS = {p: (g, k, n) for g, k, p, n in _REVIEWS}

# (token) -> (identity, the token's audiences or None for an audience-agnostic credential), or None
TokenCheck = Callable[[str, list[str]], tuple[Identity, list[str]] | None]


def match(path: str) -> tuple[str, str, str] | None:
    """(kind, namespace, group) of a review path, or None; a namespace given to a cluster-scoped
    review (or missing for the namespaced one) is no review path."""
    m = _PATH.fullmatch(path)
    if m is None or m.group(3) not in _KINDS:
        return None
    group, kind, namespaced = _KINDS[m.group(3)]
    if group != m.group(1) or namespaced != (m.group(2) is not None):
        return None
    return kind, m.group(2) or "", group


def in_review_groups(path: str) -> bool:
    """Whether `path` is a resource path of the two review groups (which serve nothing but the
    reviews' collections: any other path there, e.g. a named review, is 404 as upstream, never the
    generic handlers that would store one)."""
    parts = [p for p in path.split("/") if p]
    return len(parts) >= 4 and parts[0] == "apis" and parts[1] in (AUTHZ, AUTHN)


def _spec(body: Any, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("spec", {}), dict):
        raise errors.bad_request(f"the body of the request must be a {kind} object")
    spec: dict[str, Any] = body.get("spec") or {}
    return spec


def _invalid(kind: str, field: str, value: Any, detail: str) -> errors.ApiError:
    shown = "null" if value is None else json.dumps(value) if isinstance(value, str) else '"object"'
    problem = FieldCause(field, "FieldValueInvalid", f"Invalid value: {shown}: {detail}")
    return errors.invalid(kind, AUTHZ, "", [problem])


def _attributes(kind: str, spec: dict[str, Any]) -> RequestInfo:
    """The RequestInfo of a review's resourceAttributes / nonResourceAttributes (validated as upstream)."""
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res is not None and non is not None:
        raise _invalid(kind, "spec.nonResourceAttributes", non, "cannot be specified in combination with "
                       "resourceAttributes")
    if res is None and non is None:
        raise _invalid(kind, "spec.resourceAttributes", None, "exactly one of nonResourceAttributes or "
                       "resourceAttributes must be specified")
    attrs = res if res is not None else non
    if not isinstance(attrs, dict) or not all(isinstance(v, str) for k, v in attrs.items()
                                               if k not in ("fieldSelector", "labelSelector")):
        raise errors.bad_request(f"{kind}: spec attributes must be an object of strings")
    if non is not None:
        return RequestInfo(verb=attrs.get("verb", ""), path=attrs.get("path", ""), resource_request=False)
    return RequestInfo(verb=attrs.get("verb", ""), path="", resource_request=True, api_group=attrs.get("group", ""),
                       api_version=attrs.get("version", ""), namespace=attrs.get("namespace", ""),
                       resource=attrs.get("resource", ""), subresource=attrs.get("subresource", ""),
                       name=attrs.get("name", ""))


def _subject(spec: dict[str, Any], cluster: str) -> Identity:
    """The user a SubjectAccessReview asks about (taken as given: no group is added, as upstream)."""
    user, groups, uid, extra = spec.get("user", ""), spec.get("groups") or [], spec.get("uid", ""), spec.get("extra")
    if not isinstance(user, str) or not isinstance(uid, str) or not isinstance(groups, list) or not all(
            isinstance(g, str) for g in groups):
        raise errors.bad_request("spec.user, spec.uid and spec.groups must be strings")
    if not user and not groups:
        raise _invalid("SubjectAccessReview", "spec.user", user, "at least one of user or group must be specified")
    pairs = sorted((str(k), tuple(str(x) for x in v)) for k, v in (extra or {}).items()
                   if isinstance(v, list)) if isinstance(extra, dict) else []
    return Identity(user, uid, tuple(groups), cluster, tuple(pairs))


def _answer(kind: str, group: str, body: Obj, status: Obj, namespace: str = "") -> Obj:
    meta: Obj = {"creationTimestamp": None}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": kind, "apiVersion": f"{group}/v1", "metadata": meta, "spec": body.get("spec") or {},
            "status": status}


def access_review(authorizer: Authorizer, caller: Identity, kind: str, namespace: str, body: Any) -> Obj:
    """A Self/Local/SubjectAccessReview answered."""
    spec = _spec(body, kind)
    info = _attributes(kind, spec)
    if kind == "LocalSubjectAccessReview":
        meta_ns = (body.get("metadata") or {}).get("namespace") or namespace
        if meta_ns != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        if not info.resource_request:
            raise _invalid(kind, "spec.nonResourceAttributes", None, "disallowed on this kind of request")
        if info.namespace != namespace:
            raise _invalid(kind, "spec.resourceAttributes.namespace", info.namespace, "must match metadata.namespace")
    user = caller if kind == "SelfSubjectAccessReview" else _subject(spec, caller.cluster)
    decision = authorizer.authorize(user, info)
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return _answer(kind, AUTHZ, body, status, namespace)


def rules_review(rbac: Any, caller: Identity, body: Any) -> Obj:
    """A SelfSubjectRulesReview answered from the RBAC engine's `rules_for`."""
    spec = _spec(body, "SelfSubjectRulesReview")
    namespace = spec.get("namespace", "")
    if not isinstance(namespace, str) or not namespace:
        raise errors.bad_request("no namespace on request")
    rules = rbac.rules_for(caller, namespace)
    status: Obj = {"resourceRules": list(rules.resource_rules), "nonResourceRules": list(rules.non_resource_rules),
                   "incomplete": bool(rules.incomplete)}
    if rules.evaluation_error:
        status["evaluationError"] = rules.evaluation_error
    return _answer("SelfSubjectRulesReview", AUTHZ, body, status)


def jwt_audiences(token: str) -> list[str] | None:
    """The `aud` claim of a JWT-shaped token (read after it was verified), None if it has none."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    aud = claims.get("aud") if isinstance(claims, dict) else None
    return [aud] if isinstance(aud, str) else [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else None


def audience_claims(issuer: TokenIssuer, token: str, wanted: list[str], now: float | None = None) -> Obj | None:
    """The claims of a bound ServiceAccount token `issuer` signed, valid now, for one of the `wanted`
    audiences (a legacy token has none: None)."""
    claims = issuer.claims(token, now, audiences=wanted)
    return claims if claims is not None and claims.get("iss") == ISSUER else None


def token_review(check: TokenCheck, api_audiences: list[str], body: Any) -> Obj:
    """A TokenReview answered: `check(token, wanted audiences)` authenticates as the server does."""
    spec = _spec(body, "TokenReview")
    token, wanted = spec.get("token", ""), spec.get("audiences") or list(api_audiences)
    if not isinstance(token, str) or not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    if not isinstance(wanted, list) or not all(isinstance(a, str) for a in wanted):
        raise errors.bad_request("spec.audiences must be a list of strings")
    found = check(token, wanted)
    token_auds = (found[1] or list(api_audiences)) if found is not None else []
    common = [a for a in token_auds if a in wanted]
    status: Obj = {"user": {}}
    if found is None or not common:
        status["error"] = ("[invalid bearer token, token audiences are invalid for the target audiences]"
                           if found is not None else "[invalid bearer token]")
        return {**_answer("TokenReview", AUTHN, body, status), "status": status}
    ident = found[0]
    user: Obj = {"username": ident.user, "groups": list(ident.groups)}
    if ident.uid:
        user["uid"] = ident.uid
    if ident.extra:
        user["extra"] = {k: list(v) for k, v in ident.extra}
    return _answer("TokenReview", AUTHN, body, {"authenticated": True, "user": user, "audiences": common})


def self_subject_review(identity: Identity) -> Obj:
    """authentication.k8s.io/v1 SelfSubjectReview: who the caller is authenticated as."""
    groups = list(dict.fromkeys([*identity.groups, "system:authenticated"]))
    user: Obj = {"username": identity.user, "groups": groups}
    if identity.uid:
        user["uid"] = identity.uid
    if identity.extra:
        user["extra"] = {k: list(v) for k, v in identity.extra}
    return {"kind": "SelfSubjectReview", "apiVersion": f"{AUTHN}/v1",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": user}}
