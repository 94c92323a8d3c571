"""`kubectl apply` (client- and server-side) and `kubectl patch`: what the server stores and kubectl reports.

Covers the status subresource split (a plain patch cannot write `.status`, a status patch cannot
write anything else), `metadata.generation` (bumped by spec changes only), the three patch types
kubectl sends, strategic merge on built-ins (refused on custom resources), and server-side apply's
field ownership: removing a field from the manifest removes it, another manager's change
conflicts unless forced.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl

RD = "replicationdestination"


def rd(apiserver: ApiServer, namespace: str) -> Any:
    return apiserver.get(RD, "dest", "-n", namespace, "--show-managed-fields", context="cluster2")


def generation(apiserver: ApiServer, namespace: str) -> int:
    return int(apiserver.kubectl("get", RD, "dest", "-n", namespace, "-o", "jsonpath={.metadata.generation}",
                                 context="cluster2").stdout)


def patch(apiserver: ApiServer, namespace: str, body: object, *args: str) -> str:
    return apiserver.kubectl("patch", RD, "dest", "-n", namespace, "--type=merge", "-p", json.dumps(body), *args,
                             context="cluster2").stdout.strip()


def test_generation_counts_spec_changes_only(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    assert generation(apiserver, namespace) == 1
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace, capacity="3Gi"), context="cluster2")
    assert generation(apiserver, namespace) == 2
    apiserver.kubectl("label", RD, "dest", "-n", namespace, "tier=gold", context="cluster2")
    apiserver.kubectl("annotate", RD, "dest", "-n", namespace, "note=hello", context="cluster2")
    patch(apiserver, namespace, {"status": {"rsync": {"address": "198.51.100.7"}}}, "--subresource=status")
    assert generation(apiserver, namespace) == 2
    patch(apiserver, namespace, {"spec": {"rsync": {"copyMethod": "Clone"}}})
    assert generation(apiserver, namespace) == 3


def test_status_and_spec_are_written_through_their_own_endpoints(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")

    # A plain patch of .status is ignored: the main resource does not write status.
    out = patch(apiserver, namespace, {"status": {"rsync": {"address": "203.0.113.9"}}})
    assert out == "replicationdestination.volsync.backube/dest patched (no change)"
    assert "status" not in rd(apiserver, namespace)

    # A status patch writes the status, and only the status.
    out = patch(apiserver, namespace, {"spec": {"rsync": {"copyMethod": "Clone"}},
                                       "status": {"rsync": {"address": "198.51.100.7", "sshKeys": "keys"}}},
                "--subresource=status")
    assert out == "replicationdestination.volsync.backube/dest patched"
    got = rd(apiserver, namespace)
    assert got["status"] == {"rsync": {"address": "198.51.100.7", "sshKeys": "keys"}}
    assert got["spec"]["rsync"]["copyMethod"] == "Snapshot"

    # Later spec writes (apply included) keep the status.
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace, capacity="5Gi"), context="cluster2")
    got = rd(apiserver, namespace)
    assert got["spec"]["rsync"]["capacity"] == "5Gi"
    assert got["status"] == {"rsync": {"address": "198.51.100.7", "sshKeys": "keys"}}


def test_patch_types(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    patch(apiserver, namespace, {"spec": {"rsync": {"storageClassName": None, "port": 2222}}})
    rsync = rd(apiserver, namespace)["spec"]["rsync"]
    assert "storageClassName" not in rsync
    assert rsync["port"] == 2222

    ops = [{"op": "replace", "path": "/spec/rsync/accessModes", "value": ["ReadWriteMany"]},
           {"op": "test", "path": "/spec/rsync/copyMethod", "value": "Snapshot"}]
    apiserver.kubectl("patch", RD, "dest", "-n", namespace, "--type=json", "-p", json.dumps(ops), context="cluster2")
    assert rd(apiserver, namespace)["spec"]["rsync"]["accessModes"] == ["ReadWriteMany"]
    test_clone = '[{"op":"test","path":"/spec/rsync/copyMethod","value":"Clone"}]'
    failed = apiserver.kubectl("patch", RD, "dest", "-n", namespace, "--type=json", "-p", test_clone, check=False,
                               context="cluster2")
    assert failed.returncode == 1
    assert failed.stderr.startswith("The request is invalid: ")
    assert "/spec/rsync/copyMethod" in failed.stderr

    # kubectl patch defaults to a strategic merge patch, which custom resources do not take.
    smp = apiserver.kubectl("patch", RD, "dest", "-n", namespace, "-p", '{"spec":{"rsync":{"port":1}}}',
                            check=False, context="cluster2")
    assert smp.returncode == 1
    assert "application/strategic-merge-patch+json is not supported" in smp.stderr
    assert rd(apiserver, namespace)["spec"]["rsync"]["port"] == 2222


def test_client_side_apply_of_a_service_merges_ports_by_key(apiserver: ApiServer, namespace: str) -> None:
    def service(*ports: int) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": "rsync", "namespace": namespace},
                           "spec": {"type": "LoadBalancer", "selector": {"app": "mover"},
                                    "ports": [{"name": f"p{p}", "port": p} for p in ports]}})

    assert apiserver.apply_yaml(service(22, 8022)).stdout.strip() == "service/rsync created"
    assert apiserver.apply_yaml(service(22, 8022)).stdout.strip() == "service/rsync unchanged"
    assert apiserver.apply_yaml(service(22, 9022)).stdout.strip() == "service/rsync configured"
    spec = apiserver.get("service", "rsync", "-n", namespace)["spec"]
    assert [(p["name"], p["port"], p["protocol"], p["targetPort"]) for p in spec["ports"]] == [
        ("p22", 22, "TCP", 22), ("p9022", 9022, "TCP", 9022)
    ]
    assert spec["clusterIP"]
    table = apiserver.kubectl("get", "svc", "rsync", "-n", namespace).stdout.splitlines()
    node_ports = [p["nodePort"] for p in spec["ports"]]  # a LoadBalancer Service gets node ports, as upstream
    assert table[1].split()[1:5] == ["LoadBalancer", spec["clusterIP"], "<pending>",
                                     f"22:{node_ports[0]}/TCP,9022:{node_ports[1]}/TCP"]


def test_server_side_apply_owns_fields(apiserver: ApiServer, namespace: str) -> None:
    def ssa(manifest: str, *args: str, check: bool = True) -> tuple[int, str, str]:
        res = apiserver.kubectl("apply", "--server-side", "-f", "-", *args, input=manifest, check=check,
                                context="cluster2")
        return res.returncode, res.stdout.strip(), res.stderr

    full = manifests.replication_destination("dest", namespace)
    assert ssa(full)[1] == "replicationdestination.volsync.backube/dest serverside-applied"
    assert ssa(manifests.replication_destination("dest", namespace, capacity="4Gi"))[1] == (
        "replicationdestination.volsync.backube/dest serverside-applied"
    )
    rsync = rd(apiserver, namespace)["spec"]["rsync"]
    assert rsync["capacity"] == "4Gi"
    assert rsync["storageClassName"] == "gp2-csi"
    managers = [m["manager"] for m in rd(apiserver, namespace)["metadata"]["managedFields"]]
    assert managers == ["kubectl"]

    # The same manager no longer applies storageClassName: the server removes it.
    without = manifests.replication_destination("dest", namespace, capacity="4Gi").replace(
        "    storageClassName: gp2-csi\n", "")
    ssa(without)
    assert "storageClassName" not in rd(apiserver, namespace)["spec"]["rsync"]

    # Another manager may not take a field kubectl owns with a different value ...
    other = manifests.replication_destination("dest", namespace, capacity="8Gi")
    rc, _, err = ssa(other, "--field-manager=migration", check=False)
    assert rc == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .spec.rsync.capacity' in err
    assert "--force-conflicts" in err
    assert rd(apiserver, namespace)["spec"]["rsync"]["capacity"] == "4Gi"

    # ... unless it forces, which moves the ownership.
    rc, out, _ = ssa(other, "--field-manager=migration", "--force-conflicts")
    assert rc == 0
    assert out == "replicationdestination.volsync.backube/dest serverside-applied"
    got = rd(apiserver, namespace)
    assert got["spec"]["rsync"]["capacity"] == "8Gi"
    owners = {m["manager"]: json.dumps(m["fieldsV1"]) for m in got["metadata"]["managedFields"]}
    assert "f:capacity" in owners["migration"]
    assert "f:capacity" not in owners["kubectl"]
