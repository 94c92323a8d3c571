"""One cluster's object store: an append-only SQLite log whose row id is the resourceVersion.

Like kine, every write appends a row (ADDED, MODIFIED or DELETED with the full object), so the
row id is a global, strictly increasing resourceVersion and the log doubles as watch history.
The current state is held in memory (rebuilt from the log's latest row per key at start-up) so
reads never touch the disk. Compaction drops superseded rows older than the history window;
a watch that asks to resume from before the window gets 410 Expired.

Durability: WAL mode with `synchronous=NORMAL`, and a commit before the HTTP answer, so a writer
that was told "created" finds the object again after a `kill -9` of the server. One process owns a
store at a time (an exclusive lock file next to the database).
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import json
import sqlite3
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from apiserver import errors
from apiserver.resources import Obj
from osutil.files import open_private, private_dir

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Key = tuple[str, str]  # (namespace, name)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    rv INTEGER PRIMARY KEY AUTOINCREMENT,
    resource TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key ON log(resource, namespace, name, rv);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Event:
    rv: int
    type: EventType
    resource: str
    obj: Obj
    prev: Obj | None = None


@dataclass(frozen=True)
class Change:
    """A write to commit: the object's namespace and name come from its metadata."""

    type: EventType
    resource: str
    obj: Obj


@dataclass
class Subscription:
    resource: str
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(maxsize=50_000))
    overflowed: bool = False


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


def _private(path: Path) -> None:
    """Create the database file 0600 (tighten an older one): SQLite gives its -wal and -shm files the
    database file's mode, so the whole store stays private to our user whatever the umask."""
    open_private(path, "ab").close()
    for suffix in ("-wal", "-shm", ".lock"):
        extra = Path(str(path) + suffix)
        if extra.exists():
            extra.chmod(0o600)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Store:
    def __init__(self, path: Path, *, history: int = 50_000, compact_every: int = 2_000) -> None:
        self.path = path
        private_dir(path.parent)
        self._lock = open_private(Path(str(path) + ".lock"), "ab")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(f"store {path} is in use by another process") from None
        _private(path)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.history = history
        # A small history must also be enforced soon: a watch from before the window gets 410.
        self._compact_every = max(1, min(compact_every, history))
        self._since_compact = 0
        self._objects: dict[str, dict[Key, Obj]] = {}
        self._raw: dict[str, dict[Key, str]] = {}
        self._by_uid: dict[str, tuple[str, Key]] = {}
        self._dependents: dict[str, set[tuple[str, Key]]] = {}
        self._recent: deque[Event] = deque(maxlen=min(history, 20_000))
        self._subscribers: list[Subscription] = []
        self.rv = 0
        self.compacted = 0
        self._load()

    # -- start-up ---------------------------------------------------------------------------------
    def _load(self) -> None:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='log'").fetchone()
        self.rv = int(row[0]) if row else 0
        row = self._db.execute("SELECT value FROM meta WHERE key='compacted'").fetchone()
        self.compacted = int(row[0]) if row else 0
        query = (
            "SELECT l.resource, l.event, l.body FROM log l JOIN "
            "(SELECT MAX(rv) AS rv FROM log GROUP BY resource, namespace, name) m ON l.rv = m.rv"
        )
        for resource, event, body in self._db.execute(query):
            if event != "DELETED":
                self._put(resource, json.loads(body), body)

    def close(self) -> None:
        for sub in list(self._subscribers):
            self._end(sub)
        self._db.close()
        self._lock.close()

    # -- reads ------------------------------------------------------------------------------------
    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self._objects.get(resource, {}).get((namespace, name))

    def raw(self, resource: str, namespace: str, name: str) -> str | None:
        return self._raw.get(resource, {}).get((namespace, name))

    def items(self, resource: str, namespace: str | None = None) -> list[tuple[Key, Obj]]:
        """Current objects of a resource, ordered by (namespace, name) like etcd's key order."""
        objs = self._objects.get(resource, {})
        keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
        return [(k, objs[k]) for k in keys]

    def items_after(self, resource: str, namespace: str | None, after: Key | None) -> Iterator[tuple[Key, Obj]]:
        """`items` after the key `after` (all if None), lazily: a page of a paged list costs one sort
        of the keys, not a (key, object) pair per object and a scan past every earlier page."""
        objs = self._objects.get(resource, {})
        keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
        for k in keys[bisect.bisect_right(keys, after) :] if after is not None else keys:
            yield k, objs[k]

    def raw_of(self, resource: str, key: Key) -> str:
        return self._raw[resource][key]

    def count(self, resource: str, namespace: str | None = None) -> int:
        objs = self._objects.get(resource, {})
        return len(objs) if namespace is None else sum(1 for k in objs if k[0] == namespace)

    def by_uid(self, uid: str) -> tuple[str, Obj] | None:
        found = self._by_uid.get(uid)
        if found is None:
            return None
        obj = self._objects.get(found[0], {}).get(found[1])
        return (found[0], obj) if obj is not None else None

    def dependents(self, owner_uid: str) -> list[tuple[str, Obj]]:
        out = []
        for resource, key in sorted(self._dependents.get(owner_uid, ())):
            obj = self._objects.get(resource, {}).get(key)
            if obj is not None:
                out.append((resource, obj))
        return out

    def namespaced_resources(self, namespace: str) -> Iterator[tuple[str, Obj]]:
        for resource, objs in list(self._objects.items()):
            for key, obj in list(objs.items()):
                if key[0] == namespace:
                    yield resource, obj

    # -- writes -----------------------------------------------------------------------------------
    def commit(self, changes: Iterable[Change]) -> list[Event]:
        """Append the changes in one transaction, assign their resourceVersions, publish events."""
        events: list[Event] = []
        rows = []
        rv = self.rv
        for ch in changes:
            rv += 1
            ch.obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
            body = dumps(ch.obj)
            ns, name = _key(ch.obj)
            rows.append((rv, ch.resource, ns, name, ch.type, body))
            prev = self.get(ch.resource, ns, name)
            events.append(Event(rv, ch.type, ch.resource, ch.obj, prev))
        if not rows:
            return events
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO log(rv, resource, namespace, name, event, body) VALUES (?,?,?,?,?,?)", rows
            )
            self._db.execute("COMMIT")
        except Exception as exc:
            # Whatever failed (a database error, or a value SQLite cannot bind, e.g. a lone
            # surrogate), the connection must not stay inside the transaction: every later write
            # of this cluster would fail.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise errors.internal(f"store write failed: {exc}") from exc
            raise
        self.rv = rv
        for ev, row in zip(events, rows, strict=True):
            if ev.type == "DELETED":
                self._drop(ev.resource, ev.obj)
            else:
                self._put(ev.resource, ev.obj, row[5])
            self._recent.append(ev)
            self._publish(ev)
        self._since_compact += len(rows)
        if self._since_compact >= self._compact_every:
            self.compact()
        return events

    def _put(self, resource: str, obj: Obj, body: str) -> None:
        key = _key(obj)
        old = self._objects.setdefault(resource, {}).get(key)
        if old is not None:
            self._unindex(resource, key, old)
        self._objects[resource][key] = obj
        self._raw.setdefault(resource, {})[key] = body
        meta = obj.get("metadata") or {}
        if meta.get("uid"):
            self._by_uid[meta["uid"]] = (resource, key)
        for ref in meta.get("ownerReferences") or []:
            if ref.get("uid"):
                self._dependents.setdefault(ref["uid"], set()).add((resource, key))

    def _drop(self, resource: str, obj: Obj) -> None:
        key = _key(obj)
        old = self._objects.get(resource, {}).pop(key, None)
        self._raw.get(resource, {}).pop(key, None)
        if old is not None:
            self._unindex(resource, key, old)

    def _unindex(self, resource: str, key: Key, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        if meta.get("uid") and self._by_uid.get(meta["uid"]) == (resource, key):
            del self._by_uid[meta["uid"]]
        for ref in meta.get("ownerReferences") or []:
            deps = self._dependents.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard((resource, key))
                if not deps:
                    del self._dependents[ref["uid"]]

    # -- history and compaction -------------------------------------------------------------------
    def compact(self, keep: int | None = None) -> int:
        """Forget superseded revisions older than the newest `keep` (default: the history size)."""
        self._since_compact = 0
        target = self.rv - (self.history if keep is None else keep)
        if target <= self.compacted:
            return self.compacted
        self._db.execute("BEGIN")
        self._db.execute(
            "DELETE FROM log WHERE rv <= ? AND (event = 'DELETED' OR rv < (SELECT MAX(l2.rv) FROM log l2 "
            "WHERE l2.resource = log.resource AND l2.namespace = log.namespace AND l2.name = log.name))",
            (target,),
        )
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('compacted', ?)", (str(target),))
        self._db.execute("COMMIT")
        self.compacted = target
        return target

    def since(self, resource: str, rv: int) -> list[Event]:
        """Events of `resource` after `rv`, oldest first; 410 Expired if `rv` is compacted away."""
        if rv < self.compacted:
            raise errors.gone(f"too old resource version: {rv} ({self.compacted})")
        if self._recent and rv >= self._recent[0].rv - 1:
            return [e for e in self._recent if e.rv > rv and e.resource == resource]
        out = []
        # Each event carries the key's previous state (as `_recent` does), so a selector watch
        # resumed from the log (after a restart) still sees objects start and stop matching.
        prev: dict[Key, Obj | None] = {}
        for erv, event, ns, name, body in self._db.execute(
            "SELECT rv, event, namespace, name, body FROM log WHERE rv > ? AND resource = ? ORDER BY rv",
            (rv, resource),
        ):
            key = (ns, name)
            if key not in prev:
                row = self._db.execute(
                    "SELECT event, body FROM log WHERE resource = ? AND namespace = ? AND name = ? AND rv <= ? "
                    "ORDER BY rv DESC LIMIT 1",
                    (resource, ns, name, rv),
                ).fetchone()
                prev[key] = json.loads(row[1]) if row and row[0] != "DELETED" else None
            obj = json.loads(body)
            out.append(Event(int(erv), event, resource, obj, prev[key]))
            prev[key] = None if event == "DELETED" else obj
        return out

    # -- watch fan-out ----------------------------------------------------------------------------
    def subscribe(self, resource: str) -> Subscription:
        sub = Subscription(resource)
        self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def _publish(self, ev: Event) -> None:
        for sub in list(self._subscribers):
            if sub.resource != ev.resource:
                continue
            try:
                sub.queue.put_nowait(ev)
            except asyncio.QueueFull:
                sub.overflowed = True
                self._end(sub)

    def _end(self, sub: Subscription) -> None:
        self.unsubscribe(sub)
        while True:
            try:
                sub.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                sub.queue.get_nowait()
