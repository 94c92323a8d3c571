"""The seed procedure's steps as test helpers: kubectl against anything that runs it (`Kubectl`: the
agents' `Fleet`, a `volsync-hub` process, the compose stack)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml

from support.trees import make_sample_tree
from support.waiting import eventually


class Kubectl(Protocol):
    """What the steps need: kubectl on a cluster's context (stdout in `.stdout`), and `get` as JSON."""

    def kubectl(self, *args: str, context: str, input: str | None = None, check: bool = True) -> Any: ...

    def get(self, *args: str, context: str) -> Any: ...


RD_YAML = """\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata:
  name: {name}
  namespace: dest
spec:
  rsync:
    serviceType: {service_type}
    copyMethod: Snapshot
    capacity: 2Gi
    accessModes: [ReadWriteOnce]
"""

RS_YAML = """\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationSource
metadata:
  name: {name}
  namespace: src
spec:
  sourcePVC: {pvc}
  trigger:
    {trigger}
  rsync:
    sshKeys: <mysshkeys>
    address: <my.host.com>
    copyMethod: Snapshot
"""

PVC_YAML = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
  namespace: {namespace}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 2Gi
{data_source}"""


def template(fleet: Kubectl, kind: str, name: str, ns: str, tpl: str, context: str) -> str:
    out: str = fleet.kubectl("get", kind, name, "-n", ns, f"--template={tpl}", context=context).stdout
    return "" if out == "<no value>" else out


def volume_dir(fleet: Kubectl, pvc: str, ns: str, context: str) -> Path:
    def bound() -> str:
        return template(fleet, "pvc", pvc, ns, "{{.spec.volumeName}}", context)
    volume = eventually(bound, 20, what=f"PVC {pvc} bound")
    path = fleet.kubectl("get", "pv", volume, "-o", "jsonpath={.spec.local.path}{.spec.hostPath.path}",
                         context=context).stdout
    assert path.startswith("/") and Path(path).is_dir(), f"PV {volume} has no local directory: {path!r}"
    return Path(path)


def create_destination(fleet: Kubectl, name: str, service_type: str = "LoadBalancer",
                       copy_method: str = "Snapshot") -> tuple[str, str]:
    rd = RD_YAML.format(name=name, service_type=service_type).replace("copyMethod: Snapshot",
                                                                       f"copyMethod: {copy_method}")
    fleet.kubectl("create", "-n", "dest", "-f", "-", context="cluster2", input=rd)
    address = eventually(lambda: template(fleet, "replicationdestination", name, "dest",
                                          "{{.status.rsync.address}}", "cluster2"), 30, what="RD address")
    keys = eventually(lambda: template(fleet, "replicationdestination", name, "dest",
                                       "{{.status.rsync.sshKeys}}", "cluster2"), 30, what="RD sshKeys")
    return address, keys


def copy_secret(fleet: Kubectl, name: str) -> None:
    """Seed step 5: get -o yaml on the destination, change the namespace, drop ownerReferences, create."""
    text = fleet.kubectl("get", "secret", "-n", "dest", name, "-o", "yaml", context="cluster2").stdout
    secret = yaml.safe_load(text)
    secret["metadata"]["namespace"] = "src"
    del secret["metadata"]["ownerReferences"]
    for field in ("uid", "resourceVersion", "creationTimestamp"):
        secret["metadata"].pop(field, None)
    fleet.kubectl("create", "-f", "-", context="cluster1", input=yaml.safe_dump(secret))


def create_source(fleet: Kubectl, name: str, pvc: str, address: str, keys: str, trigger: str,
                  copy_method: str = "Snapshot") -> None:
    rs = RS_YAML.format(name=name, pvc=pvc, trigger=trigger).replace("copyMethod: Snapshot",
                                                                      f"copyMethod: {copy_method}")
    rs = rs.replace("<my.host.com>", address).replace("<mysshkeys>", keys)  # seed step 6's sed
    fleet.kubectl("create", "-n", "src", "-f", "-", context="cluster1", input=rs)


def status(fleet: Kubectl, kind: str, name: str, ns: str, context: str) -> dict[str, Any]:
    obj = fleet.get(kind, name, "-n", ns, context=context)
    st: dict[str, Any] = obj.get("status") or {}
    return st


def restore(fleet: Kubectl, snapshot: str, pvc: str) -> Path:
    """Seed section 3: a PVC whose dataSource is the latest image."""
    data_source = ("  dataSource:\n    kind: VolumeSnapshot\n    apiGroup: snapshot.storage.k8s.io\n"
                   f"    name: {snapshot}\n")
    fleet.kubectl("create", "-f", "-", context="cluster2",
                  input=PVC_YAML.format(name=pvc, namespace="dest", data_source=data_source))
    out = eventually(lambda: "Bound" in fleet.kubectl("get", "pvc", "-n", "dest", pvc, context="cluster2").stdout,
                     30, what=f"restored PVC {pvc} Bound")
    assert out
    return volume_dir(fleet, pvc, "dest", "cluster2")


def create_pvc(fleet: Kubectl, name: str, namespace: str, context: str) -> Path:
    fleet.kubectl("create", "-f", "-", context=context, input=PVC_YAML.format(name=name, namespace=namespace,
                                                                             data_source=""))
    return volume_dir(fleet, name, namespace, context)


def latest_image(fleet: Kubectl, rd: str, other_than: str = "") -> str:
    def new() -> str:
        name = template(fleet, "replicationdestination", rd, "dest", "{{.status.latestImage.name}}", "cluster2")
        return name if name and name != other_than else ""
    found: str = eventually(new, 60, what=f"a latestImage of {rd} other than {other_than!r}")
    return found


def seeded_pair(fleet: Kubectl, name: str, trigger: str, *, service_type: str = "LoadBalancer",
                large_size: int = 1 << 20) -> Path:
    """The whole seed procedure for `rd-<name>` (cluster2, ns dest) and `rs-<name>` pushing PVC
    `data-<name>` (cluster1, ns src, filled with the sample tree) with `trigger`; the source's directory."""
    address, keys = create_destination(fleet, f"rd-{name}", service_type)
    source_dir = create_pvc(fleet, f"data-{name}", "src", "cluster1")
    make_sample_tree(source_dir, large_size=large_size)
    copy_secret(fleet, keys)
    create_source(fleet, f"rs-{name}", f"data-{name}", address, keys, trigger)
    return source_dir
