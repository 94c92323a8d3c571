"""Who is calling: bearer tokens bound to one cluster each, and the kubeconfigs that carry them.

Every served cluster has its own static token file, `<data-dir>/tokens/<cluster>.csv`, in
kube-apiserver's `--token-auth-file` format (`token,user,uid[,"group1,group2"]`), as if each
cluster had its own kube-apiserver: a token is valid on the cluster whose file holds it and on no
other, so a cluster1 credential is 401 on the hub and on cluster2. A file is re-read when it
changes (a token appended by the hub for an agent works without a restart, and one it revokes when
the agent is uninstalled is refused from the next request on).

A bearer token that is in no token file and has the shape of a JWT is handed to the ServiceAccount
token verifier (`satokens.py`, wired by the server), which answers the ServiceAccount's identity.

Tokens are compared as SHA-256 digests of their bytes: no token text is compared character by
character (constant time), and a header with bytes outside ASCII is just an unknown token (401),
never an error. Files and their directory are created 0600/0700: they hold credentials.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from osutil.files import open_private, private_dir, write_private

TOKEN_DIR = "tokens"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller (kube's user.Info): name, uid, groups, extra, and the cluster it is valid
    on. Every authenticated identity carries the group `system:authenticated`."""

    user: str
    uid: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    cluster: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (key, values) pairs, sorted by key


ANONYMOUS = Identity("system:anonymous")


def token_file(data_dir: Path, cluster: str) -> Path:
    """The static token file of one cluster."""
    return data_dir / TOKEN_DIR / f"{cluster}.csv"


def read_token_file(path: Path, cluster: str = "") -> dict[str, Identity]:
    """kube-apiserver's `--token-auth-file` format: token,user,uid[,"group1,group2"]; token -> identity."""
    tokens: dict[str, Identity] = {}
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.reader(fh):
            if not row or row[0].startswith("#") or len(row) < 2 or not row[0].strip():
                continue
            groups = tuple(g for g in row[3].split(",") if g) if len(row) > 3 and row[3] else ()
            groups = (*groups, "system:authenticated") if "system:authenticated" not in groups else groups
            uid = row[2].strip() if len(row) > 2 else ""
            tokens[row[0].strip()] = Identity(row[1].strip(), uid, groups, cluster)
    return tokens


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


class TokenFile:
    """One cluster's token file, re-read when its mtime, size or inode changes (a replaced file is a
    new inode: a token revoked and another minted within one mtime tick is still seen)."""

    def __init__(self, path: Path, cluster: str) -> None:
        self.path, self.cluster = path, cluster
        self._stamp: tuple[int, int, int] | None = None
        self._by_digest: dict[bytes, Identity] = {}

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp == self._stamp:
            return
        tokens = read_token_file(self.path, self.cluster) if stamp != (0, 0, 0) else {}
        self._by_digest = {_digest(tok.encode()): ident for tok, ident in tokens.items()}
        self._stamp = stamp

    def lookup(self, presented: bytes) -> Identity | None:
        self._refresh()
        return self._by_digest.get(_digest(presented))


# (cluster, presented token) -> the ServiceAccount the token proves, or None
JwtVerifier = Callable[[str, str], Identity | None]


class Authenticator:
    """Bearer-token authentication per cluster; `files` None means no authentication (anonymous).
    `service_accounts` verifies ServiceAccount tokens (JWTs) that no token file holds."""

    def __init__(self, files: dict[str, Path] | None, service_accounts: JwtVerifier | None = None) -> None:
        self.enabled = files is not None
        self._files = {c: TokenFile(p, c) for c, p in (files or {}).items()}
        self._service_accounts = service_accounts

    def identify(self, cluster: str, authorization: str) -> Identity | None:
        """The identity a request's `Authorization` header proves on `cluster`, or None (401)."""
        if not self.enabled:
            return Identity(ANONYMOUS.user, cluster=cluster)
        scheme, _, credential = authorization.partition(" ")
        token_file_of_cluster = self._files.get(cluster)
        if scheme.lower() != "bearer" or token_file_of_cluster is None:
            return None
        # Starlette decodes header bytes as latin-1: encoding back gives the bytes that were sent.
        presented = credential.strip().encode("latin-1", errors="replace")
        found = token_file_of_cluster.lookup(presented) if presented else None
        if found is None and self._service_accounts is not None and presented.count(b".") == 2:
            return self._service_accounts(cluster, presented.decode("ascii", errors="replace"))
        return found


def ensure_tokens(path: Path, users: Iterable[str]) -> dict[str, str]:
    """Make sure every user has a token in the file (0600 in a 0700 directory); user -> token.

    A token is durably in the file before it is returned (and so before any kubeconfig holds it): the
    file is replaced atomically and fsynced (kube/files.py), so a kill -9 leaves the old file or the
    new one, never a half-written line; a lock file next to it serialises processes minting at once."""
    private_dir(path.parent)
    with open_private(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        by_user = {ident.user: tok for tok, ident in read_token_file(path).items()} if text else {}
        lines = []
        for user in users:
            if user not in by_user:
                by_user[user] = secrets.token_urlsafe(32)
                lines.append(f'{by_user[user]},{user},{user},"system:masters"\n')
        if lines:
            write_private(path, text + ("\n" if text and not text.endswith("\n") else "") + "".join(lines))
    return by_user


def revoke_tokens(path: Path, users: Iterable[str]) -> list[str]:
    """Remove every token of `users` from the file (other lines kept as they are); the users revoked.

    The counterpart of `ensure_tokens`, under the same lock and with the same atomic, fsynced
    replacement: a kill -9 leaves the file with the tokens or without them, never half of it. A user
    given a token again later gets a new one (`ensure_tokens` mints), never the revoked one."""
    gone = set(users)
    if not path.exists():
        return []
    with open_private(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text(encoding="utf-8", errors="replace")
        kept, revoked = [], []
        for line in text.splitlines(keepends=True):
            row = next(csv.reader([line]), [])
            user = row[1].strip() if len(row) >= 2 and not row[0].startswith("#") and row[0].strip() else None
            if user is not None and user in gone:
                revoked.append(user)
            else:
                kept.append(line)
        if revoked:
            write_private(path, "".join(kept))
    return sorted(set(revoked))


def kubeconfig(base_url: str, names: Iterable[str], tokens: dict[str, str] | None = None,
               ca: bytes | None = None, user: str = "admin") -> dict[str, Any]:
    """A kubeconfig with one cluster, one user (`<cluster>-<user>`, with `tokens[cluster]`) and one
    context (named like the cluster) per cluster: each context's credential works on its cluster only."""
    names = list(names)
    users = [{"name": f"{n}-{user}", "user": {"token": tokens[n]} if tokens else {}} for n in names]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": n, "cluster": _cluster(f"{base_url}/clusters/{n}", ca)} for n in names],
        "users": users,
        "contexts": [{"name": n, "context": {"cluster": n, "user": f"{n}-{user}"}} for n in names],
        "current-context": names[0] if names else "",
    }


def _cluster(server: str, ca: bytes | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"server": server}
    if ca is not None:
        entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    return entry


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    """Replace the file atomically, 0600 (it holds tokens)."""
    write_private(path, yaml.safe_dump(config, sort_keys=False))
