"""authorization.py in process: the RBAC chain's system:masters bypass, AlwaysAllow, the 403 wording
and every impersonation check upstream's filter makes (users, serviceaccounts, groups, userextras,
uids), judged by a recording stand-in for the RBAC engine that allows exactly what a test lists."""

from __future__ import annotations

import pytest

from apiserver.authn import Identity
from apiserver.authorization import AlwaysAllow, chain, forbidden, impersonate
from apiserver.errors import ApiError
from apiserver.rbac import Decision
from apiserver.requestinfo import RequestInfo

CALLER = Identity("carol", groups=("system:authenticated",), cluster="c1")


class Listed:
    """Allows the (verb, group, resource, subresource, namespace, name) tuples it holds; records every ask."""

    def __init__(self, *allowed: tuple[str, str, str, str, str, str]) -> None:
        self.allowed, self.asked = set(allowed), list[tuple[str, str, str, str, str, str]]()

    def authorize(self, user: Identity, info: RequestInfo) -> Decision:
        key = (info.verb, info.api_group, info.resource, info.subresource, info.namespace, info.name)
        self.asked.append(key)
        return Decision(key in self.allowed)


def _imp(resource: str, name: str, group: str = "", namespace: str = "", sub: str = "") -> tuple[str, ...]:
    return ("impersonate", group, resource, sub, namespace, name)


def test_masters_bypass_rbac_and_always_allow_allows() -> None:
    engine = Listed()
    info = RequestInfo(verb="delete", path="", resource_request=True, resource="nodes", name="n")
    assert chain("RBAC", engine).authorize(Identity("root", groups=("system:masters",)), info).allowed
    assert engine.asked == []  # decided before the engine
    assert not chain("RBAC", engine).authorize(CALLER, info).allowed
    assert chain("AlwaysAllow", None).authorize(CALLER, info).allowed
    assert isinstance(chain("AlwaysAllow", engine), AlwaysAllow)
    with pytest.raises(ValueError):
        chain("Webhook", engine)


def test_forbidden_reason_is_appended_as_upstream() -> None:
    info = RequestInfo(verb="get", path="", resource_request=True, api_group="apps", namespace="ns",
                       resource="deployments", subresource="scale", name="d")
    exc = forbidden(CALLER, info, 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found')
    assert exc.message == ('deployments.apps "d" is forbidden: User "carol" cannot get resource "deployments/scale" '
                           'in API group "apps" in the namespace "ns": RBAC: clusterrole.rbac.authorization.k8s.io '
                           '"gone" not found')
    assert exc.status()["details"] == {"name": "d", "group": "apps", "kind": "deployments"}


def test_impersonating_a_user_with_groups_extra_and_uid_checks_each() -> None:
    engine = Listed(_imp("users", "dave"), _imp("groups", "devs"), _imp("uids", "42", "authentication.k8s.io"),
                    _imp("userextras", "eu", "authentication.k8s.io", sub="region"))
    headers = [("impersonate-user", "dave"), ("impersonate-group", "devs"), ("impersonate-uid", "42"),
               ("impersonate-extra-region", "eu")]
    acting = impersonate(engine, CALLER, headers)
    assert acting == Identity("dave", "42", ("devs", "system:authenticated"), "c1", (("region", ("eu",)),))
    assert set(engine.asked) == engine.allowed
    with pytest.raises(ApiError) as refused:
        impersonate(engine, CALLER, [*headers, ("impersonate-extra-scopes", "admin")])
    assert refused.value.code == 403 and refused.value.message == (
        'userextras.authentication.k8s.io "admin" is forbidden: User "carol" cannot impersonate resource '
        '"userextras/scopes" in API group "authentication.k8s.io" at the cluster scope')


def test_impersonating_a_serviceaccount_and_the_anonymous_user() -> None:
    engine = Listed(_imp("serviceaccounts", "bot", namespace="ns"), _imp("users", "system:anonymous"))
    acting = impersonate(engine, CALLER, [("Impersonate-User", "system:serviceaccount:ns:bot")])
    assert acting.user == "system:serviceaccount:ns:bot"
    assert acting.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    assert impersonate(engine, CALLER, [("Impersonate-User", "system:anonymous")]).groups == (
        "system:unauthenticated",)
    with pytest.raises(ApiError) as alone:
        impersonate(engine, CALLER, [("Impersonate-Group", "devs")])
    assert alone.value.code == 400
