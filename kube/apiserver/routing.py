"""Request decoding for the Kubernetes REST API: paths, media types, bodies and query options.

Maps `/api/v1/namespaces/ns/secrets/x/status` and `/apis/g/v/...` onto a `Target` (resource type,
version, namespace, name, subresource), decides what the client accepts (plain JSON, Table,
PartialObjectMetadata) and decodes request bodies (JSON, YAML, and the Kubernetes protobuf
envelope kubectl >= 1.32 sends for `kubectl create ns|secret|configmap|service`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from kube.apiserver import errors, protobuf
from kube.apiserver.resources import Registry, ResourceType

MAX_BODY = 3 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    rt: ResourceType
    version: str
    namespace: str  # "" = cluster-scoped, or all namespaces for a namespaced collection
    name: str
    subresource: str

    @property
    def is_collection(self) -> bool:
        return not self.name


def resolve(registry: Registry, path: str) -> Target | None:
    """None when the path is not a resource path (discovery and friends are handled elsewhere)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        rt = registry.lookup(group, version, rest[2])
        if rt is not None and rt.namespaced:
            namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise errors.path_not_found()
    rt = registry.lookup(group, version, rest[0])
    if rt is None:
        raise errors.path_not_found()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if sub and (sub != "status" or not rt.has_status):
        raise errors.path_not_found()
    if namespace and not rt.namespaced:
        raise errors.path_not_found()
    return Target(rt, version, namespace, name, sub)


@dataclass(frozen=True)
class Accept:
    table: bool = False
    partial: bool = False  # PartialObjectMetadata(List)


def negotiate(accept: str) -> Accept:
    """Pick the first representation we can produce, in the client's order of preference."""
    for raw in accept.split(","):
        part = raw.replace(" ", "")
        if "as=Table" in part and "g=meta.k8s.io" in part:
            return Accept(table=True)
        if "as=PartialObjectMetadata" in part and "g=meta.k8s.io" in part:
            return Accept(partial=True)
        media = part.split(";")[0]
        if media in ("application/json", "*/*", "application/*", "application/yaml", ""):
            return Accept()
    return Accept()


def decode_body(content_type: str, body: bytes) -> Any:
    """Decode a request body by its media type; 400 on malformed input, 415 on unknown types."""
    if len(body) > MAX_BODY:
        raise errors.ApiError(413, "RequestEntityTooLarge", "the request body is too large")
    media = content_type.split(";")[0].strip().lower()
    if media == protobuf.PROTOBUF:
        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    if media in ("application/yaml", "application/apply-patch+yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(body.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}") from exc
    if media in (
        "",
        "application/json",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "text/plain",
    ):
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise errors.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc
    raise errors.unsupported_media_type(content_type)


def dry_run(values: list[str]) -> bool:
    for v in values:
        if v != "All":
            raise errors.bad_request(f'Invalid dry run value: "{v}" (supported: "All")')
    return bool(values)


def check_kind(rt: ResourceType, version: str, body: Any) -> None:
    """A body's apiVersion/kind, when given, must name the resource of the URL."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a JSON or YAML object")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if kind and kind != rt.kind:
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
    if api_version and api_version not in {rt.api_version(v) for v in rt.versions}:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version "
            f"({rt.api_version(version)})"
        )
