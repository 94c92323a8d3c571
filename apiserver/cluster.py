"""One served cluster: its store, resource registry, writer and background controllers.

At start-up the registry holds the built-ins plus every CustomResourceDefinition found in the
store, then the CRDs shipped in `manifests/crds/` are installed (created, or updated when the
shipped version differs), so `kubectl get crd` shows them like any other. CRDs created, changed
or deleted later through the API register, change or unregister their type at once; deleting a
CRD deletes its custom resources, as kube-apiserver's cleanup finalizer does.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
from pathlib import Path
from typing import Any

import yaml

from apiserver import apiservices, authorization, builtins, errors, legacytokens, rbacadmission, rbacdefaults
from apiserver.authn import Identity
from apiserver.authorization import AlwaysAllow, Authorizer
from apiserver.collecting import Collector
from apiserver.rbac import RBACAuthorizer
from apiserver.rbacaggregation import ClusterRoleAggregator
from apiserver.requestinfo import RequestInfo
from apiserver.resources import Obj, Registry, ResourceType, from_crd
from apiserver.satokens import TokenIssuer
from apiserver.serviceaccounts import ServiceAccounts
from apiserver.serviceips import DEFAULT_SERVICE_CIDR, ServiceAddresses
from apiserver.store import Change, Event, Store
from apiserver.writing import Options, Writer

log = logging.getLogger("volsync.apiserver.cluster")


def load_crd_files(directory: Path) -> list[Obj]:
    crds: list[Obj] = []
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


class Cluster:
    def __init__(self, name: str, store: Store, crds: list[Obj] | None = None, *,
                 service_cidr: str = DEFAULT_SERVICE_CIDR, signing_secret: bytes | None = None) -> None:
        self.name = name
        self.store = store
        self.rbac = RBACAuthorizer(store)  # before any write: it follows every committed batch
        self.authorizer: Authorizer = AlwaysAllow()  # the request chain; the server installs its mode's
        self.tokens = TokenIssuer(signing_secret or secrets.token_bytes(32), name)  # ServiceAccount tokens
        self.registry = Registry()
        for rt in builtins.BUILTINS:
            self.registry.add(rt)
        self.addresses = ServiceAddresses(service_cidr, (svc for _, svc in store.items("/services")))
        self.accounts = ServiceAccounts(store, self._create_own, self._replace_own)
        self.legacy_tokens = legacytokens.LegacyTokens(store, self.tokens, self._replace_own, self._delete_own,
                                                       lambda: self.accounts.ca_pem)  # token Secrets
        self.aggregation = ClusterRoleAggregator(store, self._replace_own)  # rbacaggregation.py
        self.writer = Writer(store, self.registry.by_key, self._committed, self._admit)
        self.collector = Collector(store, self.registry, self.writer)
        for _, crd in store.items(builtins.CRD_KEY):
            self._register(crd)
        for crd in crds or []:
            self.install_crd(crd)
        self._ensure_default_namespaces()
        rbacdefaults.ensure_defaults(store, self._create_own, self._replace_own)
        self.aggregation.resync()
        self._ensure_apiservices()
        self.accounts.publish(None)
        self.legacy_tokens.resync()
        self.collector.resume()

    # -- CRDs ---------------------------------------------------------------------------------------
    def install_crd(self, crd: Obj) -> None:
        rt = self.registry.by_key(builtins.CRD_KEY)
        assert rt is not None
        name = crd["metadata"]["name"]
        current = self.store.get(builtins.CRD_KEY, "", name)
        if current is None:
            self.writer.create(rt, "", crd, "v1", Options())
        elif current.get("spec") != crd.get("spec"):
            body = copy.deepcopy(crd)
            body["metadata"] = {**current["metadata"], **{k: v for k, v in crd["metadata"].items() if k != "name"}}
            self.writer.update(rt, "", name, body, "v1", Options(), require_rv=False)

    def _register(self, crd: Obj) -> None:
        # An invalid CRD was refused on write; an old stored one that no longer parses is not served.
        # A CRD never replaces a built-in type (`roles.rbac.authorization.k8s.io` stays RBAC's): the
        # built-in is served, as kube-apiserver serves its own types before any CRD's.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            rt = from_crd(crd)
            if not self._is_builtin(rt.key):
                self.registry.add(rt)

    def _is_builtin(self, key: str) -> bool:
        current = self.registry.by_key(key)
        return current is not None and current.builtin

    def _committed(self, events: list[Event]) -> None:
        self.rbac.observe(events)  # first: observers that write must not be judged on stale RBAC
        for ev in events:
            if ev.resource != builtins.CRD_KEY:
                continue
            if ev.type == "DELETED":
                self._unregister(ev.obj)
            else:
                self._register(ev.obj)
        self.collector.observe(events)
        self.addresses.observe(events)
        self.accounts.observe(events)
        self.legacy_tokens.observe(events)
        # Last: it writes (aggregated rules), and every observer must see this batch before the next.
        self.aggregation.observe(events)

    # -- admission plugins and the objects the cluster keeps itself (serviceaccounts.py) ------------
    def _admit(self, rt: ResourceType, old: Obj | None, new: Obj, opts: Options) -> None:
        if opts.apply_create and opts.user is not None:
            self._authorize_create(rt, new, opts.user)
        if rt.key == "/services":
            self.addresses.admit(old, new, dry_run=opts.dry_run)
        elif rt.key == "/pods" and old is None:
            self.accounts.admit_pod(new)
        elif rt.key == "/secrets":
            legacytokens.admit_secret(new)
        elif rt.key in rbacadmission.RBAC_KEYS:  # validation and escalation prevention
            rbacadmission.admit(self, rt, old, new, opts.user)

    def _authorize_create(self, rt: ResourceType, new: Obj, user: Identity) -> None:
        """A server-side apply (authorized as `patch`) that creates must also be allowed to `create`
        (with the object's name), as kube-apiserver's withAuthorization asks. The denial is worded
        as any 403 (upstream's carries only the authorizer's reason)."""
        meta = new.get("metadata") or {}
        info = RequestInfo(verb="create", path="", resource_request=True, api_group=rt.group,
                           api_version=rt.storage_version, namespace=str(meta.get("namespace") or ""),
                           resource=rt.plural, name=str(meta.get("name") or ""))
        authorization.check(self.authorizer, user, info)

    def _create_own(self, key: str, namespace: str, obj: Obj) -> None:
        rt = self.registry.by_key(key)
        assert rt is not None
        try:
            self.writer.create(rt, namespace, obj, rt.storage_version, Options())
        except errors.ApiError as exc:  # 409: made meanwhile; 403/404: its namespace is going
            if exc.code not in (403, 404, 409):
                log.warning("cluster %s: cannot create %s %s/%s: %s", self.name, key, namespace,
                            obj["metadata"]["name"], exc)

    def _replace_own(self, key: str, namespace: str, obj: Obj) -> None:
        rt = self.registry.by_key(key)
        assert rt is not None
        try:
            self.writer.update(rt, namespace, obj["metadata"]["name"], obj, rt.storage_version, Options(),
                               require_rv=False)
        except errors.ApiError as exc:
            if exc.code != 404:
                log.warning("cluster %s: cannot update %s %s/%s: %s", self.name, key, namespace,
                            obj["metadata"]["name"], exc)

    def _delete_own(self, key: str, namespace: str, name: str) -> None:
        rt = self.registry.by_key(key)
        assert rt is not None
        try:
            self.writer.delete(rt, namespace, name, {}, False)
        except errors.ApiError as exc:
            if exc.code != 404:
                log.warning("cluster %s: cannot delete %s %s/%s: %s", self.name, key, namespace, name, exc)

    def _unregister(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        key = f"{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}"
        if self._is_builtin(key):  # a CRD shadowing a built-in was never served: its objects are not its own
            return
        self.registry.remove(key)
        instances = [Change("DELETED", key, copy.deepcopy(obj)) for _, obj in self.store.items(key)]
        if instances:
            self.writer.commit(instances)

    def _ensure_default_namespaces(self) -> None:
        rt = self.registry.by_key(builtins.NAMESPACE_KEY)
        assert rt is not None
        for ns in ("default", "kube-system", "kube-public"):
            if self.store.get(rt.key, "", ns) is None:
                self.writer.create(rt, "", {"metadata": {"name": ns}}, "v1", Options())

    def _ensure_apiservices(self) -> None:
        rt = self.registry.by_key(apiservices.KEY)
        assert rt is not None
        apiservices.ensure_local(self.registry, lambda name: self.store.get(rt.key, "", name) is not None,
                                 lambda obj: self.writer.create(rt, "", obj, "v1", Options()))

    # -- convenience for in-process callers -------------------------------------------------------
    def resource(self, api_version: str, kind: str) -> Any:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise errors.not_found("resources", "", f"{api_version}/{kind}")
        return rt
