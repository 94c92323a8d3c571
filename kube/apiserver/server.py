"""The embedded API server: several clusters behind one port, each under `/clusters/<name>`.

Each cluster has its own SQLite store (`<data-dir>/<name>.db`) and registry. Optional bearer
token authentication uses kube-apiserver's static token file format (`token,user,uid,"groups"`);
authenticated users may do everything (there is no RBAC). The kubeconfig written next to the
stores has one cluster, user and context per served cluster.
"""

from __future__ import annotations

import base64
import csv
import hmac
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from kube.apiserver import errors
from kube.apiserver.cluster import Cluster, load_crd_files
from kube.apiserver.serving import ClusterApp, error_response
from kube.apiserver.store import Store

log = logging.getLogger("volsync.apiserver")

DEFAULT_CRD_DIR = Path(__file__).resolve().parents[2] / "manifests" / "crds"


@dataclass
class Identity:
    user: str
    uid: str = ""
    groups: list[str] = field(default_factory=list)


def read_token_file(path: Path) -> dict[str, Identity]:
    """kube-apiserver's `--token-auth-file` format: token,user,uid[,"group1,group2"]."""
    tokens: dict[str, Identity] = {}
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if not row or row[0].startswith("#") or len(row) < 2:
                continue
            groups = row[3].split(",") if len(row) > 3 and row[3] else []
            tokens[row[0].strip()] = Identity(row[1].strip(), row[2].strip() if len(row) > 2 else "", groups)
    return tokens


class Server:
    """ASGI app serving every cluster; `clusters` maps a name to its Cluster."""

    def __init__(
        self, clusters: dict[str, Cluster], *, token_file: Path | None = None, bookmark_interval: float = 30.0
    ) -> None:
        self.clusters = clusters
        self.apps = {name: ClusterApp(c, bookmark_interval=bookmark_interval) for name, c in clusters.items()}
        self.token_file = token_file
        self._tokens: dict[str, Identity] | None = None
        self._token_mtime = 0.0

    @classmethod
    def open(
        cls,
        data_dir: Path,
        names: Iterable[str],
        *,
        crd_dir: Path | None = None,
        token_file: Path | None = None,
        history: int = 50_000,
        bookmark_interval: float = 30.0,
    ) -> Server:
        crds = load_crd_files(crd_dir or DEFAULT_CRD_DIR)
        clusters = {n: Cluster(n, Store(data_dir / f"{n}.db", history=history), crds) for n in names}
        return cls(clusters, token_file=token_file, bookmark_interval=bookmark_interval)

    def close(self) -> None:
        for c in self.clusters.values():
            c.store.close()

    def _identity(self, request: Request) -> Identity | None:
        if self.token_file is None:
            return Identity("system:anonymous")
        mtime = self.token_file.stat().st_mtime if self.token_file.exists() else 0.0
        if self._tokens is None or mtime != self._token_mtime:
            self._tokens = read_token_file(self.token_file) if self.token_file.exists() else {}
            self._token_mtime = mtime
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        presented = header[7:].strip()
        for token, ident in self._tokens.items():
            if hmac.compare_digest(token, presented):
                return ident
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._handle(request)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        parts = path.split("/", 3)
        if path in ("/healthz", "/readyz", "/livez"):
            return Response("ok", media_type="text/plain")
        if len(parts) < 3 or parts[1] != "clusters" or parts[2] not in self.apps:
            return error_response(errors.path_not_found())
        if self._identity(request) is None:
            return error_response(errors.unauthorized())
        sub = "/" + parts[3] if len(parts) > 3 else "/"
        try:
            return await self.apps[parts[2]](request, sub)
        except errors.ApiError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, path)
            return error_response(errors.internal(type(exc).__name__))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def ensure_tokens(token_file: Path, users: Iterable[str]) -> dict[str, str]:
    """Make sure every user has a token in the file; returns user -> token."""
    existing = read_token_file(token_file) if token_file.exists() else {}
    by_user = {ident.user: tok for tok, ident in existing.items()}
    lines = []
    for user in users:
        if user not in by_user:
            by_user[user] = secrets.token_urlsafe(32)
            lines.append(f'{by_user[user]},{user},{user},"system:masters"\n')
    if lines:
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.writelines(lines)
    return by_user


def kubeconfig(base_url: str, names: Iterable[str], tokens: dict[str, str] | None = None,
               ca: bytes | None = None) -> dict[str, Any]:
    names = list(names)
    users = []
    for n in names:
        user: dict[str, Any] = {}
        if tokens:
            user["token"] = tokens[f"{n}-admin"]
        users.append({"name": f"{n}-admin", "user": user})
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": n, "cluster": _cluster(f"{base_url}/clusters/{n}", ca)} for n in names],
        "users": users,
        "contexts": [{"name": n, "context": {"cluster": n, "user": f"{n}-admin"}} for n in names],
        "current-context": names[0] if names else "",
    }


def _cluster(server: str, ca: bytes | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": server}
    if ca is not None:
        entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    return entry


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.replace(tmp, path)
