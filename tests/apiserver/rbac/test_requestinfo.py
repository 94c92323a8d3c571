"""apiserver/requestinfo.py: a table of requests and the RequestInfo kube's RequestInfoFactory gives them."""

from __future__ import annotations

import pytest

from apiserver.requestinfo import RequestInfo, request_info


def _res(verb: str, path: str, group: str = "", version: str = "v1", ns: str = "", resource: str = "",
         sub: str = "", name: str = "") -> RequestInfo:
    return RequestInfo(verb, path, True, group, version, ns, resource, sub, name)


def _nonres(verb: str, path: str) -> RequestInfo:
    return RequestInfo(verb, path, False)


P = "/api/v1/namespaces/ns1/pods"
D = "/apis/apps/v1/namespaces/ns1/deployments"
CASES: list[tuple[str, str, dict[str, str], RequestInfo]] = [
    # non-resource requests: verb is the lower-case method, the path as given
    ("GET", "/api", {}, _nonres("get", "/api")),
    ("GET", "/api/v1", {}, _nonres("get", "/api/v1")),
    ("GET", "/apis", {}, _nonres("get", "/apis")),
    ("GET", "/apis/apps", {}, _nonres("get", "/apis/apps")),
    ("GET", "/apis/apps/v1", {}, _nonres("get", "/apis/apps/v1")),
    ("GET", "/version", {}, _nonres("get", "/version")),
    ("GET", "/healthz", {}, _nonres("get", "/healthz")),
    ("GET", "/openapi/v2", {}, _nonres("get", "/openapi/v2")),
    ("POST", "/logs/x", {}, _nonres("post", "/logs/x")),
    ("PUT", "/", {}, _nonres("put", "/")),
    ("GET", "/api/v1/watch", {}, _nonres("get", "/api/v1/watch")),
    # core group, collections and objects
    ("GET", P, {}, _res("list", P, ns="ns1", resource="pods")),
    ("GET", P, {"watch": "true"}, _res("watch", P, ns="ns1", resource="pods")),
    ("GET", P, {"watch": "1"}, _res("watch", P, ns="ns1", resource="pods")),
    ("GET", P, {"watch": "false"}, _res("list", P, ns="ns1", resource="pods")),
    ("HEAD", P, {}, _res("list", P, ns="ns1", resource="pods")),
    ("POST", P, {}, _res("create", P, ns="ns1", resource="pods")),
    ("DELETE", P, {}, _res("deletecollection", P, ns="ns1", resource="pods")),
    ("GET", P + "/p1", {}, _res("get", P + "/p1", ns="ns1", resource="pods", name="p1")),
    ("GET", P + "/p1", {"watch": "true"}, _res("get", P + "/p1", ns="ns1", resource="pods", name="p1")),
    ("PUT", P + "/p1", {}, _res("update", P + "/p1", ns="ns1", resource="pods", name="p1")),
    ("PATCH", P + "/p1", {}, _res("patch", P + "/p1", ns="ns1", resource="pods", name="p1")),
    ("DELETE", P + "/p1", {}, _res("delete", P + "/p1", ns="ns1", resource="pods", name="p1")),
    ("PUT", P + "/p1/status", {}, _res("update", P + "/p1/status", ns="ns1", resource="pods", sub="status",
                                        name="p1")),
    ("GET", P + "/p1/log", {}, _res("get", P + "/p1/log", ns="ns1", resource="pods", sub="log", name="p1")),
    ("POST", P + "/p1/exec", {}, _res("create", P + "/p1/exec", ns="ns1", resource="pods", sub="exec", name="p1")),
    ("GET", P + "/p1/exec", {}, _res("create", P + "/p1/exec", ns="ns1", resource="pods", sub="exec", name="p1")),
    ("GET", P + "/p1/attach", {}, _res("create", P + "/p1/attach", ns="ns1", resource="pods", sub="attach",
                                       name="p1")),
    ("GET", P + "/p1/portforward", {}, _res("create", P + "/p1/portforward", ns="ns1", resource="pods",
                                            sub="portforward", name="p1")),
    ("POST", "/api/v1/namespaces/ns1/serviceaccounts/sa/token", {},
     _res("create", "/api/v1/namespaces/ns1/serviceaccounts/sa/token", ns="ns1", resource="serviceaccounts",
          sub="token", name="sa")),
    # all namespaces and cluster-scoped resources
    ("GET", "/api/v1/pods", {}, _res("list", "/api/v1/pods", resource="pods")),
    ("GET", "/api/v1/nodes/n1", {}, _res("get", "/api/v1/nodes/n1", resource="nodes", name="n1")),
    ("PATCH", "/api/v1/nodes/n1/status", {}, _res("patch", "/api/v1/nodes/n1/status", resource="nodes",
                                                   sub="status", name="n1")),
    # namespaces themselves
    ("GET", "/api/v1/namespaces", {}, _res("list", "/api/v1/namespaces", resource="namespaces")),
    ("POST", "/api/v1/namespaces", {}, _res("create", "/api/v1/namespaces", resource="namespaces")),
    ("GET", "/api/v1/namespaces/ns1", {}, _res("get", "/api/v1/namespaces/ns1", ns="ns1", resource="namespaces",
                                                name="ns1")),
    ("DELETE", "/api/v1/namespaces/ns1", {}, _res("delete", "/api/v1/namespaces/ns1", ns="ns1",
                                                   resource="namespaces", name="ns1")),
    ("PUT", "/api/v1/namespaces/ns1/finalize", {}, _res("update", "/api/v1/namespaces/ns1/finalize", ns="ns1",
                                                         resource="namespaces", sub="finalize", name="ns1")),
    ("PUT", "/api/v1/namespaces/ns1/status", {}, _res("update", "/api/v1/namespaces/ns1/status", ns="ns1",
                                                       resource="namespaces", sub="status", name="ns1")),
    # named groups
    ("GET", D, {}, _res("list", D, group="apps", ns="ns1", resource="deployments")),
    ("PUT", D + "/d/scale", {}, _res("update", D + "/d/scale", group="apps", ns="ns1", resource="deployments",
                                      sub="scale", name="d")),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", {},
     _res("get", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", group="rbac.authorization.k8s.io",
          resource="clusterroles", name="admin")),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {},
     _res("create", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", group="authorization.k8s.io",
          resource="selfsubjectaccessreviews")),
    ("DELETE", "/apis/volsync.backube/v1alpha1/namespaces/ns1/replicationsources", {},
     _res("deletecollection", "/apis/volsync.backube/v1alpha1/namespaces/ns1/replicationsources",
          group="volsync.backube", version="v1alpha1", ns="ns1", resource="replicationsources")),
    # the legacy /watch/ prefix (also on a named object)
    ("GET", "/api/v1/watch/namespaces/ns1/pods", {}, _res("watch", "/api/v1/watch/namespaces/ns1/pods", ns="ns1",
                                                          resource="pods")),
    ("GET", "/api/v1/watch/namespaces/ns1/pods/p1", {},
     _res("watch", "/api/v1/watch/namespaces/ns1/pods/p1", ns="ns1", resource="pods", name="p1")),
    ("GET", "/apis/apps/v1/watch/deployments", {}, _res("watch", "/apis/apps/v1/watch/deployments", group="apps",
                                                         resource="deployments")),
    # a list or watch pinned to one name by its field selector carries the name
    ("GET", P, {"fieldSelector": "metadata.name=p1", "watch": "true"},
     _res("watch", P, ns="ns1", resource="pods", name="p1")),
    ("GET", P, {"fieldSelector": "status.phase=Running,metadata.name==p1"},
     _res("list", P, ns="ns1", resource="pods", name="p1")),
    ("GET", P, {"fieldSelector": "metadata.name!=p1"}, _res("list", P, ns="ns1", resource="pods")),
    ("GET", P, {"fieldSelector": "metadata.name=a/b"}, _res("list", P, ns="ns1", resource="pods")),
    # empty segments are ignored, as the router ignores them
    ("GET", "/api/v1//namespaces/ns1/pods/", {}, _res("list", "/api/v1//namespaces/ns1/pods/", ns="ns1",
                                                      resource="pods")),
]


@pytest.mark.parametrize(("method", "path", "query", "expected"), CASES,
                         ids=[f"{m} {p} {q}" for m, p, q, _ in CASES])
def test_request_info(method: str, path: str, query: dict[str, str], expected: RequestInfo) -> None:
    assert request_info(method, path, query) == expected


def test_request_info_is_hashable_and_frozen() -> None:
    info = request_info("GET", P, {})
    assert {info: 1}[request_info("GET", P, {})] == 1
    with pytest.raises(AttributeError):
        info.verb = "create"  # type: ignore[misc]
