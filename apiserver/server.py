"""The embedded API server: several clusters behind one port, each under `/clusters/<name>`.

Each cluster has its own SQLite store (`<data-dir>/<name>.db`) and registry. Authentication
(`authn.py`) takes bearer tokens from a static token file per cluster, so a credential is valid
on its own cluster only; an authenticated user may do everything there (there is no RBAC).
`clientcaps.py` bounds the watches and in-flight requests of each caller (429 beyond).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from apiserver import errors
from apiserver.authn import Authenticator, Identity
from apiserver.clientcaps import RETRY_AFTER_SECONDS, ClientCaps, is_watch
from apiserver.cluster import Cluster, load_crd_files
from apiserver.serving import ClusterApp, error_response
from apiserver.store import Store

log = logging.getLogger("volsync.apiserver")

class Server:
    """ASGI app serving every cluster; `clusters` maps a name to its Cluster."""

    def __init__(
        self, clusters: dict[str, Cluster], *, token_files: dict[str, Path] | None = None,
        caps: ClientCaps | None = None, bookmark_interval: float = 30.0,
    ) -> None:
        self.clusters = clusters
        self.apps = {name: ClusterApp(c, bookmark_interval=bookmark_interval) for name, c in clusters.items()}
        self.authenticator = Authenticator(token_files)
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
    ) -> Server:
        crds = load_crd_files(crd_dir) if crd_dir is not None else []
        clusters: dict[str, Cluster] = {}
        try:
            for n in names:
                clusters[n] = Cluster(n, Store(data_dir / f"{n}.db", history=history), crds)
        except Exception:
            for c in clusters.values():
                c.store.close()
            raise
        return cls(clusters, token_files=token_files, caps=caps, bookmark_interval=bookmark_interval)

    def close(self) -> None:
        for c in self.clusters.values():
            c.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
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
            response = await self._dispatch(request, cluster, sub)
            await response(request.scope, request.receive, send)
        finally:
            self.caps.release(key, watch)

    async def _dispatch(self, request: Request, cluster: str, sub: str) -> Response:
        try:
            return await self.apps[cluster](request, sub)
        except errors.ApiError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.url.path)
            return error_response(errors.internal(type(exc).__name__))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
