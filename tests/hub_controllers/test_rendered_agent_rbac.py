"""The rendered agent RBAC on a real embedded cluster (RBAC authorization, as in issue 9), judged by
the real kubectl: `auth can-i --as=<the agent's ServiceAccount>` for every right the Jobs-based agent
needs and for rights it must not hold, and, with a token of that ServiceAccount, the per-mover
ServiceAccount + empty Role + RoleBinding the agent makes (the escalation check passes without
`bind`) while a RoleBinding to `cluster-admin` or a Role with rules the agent lacks is refused (403).
One server for the module."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import yaml
from support.agents import agent_rbac
from support.apiserver import ApiServer

from hub import ocm, rendering

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

CLUSTER = "cluster1"
USER_NS = "apps"  # a user's namespace, where replications and their movers live
AGENT = f"system:serviceaccount:{rendering.install_namespace(None)}:{ocm.AGENT}"
VOLSYNC = "volsync.backube"
SNAPSHOTS = "volumesnapshots.snapshot.storage.k8s.io"
RBAC = "rbac.authorization.k8s.io"

# (verb, resource[, subresource]) the agent must be allowed in a user namespace
ALLOWED: list[tuple[str, ...]] = [
    *[(v, f"{r}.{VOLSYNC}") for r in ("replicationsources", "replicationdestinations") for v in ("list", "watch")],
    ("patch", f"replicationsources.{VOLSYNC}", "status"), ("patch", f"replicationdestinations.{VOLSYNC}", "status"),
    ("update", f"replicationsources.{VOLSYNC}", "finalizers"),
    ("update", f"replicationdestinations.{VOLSYNC}", "finalizers"),
    *[(v, "persistentvolumeclaims") for v in ("list", "watch", "create", "patch", "delete")],
    *[(v, SNAPSHOTS) for v in ("list", "watch", "create", "patch", "delete")],
    *[(v, "jobs.batch") for v in ("list", "watch", "create", "delete")],
    ("list", "pods"), ("watch", "pods"), ("get", "pods", "log"),
    *[(v, "services") for v in ("list", "watch", "create", "patch", "delete")],
    *[(v, "secrets") for v in ("get", "list", "watch", "create")],
    ("create", "serviceaccounts"), ("create", f"roles.{RBAC}"), ("create", f"rolebindings.{RBAC}"),
    *[(v, "events") for v in ("get", "create", "patch")],
]
# rights a least-privilege agent must not hold
DENIED: list[tuple[str, ...]] = [
    ("create", "pods"), ("delete", "pods"), ("create", "pods", "exec"), ("get", "pods"),
    ("get", "nodes"), ("list", "persistentvolumes"), ("get", "persistentvolumes"),
    ("delete", "secrets"), ("update", "secrets"), ("patch", "secrets"),
    ("patch", "jobs.batch"), ("update", "jobs.batch"), ("get", "jobs.batch"),
    ("patch", "services", "status"), ("get", "services"), ("update", "services"), ("get", "serviceaccounts"),
    ("update", f"replicationsources.{VOLSYNC}"), ("patch", f"replicationdestinations.{VOLSYNC}"),
    ("create", f"replicationsources.{VOLSYNC}"), ("update", "persistentvolumeclaims"),
    ("create", f"clusterroles.{RBAC}"), ("create", f"clusterrolebindings.{RBAC}"),
    ("delete", f"rolebindings.{RBAC}"), ("bind", f"roles.{RBAC}"), ("escalate", f"roles.{RBAC}"),
    ("delete", "serviceaccounts"), ("create", "serviceaccounts", "token"), ("get", "configmaps"),
    ("create", "deployments.apps"), ("list", "namespaces"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    api = ApiServer(tmp_path_factory.mktemp("agent-rbac"), clusters=(CLUSTER,), auth=True).start()
    try:
        api.apply_yaml(yaml.safe_dump_all(agent_rbac(CLUSTER)), context=CLUSTER)
        api.kubectl("create", "namespace", USER_NS, context=CLUSTER)
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def token(server: ApiServer) -> str:
    """A token of the rendered ServiceAccount (`kubectl create token`), as the agent's Pod would mount."""
    namespace = rendering.install_namespace(None)
    return server.kubectl("create", "token", ocm.AGENT, "-n", namespace, context=CLUSTER).stdout.strip()


def can_i(server: ApiServer, check: tuple[str, ...]) -> str:
    """`kubectl auth can-i VERB RESOURCE [--subresource S] -n apps --as <agent>`: "yes", "no" or the error."""
    verb, resource, *sub = check
    extra = ["--subresource", sub[0]] if sub else []
    res = server.kubectl("auth", "can-i", verb, resource, *extra, "-n", USER_NS, "--as", AGENT,
                         context=CLUSTER, check=False)
    answer = res.stdout.strip().splitlines()[0] if res.stdout.strip() else ""
    if (answer, res.returncode) not in (("yes", 0), ("no", 1)):
        return f"ERROR rc={res.returncode} {res.stdout} {res.stderr}"
    return answer


def answers(server: ApiServer, checks: list[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    with ThreadPoolExecutor(max_workers=4) as pool:  # one kubectl process per question
        return dict(zip(checks, pool.map(lambda c: can_i(server, c), checks), strict=True))


def test_the_agent_may_do_what_a_jobs_based_agent_does(server: ApiServer) -> None:
    got = answers(server, ALLOWED)
    assert {c: a for c, a in got.items() if a != "yes"} == {}


def test_the_agent_may_not_do_more(server: ApiServer) -> None:
    got = answers(server, DENIED)
    assert {c: a for c, a in got.items() if a != "no"} == {}


def test_replications_are_watched_in_every_namespace(server: ApiServer) -> None:
    for resource in (f"replicationsources.{VOLSYNC}", f"replicationdestinations.{VOLSYNC}", "jobs.batch",
                     "secrets", "pods"):
        res = server.kubectl("auth", "can-i", "watch", resource, "--all-namespaces", "--as", AGENT,
                             context=CLUSTER, check=False)
        assert res.stdout.strip() == "yes", (resource, res.stdout, res.stderr)


def _as_agent(server: ApiServer, token: str, manifest: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`kubectl create -f -` with the agent's own token (no impersonation: the request is the agent's)."""
    return server.kubectl("--token", token, "create", "-f", "-", context=CLUSTER, input=json.dumps(manifest),
                          check=False)


def _binding(name: str, kind: str, role: str) -> dict[str, Any]:
    return {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": name, "namespace": USER_NS},
            "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": USER_NS}]}


def test_the_agent_binds_an_empty_mover_role_but_cannot_escalate(server: ApiServer, token: str) -> None:
    name = "volsync-dst-rd-a"  # agent.jobs.account_name("destination", "rd-a")
    made: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": USER_NS},
         "automountServiceAccountToken": False},
        {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": name, "namespace": USER_NS}, "rules": []},
        _binding(name, "Role", name),
    ]
    for manifest in made:
        res = _as_agent(server, token, manifest)
        assert res.returncode == 0, (manifest["kind"], res.stderr)
    bound = server.get("rolebinding", name, "-n", USER_NS, context=CLUSTER)
    assert bound["roleRef"]["name"] == name and bound["subjects"][0]["name"] == name

    admin = _as_agent(server, token, _binding("volsync-admin", "ClusterRole", "cluster-admin"))
    assert admin.returncode == 1 and "Forbidden" in admin.stderr, admin.stderr
    assert "is attempting to grant RBAC permissions not currently held" in admin.stderr, admin.stderr
    powerful = {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "exec", "namespace": USER_NS},
                "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]}
    refused = _as_agent(server, token, powerful)
    assert refused.returncode == 1 and "Forbidden" in refused.stderr, refused.stderr
    for kind, object_name in (("rolebinding", "volsync-admin"), ("role", "exec")):
        missing = server.kubectl("get", kind, object_name, "-n", USER_NS, context=CLUSTER, check=False)
        assert missing.returncode == 1 and "NotFound" in missing.stderr, missing.stderr


def test_the_rendered_objects_are_the_ones_applied(server: ApiServer) -> None:
    role = server.get("clusterrole", ocm.AGENT, context=CLUSTER)
    assert role["rules"] == rendering.RULES
    binding = server.get("clusterrolebinding", ocm.AGENT, context=CLUSTER)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ocm.AGENT,
                                    "namespace": rendering.install_namespace(None)}]
