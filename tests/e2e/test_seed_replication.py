"""The user's procedure (seed sections 2 and 3) end to end with kubectl, two clusters, real movers.

cluster2 runs the ReplicationDestination, cluster1 the ReplicationSource; each cluster has its own
agent process. Data moves with real rsync over a real sshd on the destination's own loopback
address, and comes back as a PVC restored from `latestImage`, equal to the source in every detail
the sample tree exercises (contents, modes, ownership, symlinks, hardlinks, ACLs, sparse files,
empty directories, names with spaces and non-ASCII characters).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.agents import Fleet
from support.trees import assert_trees_equal, make_sample_tree, mutate_sample_tree, snapshot_tree
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

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


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("fleet")).start()
    f.kubectl("create", "ns", "dest", context="cluster2")
    f.kubectl("create", "ns", "src", context="cluster1")
    yield f
    f.stop()


def template(fleet: Fleet, kind: str, name: str, ns: str, tpl: str, context: str) -> str:
    out: str = fleet.kubectl("get", kind, name, "-n", ns, f"--template={tpl}", context=context).stdout
    return "" if out == "<no value>" else out


def volume_dir(fleet: Fleet, pvc: str, ns: str, context: str) -> Path:
    def bound() -> str:
        return template(fleet, "pvc", pvc, ns, "{{.spec.volumeName}}", context)
    volume = eventually(bound, 20, what=f"PVC {pvc} bound")
    path = fleet.kubectl("get", "pv", volume, "-o", "jsonpath={.spec.hostPath.path}", context=context).stdout
    return Path(path)


def create_destination(fleet: Fleet, name: str, service_type: str) -> tuple[str, str]:
    rd = RD_YAML.format(name=name, service_type=service_type)
    fleet.kubectl("create", "-n", "dest", "-f", "-", context="cluster2", input=rd)
    address = eventually(lambda: template(fleet, "replicationdestination", name, "dest",
                                          "{{.status.rsync.address}}", "cluster2"), 30, what="RD address")
    keys = eventually(lambda: template(fleet, "replicationdestination", name, "dest",
                                       "{{.status.rsync.sshKeys}}", "cluster2"), 30, what="RD sshKeys")
    return address, keys


def copy_secret(fleet: Fleet, name: str) -> None:
    """Seed step 5: get -o yaml on the destination, change the namespace, drop ownerReferences, create."""
    text = fleet.kubectl("get", "secret", "-n", "dest", name, "-o", "yaml", context="cluster2").stdout
    secret = yaml.safe_load(text)
    secret["metadata"]["namespace"] = "src"
    del secret["metadata"]["ownerReferences"]
    for field in ("uid", "resourceVersion", "creationTimestamp"):
        secret["metadata"].pop(field, None)
    fleet.kubectl("create", "-f", "-", context="cluster1", input=yaml.safe_dump(secret))


def create_source(fleet: Fleet, name: str, pvc: str, address: str, keys: str, trigger: str) -> None:
    rs = RS_YAML.format(name=name, pvc=pvc, trigger=trigger)
    rs = rs.replace("<my.host.com>", address).replace("<mysshkeys>", keys)  # seed step 6's sed
    fleet.kubectl("create", "-n", "src", "-f", "-", context="cluster1", input=rs)


def status(fleet: Fleet, kind: str, name: str, ns: str, context: str) -> dict[str, Any]:
    obj = fleet.get(kind, name, "-n", ns, context=context)
    st: dict[str, Any] = obj.get("status") or {}
    return st


def restore(fleet: Fleet, snapshot: str, pvc: str) -> Path:
    """Seed section 3: a PVC whose dataSource is the latest image."""
    data_source = ("  dataSource:\n    kind: VolumeSnapshot\n    apiGroup: snapshot.storage.k8s.io\n"
                   f"    name: {snapshot}\n")
    fleet.kubectl("create", "-f", "-", context="cluster2",
                  input=PVC_YAML.format(name=pvc, namespace="dest", data_source=data_source))
    out = eventually(lambda: "Bound" in fleet.kubectl("get", "pvc", "-n", "dest", pvc, context="cluster2").stdout,
                     30, what=f"restored PVC {pvc} Bound")
    assert out
    return volume_dir(fleet, pvc, "dest", "cluster2")


@pytest.mark.parametrize("service_type", ["LoadBalancer", "ClusterIP"])
def test_seed_procedure_replicates_and_restores(fleet: Fleet, service_type: str) -> None:
    suffix = service_type.lower()
    rd, rs, pvc = f"rd-{suffix}", f"rs-{suffix}", f"data-{suffix}"
    address, keys = create_destination(fleet, rd, service_type)
    assert address.startswith("127."), address
    assert keys == f"volsync-rsync-dst-src-{rd}"

    fleet.kubectl("create", "-f", "-", context="cluster1",
                  input=PVC_YAML.format(name=pvc, namespace="src", data_source=""))
    source_dir = volume_dir(fleet, pvc, "src", "cluster1")
    make_sample_tree(source_dir, large_size=4 << 20)
    expected = snapshot_tree(source_dir)

    copy_secret(fleet, keys)
    create_source(fleet, rs, pvc, address, keys, 'schedule: "*/3 * * * *"')

    done = eventually(lambda: status(fleet, "replicationsource", rs, "src", "cluster1").get("lastSyncTime"), 90,
                      what="first sync of the source")
    assert done
    described = fleet.kubectl("describe", "replicationsource", "-n", "src", rs, context="cluster1").stdout
    for text in ("Synchronizing", "Last Sync Time", "Last Sync Duration", "Next Sync Time"):
        assert text in described, described
    rs_status = status(fleet, "replicationsource", rs, "src", "cluster1")
    assert rs_status["latestMoverStatus"]["result"] == "Successful"
    assert "sent" in rs_status["latestMoverStatus"].get("logs", "")

    image = eventually(lambda: template(fleet, "replicationdestination", rd, "dest", "{{.status.latestImage.name}}",
                                        "cluster2"), 60, what="latestImage")
    rd_status = status(fleet, "replicationdestination", rd, "dest", "cluster2")
    assert rd_status["latestImage"]["kind"] == "VolumeSnapshot"
    restored = restore(fleet, image, f"restored-{suffix}")
    assert_trees_equal(expected, restored)


def test_manual_trigger_publishes_new_images_and_removes_old_ones(fleet: Fleet) -> None:
    rd, rs, pvc = "rd-manual", "rs-manual", "data-manual"
    address, keys = create_destination(fleet, rd, "LoadBalancer")
    fleet.kubectl("create", "-f", "-", context="cluster1",
                  input=PVC_YAML.format(name=pvc, namespace="src", data_source=""))
    source_dir = volume_dir(fleet, pvc, "src", "cluster1")
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(fleet, keys)
    create_source(fleet, rs, pvc, address, keys, "manual: first")

    eventually(lambda: status(fleet, "replicationsource", rs, "src", "cluster1").get("lastManualSync") == "first",
               90, what="lastManualSync first")
    first = eventually(lambda: template(fleet, "replicationdestination", rd, "dest", "{{.status.latestImage.name}}",
                                        "cluster2"), 60, what="first image")
    restored = restore(fleet, first, "restored-first")
    assert_trees_equal(source_dir, restored)

    mutate_sample_tree(source_dir)
    expected = snapshot_tree(source_dir)
    fleet.kubectl("patch", "replicationsource", rs, "-n", "src", "--type=merge",
                  "-p", '{"spec":{"trigger":{"manual":"second"}}}', context="cluster1")
    eventually(lambda: status(fleet, "replicationsource", rs, "src", "cluster1").get("lastManualSync") == "second",
               90, what="lastManualSync second")
    second = eventually(lambda: (lambda n: n if n and n != first else "")(
        template(fleet, "replicationdestination", rd, "dest", "{{.status.latestImage.name}}", "cluster2")),
        60, what="a new image")
    assert second != first
    gone = fleet.kubectl("get", "volumesnapshot", first, "-n", "dest", context="cluster2", check=False)
    eventually(lambda: fleet.kubectl("get", "volumesnapshot", first, "-n", "dest", context="cluster2",
                                     check=False).returncode != 0, 30, what="first snapshot deleted")
    assert gone is not None
    restored2 = restore(fleet, second, "restored-second")
    assert_trees_equal(expected, restored2)
