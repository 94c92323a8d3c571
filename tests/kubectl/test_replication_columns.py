"""What `kubectl get replicationsource/replicationdestination` prints (issue 7, item 6, agent side).

VolSync's printer columns hold date-times as strings (`type: string, format: date-time`): kubectl
prints the time itself. Ours were `date` columns, shown as an age, so a `nextSyncTime` in the
future (every scheduled source) printed `<invalid>`. The values the agent writes are covered in
tests/agent/test_sync_times.py (real agent, real kubectl).
"""

from __future__ import annotations

import re

import pytest
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl


def rows(apiserver: ApiServer, *args: str, context: str) -> list[list[str]]:
    out = apiserver.kubectl("get", *args, context=context).stdout
    assert "<invalid>" not in out, out
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def set_status(apiserver: ApiServer, kind: str, name: str, namespace: str, context: str, **status: object) -> None:
    apiserver.kubectl("patch", kind, name, "-n", namespace, "--subresource=status", "--type=merge",
                      "-p", manifests.status_patch(**status), context=context)


def test_source_columns_print_the_times(apiserver: ApiServer, namespace: str) -> None:
    rs = manifests.replication_source("source", namespace, pvc="database", address="a.example", ssh_keys="keys")
    apiserver.apply_yaml(rs, context="cluster1")
    set_status(apiserver, "replicationsource", "source", namespace, "cluster1",
               lastSyncTime="2026-01-02T03:00:00Z", lastSyncDuration="1.234567s",
               nextSyncTime="2999-01-01T00:00:00Z")  # in the future, as every scheduled source's is
    header, row = rows(apiserver, "replicationsources", "-n", namespace, context="cluster1")
    assert header == ["NAME", "SOURCE", "LAST SYNC", "DURATION", "NEXT SYNC"]
    assert row == ["source", "database", "2026-01-02T03:00:00Z", "1.234567s", "2999-01-01T00:00:00Z"]


def test_destination_columns_print_the_times(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    set_status(apiserver, "replicationdestination", "dest", namespace, "cluster2",
               lastSyncTime="2026-01-02T03:00:00Z", lastSyncDuration="250ms", nextSyncTime="2999-01-01T00:00:00Z")
    header, row = rows(apiserver, "replicationdestinations", "-n", namespace, context="cluster2")
    assert header == ["NAME", "LAST SYNC", "DURATION", "NEXT SYNC"]
    assert row == ["dest", "2026-01-02T03:00:00Z", "250ms", "2999-01-01T00:00:00Z"]
