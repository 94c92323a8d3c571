"""The YAML files of the seed procedure (docs: VolSync rsync replication under OCM), as users write them.

Each function returns manifest text to feed to `kubectl apply|create -f -`, with the names the
test chooses; the shapes follow /work/shared/seed/procedure-en.md step by step. Status bodies are
JSON for `kubectl patch --subresource=status --type=merge -p`.
"""

from __future__ import annotations

import json
from typing import Any

CONDITION_TIME = "2026-01-02T03:04:05Z"


def managed_cluster(name: str) -> str:
    return f"""\
apiVersion: cluster.open-cluster-management.io/v1
kind: ManagedCluster
metadata:
  name: {name}
spec:
  hubAcceptsClient: true
"""


def managed_cluster_addon(cluster: str) -> str:
    """Seed step 1: the name must be `volsync`, the namespace is the managed cluster's name."""
    return f"""\
apiVersion: addon.open-cluster-management.io/v1alpha1
kind: ManagedClusterAddOn
metadata:
  name: volsync
  namespace: {cluster}
spec: {{}}
"""


def replication_destination(name: str, namespace: str, *, copy_method: str = "Snapshot", capacity: str = "2Gi",
                            storage_class: str = "gp2-csi", extra: str = "") -> str:
    """Seed step 2.2 (`extra` is inserted as more lines under `spec.rsync`, indented by the caller)."""
    return f"""\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata:
  name: {name}
  namespace: {namespace}
spec:
  rsync:
    serviceType: LoadBalancer
    copyMethod: {copy_method}
    capacity: {capacity}
    accessModes: [ReadWriteOnce]
    storageClassName: {storage_class}
    volumeSnapshotClassName: csi-aws-vsc
{extra}"""


# Seed step 4, placeholders and all: step 6 replaces them with sed before `kubectl create`.
REPLICATION_SOURCE = """\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationSource
metadata:
  name: {name}
  namespace: {namespace}
spec:
  sourcePVC: {pvc}
  trigger:
    schedule: "*/3 * * * *"
  rsync:
    sshKeys: <mysshkeys>
    address: <my.host.com>
    copyMethod: Snapshot
    storageClassName: gp2-csi
    volumeSnapshotClassName: gp2-csi
"""


def replication_source(name: str, namespace: str, *, pvc: str, address: str, ssh_keys: str) -> str:
    text = REPLICATION_SOURCE.format(name=name, namespace=namespace, pvc=pvc)
    return text.replace("<my.host.com>", address).replace("<mysshkeys>", ssh_keys)


def restored_pvc(name: str, namespace: str, snapshot: str) -> str:
    """Seed step 3.2: a PVC whose data source is the replicated VolumeSnapshot."""
    return f"""\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
  namespace: {namespace}
spec:
  accessModes: [ReadWriteOnce]
  dataSource:
    kind: VolumeSnapshot
    apiGroup: snapshot.storage.k8s.io
    name: {snapshot}
  resources:
    requests:
      storage: 2Gi
"""


def owned_secret(name: str, namespace: str, owner_kind: str, owner_name: str, owner_uid: str,
                 owner_api_version: str = "volsync.backube/v1alpha1") -> str:
    """The rsync key Secret VolSync writes next to a ReplicationDestination, owned by it."""
    return f"""\
apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {namespace}
  ownerReferences:
  - apiVersion: {owner_api_version}
    kind: {owner_kind}
    name: {owner_name}
    uid: {owner_uid}
    controller: true
    blockOwnerDeletion: true
type: Opaque
data:
  source: c3NoLXJzYSBwcml2YXRlLWtleQ==
  source.pub: c3NoLXJzYSBwdWJsaWMta2V5
  destination.pub: c3NoLXJzYSBkZXN0LWtleQ==
"""


def event(name: str, namespace: str, involved: dict[str, Any], reason: str, message: str) -> str:
    """A core/v1 Event about `involved` (the object's apiVersion, kind, name, namespace and uid)."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": "Normal",
        "source": {"component": "volsync-mover"},
        "firstTimestamp": CONDITION_TIME,
        "lastTimestamp": CONDITION_TIME,
        "count": 1,
    })


def condition(type_: str, status: str = "True", reason: str = "Test", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message or f"{type_} is {status}",
            "lastTransitionTime": CONDITION_TIME}


def status_patch(**status: Any) -> str:
    """A merge patch body for `kubectl patch --subresource=status --type=merge -p`."""
    return json.dumps({"status": status})
