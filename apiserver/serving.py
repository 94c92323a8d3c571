"""The REST verbs of one cluster: get, list, watch, create, update, patch, delete, deletecollection.

An ASGI app per cluster. It answers discovery and OpenAPI, resolves resource paths, negotiates
the representation (JSON, Table, PartialObjectMetadata), delegates writes to the `Writer` and
streams watches. Every failure leaves as a Kubernetes `Status` body.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from apiserver import decoding, discovery, errors, routing, selectors, subresources, tables, watching
from apiserver.cluster import Cluster
from apiserver.decoding import APPLY
from apiserver.resources import Obj, ResourceType
from apiserver.routing import Accept, Target
from apiserver.store import dumps
from apiserver.writing import Options, Outcome

JSON = "application/json"

_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
# Kinds whose registry sets `ReturnDeletedObject: true`: DELETE answers with the object, not a Status
# (the Python client deserialises e.g. `delete_namespaced_persistent_volume_claim` as V1PersistentVolumeClaim).
_RETURNS_DELETED = frozenset(
    {"/persistentvolumeclaims", "/persistentvolumes", "/pods", "/services", "/serviceaccounts", "/resourcequotas",
     "storage.k8s.io/storageclasses"}
)  # fmt: skip
_EXTRA_FIELDS: dict[str, set[str]] = {
    "/events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "/secrets": {"type"},
    "/pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "/namespaces": {"status.phase"},
    "/persistentvolumeclaims": {"spec.volumeName"},
    "batch/jobs": {"status.successful"},
}


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = JSON
) -> Response:
    return Response(dumps(body), status_code=status, media_type=media_type, headers=headers)


def error_response(exc: errors.ApiError) -> Response:
    return Response(exc.body_text(), status_code=exc.code, media_type=JSON)


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    # Starlette joins nothing for us; several warnings become one comma-separated header value.
    # The text is an RFC 7230 quoted-string: client-go drops a warning whose inner quotes are bare.
    # Control characters are escaped (they cannot travel in a header) and the rest goes out as UTF-8
    # bytes, as Go writes it (Starlette encodes header values as latin-1).
    def quoted(text: str) -> str:
        text = "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in text)
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + text.encode("utf-8", "backslashreplace").decode("latin-1") + '"'

    return {"Warning": ", ".join(f"299 - {quoted(w)}" for w in warnings)}


def in_version(rt: ResourceType, obj: Obj, version: str) -> Obj:
    if version == rt.storage_version:
        return obj
    out = dict(obj)
    out["apiVersion"] = rt.api_version(version)
    return out


class ClusterApp:
    def __init__(self, cluster: Cluster, *, bookmark_interval: float = 30.0) -> None:
        self.cluster = cluster
        self.bookmark_interval = bookmark_interval

    async def __call__(self, request: Request, path: str) -> Response:
        try:
            return await self._dispatch(request, path)
        except errors.ApiError as exc:
            return error_response(exc)

    # -- dispatch -----------------------------------------------------------------------------------
    async def _dispatch(self, request: Request, path: str) -> Response:
        method = request.method
        special = self._special(request, path) if method == "GET" else None
        if special is not None:
            return special
        target = routing.resolve(self.cluster.registry, path)
        if target is None:
            raise errors.path_not_found()
        accept = routing.negotiate(request.headers.get("accept", ""))
        routing.check_query(request.query_params)
        if target.subresource in subresources.SERVED:
            return await subresources.serve(self.cluster, request, target)
        handlers: dict[tuple[str, bool], Callable[[Request, Target, Accept], Awaitable[Response]]] = {
            ("GET", True): self._list_or_watch,
            ("GET", False): self._get,
            ("POST", True): self._create,
            ("PUT", False): self._update,
            ("PATCH", False): self._patch,
            ("DELETE", False): self._delete,
            ("DELETE", True): self._delete_collection,
        }
        handler = handlers.get((method, target.is_collection))
        if handler is None or (target.subresource and method not in ("GET", "PUT", "PATCH")):
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        return await handler(request, target, accept)

    def _special(self, request: Request, path: str) -> Response | None:
        reg = self.cluster.registry
        accept = request.headers.get("accept", "")
        parts = [p for p in path.split("/") if p]
        if path in ("/version", "/version/"):
            return json_response(discovery.VERSION)
        if path in ("/healthz", "/readyz", "/livez"):
            return Response("ok", media_type="text/plain")
        if path in ("/api", "/apis"):
            media = discovery.aggregated_media_type(accept)
            if media is not None:
                return json_response(discovery.aggregated(reg, path == "/api", media), media_type=media)
            return json_response(discovery.api_versions() if path == "/api" else discovery.api_group_list(reg))
        if path == "/api/v1":
            return json_response(discovery.resource_list(reg, "", "v1"))
        if parts and parts[0] == "apis" and len(parts) in (2, 3):
            doc = (
                discovery.api_group(reg, parts[1])
                if len(parts) == 2
                else discovery.resource_list(reg, parts[1], parts[2])
            )
            if doc is None:
                raise errors.path_not_found()
            return json_response(doc)
        if path == "/openapi/v2":
            # An empty protobuf Document: kubectl skips client-side schema validation and lets the
            # server validate (fieldValidation=Strict), which is where our CRD schemas live.
            return Response(b"", media_type=discovery.OPENAPI_V2_PROTO)
        if parts and parts[0] == "openapi":
            raise errors.path_not_found()
        return None

    # -- reads --------------------------------------------------------------------------------------
    def _selectors(self, request: Request, rt: ResourceType) -> tuple[selectors.LabelSelector, selectors.FieldSelector]:
        labels = selectors.parse_label_selector(request.query_params.get("labelSelector"))
        fields = selectors.parse_field_selector(request.query_params.get("fieldSelector"))
        allowed = _COMMON_FIELDS | _EXTRA_FIELDS.get(rt.key, set())
        for f in fields.fields():
            if f not in allowed:
                raise errors.bad_request(
                    f'"{f}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                    if not rt.builtin
                    else f"field label not supported: {f}"
                )
        return labels, fields

    async def _get(self, request: Request, target: Target, accept: Accept) -> Response:
        rt = target.rt
        obj = self.cluster.store.get(rt.key, target.namespace, target.name)
        if obj is None:
            raise errors.not_found(rt.plural, rt.group, target.name)
        if accept.table:
            include = request.query_params.get("includeObject", "Metadata")
            return json_response(
                tables.table(rt, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}, include=include)
            )
        if accept.partial:
            return json_response(tables.partial_metadata(obj))
        if target.version == rt.storage_version:
            raw = self.cluster.store.raw(rt.key, target.namespace, target.name)
            return Response(raw, media_type=JSON)
        return json_response(in_version(rt, obj, target.version))

    async def _list_or_watch(self, request: Request, target: Target, accept: Accept) -> Response:
        q = request.query_params
        if q.get("watch") in ("true", "1", "True"):
            return await self._watch(request, target, accept)
        rt = target.rt
        store = self.cluster.store
        labels, fields = self._selectors(request, rt)
        limit = routing.int_param(q, "limit") or 0
        list_rv, start = store.rv, None
        token = q.get("continue")
        if token:
            list_rv, start = _decode_continue(token, store.compacted)
        items = store.items_after(rt.key, target.namespace if rt.namespaced and target.namespace else None, start)
        selected: list[tuple[tuple[str, str], Obj]] = []
        more = False
        for key, obj in items:
            if not labels.empty and not labels.matches((obj.get("metadata") or {}).get("labels")):
                continue
            if not fields.empty and not fields.matches(obj):
                continue
            if limit and len(selected) == limit:
                more = True
                break
            selected.append((key, obj))
        meta: Obj = {"resourceVersion": str(list_rv)}
        if more:
            meta["continue"] = _encode_continue(list_rv, selected[-1][0])
        objs = [o for _, o in selected]
        if accept.table:
            include = q.get("includeObject", "Metadata")
            return json_response(tables.table(rt, objs, meta, include=include))
        if accept.partial:
            return json_response(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [tables.partial_metadata(o) for o in objs],
                }
            )
        head: Obj = {"kind": rt.list_kind_name(), "apiVersion": rt.api_version(target.version), "metadata": meta}
        if target.version == rt.storage_version:
            raw = ",".join(store.raw_of(rt.key, k) for k, _ in selected)
            return Response(dumps(head)[:-1] + ',"items":[' + raw + "]}", media_type=JSON)
        head["items"] = [in_version(rt, o, target.version) for o in objs]
        return json_response(head)

    async def _watch(self, request: Request, target: Target, accept: Accept) -> Response:
        labels, fields = self._selectors(request, target.rt)
        q = request.query_params
        spec = watching.WatchSpec(
            rt=target.rt,
            version=target.version,
            namespace=target.namespace if target.rt.namespaced else "",
            labels=labels,
            fields=fields,
            resource_version=q.get("resourceVersion", ""),
            timeout=float(routing.int_param(q, "timeoutSeconds") or 1800),
            bookmarks=q.get("allowWatchBookmarks") in ("true", "1"),
            send_initial=q.get("sendInitialEvents") in ("true", "1"),
            table=accept.table,
            partial=accept.partial,
            include=q.get("includeObject", "Metadata"),
            bookmark_interval=self.bookmark_interval,
        )
        stream = watching.stream(self.cluster.store, spec)
        return StreamingResponse(stream, media_type=JSON)

    # -- writes -------------------------------------------------------------------------------------
    def _options(self, request: Request) -> Options:
        q = request.query_params
        return Options(
            dry_run=routing.dry_run(q.getlist("dryRun")),
            field_validation=q.get("fieldValidation", ""),
            field_manager=q.get("fieldManager", ""),
            force=q.get("force") in ("true", "1"),
            user=getattr(request.state, "identity", None),
        )

    async def _body(self, request: Request, accepted: tuple[str, ...] = decoding.OBJECT_TYPES) -> tuple[Any, int]:
        """The decoded body and its size in bytes."""
        raw = await decoding.read_body(request)
        return await decoding.decode_async(request.headers.get("content-type", ""), raw, accepted), len(raw)

    async def _admitted(self, target: Target, size: int, write: Callable[[], Outcome]) -> Outcome:
        """Run a write: on the loop when small, in a worker thread (`Writer.off_loop`) when the body
        or the object it changes is large enough for its admission to take noticeable time."""
        if target.name:
            namespace = target.namespace if target.rt.namespaced else ""
            stored = self.cluster.store.raw(target.rt.key, namespace, target.name)
            size = max(size, len(stored or ""))
        if size <= decoding.INLINE_DECODE:
            return write()
        return await self.cluster.writer.off_loop(write)

    def _written(self, target: Target, obj: Obj, status: int, warnings: list[str]) -> Response:
        return json_response(in_version(target.rt, obj, target.version), status, _warning_headers(warnings))

    async def _create(self, request: Request, target: Target, accept: Accept) -> Response:
        if target.subresource:
            raise errors.method_not_allowed("create is not supported on subresources")
        body, size = await self._body(request)
        routing.check_kind(target.rt, target.version, body)
        options, writer = self._options(request), self.cluster.writer
        out = await self._admitted(
            target, size, lambda: writer.create(target.rt, target.namespace, body, target.version, options)
        )
        return self._written(target, out.obj, 201, out.warnings)

    async def _update(self, request: Request, target: Target, accept: Accept) -> Response:
        body, size = await self._body(request)
        routing.check_kind(target.rt, target.version, body)
        options, writer = self._options(request), self.cluster.writer
        out = await self._admitted(target, size, lambda: writer.update(
            target.rt, target.namespace, target.name, body, target.version, options, subresource=target.subresource
        ))  # fmt: skip
        return self._written(target, out.obj, 200, out.warnings)

    async def _patch(self, request: Request, target: Target, accept: Accept) -> Response:
        content_type = decoding.media_type(request.headers.get("content-type", ""))
        body, size = await self._body(request, decoding.PATCH_TYPES)
        if content_type == APPLY:
            routing.check_kind(target.rt, target.version, body)
        options, writer = self._options(request), self.cluster.writer
        out = await self._admitted(target, size, lambda: writer.patch(
            target.rt, target.namespace, target.name, content_type, body, target.version, options,
            subresource=target.subresource,
        ))  # fmt: skip
        return self._written(target, out.obj, 201 if out.created else 200, out.warnings)

    async def _delete_options(self, request: Request) -> Obj:
        raw = await decoding.read_body(request)
        options: Obj = {}
        if raw.strip():
            content_type = request.headers.get("content-type") or JSON  # kube-apiserver's default here
            options = routing.delete_options(await decoding.decode_async(content_type, raw, decoding.OBJECT_TYPES))
        q = request.query_params
        if q.get("propagationPolicy"):
            options["propagationPolicy"] = q["propagationPolicy"]
        if q.get("orphanDependents"):
            options["orphanDependents"] = q["orphanDependents"] == "true"
        if (grace := routing.int_param(q, "gracePeriodSeconds")) is not None:
            options["gracePeriodSeconds"] = grace
        return options

    async def _delete(self, request: Request, target: Target, accept: Accept) -> Response:
        rt = target.rt
        options = await self._delete_options(request)
        dry = routing.dry_run(request.query_params.getlist("dryRun") + (options.get("dryRun") or []))
        obj, finished = self.cluster.writer.delete(rt, target.namespace, target.name, options, dry)
        if not finished:
            # kube-apiserver answers 202 only when orphanDependents=false was asked for, else 200
            # (the Python client drops a 202 body: its delete response map only knows 200).
            code = 202 if options.get("orphanDependents") is False else 200
            return json_response(in_version(rt, obj, target.version), code)
        if rt.key in _RETURNS_DELETED:
            return json_response(in_version(rt, obj, target.version))
        meta = obj["metadata"]
        details = {"name": meta["name"], "kind": rt.plural, "uid": meta.get("uid")}
        if rt.group:
            details["group"] = rt.group
        return json_response(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
        )

    async def _delete_collection(self, request: Request, target: Target, accept: Accept) -> Response:
        rt = target.rt
        labels, fields = self._selectors(request, rt)
        options = await self._delete_options(request)
        dry = routing.dry_run(request.query_params.getlist("dryRun"))
        items = self.cluster.store.items(rt.key, target.namespace if rt.namespaced and target.namespace else None)
        deleted = []
        for _, obj in items:
            if labels.matches((obj.get("metadata") or {}).get("labels")) and (fields.empty or fields.matches(obj)):
                meta = obj["metadata"]
                try:
                    out, _ = self.cluster.writer.delete(
                        rt, meta.get("namespace") or "", meta["name"], copy.deepcopy(options), dry
                    )
                except errors.ApiError as exc:
                    if exc.code != 404:
                        raise
                    continue
                deleted.append(in_version(rt, out, target.version))
        return json_response(
            {
                "kind": rt.list_kind_name(),
                "apiVersion": rt.api_version(target.version),
                "metadata": {"resourceVersion": str(self.cluster.store.rv)},
                "items": deleted,
            }
        )


def _encode_continue(rv: int, key: tuple[str, str]) -> str:
    raw = json.dumps({"v": "volsync.embedded/v1", "rv": rv, "start": list(key)}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str, compacted: int) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        rv, start = int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise errors.bad_request(f"invalid continue token: {exc}") from exc
    if rv < compacted:
        raise errors.gone(
            "The provided continue parameter is too old to display a consistent list result. You can start a "
            "new list without the continue parameter, or use the continue token in this response to retrieve "
            "the remainder of the results. Continuing with the provided token results in an inconsistent list "
            "- objects that were created, modified, or deleted between the time the first chunk was returned "
            "and now may show up in the list."
        )
    return rv, start
