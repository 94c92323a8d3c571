"""`pods/log`, `pods/exec` and `pods/portforward`: checked here as kube-apiserver checks them, then
proxied to the kubelet of the Pod's node.

The node is found from the Pod's `spec.nodeName` and that Node's
`status.daemonEndpoints.kubeletEndpoint.Port`; the kubelet is always dialled on `127.0.0.1` with
the kubelet client certificate (`kubeletdial.py`), and must present a certificate naming this
cluster's node (`kubelet_server_name`: a cluster's admin may publish any port in a Node, even
another cluster's kubelet's); the request carries the Pod's UID (`podUID`), which the kubelet
checks, so a same-named Pod elsewhere is never the one served. Without those certificates (no
`--kubelet-client-certificate` ...) these subresources answer 503. Logs are a streaming GET;
exec and port-forward are WebSocket upgrades relayed message by message (the kubelet speaks
v5/v4.channel.k8s.io and SPDY/3.1-in-WebSocket itself). A plain SPDY upgrade (kubectl's fallback
when the WebSocket upgrade fails) is not served: such requests get the same checks and then a 400
saying so, or, when the WebSocket attempt of the same request was just refused (kubectl falls back
to SPDY after any refused upgrade), with that refusal, so the user reads the real reason.
`pods/attach` streams the container's output only (the node's containers have no stdin to attach).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response, StreamingResponse

from apiserver import errors, kubeletdial
from apiserver.cluster import Cluster
from apiserver.kubeletdial import KubeletCredentials
from apiserver.store import dumps
from osutil.certs import kubelet_server_name

_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/(log|exec|portforward|attach)/?")
_BOOLS = {"1": True, "t": True, "T": True, "true": True, "TRUE": True, "True": True,
          "0": False, "f": False, "F": False, "false": False, "FALSE": False, "False": False}
DENIAL_MEMORY_SECONDS = 30.0
DENIAL_MEMORY_ENTRIES = 1000
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@dataclass(frozen=True)
class PodSubresource:
    namespace: str
    name: str
    subresource: str  # log | exec | portforward | attach


def match(path: str) -> PodSubresource | None:
    """The Pod subresource a cluster-relative path names, None for any other path."""
    m = _PATH.fullmatch(path)
    return PodSubresource(m.group(1), m.group(2), m.group(3)) if m else None


def unavailable(message: str) -> errors.ApiError:
    return errors.ApiError(503, "ServiceUnavailable", message)


# -- checks (pure) ----------------------------------------------------------------------------------
def container_of(pod: Mapping[str, Any], requested: str) -> str:
    """The container a request means, as kube-apiserver's validateContainer decides (400 otherwise)."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    regular = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        if len(regular) == 1:
            return str(regular[0])
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(regular)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        if ephemeral:
            message += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
        raise errors.bad_request(message)
    if requested not in regular + init + ephemeral:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _bool(query: Mapping[str, str], key: str) -> bool:
    raw = query.get(key)
    if raw is None:
        return False
    if raw not in _BOOLS:
        raise errors.bad_request(f'strconv.ParseBool: parsing "{raw}": invalid syntax')
    return _BOOLS[raw]


def log_query(pod_name: str, query: Mapping[str, str]) -> dict[str, str]:
    """PodLogOptions from the query, checked as kube-apiserver does: 400 when a value does not parse,
    422 when it is out of range; the kubelet's query on success."""
    out = {k: "true" for k in ("follow", "previous", "timestamps") if _bool(query, k)}
    _bool(query, "insecureSkipTLSVerifyBackend")
    causes = []
    for key, minimum, detail in (("tailLines", 0, "must be greater than or equal to 0"),
                                 ("limitBytes", 1, "must be greater than 0"),
                                 ("sinceSeconds", 1, "must be greater than 0")):
        raw = query.get(key)
        if raw is None or raw == "":
            continue
        if not re.fullmatch(r"[+-]?\d{1,19}", raw) or not -(2**63) <= int(raw) < 2**63:
            raise errors.bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax')
        if int(raw) < minimum:
            causes.append(errors.cause(errors.INVALID, key, detail, int(raw)))
        out[key] = str(int(raw))
    since_time = query.get("sinceTime")
    if since_time:
        if not _RFC3339.fullmatch(since_time):
            raise errors.bad_request(f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": cannot parse')
        out["sinceTime"] = since_time
        if "sinceSeconds" in out:
            causes.append(errors.FieldCause("", "FieldValueForbidden",
                                            "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    if causes:
        raise errors.invalid("PodLogOptions", "", pod_name, causes)
    return out


def stream_query(subresource: str, query: HTTPConnection) -> str:
    """The kubelet's query for exec (the streams and the command) or port-forward (the ports)."""
    params = query.query_params
    if subresource in ("exec", "attach"):
        flags = {k: _bool(params, k) for k in ("stdin", "stdout", "stderr", "tty")}
        if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
            raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
        pairs = [("command", c) for c in params.getlist("command")] if subresource == "exec" else []
        pairs += [(k, "true") for k, on in flags.items() if on]
        return urlencode(pairs)
    return urlencode([("port", p) for p in params.getlist("ports")])


class NodeProxy:
    """Serves the Pod subresources of every cluster of this API server."""

    def __init__(self, credentials: KubeletCredentials | None) -> None:
        self.credentials = credentials
        self._denied: dict[str, tuple[float, errors.ApiError]] = {}  # request -> its refused WebSocket upgrade

    def _remember(self, key: str, exc: errors.ApiError) -> None:
        now = time.monotonic()
        recent = [(k, v) for k, v in self._denied.items() if now - v[0] < DENIAL_MEMORY_SECONDS]
        self._denied = dict(recent[-DENIAL_MEMORY_ENTRIES:])
        self._denied[key] = (now, exc)

    def _recalled(self, key: str) -> errors.ApiError | None:
        when, exc = self._denied.pop(key, (0.0, None))
        return exc if exc is not None and time.monotonic() - when < DENIAL_MEMORY_SECONDS else None

    def _resolve(self, cluster: Cluster, target: PodSubresource) -> tuple[dict[str, Any], int | None]:
        """The Pod and its kubelet's port (None: the Pod has no node yet)."""
        pod = cluster.store.get("/pods", target.namespace, target.name)
        if pod is None:
            raise errors.not_found("pods", "", target.name)
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            return pod, None
        node = cluster.store.get("/nodes", "", node_name)
        if node is None:
            raise errors.not_found("nodes", "", node_name)
        port = (((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise unavailable(f"node {node_name} publishes no kubelet endpoint "
                              "(status.daemonEndpoints.kubeletEndpoint.Port)")
        return pod, port

    def _credentials(self) -> KubeletCredentials:
        if self.credentials is None:
            raise unavailable("this API server has no kubelet client credentials (--kubelet-client-certificate, "
                              "--kubelet-client-key, --kubelet-certificate-authority): it cannot reach nodes for "
                              "logs, exec or port-forward")
        return self.credentials

    def _kubelet_path(self, conn: HTTPConnection, target: PodSubresource) -> tuple[int, str, str]:
        """Every check of an exec/port-forward request; the kubelet's port, path and certificate name."""
        creds_missing = self.credentials is None
        pod, port = self._resolve(conn.scope["cluster"], target)
        ns, name = target.namespace, target.name
        if target.subresource in ("exec", "attach"):
            container = container_of(pod, conn.query_params.get("container", ""))
            kind = target.subresource
            path = f"/{kind}/{ns}/{name}/{container}?{stream_query(kind, conn)}"
        else:
            path = f"/portForward/{ns}/{name}?{stream_query('portforward', conn)}"
        if port is None:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        if creds_missing:
            self._credentials()
        return port, f"{path}&{_pod_uid_query(pod)}", _server_name(conn.scope["cluster"], pod)

    # -- HTTP ---------------------------------------------------------------------------------------
    async def http(self, cluster: Cluster, request: Request, target: PodSubresource) -> Response:
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        if target.subresource != "log":
            request.scope["cluster"] = cluster
            self._kubelet_path(request, target)
            recalled = self._recalled(_request_key(cluster, request.scope))
            if recalled is not None:
                raise recalled
            raise errors.bad_request(
                f"pods/{target.subresource} is served over WebSocket only (v5.channel.k8s.io, "
                "SPDY/3.1+portforward.k8s.io): this server does not take SPDY/3.1 upgrades")
        pod, port = self._resolve(cluster, target)
        container = container_of(pod, request.query_params.get("container", ""))
        query = log_query(target.name, request.query_params)
        if port is None:  # kube-apiserver: a Pod without a node has an empty log
            return Response(b"", media_type="text/plain")
        path = f"/containerLogs/{target.namespace}/{target.name}/{container}?{urlencode(query)}"
        path += f"&{_pod_uid_query(pod)}" if query else _pod_uid_query(pod)
        try:
            client, response = await kubeletdial.get(self._credentials(), port, path, _server_name(cluster, pod))
        except OSError as exc:
            raise unavailable(f"error dialing backend: {exc}") from exc
        if response.status_code != 200:
            body = await response.aread()
            await client.aclose()
            raise _kubelet_error(response.status_code, body)
        return StreamingResponse(_relay_body(client, response), media_type="text/plain")

    # -- WebSocket ----------------------------------------------------------------------------------
    async def websocket(self, cluster: Cluster, scope: MutableMapping[str, Any], receive: Any, send: Any,
                        target: PodSubresource) -> None:
        connect = await receive()
        if connect.get("type") != "websocket.connect":
            return
        try:
            scope["cluster"] = cluster
            port, path, server_name = self._kubelet_path(HTTPConnection(scope), target)
            try:
                upstream = await kubeletdial.websocket(self._credentials(), port, path,
                                                       list(scope.get("subprotocols") or []), server_name)
            except kubeletdial.Refused as refused:
                raise _kubelet_error(refused.status, refused.body) from refused
            except (OSError, TimeoutError) as exc:
                raise unavailable(f"error dialing backend: {exc}") from exc
        except errors.ApiError as exc:
            self._remember(_request_key(cluster, scope), exc)
            await deny(send, exc)
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
        await _relay_websocket(upstream, receive, send)


def _server_name(cluster: Cluster, pod: Mapping[str, Any]) -> str:
    """The name the certificate of the kubelet of the Pod's node must carry."""
    return kubelet_server_name(cluster.name, str((pod.get("spec") or {}).get("nodeName") or ""))


def _pod_uid_query(pod: Mapping[str, Any]) -> str:
    return urlencode({"podUID": str((pod.get("metadata") or {}).get("uid") or "")})


def _request_key(cluster: Cluster, scope: MutableMapping[str, Any]) -> str:
    """What identifies a streaming request across kubectl's WebSocket try and its SPDY retry."""
    return f"{cluster.name} {scope['path']}?{scope.get('query_string', b'').decode('latin-1')}"


async def deny(send: Any, exc: errors.ApiError) -> None:
    """Refuse a WebSocket upgrade with the error's `Status` as an HTTP response."""
    body = dumps(exc.status()).encode()
    await send({"type": "websocket.http.response.start", "status": exc.code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "websocket.http.response.body", "body": body})


def _kubelet_error(status: int, body: bytes) -> errors.ApiError:
    """The kubelet's refusal as the client sees it: its Status when it sent one, else its text."""
    with contextlib.suppress(ValueError, AttributeError):
        decoded = json.loads(body)
        if decoded.get("kind") == "Status" and decoded.get("message"):
            return errors.ApiError(status, str(decoded.get("reason") or "BadRequest"), str(decoded["message"]))
    reason = {400: "BadRequest", 404: "NotFound", 403: "Forbidden"}.get(status, "InternalError")
    return errors.ApiError(status, reason, body.decode("utf-8", "replace").strip() or f"kubelet answered {status}")


async def _relay_body(client: Any, response: Any) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()
        await client.aclose()


async def _relay_websocket(upstream: kubeletdial.KubeletSocket, receive: Any, send: Any) -> None:
    async def to_kubelet() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message["type"] == "websocket.receive":
                await upstream.send(message.get("bytes") or (message.get("text") or "").encode())

    async def to_client() -> None:
        async for payload in upstream.messages():
            await send({"type": "websocket.send", "bytes": payload})

    tasks = [asyncio.create_task(to_kubelet()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": upstream.close_code or 1000})
