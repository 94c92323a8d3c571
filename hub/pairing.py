"""Which ReplicationSource sends to which ReplicationDestination, across clusters (pure).

A source and a destination are a pair when
- one of them names the other with the annotation `volsync-addon.io/peer: <cluster>/<namespace>/<name>`
  (the explicit override, for when the address cannot tell, e.g. behind NAT or a DNS name), the other
  naming nobody else; or
- neither is named by an annotation, the source's `spec.rsync.address` and port (default 22) are the
  destination's published `status.rsync.address` and port (`status.rsync.port`, else
  `spec.rsync.port`, else 22), and, among the sides at that endpoint whose ssh key Secrets do not
  disagree, they are the only source and the only destination, and
  - their key Secrets agree: the user copied the Secret one side publishes in `status.rsync.sshKeys`
    to the other, which names it in `spec.rsync.sshKeys` (the seed procedure: the destination's
    `volsync-rsync-dst-src-<name>` becomes the source's `sshKeys`; or the other way round); or
  - neither direction is known on both sides and the address is globally routable: a private,
    loopback, link-local or shared address, or a cluster-local DNS name, is the same in other networks
    and clusters, so only the keys (or the annotation) can confirm such a pair.
An ambiguous endpoint (two destinations behind one NAT address, two sources sending to one
destination), key Secrets that disagree, a private address nothing confirms, or a broken annotation
pairs nothing and says why, so the user can name the peer.

`PeerIndex` keeps the reported sides indexed by endpoint and by the peer they name, so finding the
peer of one side is a few dictionary look-ups (the hub asks for every row of a large fleet). It is
not thread-safe: its owner holds its own lock.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

ANNOTATION_PEER = "volsync-addon.io/peer"
DEFAULT_PORT = 22
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_PEER = re.compile(rf"(?P<cluster>{_LABEL}(\.{_LABEL})*)/(?P<namespace>{_LABEL})/(?P<name>{_LABEL}(\.{_LABEL})*)")
# DNS names that mean something only inside one cluster or site
LOCAL_SUFFIXES = (".svc", ".cluster.local", ".local", ".localhost", ".internal", ".lan", ".home.arpa")
Obj = dict[str, Any]
Endpoint = tuple[str, int]
K = TypeVar("K")


@dataclass(frozen=True, order=True)
class Ref:
    cluster: str
    role: str  # "source" | "destination"
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = "ReplicationSource" if self.role == "source" else "ReplicationDestination"
        return f"{kind} {self.cluster}/{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Side:
    """What the hub knows of one reported RS/RD: where it is, its spec, status and our annotations."""

    ref: Ref
    spec: Obj
    status: Obj
    annotations: dict[str, str]


@dataclass(frozen=True)
class Pairing:
    peer: Side | None
    problem: str | None = None  # why no peer although one was named or the address was ambiguous


def other(role: str) -> str:
    return "destination" if role == "source" else "source"


def side_of(cluster: str, report: Obj) -> Side | None:
    """A Side from a report as JSON (the addon controller's ConfigMaps); None for a deleted or odd one."""
    if report.get("deleted") or report.get("role") not in ("source", "destination"):
        return None
    spec, status, annotations = report.get("spec"), report.get("status"), report.get("annotations")
    return Side(Ref(cluster, str(report["role"]), str(report.get("namespace") or ""), str(report.get("name") or "")),
                spec if isinstance(spec, dict) else {}, status if isinstance(status, dict) else {},
                {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {})


def _port(*values: Any) -> int:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            return value
    return DEFAULT_PORT


def endpoint(side: Side) -> Endpoint | None:
    """Where a source sends, or where a destination receives (None when not known)."""
    spec_rsync = side.spec.get("rsync") if isinstance(side.spec.get("rsync"), dict) else {}
    assert isinstance(spec_rsync, dict)
    if side.ref.role == "source":
        address, port = spec_rsync.get("address"), _port(spec_rsync.get("port"))
    else:
        status_rsync = side.status.get("rsync") if isinstance(side.status.get("rsync"), dict) else {}
        assert isinstance(status_rsync, dict)
        address, port = status_rsync.get("address"), _port(status_rsync.get("port"), spec_rsync.get("port"))
    return (address.strip().lower(), port) if isinstance(address, str) and address.strip() else None


def is_local(address: str) -> bool:
    """Whether an address names different machines in different networks or clusters (a ClusterIP, RFC 1918,
    loopback, link-local, shared or other non-global address, a single-label or cluster-local DNS name)."""
    host = address.strip().strip("[]").lower()
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return "." not in host or host == "localhost" or host.endswith(LOCAL_SUFFIXES)


def _rsync(part: Any, key: str) -> str | None:
    value = part.get("rsync", {}).get(key) if isinstance(part, dict) and isinstance(part.get("rsync"), dict) else None
    return value if isinstance(value, str) and value else None


def key_match(one: Side, two: Side) -> tuple[bool | None, str | None]:
    """Do a source and a destination share the ssh key Secret the user copied between them? (True, None),
    (False, why not) or (None, None) when no direction is known on both sides. Symmetric."""
    src, dst = (one, two) if one.ref.role == "source" else (two, one)
    directions = ((_rsync(src.spec, "sshKeys"), _rsync(dst.status, "sshKeys"), "source", "destination"),
                  (_rsync(dst.spec, "sshKeys"), _rsync(src.status, "sshKeys"), "destination", "source"))
    known = [(uses, offers, user, offerer) for uses, offers, user, offerer in directions if uses and offers]
    for uses, offers, user, offerer in known:
        if uses != offers:
            return False, (f"the {user} uses spec.rsync.sshKeys {uses[:100]!r}, not the {offers[:100]!r} the "
                           f"{offerer} publishes in status.rsync.sshKeys")
    return (True, None) if known else (None, None)


def named_peer(side: Side) -> tuple[Ref | None, str | None]:
    """The peer the side's annotation names: (ref, None), (None, problem) or (None, None) without one."""
    value = side.annotations.get(ANNOTATION_PEER)
    if value is None:
        return None, None
    m = _PEER.fullmatch(value)
    if m is None:
        return None, (f"annotation {ANNOTATION_PEER}={value[:100]!r} is not <cluster>/<namespace>/<name>; "
                      "the peer is not recognised")
    return Ref(m["cluster"], other(side.ref.role), m["namespace"], m["name"]), None


class PeerIndex:
    def __init__(self) -> None:
        self._sides: dict[Ref, Side] = {}
        self._at: dict[tuple[str, Endpoint], set[Ref]] = {}  # (role, endpoint) -> unannotated sides there
        self._named_by: dict[Ref, set[Ref]] = {}  # a side -> the sides whose annotation names it

    def __len__(self) -> int:
        return len(self._sides)

    def sides(self) -> Iterator[Side]:
        return iter(self._sides.values())

    def get(self, ref: Ref) -> Side | None:
        return self._sides.get(ref)

    def put(self, side: Side) -> None:
        self.remove(side.ref)
        self._sides[side.ref] = side
        named, problem = named_peer(side)
        if named is not None:
            self._named_by.setdefault(named, set()).add(side.ref)
        elif problem is None and (where := endpoint(side)) is not None:
            self._at.setdefault((side.ref.role, where), set()).add(side.ref)

    def remove(self, ref: Ref) -> None:
        old = self._sides.pop(ref, None)
        if old is None:
            return
        named, _ = named_peer(old)
        if named is not None:
            _discard(self._named_by, named, ref)
        if (where := endpoint(old)) is not None:
            _discard(self._at, (ref.role, where), ref)

    def peer(self, ref: Ref) -> Pairing:
        side = self._sides.get(ref)
        if side is None:
            return Pairing(None)
        named, problem = named_peer(side)
        if problem is not None:
            return Pairing(None, problem)
        if named is not None:
            return self._named(side, named)
        namers = self._named_by.get(ref) or set()
        if len(namers) == 1:
            return Pairing(self._sides[next(iter(namers))])
        if namers:
            names = ", ".join(sorted(map(str, namers)))
            return Pairing(None, f"{len(namers)} objects name it in {ANNOTATION_PEER}: {names}")
        return self._by_address(side)

    def _named(self, side: Side, named: Ref) -> Pairing:
        target = self._sides.get(named)
        if target is None:
            return Pairing(None, f"annotation {ANNOTATION_PEER} names {named}, which the hub has no report of")
        back, _ = named_peer(target)
        me = side.ref
        if back is not None and back != me:
            return Pairing(None, f"annotation {ANNOTATION_PEER} names {named}, which names {back} instead")
        if len(self._named_by.get(named) or ()) > 1:
            return Pairing(None, f"{named} is named in {ANNOTATION_PEER} by more than one object")
        return Pairing(target)

    def _by_address(self, side: Side) -> Pairing:
        where = endpoint(side)
        if where is None:
            return Pairing(None)
        at = f"{where[0]}:{where[1]}"
        candidates = self._free(other(side.ref.role), where)
        if not candidates:
            return Pairing(None)
        fits = [r for r in candidates if key_match(side, self._sides[r])[0] is not False]
        if not fits:
            whys = "; ".join(f"{r}: {key_match(side, self._sides[r])[1]}" for r in candidates[:3])
            return Pairing(None, f"{_count(candidates)} at {at}, none with the same ssh keys ({whys}); "
                                 f"name the peer with {ANNOTATION_PEER} if it is one")
        peer = self._sides[fits[0]]
        rivals = [r for r in self._free(side.ref.role, where) if key_match(peer, self._sides[r])[0] is not False]
        if len(fits) > 1 or len(rivals) > 1:
            crowd = fits if len(fits) > 1 else rivals
            return Pairing(None, f"{_count(crowd)} use {at} ({_names(crowd)}); name the peer with {ANNOTATION_PEER}")
        if key_match(side, peer)[0] is None and is_local(where[0]):
            return Pairing(None, f"{peer.ref} at {at} is not paired: that address is private to a network or "
                                 "cluster and no spec.rsync.sshKeys/status.rsync.sshKeys pair confirms it; name the "
                                 f"peer with {ANNOTATION_PEER}")
        return Pairing(peer)

    def _free(self, role: str, where: Endpoint) -> list[Ref]:
        """The sides of a role at an endpoint that no annotation names (their pairing is the annotation's)."""
        return sorted(r for r in self._at.get((role, where), ()) if not self._named_by.get(r))


def _count(refs: list[Ref]) -> str:
    return f"{len(refs)} {refs[0].role}{'s' if len(refs) > 1 else ''}"


def _names(refs: list[Ref], most: int = 5) -> str:
    return ", ".join(map(str, refs[:most])) + (f" (+{len(refs) - most} more)" if len(refs) > most else "")


def _discard(index: dict[K, set[Ref]], key: K, ref: Ref) -> None:
    refs = index.get(key)
    if refs is not None:
        refs.discard(ref)
        if not refs:
            del index[key]
