"""What a request asks for, in authorization terms: kube-apiserver's RequestInfoFactory.

A path inside one cluster (after `/clusters/<name>`) is a *resource request* when it is
`/api/<version>/<resource>...` or `/apis/<group>/<version>/<resource>...`; everything else (`/api`,
`/apis/<group>/<version>`, `/version`, `/healthz`, `/openapi/v2`, ...) is a *non-resource request*
whose verb is the lower-case HTTP method and whose `path` is matched against `nonResourceURLs`.

Resource requests follow upstream's parsing:
- the legacy verb prefix `/api/v1/watch/...` (and `proxy`) sets the verb;
- `namespaces/<ns>/<resource>[/<name>[/<subresource>]]` is namespaced; `namespaces/<ns>` itself (and
  its `status`/`finalize`) is resource `namespaces`, name `<ns>`, namespace `<ns>`;
- the HTTP method gives the verb: GET get (list / watch without a name; `?watch=true` or `1`), POST
  create, PUT update, PATCH patch, DELETE delete (deletecollection without a name);
- a list or watch whose `fieldSelector` pins `metadata.name` carries that name (so rules with
  `resourceNames` can allow `kubectl get pod x -w`), as upstream does;
- pods/exec, pods/attach and pods/portforward are always `create` (also a GET that upgrades to a
  WebSocket), like kube-apiserver since the WebSocket streaming protocols.

A named GET with `?watch=true` stays `get`: that is upstream's rule and what `serving.py` serves
(the single-object GET ignores `watch`); only the `/watch/` prefix makes a named request a watch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_SPECIAL_VERBS = frozenset({"watch", "proxy"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_CONNECT_SUBRESOURCES = frozenset({"exec", "attach", "portforward"})
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
# What serving.py takes for a watch (`?watch=`): the same values, so the verb authorized is the
# action served.
_WATCH_VALUES = frozenset({"true", "1", "True"})


@dataclass(frozen=True)
class RequestInfo:
    """The attributes a request is authorized on (kube's authorizer.Attributes minus the user)."""

    verb: str
    path: str
    resource_request: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_info(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """The RequestInfo of `method path?query`, `path` being relative to the cluster."""
    non_resource = RequestInfo(verb=method.lower(), path=path, resource_request=False)
    parts = [p for p in path.split("/") if p]  # as routing.resolve splits it
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return non_resource
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    verb = _METHOD_VERBS.get(method.upper(), "")
    by_method = True
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:  # `/api/v1/watch` alone names nothing: upstream refuses it
            return non_resource
        verb, rest, by_method = rest[0], rest[1:], False
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 and verb != "proxy" else ""
    if by_method and not name:
        if verb == "get":
            verb = "watch" if query.get("watch") in _WATCH_VALUES else "list"
            name = _pinned_name(query.get("fieldSelector", ""))
        if verb == "delete" and not name:
            verb = "deletecollection"
    if resource == "pods" and subresource in _CONNECT_SUBRESOURCES:
        verb = "create"
    return RequestInfo(verb=verb, path=path, resource_request=True, api_group=group, api_version=version,
                       namespace=namespace, resource=resource, subresource=subresource, name=name)


def _pinned_name(field_selector: str) -> str:
    """The name a field selector requires exactly (`metadata.name=x` or `==x`), else "".

    A selector with escapes is left alone (no name: the request is judged as an unnamed list)."""
    if "\\" in field_selector:
        return ""
    for term in field_selector.split(","):
        for op in ("==", "="):
            field, sep, value = term.partition(op)
            if sep and "!" not in field and field.strip() == "metadata.name":
                value = value.strip()
                return value if _valid_segment(value) else ""
    return ""


def _valid_segment(name: str) -> bool:
    """Upstream's IsValidPathSegmentName: a name usable as one path segment."""
    return bool(name) and name not in (".", "..") and "/" not in name and "%" not in name
