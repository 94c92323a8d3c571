"""The user procedure of the seed document, step by step, with real kubectl against the embedded clusters.

Hub: install the addon (label the ManagedCluster, or apply the ManagedClusterAddOn). Destination
(cluster2): create the ReplicationDestination, read its address and key Secret name. Source
(cluster1): copy the Secret (get -o yaml, edit, create -f), create the ReplicationSource, describe it.
Destination again: restore a PVC from the latest image. Controllers are not running here, so the
test plays their part by writing `.status` through the status subresource, as they would.
"""

from __future__ import annotations

import json

import pytest
import yaml
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl

RD = "replicationdestination"
RS = "replicationsource"


def status(apiserver: ApiServer, kind: str, name: str, namespace: str, body: str, context: str) -> None:
    out = apiserver.kubectl("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", body,
                            context=context).stdout
    assert "patched" in out


def test_install_the_addon_on_a_managed_cluster(apiserver: ApiServer, namespace: str) -> None:
    cluster = f"{namespace}-mc"
    out = apiserver.kubectl("create", "ns", cluster).stdout
    assert out.strip() == f"namespace/{cluster} created"
    apiserver.apply_yaml(manifests.managed_cluster(cluster))

    # Either label the cluster ...
    out = apiserver.kubectl("label", "managedcluster", cluster, "addons.open-cluster-management.io/volsync=true").stdout
    assert out.strip() == f"managedcluster.cluster.open-cluster-management.io/{cluster} labeled"
    shown = apiserver.kubectl("get", "mcl", cluster, "--show-labels").stdout
    assert "addons.open-cluster-management.io/volsync=true" in shown.splitlines()[1]

    # ... or apply the ManagedClusterAddOn of section 1 yourself.
    mcao = manifests.managed_cluster_addon(cluster)
    assert apiserver.apply_yaml(mcao).stdout.strip() == (
        "managedclusteraddon.addon.open-cluster-management.io/volsync created"
    )
    assert apiserver.apply_yaml(mcao).stdout.strip() == (
        "managedclusteraddon.addon.open-cluster-management.io/volsync unchanged"
    )
    changed = mcao.replace("spec: {}", "spec:\n  installNamespace: volsync-system")
    assert apiserver.apply_yaml(changed).stdout.strip() == (
        "managedclusteraddon.addon.open-cluster-management.io/volsync configured"
    )
    got = apiserver.get("managedclusteraddon", "volsync", "-n", cluster)
    assert got["spec"]["installNamespace"] == "volsync-system"
    assert got["metadata"]["namespace"] == cluster


def test_destination_is_created_and_reapplied(apiserver: ApiServer, namespace: str) -> None:
    rd = manifests.replication_destination("dest", namespace)
    out = apiserver.kubectl("create", "-n", namespace, "-f", "-", input=rd, context="cluster2").stdout
    assert out.strip() == "replicationdestination.volsync.backube/dest created"

    got = apiserver.get(RD, "dest", "-n", namespace, context="cluster2")
    assert got["spec"]["rsync"] | {"port": 22, "volumeMode": "Filesystem"} == {
        "serviceType": "LoadBalancer",
        "copyMethod": "Snapshot",
        "capacity": "2Gi",
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": "gp2-csi",
        "volumeSnapshotClassName": "csi-aws-vsc",
        "port": 22,
        "volumeMode": "Filesystem",
    }

    # Created without apply's annotation: the first apply says configured (and warns), the next unchanged.
    first = apiserver.kubectl("apply", "-f", "-", input=rd, context="cluster2")
    assert first.stdout.strip() == "replicationdestination.volsync.backube/dest configured"
    assert "last-applied-configuration" in first.stderr
    again = apiserver.kubectl("apply", "-f", "-", input=rd, context="cluster2")
    assert again.stdout.strip() == "replicationdestination.volsync.backube/dest unchanged"
    changed = manifests.replication_destination("dest", namespace, storage_class="gp3-csi")
    out = apiserver.kubectl("apply", "-f", "-", input=changed, context="cluster2").stdout
    assert out.strip() == "replicationdestination.volsync.backube/dest configured"
    got = apiserver.get(RD, "dest", "-n", namespace, context="cluster2")
    assert got["spec"]["rsync"]["storageClassName"] == "gp3-csi"


def test_destination_address_and_keys_are_read_with_a_template(apiserver: ApiServer, namespace: str) -> None:
    rd = manifests.replication_destination("dest", namespace)
    assert apiserver.apply_yaml(rd, context="cluster2").stdout.strip() == (
        "replicationdestination.volsync.backube/dest created"
    )
    assert apiserver.apply_yaml(rd, context="cluster2").stdout.strip() == (
        "replicationdestination.volsync.backube/dest unchanged"
    )
    keys = "volsync-rsync-dst-src-dest"
    status(apiserver, RD, "dest", namespace,
           manifests.status_patch(rsync={"address": "198.51.100.7", "sshKeys": keys, "port": 22}), "cluster2")

    def template(path: str) -> str:
        return apiserver.kubectl("get", RD, "dest", "-n", namespace, f"--template={{{{{path}}}}}",
                                 context="cluster2").stdout

    assert template(".status.rsync.address") == "198.51.100.7"
    assert template(".status.rsync.sshKeys") == keys


def test_key_secret_is_copied_to_the_source_cluster(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    rd_uid = apiserver.get(RD, "dest", "-n", namespace, context="cluster2")["metadata"]["uid"]
    keys = "volsync-rsync-dst-src-dest"
    apiserver.kubectl("create", "-f", "-", context="cluster2",
                      input=manifests.owned_secret(keys, namespace, "ReplicationDestination", "dest", rd_uid))

    # The owner exists, so the garbage collector keeps the Secret. Proof without sleeping: a Secret
    # with a dangling owner created afterwards is collected, and by then ours is still there.
    apiserver.kubectl("create", "-f", "-", context="cluster2",
                      input=manifests.owned_secret("dangling", namespace, "ReplicationDestination", "gone",
                                                   "00000000-0000-0000-0000-000000000000"))
    apiserver.kubectl("wait", "--for=delete", "secret/dangling", "-n", namespace, "--timeout=20s", context="cluster2")
    apiserver.kubectl("get", "secret", keys, "-n", namespace, context="cluster2")

    # Step 5: get -o yaml on the destination, change the namespace, delete the ownerReferences ...
    exported = apiserver.kubectl("get", "secret", "-n", namespace, keys, "-o", "yaml", context="cluster2").stdout
    secret = yaml.safe_load(exported)
    assert secret["metadata"]["ownerReferences"][0]["uid"] == rd_uid
    source_ns = f"{namespace}-src"
    apiserver.kubectl("create", "ns", source_ns, context="cluster1")
    secret["metadata"]["namespace"] = source_ns
    del secret["metadata"]["ownerReferences"]

    # ... and create it on the source cluster.
    out = apiserver.kubectl("create", "-f", "-", input=yaml.safe_dump(secret), context="cluster1").stdout
    assert out.strip() == f"secret/{keys} created"
    copy = apiserver.get("secret", keys, "-n", source_ns, context="cluster1")
    original = apiserver.get("secret", keys, "-n", namespace, context="cluster2")
    assert copy["data"] == original["data"] == secret["data"]
    assert copy["type"] == "Opaque"
    assert "ownerReferences" not in copy["metadata"]
    assert copy["metadata"]["uid"] != original["metadata"]["uid"]


def test_copied_secret_that_keeps_its_owner_reference_is_collected(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    rd_uid = apiserver.get(RD, "dest", "-n", namespace, context="cluster2")["metadata"]["uid"]
    keys = "volsync-rsync-dst-src-dest"
    apiserver.kubectl("create", "-f", "-", context="cluster2",
                      input=manifests.owned_secret(keys, namespace, "ReplicationDestination", "dest", rd_uid))
    secret = yaml.safe_load(apiserver.kubectl("get", "secret", keys, "-n", namespace, "-o", "yaml",
                                              context="cluster2").stdout)

    # Forgetting to delete the ownerReferences: on cluster1 the owner's uid does not exist.
    out = apiserver.kubectl("create", "-f", "-", input=yaml.safe_dump(secret), context="cluster1").stdout
    assert out.strip() == f"secret/{keys} created"
    apiserver.kubectl("wait", "--for=delete", f"secret/{keys}", "-n", namespace, "--timeout=20s", context="cluster1")
    gone = apiserver.kubectl("get", "secret", keys, "-n", namespace, check=False, context="cluster1")
    assert gone.returncode == 1
    assert f'secrets "{keys}" not found' in gone.stderr
    # The original, whose owner is alive, stays.
    apiserver.kubectl("get", "secret", keys, "-n", namespace, context="cluster2")


def test_source_is_created_and_described(apiserver: ApiServer, namespace: str) -> None:
    rs = manifests.replication_source("source", namespace, pvc="database", address="198.51.100.7",
                                      ssh_keys="volsync-rsync-dst-src-dest")
    out = apiserver.kubectl("create", "-n", namespace, "-f", "-", input=rs, context="cluster1").stdout
    assert out.strip() == "replicationsource.volsync.backube/source created"
    synchronizing = manifests.condition("Synchronizing", "True", "SyncInProgress", "Synchronization in-progress")
    status(apiserver, RS, "source", namespace,
           manifests.status_patch(conditions=[synchronizing], lastSyncTime="2026-01-02T03:00:00Z",
                                  lastSyncDuration="1m2.3s", nextSyncTime="2026-01-02T03:06:00Z"), "cluster1")
    uid = apiserver.get(RS, "source", "-n", namespace, context="cluster1")["metadata"]["uid"]
    involved = {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource", "name": "source",
                "namespace": namespace, "uid": uid}
    apiserver.kubectl("create", "-f", "-", context="cluster1",
                      input=manifests.event("source.1", namespace, involved, "TransferStarted", "Transfer started"))

    described = apiserver.kubectl("describe", "ReplicationSource", "-n", namespace, "source", context="cluster1").stdout
    lines = [line.strip() for line in described.splitlines()]
    assert lines[0] == "Name:         source"
    for expected in ("Address:                     198.51.100.7", "Source PVC:                    database",
                     "Schedule:  */3 * * * *"):
        assert expected in described
    assert "Conditions:" in lines
    assert "Message:               Synchronization in-progress" in described
    assert "Reason:                SyncInProgress" in described
    assert "Type:                  Synchronizing" in described
    assert "Last Sync Duration:      1m2.3s" in described
    assert "Last Sync Time:          2026-01-02T03:00:00Z" in described
    assert "Next Sync Time:          2026-01-02T03:06:00Z" in described
    events = described.split("Events:", 1)[1]
    assert "TransferStarted" in events
    assert "volsync-mover" in events
    assert "Transfer started" in events


def test_latest_image_is_restored_into_a_pvc(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    image = {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "volsync-dest-dst-20260102"}
    status(apiserver, RD, "dest", namespace, manifests.status_patch(latestImage=image), "cluster2")
    snapshot = apiserver.kubectl("get", RD, "dest", "-n", namespace, "--template={{.status.latestImage.name}}",
                                 context="cluster2").stdout
    assert snapshot == image["name"]

    out = apiserver.kubectl("create", "-f", "-", input=manifests.restored_pvc("restored", namespace, snapshot),
                            context="cluster2").stdout
    assert out.strip() == "persistentvolumeclaim/restored created"
    table = apiserver.kubectl("get", "pvc", "-n", namespace, context="cluster2").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                                "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert table[1].split()[:2] == ["restored", "Pending"]
    pvc = json.loads(apiserver.kubectl("get", "pvc", "restored", "-n", namespace, "-o", "json",
                                       context="cluster2").stdout)
    assert pvc["spec"]["dataSource"] == {"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io",
                                         "name": image["name"]}
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"
