"""The agent under exactly the rendered RBAC (issue 9, deliverable 3).

The `fleet` agents run with a token of the rendered `volsync-agent` ServiceAccount (see
`support/agents.py`), so every e2e test here runs under that ClusterRole. This module shows:
- a rule the agent needs, removed by an admin (`kubectl patch clusterrole`), surfaces as the
  replication's `Synchronizing=False/Error` condition whose message is the API server's 403
  naming the denied request; the agent process stays up (same pid, never restarted); restoring
  the rule lets the replication proceed to a finished sync;
- cluster1's agent token is 401 on cluster2 and on the hub cluster, and 403 on cluster1 for what
  its role does not grant (nodes, pods/exec), while what it grants answers 200;
- an agent started without a list rule it needs exits 1 with the API server's 403 message (as a
  Deployment's Pod, the kubelet restarts it with back-off), never a silent wait or a traceback.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes.client.exceptions import ApiException
from support.agents import Fleet
from support.apiserver import ROOT, kubectl_binary
from support.seed import copy_secret, create_pvc, create_source, restore, status
from support.trees import assert_trees_equal, make_sample_tree
from support.waiting import eventually

from agent.reconciling import forbidden_message
from apiserver.authn import kubeconfig, write_kubeconfig
from hub import ocm, rendering

pytestmark = pytest.mark.timeout(300)

AGENT_USER = f"system:serviceaccount:{ocm.DEFAULT_INSTALL_NAMESPACE}:{ocm.AGENT}"
RD_YAML = """\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata: {{name: {name}, namespace: dest}}
spec:
  rsync: {{serviceType: LoadBalancer, copyMethod: Snapshot, capacity: 1Gi, accessModes: [ReadWriteOnce]}}
"""


def _services_rule(fleet: Fleet, cluster: str) -> tuple[int, list[str]]:
    """(index, verbs) of the rule of the agent's ClusterRole that grants core `services`."""
    role = fleet.get("clusterrole", ocm.AGENT, context=cluster)
    for i, rule in enumerate(role["rules"]):
        if rule.get("apiGroups") == [""] and rule.get("resources") == ["services"]:
            return i, list(rule["verbs"])
    raise AssertionError(f"no services rule in {role['rules']}")


def _set_verbs(fleet: Fleet, cluster: str, index: int, verbs: list[str]) -> None:
    patch = [{"op": "replace", "path": f"/rules/{index}/verbs", "value": verbs}]
    fleet.kubectl("patch", "clusterrole", ocm.AGENT, "--type", "json", "-p", json.dumps(patch), context=cluster)


def _synchronizing(fleet: Fleet, name: str) -> dict[str, Any]:
    conditions = status(fleet, "replicationdestination", name, "dest", "cluster2").get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Synchronizing"), {})


def test_a_removed_rule_is_an_error_condition_naming_the_denied_request(fleet: Fleet) -> None:
    agent = fleet.agents["cluster2"]
    assert agent.proc is not None
    pid = agent.proc.pid
    index, verbs = _services_rule(fleet, "cluster2")
    assert "create" in verbs
    _set_verbs(fleet, "cluster2", index, [v for v in verbs if v != "create"])
    restored = False
    try:
        fleet.kubectl("create", "-f", "-", context="cluster2", input=RD_YAML.format(name="rd-denied"))
        cond = eventually(lambda: (c := _synchronizing(fleet, "rd-denied")).get("reason") == "Error" and c, 60,
                          0.2, what="rd-denied Synchronizing=False/Error")
        assert isinstance(cond, dict) and cond["status"] == "False"
        message = cond["message"]
        assert message.startswith("services is forbidden: "), message
        assert f'User "{AGENT_USER}" cannot create resource "services" in API group "" in the namespace "dest"' \
            in message, message
        described = fleet.kubectl("describe", "replicationdestination", "rd-denied", "-n", "dest",
                                  context="cluster2").stdout
        assert "cannot create resource" in described
        assert agent.proc is not None and agent.proc.poll() is None and agent.proc.pid == pid  # no crash loop
        assert "Traceback" not in agent.log_tail(20000)

        _set_verbs(fleet, "cluster2", index, verbs)
        restored = True
        address = eventually(lambda: status(fleet, "replicationdestination", "rd-denied", "dest", "cluster2")
                             .get("rsync", {}).get("address"), 120, 0.2, what="rd-denied address, the rule back")
        keys = status(fleet, "replicationdestination", "rd-denied", "dest", "cluster2")["rsync"]["sshKeys"]
        assert _synchronizing(fleet, "rd-denied").get("reason") != "Error"
    finally:
        if not restored:
            _set_verbs(fleet, "cluster2", index, verbs)
    source_dir = create_pvc(fleet, "data-denied", "src", "cluster1")
    make_sample_tree(source_dir, large_size=1 << 20)
    copy_secret(fleet, keys)
    create_source(fleet, "rs-denied", "data-denied", address, keys, "manual: once")
    eventually(lambda: status(fleet, "replicationsource", "rs-denied", "src", "cluster1").get("lastManualSync")
               == "once", 120, 0.2, what="the sync after the rule was restored")
    image = eventually(lambda: status(fleet, "replicationdestination", "rd-denied", "dest", "cluster2")
                       .get("latestImage", {}).get("name"), 60, 0.2, what="latestImage")
    assert agent.proc is not None and agent.proc.poll() is None and agent.proc.pid == pid
    assert_trees_equal(source_dir, restore(fleet, image, "restored-denied"))


def _tuples(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule.get("apiGroups") or [] for r in rule.get("resources") or []
            for v in rule.get("verbs") or []}


def _agent_token(fleet: Fleet, cluster: str) -> str:
    config = yaml.safe_load(fleet.agents[cluster].kubeconfig.read_text())
    assert [c["name"] for c in config["clusters"]] == [cluster]
    token: str = config["users"][0]["user"]["token"]
    return token


def test_an_agent_token_is_good_on_its_own_cluster_only_and_only_for_its_rules(fleet: Fleet) -> None:
    token = _agent_token(fleet, "cluster1")
    server = fleet.server
    verify = ssl.create_default_context(cafile=str(server.ca_file))
    with httpx.Client(trust_env=False, verify=verify, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        for cluster in ("cluster2", "hub"):
            for path in ("/api/v1/persistentvolumes", "/api/v1/namespaces/dest/services"):
                got = http.get(f"{server.cluster_url(cluster)}{path}")
                assert got.status_code == 401, f"cluster1's agent token on {cluster}{path}: {got.status_code}"
        base = server.cluster_url("cluster1")
        assert http.get(f"{base}/apis/batch/v1/jobs").status_code == 200
        assert http.get(f"{base}/apis/volsync.backube/v1alpha1/replicationsources").status_code == 200
        volumes = http.get(f"{base}/api/v1/persistentvolumes")  # the cluster's storage is not the agent's business
        assert volumes.status_code == 403, volumes.text
        nodes = http.get(f"{base}/api/v1/nodes")
        assert nodes.status_code == 403, nodes.text
        assert nodes.json()["message"] == (f'nodes is forbidden: User "{AGENT_USER}" cannot list resource "nodes" '
                                           'in API group "" at the cluster scope')
        for method, path in (("GET", "/api/v1/namespaces/kube-system/configmaps"),
                             ("DELETE", "/api/v1/namespaces/src/secrets/anything"),
                             ("POST", "/api/v1/namespaces/src/pods/anything/exec?command=true")):
            got = http.request(method, f"{base}{path}")
            assert got.status_code == 403, f"{method} {path}: {got.status_code} {got.text}"
        # what it holds in a namespace is the rendered rules plus the defaults every user gets, nothing else
        review = http.post(f"{base}/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                           json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                                 "spec": {"namespace": "src"}})
        assert review.status_code == 201, review.text
        held = _tuples(review.json()["status"]["resourceRules"])
        defaults = {g for g, _, _ in held - _tuples(rendering.RULES)}
        assert _tuples(rendering.RULES) <= held
        assert defaults <= {"authorization.k8s.io", "authentication.k8s.io"}, held - _tuples(rendering.RULES)
    # kubectl with the agent's own kubeconfig: a real client gets the same answers
    for args, answer in ((("list", "nodes"), "no"), (("create", "services", "-n", "dest"), "yes"),
                         (("get", "secrets", "-n", "kube-system"), "yes"), (("delete", "secrets", "-n", "src"), "no"),
                         (("create", "pods/exec", "-n", "src"), "no")):
        res = subprocess.run([kubectl_binary(), "--kubeconfig", str(fleet.agents["cluster1"].kubeconfig),
                              "--context", "cluster1", "auth", "can-i", *args], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "HOME": str(server.data_dir)})
        assert res.stdout.strip() == answer, f"can-i {args}: {res.stdout} {res.stderr}"


def test_the_condition_message_is_the_status_message_of_the_403() -> None:
    body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
                       "message": 'services is forbidden: User "u" cannot create resource "services"'})
    assert forbidden_message(ApiException(status=403, reason="Forbidden")) == "forbidden: Forbidden"
    denied = ApiException(status=403, reason="Forbidden")
    denied.body = body
    assert forbidden_message(denied) == 'services is forbidden: User "u" cannot create resource "services"'
    denied.body = "not json"
    assert forbidden_message(denied) == "forbidden: Forbidden"


NO_LIST = "volsync-agent-nolist"


def _without_services_list() -> str:
    """A ServiceAccount in cluster1's `src` bound to the rendered rules minus `list` on services."""
    rules = [dict(r, verbs=[v for v in r["verbs"] if not (r["resources"] == ["services"] and v == "list")])
             for r in rendering.RULES]
    meta = {"name": NO_LIST}
    return yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {**meta, "namespace": "src"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NO_LIST},
         "subjects": [{"kind": "ServiceAccount", "name": NO_LIST, "namespace": "src"}]},
    ])


def test_an_agent_started_without_a_list_rule_exits_naming_the_denied_list(fleet: Fleet, tmp_path: Path) -> None:
    server = fleet.server
    server.apply_yaml(_without_services_list(), context="cluster1")
    try:
        token = fleet.kubectl("create", "token", NO_LIST, "-n", "src", context="cluster1").stdout.strip()
        config = tmp_path / "kubeconfig"
        write_kubeconfig(config, kubeconfig(server.url, ["cluster1"], {"cluster1": token}, server.ca_file.read_bytes(),
                                            user=NO_LIST))
        res = subprocess.run([sys.executable, "-m", "agent.main", "--kubeconfig", str(config), "--context",
                              "cluster1", "--cluster-name", "probe"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            fleet.kubectl("delete", kind, NO_LIST, "--ignore-not-found", context="cluster1")
        fleet.kubectl("delete", "serviceaccount", NO_LIST, "-n", "src", "--ignore-not-found", context="cluster1")
    assert res.returncode == 1, res.stderr[-4000:]
    user = f"system:serviceaccount:src:{NO_LIST}"
    assert f'User "{user}" cannot list resource "services" in API group "" at the cluster scope' in res.stderr, \
        res.stderr[-4000:]
    assert "Traceback" not in res.stderr
