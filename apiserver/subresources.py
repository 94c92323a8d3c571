"""The `scale` and `binding` subresources, as kube-apiserver serves them.

`…/deployments|replicasets|replicationcontrollers/<name>/scale` answers an `autoscaling/v1` Scale
(GET) and takes one back (PUT, or a merge/JSON/strategic patch of it: what `kubectl scale` and the
Python client's `patch_*_scale` send); the write changes the parent's `spec.replicas` through the
ordinary update path. `…/pods/<name>/binding` (POST a `Binding`) sets the Pod's node, as a
scheduler does (`podlifecycle.bind`).
"""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from apiserver import decoding, errors, patching, podlifecycle, routing
from apiserver.cluster import Cluster
from apiserver.decoding import JSON_PATCH, MERGE, STRATEGIC
from apiserver.errors import INVALID, cause
from apiserver.resources import Obj, ResourceType
from apiserver.routing import Target
from apiserver.store import Change, dumps
from apiserver.writing import Options

SERVED = frozenset({"scale", "binding"})
_JSON = "application/json"


def _respond(body: Obj, status: int = 200) -> Response:
    return Response(dumps(body) + "\n", status_code=status, media_type=_JSON)


def selector_text(rt: ResourceType, obj: Obj) -> str:
    """The parent's label selector in the string form a Scale's `status.selector` carries."""
    sel = (obj.get("spec") or {}).get("selector") or {}
    if rt.kind == "ReplicationController":  # a plain label map
        return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(sorted(e.get("values") or []))
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": str(key),
                "DoesNotExist": f"!{key}",
            }.get(str(op), str(key))
        )
    return ",".join(sorted(parts))


def to_scale(rt: ResourceType, obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    kept = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in kept if k in meta},
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas") or 0)},
        "status": {"replicas": int((obj.get("status") or {}).get("replicas") or 0), "selector": selector_text(rt, obj)},
    }


async def serve(cluster: Cluster, request: Request, target: Target) -> Response:
    """Answer a request for one of the SERVED subresources (405 for a verb it does not take)."""
    verbs = {"scale": ("GET", "PUT", "PATCH"), "binding": ("POST",)}[target.subresource]
    if request.method not in verbs:
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")
    raw = await decoding.read_body(request)
    content_type = request.headers.get("content-type", "")
    q = request.query_params
    opts = Options(dry_run=routing.dry_run(q.getlist("dryRun")), field_manager=q.get("fieldManager", ""))
    if target.subresource == "binding":
        body = await decoding.decode_async(content_type, raw, decoding.OBJECT_TYPES)
        return _bind(cluster, target, body, opts)
    current = cluster.store.get(target.rt.key, target.namespace, target.name)
    if current is None:
        raise errors.not_found(target.rt.plural, target.rt.group, target.name)
    if request.method == "GET":
        return _respond(to_scale(target.rt, current))
    if request.method == "PUT":
        scale = await decoding.decode_async(content_type, raw, decoding.OBJECT_TYPES)
    else:
        media = decoding.media_type(content_type)
        if media not in (MERGE, JSON_PATCH, STRATEGIC):
            raise errors.unsupported_media_type((JSON_PATCH, MERGE, STRATEGIC))
        patch = await decoding.decode_async(content_type, raw, decoding.PATCH_TYPES)
        scale = _patched(to_scale(target.rt, current), media, patch)
    return _rescale(cluster, target, current, scale, opts)


def _patched(scale: Obj, media: str, patch: Any) -> Any:
    if media == JSON_PATCH:
        return patching.json_patch(copy.deepcopy(scale), patch)
    return patching.merge_patch(copy.deepcopy(scale), patch)  # a Scale has no lists to merge by key


def _rescale(cluster: Cluster, target: Target, current: Obj, scale: Any, opts: Options) -> Response:
    rt = target.rt
    if not isinstance(scale, dict) or not isinstance(scale.get("spec") or {}, dict):
        raise errors.bad_request("the body of the request must be a Scale object")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise errors.bad_request(f"Scale.spec.replicas must be an integer, not {type(replicas).__name__}")
    if replicas < 0:
        problem = cause(INVALID, "spec.replicas", "must be greater than or equal to 0", replicas)
        raise errors.invalid("Scale", "autoscaling", target.name, [problem])
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    if rv and str(rv) != current["metadata"].get("resourceVersion"):
        why = "the object has been modified; please apply your changes to the latest version and try again"
        raise errors.conflict(rt.plural, rt.group, target.name, why)
    parent = copy.deepcopy(current)
    parent.setdefault("spec", {})["replicas"] = replicas
    out = cluster.writer.update(rt, target.namespace, target.name, parent, rt.storage_version, opts, require_rv=False)
    return _respond(to_scale(rt, out.obj))


def _bind(cluster: Cluster, target: Target, binding: Any, opts: Options) -> Response:
    pod = cluster.store.get(target.rt.key, target.namespace, target.name)
    if pod is None:
        raise errors.not_found(target.rt.plural, target.rt.group, target.name)
    bound = podlifecycle.bind(pod, binding, target.name)
    if not opts.dry_run:
        cluster.writer.commit([Change("MODIFIED", target.rt.key, bound)])
    return _respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201)
