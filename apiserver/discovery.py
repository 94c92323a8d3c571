"""Discovery documents: `/version`, legacy and aggregated discovery, and the OpenAPI stubs.

kubectl >= 1.26 asks `/api` and `/apis` for aggregated discovery
(`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) and silently finds nothing unless the response
carries exactly the media type it asked for; older kubectl and the Python DynamicClient use the
legacy `APIVersions` / `APIGroupList` / `APIResourceList` documents. Both are served from the
live registry, so a CRD created at run time shows up in the next discovery.
"""

from __future__ import annotations

from typing import Any

from apiserver.resources import Registry, ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
OPENAPI_V2_PROTO = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-volsync-embedded",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_STATUS_VERBS = ["get", "patch", "update"]


def aggregated_media_type(accept: str) -> str | None:
    """The aggregated-discovery media type the client accepts, or None for legacy discovery."""
    for part in accept.split(","):
        p = part.replace(" ", "")
        if "as=APIGroupDiscoveryList" in p and "g=apidiscovery.k8s.io" in p:
            if "v=v2beta1" in p:
                return AGGREGATED_V2BETA1
            if "v=v2" in p:
                return AGGREGATED_V2
    return None


def _resource_entry(rt: ResourceType, version: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": {"group": rt.group, "version": version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = [
        {"subresource": name, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": verbs}
        for name, g, v, k, verbs in _subresources(rt, version)
    ]
    if subs:
        entry["subresources"] = subs
    return entry


# Subresources other than status: the kind each answers with and its verbs, as kube-apiserver lists them.
_SUBRESOURCE_KINDS: dict[str, tuple[str, str, str, list[str]]] = {
    "scale": ("autoscaling", "v1", "Scale", ["get", "patch", "update"]),
    "binding": ("", "v1", "Binding", ["create"]),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
    "eviction": ("policy", "v1", "Eviction", ["create"]),
    "log": ("", "v1", "Pod", ["get"]),
    "exec": ("", "v1", "PodExecOptions", ["create", "get"]),
    "attach": ("", "v1", "PodAttachOptions", ["create", "get"]),
    "portforward": ("", "v1", "PodPortForwardOptions", ["create", "get"]),
    "proxy": ("", "v1", "PodProxyOptions", ["create", "delete", "get", "patch", "update"]),
}


def _subresources(rt: ResourceType, version: str) -> list[tuple[str, str, str, str, list[str]]]:
    """(name, group, version, kind, verbs) of each subresource `rt` serves, status first."""
    out = [("status", rt.group, version, rt.kind, list(_STATUS_VERBS))] if rt.has_status else []
    for name in rt.subresources:
        group, v, kind, verbs = _SUBRESOURCE_KINDS.get(name, (rt.group, version, rt.kind, ["get"]))
        if name == "proxy" and rt.kind == "Node":
            kind = "NodeProxyOptions"
        out.append((name, group, v, kind, verbs))
    return out


def aggregated(registry: Registry, core: bool, media_type: str) -> dict[str, Any]:
    """The `APIGroupDiscoveryList` for `/api` (core=True) or `/apis`."""
    api_version = "apidiscovery.k8s.io/v2beta1" if media_type == AGGREGATED_V2BETA1 else "apidiscovery.k8s.io/v2"
    groups = registry.group_versions()
    items = []
    for group in sorted(groups, key=lambda g: (g != "", g)):
        if (group == "") != core:
            continue
        versions = []
        for version in groups[group]:
            resources = [
                _resource_entry(rt, version) for rt in registry if rt.group == group and version in rt.versions
            ]
            versions.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = registry.group_versions()
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, vs) for g, vs in sorted(groups.items()) if g],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(group)
    if not versions or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, versions)}


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    rts = [rt for rt in registry if rt.group == group and version in rt.versions]
    if not rts:
        return None
    resources: list[dict[str, Any]] = []
    for rt in rts:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for name, g, v, kind, verbs in _subresources(rt, version):
            sub: dict[str, Any] = {
                "name": f"{rt.plural}/{name}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": kind,
                "verbs": verbs,
            }
            if (g, v) != (rt.group, version):
                sub["group"], sub["version"] = g, v
            resources.append(sub)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
