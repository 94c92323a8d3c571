"""Which ReplicationSource sends to which ReplicationDestination, across clusters (pure).

A source and a destination are a pair when
- one of them names the other with the annotation `volsync-addon.io/peer: <cluster>/<namespace>/<name>`
  (for when the address cannot tell, e.g. behind NAT or a DNS name), the other naming nobody else; or
- neither is named by an annotation and the source's `spec.rsync.address` and port (default 22) are
  the destination's published `status.rsync.address` and port (`status.rsync.port`, else
  `spec.rsync.port`, else 22), that endpoint belonging to exactly one source and one destination.
An ambiguous endpoint (two destinations behind one NAT address, two sources sending to one
destination) or a broken annotation pairs nothing and says why, so the user can name the peer.

`PeerIndex` keeps the reported sides indexed by endpoint and by the peer they name, so finding the
peer of one side is a few dictionary look-ups (the hub asks for every row of a large fleet). It is
not thread-safe: its owner holds its own lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

ANNOTATION_PEER = "volsync-addon.io/peer"
DEFAULT_PORT = 22
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_PEER = re.compile(rf"(?P<cluster>{_LABEL}(\.{_LABEL})*)/(?P<namespace>{_LABEL})/(?P<name>{_LABEL}(\.{_LABEL})*)")
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
        role, peer_role = side.ref.role, other(side.ref.role)
        candidates = [r for r in self._at.get((peer_role, where), ()) if not self._named_by.get(r)]
        rivals = [r for r in self._at.get((role, where), ()) if not self._named_by.get(r)]
        if len(candidates) == 1 and len(rivals) == 1:
            return Pairing(self._sides[candidates[0]])
        if not candidates:
            return Pairing(None)
        crowd = candidates if len(candidates) > 1 else rivals
        return Pairing(None, f"{len(crowd)} {crowd[0].role}s use {where[0]}:{where[1]} "
                             f"({', '.join(sorted(map(str, crowd)))}); name the peer with {ANNOTATION_PEER}")


def _discard(index: dict[K, set[Ref]], key: K, ref: Ref) -> None:
    refs = index.get(key)
    if refs is not None:
        refs.discard(ref)
        if not refs:
            del index[key]
