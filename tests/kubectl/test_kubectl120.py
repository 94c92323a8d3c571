"""The seed procedure with kubectl 1.20 (Debian bookworm's kubernetes-client), which users still run.

kubectl 1.20 uses legacy discovery only, never sends `fieldValidation`, sends JSON (not protobuf)
bodies for `create ns`, fetches /openapi/v2 on every apply, and has no `patch --subresource`: the
status writes a controller would make are done with kubectl 1.32 instead.

`scripts/bootstrap --test` unpacks the binary into .cache/kubectl-1.20. Without it these tests
skip, except under CI (the CI environment variable is set), where a missing binary is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml
from support import manifests
from support.apiserver import KUBECTL_120, ApiServer
from support.waiting import kubectl_stream

pytestmark = [pytest.mark.kubectl, pytest.mark.kubectl120]


@pytest.fixture(scope="module")
def kubectl120() -> str:
    if not KUBECTL_120.is_file():
        message = f"kubectl 1.20 is missing at {KUBECTL_120}: run scripts/bootstrap --test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(KUBECTL_120)


class Old:
    """`kubectl` 1.20 against one cluster of the shared server."""

    def __init__(self, apiserver: ApiServer, binary: str) -> None:
        self.apiserver = apiserver
        self.binary = binary

    def __call__(self, *args: str, context: str = "hub", input: str | None = None, check: bool = True) -> str:
        return self.apiserver.kubectl(*args, context=context, input=input, check=check, binary=self.binary).stdout

    def run(self, *args: str, context: str = "hub", input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.apiserver.kubectl(*args, context=context, input=input, check=False, binary=self.binary)


@pytest.fixture
def old(apiserver: ApiServer, kubectl120: str) -> Old:
    return Old(apiserver, kubectl120)


def status(apiserver: ApiServer, kind: str, name: str, namespace: str, body: str, context: str = "hub") -> None:
    """What a controller would write; kubectl 1.20 has no --subresource, so 1.32 does it."""
    apiserver.kubectl("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge", "-p", body,
                      context=context)


def test_it_is_really_kubectl_120(old: Old) -> None:
    out = old("version")
    assert 'Client Version: version.Info{Major:"1", Minor:"20"' in out
    assert 'Server Version: version.Info{Major:"1", Minor:"32"' in out


def test_install_the_addon(old: Old, namespace: str) -> None:
    cluster = f"{namespace}-old"
    assert old("create", "ns", cluster).strip() == f"namespace/{cluster} created"
    old("apply", "-f", "-", input=manifests.managed_cluster(cluster))
    out = old("label", "managedcluster", cluster, "addons.open-cluster-management.io/volsync=true")
    assert out.strip() == f"managedcluster.cluster.open-cluster-management.io/{cluster} labeled"
    table = old("get", "mcl", cluster, "--show-labels").splitlines()
    assert table[1].split()[-1] == "addons.open-cluster-management.io/volsync=true"
    selected = old("get", "mcl", "-l", "addons.open-cluster-management.io/volsync in (true)", "-o", "name").split()
    assert f"managedcluster.cluster.open-cluster-management.io/{cluster}" in selected

    mcao = manifests.managed_cluster_addon(cluster)
    prefix = "managedclusteraddon.addon.open-cluster-management.io/volsync"
    assert old("apply", "-f", "-", input=mcao).strip() == f"{prefix} created"
    assert old("apply", "-f", "-", input=mcao).strip() == f"{prefix} unchanged"
    changed = mcao.replace("spec: {}", "spec:\n  installNamespace: volsync-system")
    assert old("apply", "-f", "-", input=changed).strip() == f"{prefix} configured"


def test_destination_address_with_a_template(old: Old, namespace: str) -> None:
    rd = manifests.replication_destination("dest", namespace)
    out = old("apply", "-f", "-", input=rd, context="cluster2")
    assert out.strip() == "replicationdestination.volsync.backube/dest created"
    assert old("apply", "-f", "-", input=rd, context="cluster2").strip() == (
        "replicationdestination.volsync.backube/dest unchanged"
    )
    status(old.apiserver, "replicationdestination", "dest", namespace,
           manifests.status_patch(rsync={"address": "198.51.100.7", "sshKeys": "volsync-rsync-dst-src-dest"}),
           context="cluster2")
    address = old("get", "replicationdestination", "dest", "-n", namespace, "--template={{.status.rsync.address}}",
                  context="cluster2")
    assert address == "198.51.100.7"


def test_secret_copy(old: Old, namespace: str) -> None:
    old("apply", "-f", "-", input=manifests.replication_destination("dest", namespace), context="cluster2")
    uid = old("get", "replicationdestination", "dest", "-n", namespace, "-o", "jsonpath={.metadata.uid}",
              context="cluster2")
    keys = "volsync-rsync-dst-src-dest"
    old("create", "-f", "-", input=manifests.owned_secret(keys, namespace, "ReplicationDestination", "dest", uid),
        context="cluster2")

    secret = yaml.safe_load(old("get", "secret", "-n", namespace, keys, "-o", "yaml", context="cluster2"))
    source_ns = f"{namespace}-src"
    old("create", "ns", source_ns, context="cluster1")
    secret["metadata"]["namespace"] = source_ns
    del secret["metadata"]["ownerReferences"]
    assert old("create", "-f", "-", input=yaml.safe_dump(secret), context="cluster1").strip() == (
        f"secret/{keys} created"
    )
    copy = yaml.safe_load(old("get", "secret", "-n", source_ns, keys, "-o", "yaml", context="cluster1"))
    assert copy["data"] == secret["data"]
    assert "ownerReferences" not in copy["metadata"]


def test_describe_source_with_status_and_events(old: Old, namespace: str) -> None:
    rs = manifests.replication_source("source", namespace, pvc="database", address="198.51.100.7", ssh_keys="keys")
    assert old("create", "-n", namespace, "-f", "-", input=rs, context="cluster1").strip() == (
        "replicationsource.volsync.backube/source created"
    )
    synchronizing = manifests.condition("Synchronizing", "True", "SyncInProgress", "Synchronization in-progress")
    status(old.apiserver, "replicationsource", "source", namespace,
           manifests.status_patch(conditions=[synchronizing], lastSyncTime="2026-01-02T03:00:00Z",
                                  lastSyncDuration="1m2.3s", nextSyncTime="2026-01-02T03:06:00Z"),
           context="cluster1")
    uid = old("get", "replicationsource", "source", "-n", namespace, "-o", "jsonpath={.metadata.uid}",
              context="cluster1")
    involved = {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource", "name": "source",
                "namespace": namespace, "uid": uid}
    old("create", "-f", "-", input=manifests.event("source.1", namespace, involved, "TransferStarted", "Started"),
        context="cluster1")

    described = old("describe", "ReplicationSource", "-n", namespace, "source", context="cluster1")
    for expected in ("Conditions:", "Synchronization in-progress", "Last Sync Duration:      1m2.3s",
                     "Last Sync Time:          2026-01-02T03:00:00Z", "Next Sync Time:          2026-01-02T03:06:00Z"):
        assert expected in described
    events = described.split("Events:", 1)[1]
    assert "TransferStarted" in events
    assert "Started" in events


def test_get_all_namespaces_with_printer_columns(old: Old, namespace: str) -> None:
    old("apply", "-f", "-", input=manifests.managed_cluster_addon(namespace))
    status(old.apiserver, "managedclusteraddon", "volsync", namespace,
           manifests.status_patch(conditions=[manifests.condition("Available"),
                                              manifests.condition("Degraded", "False")]))
    rows = [line.split() for line in old("get", "managedclusteraddons", "-A").splitlines()]
    assert rows[0] == ["NAMESPACE", "NAME", "AVAILABLE", "DEGRADED", "PROGRESSING", "AGE"]
    mine = [row for row in rows if row[0] == namespace]
    assert [row[:4] for row in mine] == [[namespace, "volsync", "True", "False"]]


def test_get_watch(old: Old, namespace: str) -> None:
    with kubectl_stream(old.apiserver, "get", "managedclusteraddons", "-n", namespace, "-w", "--output-watch-events",
                        binary=old.binary) as watch:
        old("apply", "-f", "-", input=manifests.managed_cluster_addon(namespace))
        watch.wait_for(lambda line: line.split()[:2] == ["ADDED", "volsync"], what="ADDED volsync")
        status(old.apiserver, "managedclusteraddon", "volsync", namespace,
               manifests.status_patch(conditions=[manifests.condition("Available")]))
        watch.wait_for(lambda line: line.split()[:3] == ["MODIFIED", "volsync", "True"], what="MODIFIED volsync")
        old("delete", "managedclusteraddon", "volsync", "-n", namespace)
        watch.wait_for(lambda line: line.split()[:2] == ["DELETED", "volsync"], what="DELETED volsync")
    assert [re.split(r"\s+", line.strip()) for line in watch.lines if line.startswith("EVENT")] == [
        ["EVENT", "NAME", "AVAILABLE", "DEGRADED", "PROGRESSING", "AGE"]
    ]


def test_wait_for_condition(old: Old, namespace: str) -> None:
    old("apply", "-f", "-", input=manifests.managed_cluster_addon(namespace))
    with kubectl_stream(old.apiserver, "wait", "--for=condition=Available", "managedclusteraddon/volsync",
                        "-n", namespace, "--timeout=20s", binary=old.binary) as waiting:
        status(old.apiserver, "managedclusteraddon", "volsync", namespace,
               manifests.status_patch(conditions=[manifests.condition("Available")]))
        assert waiting.wait_exit(25) == 0, waiting.errors
    assert waiting.lines == ["managedclusteraddon.addon.open-cluster-management.io/volsync condition met"]


def test_delete_with_finalizers(old: Old, namespace: str) -> None:
    rd = manifests.replication_destination("dest", namespace).replace(
        f"  namespace: {namespace}\n", f"  namespace: {namespace}\n  finalizers: [volsync.backube/cleanup]\n"
    )
    old("apply", "-f", "-", input=rd, context="cluster2")
    out = old("delete", "replicationdestination", "dest", "-n", namespace, "--wait=false", context="cluster2")
    assert out.strip() == 'replicationdestination.volsync.backube "dest" deleted'
    terminating = old("get", "replicationdestination", "dest", "-n", namespace,
                      "-o", "jsonpath={.metadata.deletionTimestamp}", context="cluster2")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", terminating)

    # A waiting delete (1.20 waits with a list+watch on metadata.name) returns once the finalizer is gone.
    with kubectl_stream(old.apiserver, "delete", "replicationdestination", "dest", "-n", namespace, "--timeout=20s",
                        context="cluster2", binary=old.binary) as deleting:
        deleting.wait_for(lambda line: "deleted" in line, what="deleted")
        old("patch", "replicationdestination", "dest", "-n", namespace, "--type=json",
            "-p", '[{"op":"remove","path":"/metadata/finalizers"}]', context="cluster2")
        assert deleting.wait_exit(25) == 0, deleting.errors
    gone = old.run("get", "replicationdestination", "dest", "-n", namespace, context="cluster2")
    assert gone.returncode == 1
    assert 'replicationdestinations.volsync.backube "dest" not found' in gone.stderr


def test_unknown_fields_warn(old: Old, namespace: str) -> None:
    # 1.20 sends no fieldValidation: the server's default (Warn) drops the field and says so.
    rd = manifests.replication_destination("dest", namespace, extra="    bogusField: 1\n")
    res = old.run("apply", "-f", "-", input=rd, context="cluster2")
    assert res.returncode == 0
    assert 'Warning: unknown field "spec.rsync.bogusField"' in res.stderr
    bad = old.run("apply", "-f", "-", context="cluster2",
                  input=manifests.replication_destination("bad", namespace, copy_method="Bogus"))
    assert bad.returncode == 1
    assert 'spec.rsync.copyMethod: Unsupported value: "Bogus"' in bad.stderr
