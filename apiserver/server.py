"""The embedded API server: several clusters behind one port, each under `/clusters/<name>`.

Each cluster has its own SQLite store (`<data-dir>/<name>.db`) and registry. Authentication
(`authn.py`) takes bearer tokens from a static token file per cluster, so a credential is valid
on its own cluster only, and ServiceAccount tokens (`satokens.py`, signed per cluster); an
authenticated user may do everything there (there is no RBAC). `clientcaps.py` bounds the watches
and in-flight requests of each caller (429 beyond). Each cluster allocates Service addresses from
its own Service CIDR (`serviceips.py`) and keeps the default ServiceAccount and kube-root-ca.crt in
every namespace (`serviceaccounts.py`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from apiserver import decoding, errors, satokens
from apiserver.authn import Authenticator, Identity
from apiserver.clientcaps import RETRY_AFTER_SECONDS, ClientCaps, is_watch
from apiserver.cluster import Cluster, load_crd_files
from apiserver.kubeletdial import KubeletCredentials
from apiserver.nodeproxy import NodeProxy, deny, match
from apiserver.serviceips import DEFAULT_SERVICE_CIDR
from apiserver.serving import ClusterApp, error_response, json_response
from apiserver.store import Store

log = logging.getLogger("volsync.apiserver")
_TOKEN_REQUEST = re.compile(r"/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token/?")
_SELF_SUBJECT_REVIEW = re.compile(r"/apis/authentication\.k8s\.io/v1/selfsubjectreviews/?")

class Server:
    """ASGI app serving every cluster; `clusters` maps a name to its Cluster."""

    def __init__(
        self, clusters: dict[str, Cluster], *, token_files: dict[str, Path] | None = None,
        caps: ClientCaps | None = None, bookmark_interval: float = 30.0, kubelet: KubeletCredentials | None = None,
    ) -> None:
        self.clusters = clusters
        self.nodes = NodeProxy(kubelet)  # pods/log, pods/exec, pods/portforward: proxied to the kubelets
        self.apps = {name: ClusterApp(c, bookmark_interval=bookmark_interval) for name, c in clusters.items()}
        self.authenticator = Authenticator(token_files, self._service_account)
        self.caps = caps or ClientCaps()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        names: Iterable[str],
        *,
        crd_dir: Path | None = None,
        token_files: dict[str, Path] | None = None,
        caps: ClientCaps | None = None,
        history: int = 50_000,
        bookmark_interval: float = 30.0,
        service_cidrs: dict[str, str] | None = None,
        kubelet: KubeletCredentials | None = None,
    ) -> Server:
        crds = load_crd_files(crd_dir) if crd_dir is not None else []
        secret, cidrs = satokens.signing_secret(data_dir), service_cidrs or {}
        clusters: dict[str, Cluster] = {}
        try:
            for n in names:
                clusters[n] = Cluster(n, Store(data_dir / f"{n}.db", history=history), crds,
                                      service_cidr=cidrs.get(n, DEFAULT_SERVICE_CIDR), signing_secret=secret)
        except Exception:
            for c in clusters.values():
                c.store.close()
            raise
        return cls(clusters, token_files=token_files, caps=caps, bookmark_interval=bookmark_interval, kubelet=kubelet)

    def publish_root_ca(self, ca_pem: str) -> None:
        """The CA clients verify the API with, as kube-root-ca.crt in every namespace of every cluster."""
        for c in self.clusters.values():
            c.accounts.publish(ca_pem)

    def _service_account(self, cluster: str, token: str) -> Identity | None:
        """The ServiceAccount a JWT proves on `cluster` (`satokens.py`), or None."""
        c = self.clusters.get(cluster)
        claims = c.tokens.claims(token) if c is not None else None
        found = satokens.subject(claims, c.store) if c is not None and claims is not None else None
        if found is None:
            return None
        namespace, name, uid = found
        return Identity(f"system:serviceaccount:{namespace}:{name}", uid,
                        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
                        cluster)

    async def _token_request(self, request: Request, cluster: str, namespace: str, name: str) -> Response:
        """`POST .../serviceaccounts/<name>/token`: a TokenRequest answered with a signed token (201)."""
        raw = await decoding.read_body(request)
        body = await decoding.decode_async(request.headers.get("content-type", ""), raw, decoding.OBJECT_TYPES)
        c = self.clusters[cluster]
        return json_response(satokens.request_token(c.store, c.tokens, namespace, name, body), 201)

    def close(self) -> None:
        for c in self.clusters.values():
            c.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await self._serve_websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = request.url.path
        parts = path.split("/", 3)
        if path in ("/healthz", "/readyz", "/livez"):
            await Response("ok", media_type="text/plain")(scope, receive, send)
            return
        if len(parts) < 3 or parts[1] != "clusters" or parts[2] not in self.apps:
            await error_response(errors.path_not_found())(scope, receive, send)
            return
        cluster, sub = parts[2], "/" + parts[3] if len(parts) > 3 else "/"
        identity = self.authenticator.identify(cluster, request.headers.get("authorization", ""))
        if identity is None:
            await error_response(errors.unauthorized())(scope, receive, send)
            return
        await self._serve_counted(request, cluster, sub, identity, send)

    async def _serve_counted(self, request: Request, cluster: str, sub: str, identity: Identity, send: Send) -> None:
        """Serve within the caller's caps: the request counts until its response (a watch stream) ends."""
        key, watch = (cluster, identity.user), is_watch(sub, request.query_params.get("watch"))
        refused = self.caps.acquire(key, watch)
        if refused is not None:
            response = error_response(refused)
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            await response(request.scope, request.receive, send)
            return
        try:
            request.state.identity = identity
            response = await self._dispatch(request, cluster, sub)
            await response(request.scope, request.receive, send)
        finally:
            self.caps.release(key, watch)

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSocket upgrades: `pods/exec` and `pods/portforward` only, authenticated as any request
        and counted as a long-running one (like a watch)."""
        parts = scope["path"].split("/", 3)
        cluster = parts[2] if len(parts) > 2 and parts[1] == "clusters" else ""
        target = match("/" + parts[3]) if len(parts) > 3 and cluster in self.apps else None
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        identity = self.authenticator.identify(cluster, headers.get("authorization", "")) if target else None
        if target is None or identity is None:
            await receive()
            await deny(send, errors.path_not_found() if target is None else errors.unauthorized())
            return
        key = (cluster, identity.user)
        refused = self.caps.acquire(key, True)
        if refused is not None:
            await receive()
            await deny(send, refused)
            return
        try:
            await self.nodes.websocket(self.clusters[cluster], scope, receive, send, target)
        except Exception:
            log.exception("internal error relaying %s", scope["path"])
        finally:
            self.caps.release(key, True)

    async def _dispatch(self, request: Request, cluster: str, sub: str) -> Response:
        try:
            token_request = _TOKEN_REQUEST.fullmatch(sub)
            if token_request is not None:
                if request.method != "POST":
                    raise errors.method_not_allowed("the server does not allow this method on the requested resource")
                return await self._token_request(request, cluster, *token_request.groups())
            if _SELF_SUBJECT_REVIEW.fullmatch(sub) and request.method == "POST":  # kubectl auth whoami
                return json_response(_self_subject_review(request.state.identity), 201)
            target = match(sub)
            if target is not None:
                return await self.nodes.http(self.clusters[cluster], request, target)
            return await self.apps[cluster](request, sub)
        except errors.ApiError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.url.path)
            return error_response(errors.internal(type(exc).__name__))


def _self_subject_review(identity: Identity) -> dict[str, object]:
    """authentication.k8s.io/v1 SelfSubjectReview: who the caller is authenticated as."""
    groups = list(dict.fromkeys([*identity.groups, "system:authenticated"]))
    user: dict[str, object] = {"username": identity.user, "groups": groups}
    if identity.uid:
        user["uid"] = identity.uid
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None}, "status": {"userInfo": user}}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
