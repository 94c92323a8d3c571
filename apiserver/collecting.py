"""Background controllers the apiserver runs for itself: garbage collection and namespaces.

- ownerReferences: when an owner is gone, dependents whose owners are all gone are deleted, and
  references to vanished owners are dropped from dependents that still have a live owner. A
  dependent created with a reference to an owner that does not exist (in its namespace, or
  cluster-scoped) is collected too, as kube's garbage collector does: that is why the seed
  procedure tells users to remove `ownerReferences` from a Secret they copy to another cluster.
- `orphan` and `foregroundDeletion` finalizers, as `kubectl delete --cascade=orphan|foreground`
  request them.
- Namespace deletion: the namespace turns `Terminating`, its contents are deleted (respecting
  their finalizers), and the namespace goes when it is empty.

Work is queued by committed events and drained right after the request that caused it, so the
collection happens in the background of that request, never inside it. At start-up the stored
state is scanned once, so work a crash cut short is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections import deque

from apiserver import builtins, errors
from apiserver.resources import Obj, Registry
from apiserver.store import Change, Event, EventType, Store
from apiserver.writing import Writer


class Collector:
    def __init__(self, store: Store, registry: Registry, writer: Writer) -> None:
        self.store = store
        self.registry = registry
        self.writer = writer
        self._work: deque[tuple[str, str, str, str]] = deque()  # (what, resource, namespace, name)
        self._owners_gone: deque[str] = deque()
        self._scheduled = False

    # -- intake -----------------------------------------------------------------------------------
    def resume(self) -> None:
        """Queue, from the stored state, the work a crash may have cut short (dependents of owners
        gone, Terminating namespaces, orphan/foreground finalizers), as kube's controllers do on start."""
        pending = []
        for rt in self.registry:
            for _, obj in self.store.items(rt.key):
                meta = obj.get("metadata") or {}
                if meta.get("ownerReferences") or meta.get("deletionTimestamp"):
                    pending.append(Event(int(meta.get("resourceVersion") or 0), "MODIFIED", rt.key, obj))
        self.observe(pending)

    def observe(self, events: list[Event]) -> None:
        for ev in events:
            meta = ev.obj.get("metadata") or {}
            ns, name = meta.get("namespace") or "", meta.get("name") or ""
            if ev.type == "DELETED":
                if meta.get("uid"):
                    self._owners_gone.append(meta["uid"])
                if ns:
                    self._work.append(("namespace", builtins.NAMESPACE_KEY, "", ns))
                for ref in meta.get("ownerReferences") or []:
                    found = self.store.by_uid(ref.get("uid", ""))
                    if found and "foregroundDeletion" in (found[1]["metadata"].get("finalizers") or []):
                        owner_meta = found[1]["metadata"]
                        self._work.append(("cascade", found[0], owner_meta.get("namespace") or "", owner_meta["name"]))
                continue
            if meta.get("ownerReferences"):
                self._work.append(("dangling", ev.resource, ns, name))
            if meta.get("deletionTimestamp"):
                if ev.resource == builtins.NAMESPACE_KEY:
                    self._work.append(("namespace", ev.resource, "", name))
                elif {"orphan", "foregroundDeletion"} & set(meta.get("finalizers") or []):
                    self._work.append(("cascade", ev.resource, ns, name))
        if (self._work or self._owners_gone) and not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.drain)
            except RuntimeError:
                self.drain()

    def drain(self) -> None:
        self._scheduled = False
        budget = 10_000
        while (self._owners_gone or self._work) and budget:
            budget -= 1
            if self._owners_gone:
                self._collect_dependents(self._owners_gone.popleft())
                continue
            what, resource, ns, name = self._work.popleft()
            if what == "dangling":
                self._check_dangling(resource, ns, name)
            elif what == "cascade":
                self._cascade(resource, ns, name)
            elif what == "namespace":
                self._finish_namespace(name)
        if self._work or self._owners_gone:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.drain)

    # -- owner references -------------------------------------------------------------------------
    def _owner_alive(self, ref: Obj, namespace: str) -> bool:
        found = self.store.by_uid(ref.get("uid", ""))
        if found is None:
            return False
        resource, owner = found
        owner_ns = (owner.get("metadata") or {}).get("namespace") or ""
        return owner_ns in ("", namespace) and owner["metadata"].get("name") == ref.get("name")

    def _owner_solid(self, ref: Obj, namespace: str) -> bool:
        """Alive and not itself waiting for its dependents (foreground deletion)."""
        if not self._owner_alive(ref, namespace):
            return False
        found = self.store.by_uid(ref.get("uid", ""))
        return found is not None and "foregroundDeletion" not in (found[1]["metadata"].get("finalizers") or [])

    def _delete(self, resource: str, obj: Obj, policy: str = "Background") -> None:
        rt = self.registry.by_key(resource)
        meta = obj["metadata"]
        if rt is None:
            self.writer.commit([Change("DELETED", resource, copy.deepcopy(obj))])
            return
        with contextlib.suppress(errors.ApiError):  # already gone
            self.writer.delete(rt, meta.get("namespace") or "", meta["name"], {"propagationPolicy": policy}, False)

    def _drop_refs(self, resource: str, obj: Obj, dead: set[str]) -> None:
        new = copy.deepcopy(obj)
        new["metadata"]["ownerReferences"] = [
            r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") not in dead
        ]
        if not new["metadata"]["ownerReferences"]:
            del new["metadata"]["ownerReferences"]
        self.writer.commit([Change("MODIFIED", resource, new)])

    def _settle(self, resource: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        ns = meta.get("namespace") or ""
        dead = {r.get("uid", "") for r in refs if not self._owner_alive(r, ns)}
        if not dead:
            return
        if len(dead) == len(refs):
            if not meta.get("deletionTimestamp"):
                self._delete(resource, obj)
        else:
            self._drop_refs(resource, obj, dead)

    def _collect_dependents(self, owner_uid: str) -> None:
        for resource, obj in self.store.dependents(owner_uid):
            self._settle(resource, obj)

    def _check_dangling(self, resource: str, ns: str, name: str) -> None:
        obj = self.store.get(resource, ns, name)
        if obj is not None:
            self._settle(resource, obj)

    # -- cascading finalizers ---------------------------------------------------------------------
    def _cascade(self, resource: str, ns: str, name: str) -> None:
        owner = self.store.get(resource, ns, name)
        if owner is None:
            return
        uid = owner["metadata"].get("uid", "")
        finalizers = list(owner["metadata"].get("finalizers") or [])
        dependents = self.store.dependents(uid)
        if "orphan" in finalizers:
            for dep_resource, dep in dependents:
                self._drop_refs(dep_resource, dep, {uid})
            finalizers.remove("orphan")
        elif "foregroundDeletion" in finalizers:
            # kube's GC: a dependent another (solid) owner still holds only loses this reference; the
            # rest are deleted, in the foreground themselves when they have dependents of their own;
            # the owner waits only for dependents whose reference says blockOwnerDeletion.
            for dep_resource, dep in dependents:
                dep_meta = dep["metadata"]
                others = [r for r in dep_meta.get("ownerReferences") or [] if r.get("uid") != uid]
                if any(self._owner_solid(r, dep_meta.get("namespace") or "") for r in others):
                    self._drop_refs(dep_resource, dep, {uid})
                elif not dep_meta.get("deletionTimestamp"):
                    self._delete(dep_resource, dep, "Foreground")
            if any(_blocks(dep, uid) for _, dep in self.store.dependents(uid)):
                return  # re-checked when the blocking dependents' DELETED events arrive
            finalizers.remove("foregroundDeletion")
        self._set_finalizers(resource, owner, finalizers)

    def _set_finalizers(self, resource: str, obj: Obj, finalizers: list[str]) -> None:
        new = copy.deepcopy(obj)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        kind: EventType = "MODIFIED" if finalizers or spec_finalizers(resource, new) else "DELETED"
        self.writer.commit([Change(kind, resource, new)])

    # -- namespaces -------------------------------------------------------------------------------
    def _finish_namespace(self, name: str) -> None:
        ns = self.store.get(builtins.NAMESPACE_KEY, "", name)
        if ns is None:
            return
        if not ns["metadata"].get("deletionTimestamp"):
            # an object of this namespace went away: a foreground owner may be waiting for it
            return
        contents = list(self.store.namespaced_resources(name))
        for resource, obj in contents:
            if not obj["metadata"].get("deletionTimestamp"):
                self._delete(resource, obj)
        if any(True for _ in self.store.namespaced_resources(name)):
            return  # objects with finalizers remain; their DELETED events bring us back
        new = copy.deepcopy(ns)
        new.setdefault("spec", {})["finalizers"] = [f for f in new["spec"].get("finalizers") or [] if f != "kubernetes"]
        if not new["spec"]["finalizers"]:
            del new["spec"]["finalizers"]
        kind: EventType = (
            "DELETED" if not new["metadata"].get("finalizers") and not new["spec"].get("finalizers") else "MODIFIED"
        )
        self.writer.commit([Change(kind, builtins.NAMESPACE_KEY, new)])


def _blocks(dependent: Obj, owner_uid: str) -> bool:
    refs = (dependent.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") is True for r in refs)


def spec_finalizers(resource: str, obj: Obj) -> list[str]:
    if resource != builtins.NAMESPACE_KEY:
        return []
    return list((obj.get("spec") or {}).get("finalizers") or [])
