"""The embedded API server: several clusters behind one port, each under `/clusters/<name>`.

Each cluster has its own SQLite store (`<data-dir>/<name>.db`) and registry. Authentication
(`authn.py`) takes bearer tokens from a static token file per cluster, so a credential is valid
on its own cluster only, and ServiceAccount tokens (`satokens.py`, signed per cluster).
`clientcaps.py` bounds the watches
and in-flight requests of each caller (429 beyond). Each cluster allocates Service addresses from
its own Service CIDR (`serviceips.py`) and keeps the default ServiceAccount and kube-root-ca.crt in
every namespace (`serviceaccounts.py`).

Every HTTP request and WebSocket upgrade is authorized after authentication (`authorization.py`):
Impersonate-* headers are checked and applied first, then the request's attributes
(`requestinfo.py`) are judged by the cluster's chain (`Cluster.authorizer`, installed here: RBAC
with the system:masters bypass, or AlwaysAllow); a denial is kube-apiserver's 403 Status. The
review APIs (`accessreviews.py`) and TokenRequest are answered here, before the generic handlers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from apiserver import accessreviews, authorization, decoding, errors, satokens
from apiserver.authn import Authenticator, Identity
from apiserver.authorization import Authorizer
from apiserver.clientcaps import RETRY_AFTER_SECONDS, ClientCaps, is_watch
from apiserver.cluster import Cluster, load_crd_files
from apiserver.kubeletdial import KubeletCredentials
from apiserver.nodeproxy import NodeProxy, deny, match
from apiserver.requestinfo import request_info
from apiserver.serviceips import DEFAULT_SERVICE_CIDR
from apiserver.serving import ClusterApp, error_response, json_response
from apiserver.store import Store

log = logging.getLogger("volsync.apiserver")
_TOKEN_REQUEST = re.compile(r"/api/v1/namespaces/([^/]+)/serviceaccounts/([^/]+)/token/?")

class Server:
    """ASGI app serving every cluster; `clusters` maps a name to its Cluster."""

    def __init__(
        self, clusters: dict[str, Cluster], *, token_files: dict[str, Path] | None = None,
        caps: ClientCaps | None = None, bookmark_interval: float = 30.0, kubelet: KubeletCredentials | None = None,
        authorization_mode: str | None = None,
    ) -> None:
        """`authorization_mode` RBAC or AlwaysAllow; None: RBAC with authentication (`token_files`),
        else AlwaysAllow."""
        self.clusters = clusters
        mode = authorization_mode or ("RBAC" if token_files is not None else "AlwaysAllow")
        for c in clusters.values():
            c.authorizer = authorization.chain(mode, getattr(c, "rbac", None))
            for rt in accessreviews.REVIEW_TYPES:  # listed by discovery, answered by _dispatch
                c.registry.add(rt)
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
        authorization_mode: str | None = None,
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
        return cls(clusters, token_files=token_files, caps=caps, bookmark_interval=bookmark_interval, kubelet=kubelet,
                   authorization_mode=authorization_mode)

    def publish_root_ca(self, ca_pem: str) -> None:
        """The CA clients verify the API with, as kube-root-ca.crt in every namespace of every cluster."""
        for c in self.clusters.values():
            c.accounts.publish(ca_pem)

    def _service_account(self, cluster: str, token: str) -> Identity | None:
        """The ServiceAccount a JWT proves on `cluster` (`satokens.py`), or None."""
        c = self.clusters.get(cluster)
        claims = c.tokens.claims(token) if c is not None else None
        return _account_identity(c, claims, token) if c is not None and claims is not None else None

    async def _token_request(self, request: Request, cluster: str, namespace: str, name: str) -> Response:
        """`POST .../serviceaccounts/<name>/token`: a TokenRequest answered with a signed token (201)."""
        raw = await decoding.read_body(request)
        body = await decoding.decode_async(request.headers.get("content-type", ""), raw, decoding.OBJECT_TYPES)
        c = self.clusters[cluster]
        return json_response(satokens.request_token(c.store, c.tokens, namespace, name, body), 201)

    async def _review(self, request: Request, cluster: str, kind: str, namespace: str, group: str) -> Response:
        """The review APIs (`accessreviews.py`): POST answered 201, any other method 405."""
        if request.method != "POST":
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        identity: Identity = request.state.identity
        if kind == "SelfSubjectReview":  # kubectl auth whoami
            return json_response(accessreviews.self_subject_review(identity), 201)
        raw = await decoding.read_body(request)
        body = await decoding.decode_async(request.headers.get("content-type", ""), raw, decoding.OBJECT_TYPES)
        c = self.clusters[cluster]
        if kind == "TokenReview":
            answer = accessreviews.token_review(lambda t, a: self._token_check(cluster, t, a),
                                                list(satokens.API_AUDIENCES), body)
        elif kind == "SelfSubjectRulesReview":
            rbac = getattr(c, "rbac", None)
            if rbac is None:
                raise errors.ApiError(503, "ServiceUnavailable", "this cluster has no RBAC engine")
            answer = accessreviews.rules_review(rbac, identity, body)
        else:
            answer = accessreviews.access_review(c.authorizer, identity, kind, namespace, body)
        return json_response(answer, 201)

    def _token_check(self, cluster: str, token: str, wanted: list[str]) -> tuple[Identity, list[str]] | None:
        """A TokenReview's token as this server authenticates it on `cluster` (any credential it takes),
        or a ServiceAccount token of this cluster made for one of `wanted` (another audience than the
        API's); with the token's audiences ([] for audience-agnostic credentials)."""
        found = self.authenticator.identify(cluster, "Bearer " + token) if self.authenticator.enabled else None
        if found is not None:
            return found, accessreviews.jwt_audiences(token) or []
        c = self.clusters[cluster]
        claims = accessreviews.audience_claims(c.tokens, token, wanted)
        ident = _account_identity(c, claims, token) if claims is not None else None
        return (ident, accessreviews.jwt_audiences(token) or []) if ident is not None else None

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
        cluster, sub = parts[2], canonical(parts[3] if len(parts) > 3 else "")
        identity = self.authenticator.identify(cluster, request.headers.get("authorization", ""))
        if identity is None:
            await error_response(errors.unauthorized())(scope, receive, send)
            return
        try:
            identity = self._authorize(cluster, request.method, sub, dict(request.query_params),
                                       request.headers.items(), identity)
        except errors.ApiError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self._serve_counted(request, cluster, sub, identity, send)

    def _authorize(self, cluster: str, method: str, sub: str, query: dict[str, str],
                   headers: list[tuple[str, str]], identity: Identity) -> Identity:
        """The identity a request acts as (after impersonation), once its cluster's chain allowed
        the request; an ApiError (403, or 400 for bad impersonation headers) otherwise."""
        authorizer: Authorizer = self.clusters[cluster].authorizer
        try:
            if authorization.wants_impersonation(headers):
                identity = authorization.impersonate(authorizer, identity, headers)
            authorization.check(authorizer, identity, request_info(method, sub, query))
        except errors.ApiError:
            raise
        except Exception as exc:  # a broken authorizer is the server's fault: a Status, never a dropped request
            log.exception("internal error authorizing %s %s", method, sub)
            raise errors.internal(type(exc).__name__) from exc
        return identity

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
        sub = canonical(parts[3] if len(parts) > 3 else "")
        target = match(sub) if cluster in self.apps else None
        header_list = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers") or []]
        headers = dict(header_list)
        identity = self.authenticator.identify(cluster, headers.get("authorization", "")) if target else None
        if target is None or identity is None:
            await receive()
            await deny(send, errors.path_not_found() if target is None else errors.unauthorized())
            return
        try:
            query = dict(parse_qsl((scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True))
            identity = self._authorize(cluster, "GET", sub, query, header_list, identity)
        except errors.ApiError as exc:
            await receive()
            await deny(send, exc)
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
            review = accessreviews.match(sub)
            if review is not None:
                return await self._review(request, cluster, *review)
            if accessreviews.in_review_groups(sub):
                raise errors.path_not_found()
            target = match(sub)
            if target is not None:
                return await self.nodes.http(self.clusters[cluster], request, target)
            return await self.apps[cluster](request, sub)
        except errors.ApiError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.url.path)
            return error_response(errors.internal(type(exc).__name__))


def canonical(rest: str) -> str:
    """The path inside a cluster as every handler sees it: empty segments (`//`, a trailing `/`)
    dropped, so the request authorized (`requestinfo.py` splits the same way) is the one served
    (the review, TokenRequest and Pod-subresource matchers compare whole paths)."""
    return "/" + "/".join(p for p in rest.split("/") if p)


def _account_identity(cluster: Cluster, claims: dict[str, object], token: str) -> Identity | None:
    """The ServiceAccount identity verified `claims` prove while their objects exist, with kube
    1.32's extras: `authentication.kubernetes.io/credential-id` (JTI=<jti>) and, for a Pod-bound
    token, `.../pod-name` and `.../pod-uid`."""
    found = satokens.subject(claims, cluster.store, token)
    if found is None:
        return None
    namespace, name, uid = found
    extra: dict[str, tuple[str, ...]] = {}
    if isinstance(claims.get("jti"), str) and claims["jti"]:
        extra["authentication.kubernetes.io/credential-id"] = (f"JTI={claims['jti']}",)
    private = claims.get("kubernetes.io")
    pod = private.get("pod") if isinstance(private, dict) else None
    if isinstance(pod, dict):
        extra["authentication.kubernetes.io/pod-name"] = (str(pod.get("name", "")),)
        extra["authentication.kubernetes.io/pod-uid"] = (str(pod.get("uid", "")),)
    return Identity(f"system:serviceaccount:{namespace}:{name}", uid,
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
                    cluster.name, tuple(sorted(extra.items())))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
