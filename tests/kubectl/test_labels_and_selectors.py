"""`kubectl label` and label selectors on `kubectl get`, on cluster-scoped ManagedClusters.

ManagedClusters are shared by every test of the session, so each test's clusters carry a `run`
label unique to the test and every selector is ANDed with it.
"""

from __future__ import annotations

import uuid

import pytest
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl

VOLSYNC_LABEL = "addons.open-cluster-management.io/volsync"


def names(apiserver: ApiServer, selector: str) -> set[str]:
    out = apiserver.kubectl("get", "mcl", "-l", selector, "-o", "name").stdout.split()
    return {n.removeprefix("managedcluster.cluster.open-cluster-management.io/") for n in out}


def test_label_managed_cluster_and_show_labels(apiserver: ApiServer, namespace: str) -> None:
    cluster = namespace
    apiserver.apply_yaml(manifests.managed_cluster(cluster))
    out = apiserver.kubectl("label", "managedcluster", cluster, f"{VOLSYNC_LABEL}=true").stdout
    assert out.strip() == f"managedcluster.cluster.open-cluster-management.io/{cluster} labeled"

    table = apiserver.kubectl("get", "mcl", cluster, "--show-labels").stdout.splitlines()
    assert table[0].split()[-1] == "LABELS"
    assert table[1].split()[-1] == f"{VOLSYNC_LABEL}=true"
    assert apiserver.get("mcl", cluster)["metadata"]["labels"] == {VOLSYNC_LABEL: "true"}

    # Changing a label needs --overwrite; `key-` removes it.
    refused = apiserver.kubectl("label", "mcl", cluster, f"{VOLSYNC_LABEL}=false", check=False)
    assert refused.returncode != 0
    assert f"'{VOLSYNC_LABEL}' already has a value (true)" in refused.stderr
    apiserver.kubectl("label", "mcl", cluster, f"{VOLSYNC_LABEL}=false", "--overwrite")
    assert apiserver.get("mcl", cluster)["metadata"]["labels"] == {VOLSYNC_LABEL: "false"}
    out = apiserver.kubectl("label", "mcl", cluster, f"{VOLSYNC_LABEL}-").stdout
    assert out.strip() == f"managedcluster.cluster.open-cluster-management.io/{cluster} unlabeled"
    assert "labels" not in apiserver.get("mcl", cluster)["metadata"]


def test_label_does_not_change_generation(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.managed_cluster(namespace))
    apiserver.kubectl("label", "mcl", namespace, "tier=gold")
    meta = apiserver.get("mcl", namespace)["metadata"]
    assert meta["labels"] == {"tier": "gold"}
    assert meta["generation"] == 1


@pytest.fixture(scope="module")
def run(apiserver: ApiServer) -> str:
    """Three clusters `<run>-a` (env=prod), `<run>-b` (env=dev) and `<run>-c` (no env), labelled run=<run>."""
    run = f"selectors-{uuid.uuid4().hex[:8]}"
    for suffix, env in (("a", "prod"), ("b", "dev"), ("c", None)):
        name = f"{run}-{suffix}"
        apiserver.apply_yaml(manifests.managed_cluster(name))
        apiserver.kubectl("label", "mcl", name, f"run={run}", *([f"env={env}"] if env else []))
    return run


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env=prod", {"a"}),
        ("env==prod", {"a"}),
        ("env!=prod", {"b", "c"}),
        ("env in (prod,dev)", {"a", "b"}),
        ("env notin (prod)", {"b", "c"}),
        ("env", {"a", "b"}),
        ("!env", {"c"}),
        ("env=staging", set()),
    ],
)
def test_get_with_label_selectors(apiserver: ApiServer, run: str, selector: str, expected: set[str]) -> None:
    assert names(apiserver, f"run={run}") == {f"{run}-a", f"{run}-b", f"{run}-c"}
    assert names(apiserver, f"run={run},{selector}") == {f"{run}-{s}" for s in expected}


def test_selector_on_a_table_get(apiserver: ApiServer, run: str) -> None:
    table = apiserver.kubectl("get", "mcl", "-l", f"run={run},env in (prod)", "-L", "env").stdout.splitlines()
    assert table[0].split()[-1] == "ENV"
    assert [row.split()[0] for row in table[1:]] == [f"{run}-a"]
    assert table[1].split()[-1] == "prod"


def test_invalid_selector_is_refused(apiserver: ApiServer) -> None:
    res = apiserver.kubectl("get", "mcl", "-l", "env in prod", check=False)
    assert res.returncode != 0
    assert res.stderr.startswith("Error from server (BadRequest)")
    assert "unable to parse requirement: found 'prod', expected: '('" in res.stderr
