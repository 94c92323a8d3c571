"""`kubectl delete`: plain deletes, finalizers, namespaces, and owner references (garbage collection).

The server runs kube's garbage collector and namespace controller itself: deleting an owner
deletes its dependents in the background, `--cascade=orphan` keeps them and strips the reference,
and deleting a namespace deletes what is in it.
"""

from __future__ import annotations

import json

import pytest
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl

REMOVE_FINALIZERS = '[{"op":"remove","path":"/metadata/finalizers"}]'


def configmap(name: str, namespace: str, *, finalizers: list[str] | None = None,
              owner: dict[str, str] | None = None) -> str:
    meta: dict[str, object] = {"name": name, "namespace": namespace}
    if finalizers:
        meta["finalizers"] = finalizers
    if owner:
        meta["ownerReferences"] = [owner]
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})


def not_found(apiserver: ApiServer, *args: str, context: str = "hub") -> bool:
    res = apiserver.kubectl("get", *args, check=False, context=context)
    return res.returncode == 1 and "(NotFound)" in res.stderr


def owner_ref(apiserver: ApiServer, kind: str, name: str, namespace: str, context: str = "hub") -> dict[str, str]:
    obj = apiserver.get(kind, name, "-n", namespace, context=context)
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": name, "uid": obj["metadata"]["uid"]}


def test_delete_without_finalizers_is_immediate(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    out = apiserver.kubectl("delete", "replicationdestination", "dest", "-n", namespace, context="cluster2").stdout
    assert out.strip() == 'replicationdestination.volsync.backube "dest" deleted'
    assert not_found(apiserver, "replicationdestination", "dest", "-n", namespace, context="cluster2")
    again = apiserver.kubectl("delete", "replicationdestination", "dest", "-n", namespace, check=False,
                              context="cluster2")
    assert again.returncode == 1
    assert 'replicationdestinations.volsync.backube "dest" not found' in again.stderr
    assert apiserver.kubectl("delete", "replicationdestination", "dest", "-n", namespace, "--ignore-not-found",
                             context="cluster2").stdout == ""


def test_delete_waits_for_finalizers(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("create", "-f", "-", input=configmap("held", namespace, finalizers=["example.com/hold"]))
    out = apiserver.kubectl("delete", "configmap", "held", "-n", namespace, "--wait=false").stdout
    assert out.strip() == 'configmap "held" deleted'

    held = apiserver.get("configmap", "held", "-n", namespace)
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == ["example.com/hold"]
    # A terminating object takes updates but no new finalizers.
    apiserver.kubectl("label", "configmap", "held", "-n", namespace, "still=here")
    refused = apiserver.kubectl("patch", "configmap", "held", "-n", namespace, "--type=json",
                                "-p", '[{"op":"add","path":"/metadata/finalizers/-","value":"example.com/more"}]',
                                check=False)
    assert refused.returncode == 1
    assert "no new finalizers can be added if the object is being deleted" in refused.stderr

    apiserver.kubectl("patch", "configmap", "held", "-n", namespace, "--type=json", "-p", REMOVE_FINALIZERS)
    assert not_found(apiserver, "configmap", "held", "-n", namespace)


def test_delete_with_a_finalizer_on_a_custom_resource(apiserver: ApiServer, namespace: str) -> None:
    rd = manifests.replication_destination("dest", namespace).replace(
        f"  namespace: {namespace}\n", f"  namespace: {namespace}\n  finalizers: [volsync.backube/cleanup]\n"
    )
    apiserver.apply_yaml(rd, context="cluster2")
    apiserver.kubectl("delete", "replicationdestination", "dest", "-n", namespace, "--wait=false", context="cluster2")
    got = apiserver.get("replicationdestination", "dest", "-n", namespace, context="cluster2")
    assert got["metadata"]["deletionTimestamp"]
    apiserver.kubectl("patch", "replicationdestination", "dest", "-n", namespace, "--type=json",
                      "-p", REMOVE_FINALIZERS, context="cluster2")
    assert not_found(apiserver, "replicationdestination", "dest", "-n", namespace, context="cluster2")


def test_deleting_a_namespace_deletes_its_contents(apiserver: ApiServer, namespace: str) -> None:
    doomed = f"{namespace}-doomed"
    apiserver.kubectl("create", "ns", doomed, context="cluster2")
    apiserver.apply_yaml(manifests.replication_destination("dest", doomed), context="cluster2")
    apiserver.kubectl("create", "secret", "generic", "keys", "-n", doomed, "--from-literal=k=v", context="cluster2")
    apiserver.kubectl("create", "-f", "-", input=manifests.restored_pvc("data", doomed, "snap"), context="cluster2")

    out = apiserver.kubectl("delete", "ns", doomed, context="cluster2").stdout  # waits until it is gone
    assert out.strip() == f'namespace "{doomed}" deleted'
    assert not_found(apiserver, "ns", doomed, context="cluster2")
    for kind, name in (("replicationdestination", "dest"), ("secret", "keys"), ("pvc", "data")):
        assert not_found(apiserver, kind, name, "-n", doomed, context="cluster2")
    # Other namespaces are untouched.
    apiserver.kubectl("get", "ns", namespace, context="cluster2")


def test_deleting_an_owner_deletes_its_dependents_in_the_background(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    ref = owner_ref(apiserver, "replicationdestination", "dest", namespace, context="cluster2")
    apiserver.kubectl("create", "-f", "-", context="cluster2",
                      input=manifests.owned_secret("keys", namespace, ref["kind"], "dest", ref["uid"]))
    apiserver.kubectl("create", "-f", "-", input=configmap("extra", namespace, owner=ref), context="cluster2")

    apiserver.kubectl("delete", "replicationdestination", "dest", "-n", namespace, context="cluster2")
    apiserver.kubectl("wait", "--for=delete", "secret/keys", "configmap/extra", "-n", namespace, "--timeout=20s",
                      context="cluster2")
    assert not_found(apiserver, "secret", "keys", "-n", namespace, context="cluster2")
    assert not_found(apiserver, "configmap", "extra", "-n", namespace, context="cluster2")


def test_orphan_cascade_keeps_dependents_and_drops_the_reference(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("create", "configmap", "owner", "-n", namespace)
    apiserver.kubectl("create", "configmap", "keeper", "-n", namespace)
    ref = owner_ref(apiserver, "configmap", "owner", namespace)
    apiserver.kubectl("create", "-f", "-", input=configmap("only-owned", namespace, owner=ref))
    both = json.loads(configmap("co-owned", namespace, owner=ref))
    both["metadata"]["ownerReferences"].append(owner_ref(apiserver, "configmap", "keeper", namespace))
    apiserver.kubectl("create", "-f", "-", input=json.dumps(both))

    out = apiserver.kubectl("delete", "configmap", "owner", "-n", namespace, "--cascade=orphan").stdout
    assert out.strip() == 'configmap "owner" deleted'
    assert not_found(apiserver, "configmap", "owner", "-n", namespace)
    assert "ownerReferences" not in apiserver.get("configmap", "only-owned", "-n", namespace)["metadata"]
    refs = apiserver.get("configmap", "co-owned", "-n", namespace)["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["keeper"]


def test_namespace_stays_terminating_while_an_object_has_finalizers(apiserver: ApiServer, namespace: str) -> None:
    doomed = f"{namespace}-doomed"
    apiserver.kubectl("create", "ns", doomed)
    apiserver.kubectl("create", "-f", "-", input=configmap("held", doomed, finalizers=["example.com/hold"]))
    apiserver.kubectl("create", "configmap", "loose", "-n", doomed)

    apiserver.kubectl("delete", "ns", doomed, "--wait=false")
    rows = [row.split() for row in apiserver.kubectl("get", "ns", doomed).stdout.splitlines()]
    assert rows[1][:2] == [doomed, "Terminating"]
    assert not_found(apiserver, "configmap", "loose", "-n", doomed)
    assert apiserver.get("configmap", "held", "-n", doomed)["metadata"]["deletionTimestamp"]
    refused = apiserver.kubectl("create", "configmap", "late", "-n", doomed, check=False)
    assert refused.returncode == 1
    assert f"unable to create new content in namespace {doomed} because it is being terminated" in refused.stderr

    apiserver.kubectl("patch", "configmap", "held", "-n", doomed, "--type=json", "-p", REMOVE_FINALIZERS)
    apiserver.kubectl("wait", "--for=delete", f"namespace/{doomed}", "--timeout=20s")
    assert not_found(apiserver, "ns", doomed)
