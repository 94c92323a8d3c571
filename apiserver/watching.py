"""Watch streams: one JSON event per line, resumable from any resourceVersion in the history.

- `resourceVersion` unset or "0": a synthetic ADDED for every matching object, then live events.
- `resourceVersion=N`: every event after N from the history, then live events; N older than the
  compacted history gives one ERROR event with a 410 Expired Status, then the stream ends.
- Selectors apply to every event, with kube-apiserver's transitions: an object that starts to
  match arrives as ADDED, one that stops matching as DELETED.
- `allowWatchBookmarks`: a BOOKMARK carrying the current resourceVersion whenever the stream has
  been idle for the bookmark interval, and after the initial events when `sendInitialEvents`.
- `timeoutSeconds` ends the stream; so does a client that cannot keep up (410, it relists).
- Table or PartialObjectMetadata objects when the client asked for them, as `kubectl get -w` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from apiserver import errors, selectors, tables
from apiserver.resources import Obj, ResourceType
from apiserver.store import Event, Store, dumps


@dataclass(frozen=True)
class WatchSpec:
    rt: ResourceType
    version: str
    namespace: str
    labels: selectors.LabelSelector
    fields: selectors.FieldSelector
    resource_version: str = ""
    timeout: float = 1800.0
    bookmarks: bool = False
    send_initial: bool = False
    table: bool = False
    partial: bool = False
    include: str = "Metadata"
    bookmark_interval: float = 30.0

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace and (meta.get("namespace") or "") != self.namespace:
            return False
        if not self.labels.empty and not self.labels.matches(meta.get("labels")):
            return False
        return self.fields.empty or self.fields.matches(obj)


def _render(spec: WatchSpec, obj: Obj, first: bool) -> Any:
    if spec.table:
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        return tables.table(spec.rt, [obj], {"resourceVersion": rv}, include=spec.include, with_columns=first)
    if spec.partial:
        return tables.partial_metadata(obj)
    if spec.version != spec.rt.storage_version:
        return {**obj, "apiVersion": spec.rt.api_version(spec.version)}
    return obj


def _line(kind: str, obj: Any) -> bytes:
    return (dumps({"type": kind, "object": obj}) + "\n").encode()


def _bookmark(spec: WatchSpec, rv: int, initial_end: bool = False) -> bytes:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return _line("BOOKMARK", {"kind": spec.rt.kind, "apiVersion": spec.rt.api_version(spec.version), "metadata": meta})


def _expired(message: str) -> bytes:
    return _line("ERROR", errors.gone(message).status())


def translate(spec: WatchSpec, ev: Event) -> tuple[str, Obj] | None:
    """The event this watcher sees for a store event, after selector transitions (or None)."""
    now = spec.matches(ev.obj)
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if now else None
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if now else None
    before = spec.matches(ev.prev) if ev.prev is not None else now
    if now and before:
        return ("MODIFIED", ev.obj)
    if now:
        return ("ADDED", ev.obj)
    if before:
        return ("DELETED", ev.obj)
    return None


async def _next(queue: asyncio.Queue[Event | None]) -> Event | None:
    return await queue.get()


async def stream(store: Store, spec: WatchSpec) -> AsyncIterator[bytes]:
    sub = store.subscribe(spec.rt.key)
    first = True
    try:
        # Subscribe and read the backlog without yielding to the loop in between: nothing can
        # commit in that window, so the backlog and the queue neither overlap nor leave a gap.
        start_rv = store.rv
        backlog: list[tuple[str, Obj]] = []
        rv_text = spec.resource_version
        if rv_text in ("", "0"):
            for _, obj in store.items(spec.rt.key, spec.namespace or None):
                if spec.matches(obj):
                    backlog.append(("ADDED", obj))
        else:
            try:
                since = int(rv_text)
            except ValueError:
                yield _expired(f"invalid resource version: {rv_text}")
                return
            try:
                events = store.since(spec.rt.key, since)
            except errors.ApiError as exc:
                yield _line("ERROR", exc.status())
                return
            for ev in events:
                seen = translate(spec, ev)
                if seen is not None:
                    backlog.append(seen)
        for kind, obj in backlog:
            yield _line(kind, _render(spec, obj, first))
            first = False
        if spec.bookmarks and spec.send_initial:
            yield _bookmark(spec, start_rv, initial_end=True)
        deadline = time.monotonic() + spec.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wait = min(remaining, spec.bookmark_interval) if spec.bookmarks else remaining
            try:
                item = await asyncio.wait_for(_next(sub.queue), timeout=wait)
            except TimeoutError:
                if spec.bookmarks and time.monotonic() < deadline:
                    yield _bookmark(spec, store.rv)
                continue
            if item is None:
                if sub.overflowed:
                    yield _expired("watch channel overflowed; relist and watch again")
                return
            if item.rv <= start_rv:
                continue
            seen = translate(spec, item)
            if seen is not None:
                yield _line(seen[0], _render(spec, seen[1], first))
                first = False
    finally:
        store.unsubscribe(sub)
