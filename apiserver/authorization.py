"""Request authorization: the authorizer chain of a cluster, kube-apiserver's 403 wording, and
impersonation.

Mode RBAC (the default with authentication) is kube-apiserver's chain for `--authorization-mode
RBAC`: members of the privileged group `system:masters` are allowed everything, everyone else is
judged by the cluster's RBAC engine (`Cluster.rbac`, `rbac.py`). Mode AlwaysAllow allows
everything (the mode of `--insecure-no-auth`). A denied request gets upstream's Status:

    secrets is forbidden: User "u" cannot list resource "secrets" in API group "" in the namespace "ns"
    pods "p" is forbidden: User "u" cannot get resource "pods/log" in API group "" in the namespace "ns"
    forbidden: User "u" cannot get path "/foo"

Impersonation (`Impersonate-User`, repeated `Impersonate-Group`, `Impersonate-Uid`,
`Impersonate-Extra-<key>`: what `kubectl --as/--as-group` sends) is checked as upstream's filter
does: the caller needs verb `impersonate` on each of users / serviceaccounts (a
`system:serviceaccount:<ns>:<name>` user, in that namespace) / groups (core group) and uids /
userextras/<key> (authentication.k8s.io). The impersonated identity gets `system:authenticated`
(unless it names `system:unauthenticated` or is `system:anonymous`) and, for a ServiceAccount named
without groups, the ServiceAccount groups. One difference: groups, uid or extra without a user is
a 400 here (upstream answers 500).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from urllib.parse import unquote

from apiserver import errors
from apiserver.authn import Identity
from apiserver.rbac import Decision
from apiserver.requestinfo import RequestInfo

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SA_PREFIX = "system:serviceaccount:"
MODES = ("RBAC", "AlwaysAllow")
_USER_HEADER, _GROUP_HEADER, _UID_HEADER = "impersonate-user", "impersonate-group", "impersonate-uid"
_EXTRA_PREFIX = "impersonate-extra-"


class Authorizer(Protocol):
    """Decides one request of one identity (kube's authorizer.Authorizer)."""

    def authorize(self, user: Identity, info: RequestInfo) -> Decision: ...


class AlwaysAllow:
    """Every request is allowed (`--authorization-mode AlwaysAllow`)."""

    def authorize(self, user: Identity, info: RequestInfo) -> Decision:
        return Decision(True)


class RBACChain:
    """`--authorization-mode RBAC`: the group system:masters first, then the cluster's RBAC engine."""

    def __init__(self, rbac: Authorizer) -> None:
        self.rbac = rbac

    def authorize(self, user: Identity, info: RequestInfo) -> Decision:
        if MASTERS in user.groups:
            return Decision(True)
        return self.rbac.authorize(user, info)


def chain(mode: str, rbac: Authorizer | None) -> Authorizer:
    """The authorizer of one cluster for `mode` (RBAC needs the cluster's engine)."""
    if mode == "AlwaysAllow":
        return AlwaysAllow()
    if mode != "RBAC" or rbac is None:
        raise ValueError(f"authorization mode {mode!r} needs one of {', '.join(MODES)} (and RBAC its engine)")
    return RBACChain(rbac)


def _forbidden_message(user: str, info: RequestInfo) -> str:
    """kube's responsewriters.forbiddenMessage."""
    if not info.resource_request:
        return f'User "{user}" cannot {info.verb} path "{info.path}"'
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    where = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    return f'User "{user}" cannot {info.verb} resource "{resource}" in API group "{info.api_group}" {where}'


def forbidden(user: Identity, info: RequestInfo, reason: str = "") -> errors.ApiError:
    """The 403 kube-apiserver answers a denied request (apierrors.NewForbidden over forbiddenMessage)."""
    why = _forbidden_message(user.user, info) + (f": {reason}" if reason else "")
    if not info.resource_request or not info.resource:
        return errors.ApiError(403, "Forbidden", f"forbidden: {why}", {})
    qualified = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
    subject = f'{qualified} "{info.name}"' if info.name else qualified
    return errors.ApiError(403, "Forbidden", f"{subject} is forbidden: {why}",
                           {"name": info.name, "group": info.api_group, "kind": info.resource})


def check(authorizer: Authorizer, user: Identity, info: RequestInfo) -> None:
    """Raise the 403 unless `authorizer` allows `info` for `user`."""
    decision = authorizer.authorize(user, info)
    if not decision.allowed:
        raise forbidden(user, info, decision.reason)


# -- impersonation ----------------------------------------------------------------------------------
def wants_impersonation(headers: Iterable[tuple[str, str]]) -> bool:
    """Whether any header asks to act as someone else."""
    return any(k.lower().startswith("impersonate-") for k, _ in headers)


def _requested(headers: Iterable[tuple[str, str]]) -> tuple[str | None, list[str], str | None, dict[str, list[str]]]:
    user: str | None = None
    uid: str | None = None
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for raw_key, value in headers:
        key = raw_key.lower()
        if key == _USER_HEADER:
            user = value
        elif key == _GROUP_HEADER:
            groups.append(value)
        elif key == _UID_HEADER:
            uid = value
        elif key.startswith(_EXTRA_PREFIX):
            extra.setdefault(unquote(key[len(_EXTRA_PREFIX):]).lower(), []).append(value)
    return user, groups, uid, extra


def _impersonate_info(resource: str, name: str, *, namespace: str = "", group: str = "",
                      subresource: str = "") -> RequestInfo:
    return RequestInfo(verb="impersonate", path="", resource_request=True, api_group=group, api_version="v1",
                       namespace=namespace, resource=resource, subresource=subresource, name=name)


def impersonate(authorizer: Authorizer, requester: Identity, headers: Iterable[tuple[str, str]]) -> Identity:
    """The identity a request acts as after its Impersonate-* headers, each checked as upstream."""
    user, groups, uid, extra = _requested(list(headers))
    if user is None:
        raise errors.bad_request("requested impersonation of groups, uid or extra without impersonating a user")
    sa = user[len(SA_PREFIX):].split(":") if user.startswith(SA_PREFIX) else None
    if sa is not None and len(sa) == 2 and all(sa):
        check(authorizer, requester, _impersonate_info("serviceaccounts", sa[1], namespace=sa[0]))
    else:
        check(authorizer, requester, _impersonate_info("users", user))
    for group in groups:
        check(authorizer, requester, _impersonate_info("groups", group))
    for key, values in sorted(extra.items()):
        for value in values:
            check(authorizer, requester, _impersonate_info("userextras", value, group="authentication.k8s.io",
                                                           subresource=key))
    if uid is not None:
        check(authorizer, requester, _impersonate_info("uids", uid, group="authentication.k8s.io"))
    if sa is not None and len(sa) == 2 and all(sa) and not groups:  # a ServiceAccount's fixed groups
        groups = ["system:serviceaccounts", f"system:serviceaccounts:{sa[0]}"]
    if user == ANONYMOUS:
        groups += [] if UNAUTHENTICATED in groups else [UNAUTHENTICATED]
    elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return Identity(user, uid or "", tuple(groups), requester.cluster,
                    tuple(sorted((k, tuple(v)) for k, v in extra.items())))
