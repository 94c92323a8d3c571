"""`kubectl get -w` and `kubectl wait`: long-running commands fed by the server's watch streams.

Each command runs in the background (Popen, same flags as every other kubectl call); the test
makes changes with other kubectl calls and reads the command's output until the expected lines
arrive or a deadline passes. Nothing sleeps.
"""

from __future__ import annotations

import json
import re

import pytest
from support import manifests
from support.apiserver import ApiServer
from support.waiting import kubectl_stream

pytestmark = pytest.mark.kubectl

AVAILABLE = manifests.status_patch(conditions=[manifests.condition("Available")])


def cells(line: str) -> list[str]:
    return re.split(r"\s+", line.strip())


def test_get_watch_prints_added_modified_deleted(apiserver: ApiServer, namespace: str) -> None:
    with kubectl_stream(apiserver, "get", "managedclusteraddons", "-n", namespace, "-w",
                        "--output-watch-events") as watch:
        apiserver.apply_yaml(manifests.managed_cluster_addon(namespace))
        watch.wait_for(lambda line: cells(line)[:2] == ["ADDED", "volsync"], what="ADDED volsync")
        apiserver.kubectl("patch", "mca", "volsync", "-n", namespace, "--subresource=status", "--type=merge",
                          "-p", AVAILABLE)
        modified = watch.wait_for(lambda line: cells(line)[0] == "MODIFIED", what="MODIFIED")
        assert cells(modified)[1:3] == ["volsync", "True"]
        apiserver.kubectl("delete", "mca", "volsync", "-n", namespace)
        watch.wait_for(lambda line: cells(line)[:3] == ["DELETED", "volsync", "True"], what="DELETED volsync")
    header = ["EVENT", "NAME", "AVAILABLE", "DEGRADED", "PROGRESSING", "AGE"]
    assert [cells(line) for line in watch.lines if line.startswith("EVENT")] == [header]
    assert cells(watch.lines[0]) == header


def test_get_watch_on_a_table_crd_prints_the_header_once(apiserver: ApiServer, namespace: str) -> None:
    rs = manifests.replication_source("source", namespace, pvc="database", address="a.example", ssh_keys="keys")
    apiserver.apply_yaml(rs, context="cluster1")
    with kubectl_stream(apiserver, "get", "replicationsources", "-n", namespace, "-w", context="cluster1") as watch:
        watch.wait_for(lambda line: cells(line)[:2] == ["source", "database"], what="the initial row")
        for i in range(3):
            apiserver.kubectl("patch", "replicationsource", "source", "-n", namespace, "--subresource=status",
                              "--type=merge", "-p", manifests.status_patch(lastSyncDuration=f"{i}m1s"),
                              context="cluster1")
            watch.wait_for(lambda line, i=i: f"{i}m1s" in line, what=f"duration {i}m1s")
    assert cells(watch.lines[0]) == ["NAME", "SOURCE", "LAST", "SYNC", "DURATION", "NEXT", "SYNC"]
    assert sum(1 for line in watch.lines if line.startswith("NAME")) == 1
    assert len(watch.lines) == 5  # header, the initial row, three updates


def test_get_watch_on_a_builtin_kind(apiserver: ApiServer, namespace: str) -> None:
    with kubectl_stream(apiserver, "get", "secrets", "-n", namespace, "-w", "--output-watch-events") as watch:
        apiserver.kubectl("create", "secret", "generic", "s1", "-n", namespace, "--from-literal=k=v")
        added = watch.wait_for(lambda line: line.startswith("ADDED"), what="ADDED")
        assert cells(added)[:4] == ["ADDED", "s1", "Opaque", "1"]
        apiserver.kubectl("delete", "secret", "s1", "-n", namespace)
        watch.wait_for(lambda line: cells(line)[:2] == ["DELETED", "s1"], what="DELETED s1")
    assert cells(watch.lines[0]) == ["EVENT", "NAME", "TYPE", "DATA", "AGE"]


def test_get_watch_with_a_selector_sees_objects_enter_and_leave(apiserver: ApiServer, namespace: str) -> None:
    run = namespace[-40:].strip("-")
    with kubectl_stream(apiserver, "get", "mcl", "-l", f"run={run},env=prod", "-w", "--output-watch-events") as watch:
        apiserver.apply_yaml(manifests.managed_cluster(namespace))
        apiserver.kubectl("label", "mcl", namespace, f"run={run}", "env=prod")
        watch.wait_for(lambda line: cells(line)[:2] == ["ADDED", namespace], what="ADDED when it starts to match")
        apiserver.kubectl("label", "mcl", namespace, "env=dev", "--overwrite")
        watch.wait_for(lambda line: cells(line)[:2] == ["DELETED", namespace], what="DELETED when it stops matching")
    assert [cells(line)[0] for line in watch.lines] == ["EVENT", "ADDED", "DELETED"]
    apiserver.kubectl("get", "mcl", namespace)  # only out of the selection, not gone


def test_wait_for_a_condition_set_later(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.managed_cluster_addon(namespace))
    early = apiserver.kubectl("wait", "--for=condition=Available", "managedclusteraddon/volsync", "-n", namespace,
                              "--timeout=1s", check=False)
    assert early.returncode == 1
    assert "timed out waiting for the condition" in early.stderr

    with kubectl_stream(apiserver, "wait", "--for=condition=Available", "managedclusteraddon/volsync",
                        "-n", namespace, "--timeout=20s") as waiting:
        apiserver.kubectl("patch", "managedclusteraddon", "volsync", "-n", namespace, "--subresource=status",
                          "--type=merge", "-p", AVAILABLE)
        assert waiting.wait_exit(25) == 0, waiting.errors
    assert waiting.lines == ["managedclusteraddon.addon.open-cluster-management.io/volsync condition met"]


def test_wait_for_a_condition_already_met(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.managed_cluster_addon(namespace))
    apiserver.kubectl("patch", "mca", "volsync", "-n", namespace, "--subresource=status", "--type=merge",
                      "-p", AVAILABLE)
    out = apiserver.kubectl("wait", "--for=condition=Available", "mca/volsync", "-n", namespace, "--timeout=10s")
    assert out.stdout.strip() == "managedclusteraddon.addon.open-cluster-management.io/volsync condition met"
    false = apiserver.kubectl("wait", "--for=condition=Available=false", "mca/volsync", "-n", namespace,
                              "--timeout=1s", check=False)
    assert false.returncode == 1


def test_wait_for_a_jsonpath_value(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    with kubectl_stream(apiserver, "wait", "--for=jsonpath={.status.rsync.address}=198.51.100.7",
                        "replicationdestination/dest", "-n", namespace, "--timeout=20s", context="cluster2") as waiting:
        apiserver.kubectl("patch", "replicationdestination", "dest", "-n", namespace, "--subresource=status",
                          "--type=merge", "-p", manifests.status_patch(rsync={"address": "198.51.100.7"}),
                          context="cluster2")
        assert waiting.wait_exit(25) == 0, waiting.errors
    assert waiting.lines == ["replicationdestination.volsync.backube/dest condition met"]


def test_wait_for_delete_of_an_object_held_by_a_finalizer(apiserver: ApiServer, namespace: str) -> None:
    held = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": namespace, "finalizers": ["example.com/hold"]}}
    apiserver.kubectl("create", "-f", "-", input=json.dumps(held))
    apiserver.kubectl("delete", "configmap", "held", "-n", namespace, "--wait=false")
    still = apiserver.kubectl("wait", "--for=delete", "configmap/held", "-n", namespace, "--timeout=1s", check=False)
    assert still.returncode == 1

    with kubectl_stream(apiserver, "wait", "--for=delete", "configmap/held", "-n", namespace,
                        "--timeout=20s", "-v=6") as waiting:
        waiting.wait_for_stderr("watch=true")  # kubectl is watching: the deletion cannot slip past it
        apiserver.kubectl("patch", "configmap", "held", "-n", namespace, "--type=json",
                          "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        assert waiting.wait_exit(25) == 0, waiting.errors
    assert waiting.lines == ["configmap/held condition met"]
