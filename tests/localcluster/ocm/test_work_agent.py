"""The work agent in-process against the session's API server: hub context `hub`, managed cluster
`cluster1`, the test's namespace as the cluster namespace. No workload controllers run here, so a
Deployment's status is written by the test through `/status`, as the Deployment controller would.

Covers applying and status, feedback (WellKnownStatus, JSONPaths, an invalid path), each update
strategy, a manifest dropped from the work, each delete option, an invalid manifest and a missing
namespace, a work deleted while the agent was away, and a hub that goes away and comes back (the
agent reaches the hub through a `socat` relay the test stops and starts again)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from support.apiserver import ApiServer
from support.waiting import eventually

from kube import clients
from kube.controller import Runtime
from kube.objects import condition
from kube.rest import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, Kube, Obj
from localcluster.ocm import workagent, workplan
from localcluster.ocm.klusterlet import Klusterlet
from localcluster.ocm.resources import APPLIED_MANIFEST_WORKS, MANIFEST_WORKS, WORK_FINALIZER
from localcluster.ocm.workagent import WorkAgent
from localcluster.ocm.workapply import Discovery

TIMEOUT = 15.0


@dataclass
class Env:
    hub: Kube  # the test's own client of the hub (writes works, reads their status)
    spoke: Kube
    ns: str
    agent: WorkAgent

    def work(self, name: str, manifests: list[Obj], **spec: Any) -> Obj:
        body = {"metadata": {"name": name, "namespace": self.ns},
                "spec": {"workload": {"manifests": manifests}, **spec}}
        return self.hub.create(MANIFEST_WORKS, body)

    def status(self, name: str) -> Obj:
        return (self.hub.get(MANIFEST_WORKS, name, self.ns) or {}).get("status") or {}

    def cond(self, name: str, type_: str) -> str:
        return str((condition(self.status(name).get("conditions"), type_) or {}).get("status") or "")

    def manifest(self, name: str, ordinal: int) -> Obj:
        entries = (self.status(name).get("resourceStatus") or {}).get("manifests") or []
        return next((e for e in entries if e["resourceMeta"]["ordinal"] == ordinal), {})

    def applied(self, work: str) -> Obj | None:
        return self.spoke.get(APPLIED_MANIFEST_WORKS, self.agent.applied_name(work))


def configmap(ns: str, name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def deployment(ns: str, name: str, replicas: int = 2) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def values(entry: Obj) -> dict[str, Any]:
    out = {}
    for value in (entry.get("statusFeedback") or {}).get("values") or []:
        field = value["fieldValue"]
        out[value["name"]] = field[field["type"][0].lower() + field["type"][1:]]
    return out


def _start(hub_client: kubernetes.client.ApiClient, spoke: Kube, ns: str,
           sync: float = 30.0) -> tuple[WorkAgent, Runtime]:
    runtime = Runtime(spoke, namespace=ns)
    agent = WorkAgent(Kube(hub_client, field_manager="work-agent"), Kube(spoke.api, field_manager="work-agent"),
                      ns, spoke_runtime=runtime, status_sync_seconds=sync)
    runtime.start()
    agent.start()
    return agent, runtime


@pytest.fixture
def env(apiserver: ApiServer, namespace: str) -> Iterator[Env]:
    hub_client, spoke_client = apiserver.api_client("hub"), apiserver.api_client("cluster1")
    spoke = Kube(spoke_client, field_manager="work-test")
    agent, runtime = _start(hub_client, spoke, namespace)
    try:
        yield Env(Kube(hub_client, field_manager="work-test"), spoke, namespace, agent)
    finally:
        agent.stop()
        runtime.stop()
        clients.close(hub_client)
        clients.close(spoke_client)


def test_applies_the_manifests_and_reports_status_and_feedback(env: Env) -> None:
    rules = [{"type": "WellKnownStatus"}, {"type": "JSONPaths", "jsonPaths": [
        {"name": "available", "path": '.status.conditions[?(@.type=="Available")].status'},
        {"name": "generation", "path": ".metadata.generation"},
        {"name": "broken", "path": ".status.conditions[?(@.type=="}]}]
    env.work("w-apply", [configmap(env.ns, "cm1", a="1"), deployment(env.ns, "web")], manifestConfigs=[
        {"resourceIdentifier": {"group": "apps", "resource": "deployments", "name": "web", "namespace": env.ns},
         "feedbackRules": rules}])
    eventually(lambda: env.cond("w-apply", "Applied") == "True", TIMEOUT, what="work applied")
    work = env.hub.get(MANIFEST_WORKS, "w-apply", env.ns) or {}
    assert WORK_FINALIZER in work["metadata"]["finalizers"]
    assert (env.spoke.get(CONFIGMAPS, "cm1", env.ns) or {})["data"] == {"a": "1"}
    assert env.cond("w-apply", "Available") == "True"
    applied = condition(work["status"]["conditions"], "Applied") or {}
    assert applied["reason"] == "AppliedManifestWorkComplete"
    assert applied["observedGeneration"] == work["metadata"]["generation"]
    meta = env.manifest("w-apply", 1)["resourceMeta"]
    assert meta == {"ordinal": 1, "group": "apps", "version": "v1", "kind": "Deployment",
                    "resource": "deployments", "name": "web", "namespace": env.ns}
    amw = env.applied("w-apply") or {}
    assert amw["spec"] == {"hubHash": env.agent.hub_hash, "manifestWorkName": "w-apply", "agentID": env.ns}
    assert {r["resource"] for r in amw["status"]["appliedResources"]} == {"configmaps", "deployments"}

    # the Deployment controller's status write reaches the hub through the spoke watch, not the 30 s poll
    env.spoke.patch_status(DEPLOYMENTS, "web", {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1,
                                                "updatedReplicas": 2, "availableReplicas": 1, "conditions": [
                                                    {"type": "Available", "status": "True"}]}, env.ns)
    def fed_back() -> Obj:
        entry = env.manifest("w-apply", 1)
        assert values(entry).get("ReadyReplicas") == 1
        return entry

    entry = eventually(fed_back, 5.0, what="feedback follows the Deployment")
    assert values(entry) == {"ReadyReplicas": 1, "Replicas": 2, "AvailableReplicas": 1, "available": "True",
                             "generation": 1}
    synced = condition(entry["conditions"], "StatusFeedbackSynced") or {}
    assert synced["status"] == "False" and "broken" in synced["message"]
    assert env.cond("w-apply", "Progressing") == "True"  # 1 of 2 ready
    env.spoke.patch_status(DEPLOYMENTS, "web", {"readyReplicas": 2, "availableReplicas": 2}, env.ns)
    eventually(lambda: env.cond("w-apply", "Progressing") == "False", 5.0, what="rollout complete")
    assert env.cond("w-apply", "Degraded") == "False"


def test_update_strategies(env: Env) -> None:
    env.spoke.create(CONFIGMAPS, configmap(env.ns, "created-before", v="mine"))
    env.spoke.create(CONFIGMAPS, configmap(env.ns, "read-only", v="theirs"))
    Kube(env.spoke.api, field_manager="someone-else").apply(CONFIGMAPS, configmap(env.ns, "ssa", v="other"))

    def ident(name: str) -> Obj:
        return {"group": "", "resource": "configmaps", "namespace": env.ns, "name": name}

    env.work("w-strategies", [configmap(env.ns, "created-before", v="work"), configmap(env.ns, "read-only", v="x"),
                              configmap(env.ns, "ssa", v="work"), configmap(env.ns, "ssa-forced", v="work")],
             manifestConfigs=[
                 {"resourceIdentifier": ident("created-before"), "updateStrategy": {"type": "CreateOnly"}},
                 {"resourceIdentifier": ident("read-only"), "updateStrategy": {"type": "ReadOnly"},
                  "feedbackRules": [{"type": "JSONPaths", "jsonPaths": [{"name": "v", "path": ".data.v"}]}]},
                 {"resourceIdentifier": ident("ssa"), "updateStrategy": {"type": "ServerSideApply"}},
                 {"resourceIdentifier": ident("ssa-forced"), "updateStrategy": {
                     "type": "ServerSideApply", "serverSideApply": {"fieldManager": "custom", "force": True}}}])
    eventually(lambda: env.manifest("w-strategies", 3), TIMEOUT, what="status of every manifest")
    assert (env.spoke.get(CONFIGMAPS, "created-before", env.ns) or {})["data"] == {"v": "mine"}
    assert (env.spoke.get(CONFIGMAPS, "read-only", env.ns) or {})["data"] == {"v": "theirs"}
    assert values(env.manifest("w-strategies", 1)) == {"v": "theirs"}
    conflict = condition(env.manifest("w-strategies", 2)["conditions"], "Applied") or {}
    assert conflict["status"] == "False" and "conflict" in conflict["message"].lower()
    assert (env.spoke.get(CONFIGMAPS, "ssa", env.ns) or {})["data"] == {"v": "other"}
    forced = env.spoke.get(CONFIGMAPS, "ssa-forced", env.ns) or {}
    assert {m["manager"] for m in forced["metadata"]["managedFields"]} == {"custom"}
    assert env.cond("w-strategies", "Applied") == "False"
    recorded = {r["name"] for r in (env.applied("w-strategies") or {})["status"]["appliedResources"]}
    assert recorded == {"created-before", "ssa-forced"}  # ReadOnly is never ours; "ssa" was not applied


def test_a_manifest_dropped_from_the_work_is_deleted(env: Env) -> None:
    env.work("w-drop", [configmap(env.ns, "keep"), configmap(env.ns, "drop")])
    eventually(lambda: env.spoke.get(CONFIGMAPS, "drop", env.ns), TIMEOUT, what="both applied")
    work = env.hub.get(MANIFEST_WORKS, "w-drop", env.ns) or {}
    work["spec"]["workload"]["manifests"] = [configmap(env.ns, "keep", x="2")]
    env.hub.replace(MANIFEST_WORKS, work)
    eventually(lambda: env.spoke.get(CONFIGMAPS, "drop", env.ns) is None, TIMEOUT, what="dropped one deleted")
    assert (env.spoke.get(CONFIGMAPS, "keep", env.ns) or {})["data"] == {"x": "2"}
    eventually(lambda: [r["name"] for r in (env.applied("w-drop") or {})["status"]["appliedResources"]] == ["keep"],
               TIMEOUT, what="record follows")


@pytest.mark.parametrize("option, left", [
    ({}, set()),
    ({"propagationPolicy": "Orphan"}, {"a", "b"}),
    ({"propagationPolicy": "SelectivelyOrphan", "selectivelyOrphans": {"orphaningRules": [
        {"group": "", "resource": "configmaps", "namespace": "NS", "name": "b"}]}}, {"b"}),
], ids=["Foreground", "Orphan", "SelectivelyOrphan"])
def test_deleting_the_work_follows_its_delete_option(env: Env, option: Obj, left: set[str]) -> None:
    for rule in (option.get("selectivelyOrphans") or {}).get("orphaningRules") or []:
        rule["namespace"] = env.ns
    env.work("w-del", [configmap(env.ns, "a"), configmap(env.ns, "b")], **({"deleteOption": option} if option else {}))
    eventually(lambda: env.cond("w-del", "Applied") == "True", TIMEOUT, what="applied")
    env.hub.delete(MANIFEST_WORKS, "w-del", env.ns)
    eventually(lambda: env.hub.get(MANIFEST_WORKS, "w-del", env.ns) is None, TIMEOUT, what="finalizer removed")
    assert env.applied("w-del") is None
    assert {n for n in ("a", "b") if env.spoke.get(CONFIGMAPS, n, env.ns)} == left


def test_an_invalid_manifest_fails_alone_and_a_missing_namespace_is_retried(env: Env) -> None:
    other = f"{env.ns}-later"
    env.work("w-invalid", [{"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}},
                           {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": env.ns}},
                           configmap(other, "in-missing-namespace"), configmap(env.ns, "fine")])
    eventually(lambda: env.manifest("w-invalid", 3), TIMEOUT, what="status of every manifest")
    assert env.spoke.get(CONFIGMAPS, "fine", env.ns) is not None
    messages = [(condition(env.manifest("w-invalid", i)["conditions"], "Applied") or {}).get("message", "")
                for i in range(3)]
    assert "no kind Nothing" in messages[0] and "metadata.name" in messages[1] and other in messages[2]
    applied = condition(env.status("w-invalid")["conditions"], "Applied") or {}
    assert applied["status"] == "False" and applied["reason"] == "AppliedManifestWorkFailed"
    assert "Nothing" in applied["message"]
    assert env.cond("w-invalid", "Available") == "False"
    env.spoke.create(NAMESPACES, {"metadata": {"name": other}})
    try:
        eventually(lambda: env.spoke.get(CONFIGMAPS, "in-missing-namespace", other), TIMEOUT,
                   what="retried with back-off, not at the 30 s resync")
    finally:
        env.spoke.delete(NAMESPACES, other)


def test_drift_is_put_back_on_the_next_resync(apiserver: ApiServer, namespace: str) -> None:
    hub_client, spoke_client = apiserver.api_client("hub"), apiserver.api_client("cluster1")
    spoke, hub = Kube(spoke_client, field_manager="work-test"), Kube(hub_client, field_manager="work-test")
    agent, runtime = _start(hub_client, spoke, namespace, sync=1.0)
    try:
        hub.create(MANIFEST_WORKS, {"metadata": {"name": "w-drift", "namespace": namespace}, "spec": {
            "workload": {"manifests": [configmap(namespace, "steady", v="1")]}}})
        eventually(lambda: spoke.get(CONFIGMAPS, "steady", namespace), TIMEOUT, what="applied")
        spoke.patch(CONFIGMAPS, "steady", {"data": {"v": "drifted"}}, namespace)
        eventually(lambda: (spoke.get(CONFIGMAPS, "steady", namespace) or {})["data"] == {"v": "1"}, 5.0,
                   what="put back by the resync")
    finally:
        agent.stop()
        runtime.stop()
        clients.close(hub_client)
        clients.close(spoke_client)


def test_a_work_deleted_while_the_agent_was_away_is_cleaned_up(apiserver: ApiServer, env: Env) -> None:
    env.work("w-away", [configmap(env.ns, "gone-with-it")])
    eventually(lambda: env.cond("w-away", "Applied") == "True", TIMEOUT, what="applied")
    env.agent.stop()
    env.hub.delete(MANIFEST_WORKS, "w-away", env.ns)
    env.hub.patch(MANIFEST_WORKS, "w-away", {"metadata": {"finalizers": []}}, env.ns)  # gone without the agent
    assert env.hub.get(MANIFEST_WORKS, "w-away", env.ns) is None
    assert env.spoke.get(CONFIGMAPS, "gone-with-it", env.ns) is not None
    hub_client = apiserver.api_client("hub")
    agent, runtime = _start(hub_client, env.spoke, env.ns)
    try:
        eventually(lambda: env.spoke.get(CONFIGMAPS, "gone-with-it", env.ns) is None, TIMEOUT, what="cleaned up")
        eventually(lambda: env.applied("w-away") is None, TIMEOUT, what="record removed")
    finally:
        agent.stop()
        runtime.stop()
        clients.close(hub_client)


def test_records_made_under_another_hub_url_are_carried_over(apiserver: ApiServer, namespace: str) -> None:
    hub_client, spoke_client = apiserver.api_client("hub"), apiserver.api_client("cluster1")
    spoke, hub = Kube(spoke_client, field_manager="work-test"), Kube(hub_client, field_manager="work-test")
    cm = spoke.create(CONFIGMAPS, configmap(namespace, "moved", v="1"))
    old_hash = workplan.hub_hash("https://127.0.0.1:1/clusters/hub")
    old = spoke.create(APPLIED_MANIFEST_WORKS, workplan.applied_work(old_hash, f"w-moved-{namespace}", namespace, None))
    spoke.patch_status(APPLIED_MANIFEST_WORKS, old["metadata"]["name"], {"appliedResources": [
        {"group": "", "version": "v1", "resource": "configmaps", "namespace": namespace, "name": "moved",
         "uid": cm["metadata"]["uid"]}]})
    hub.create(MANIFEST_WORKS, {"metadata": {"name": f"w-moved-{namespace}", "namespace": namespace}, "spec": {
        "workload": {"manifests": [configmap(namespace, "moved", v="1")]}}})
    agent, runtime = _start(hub_client, spoke, namespace)
    try:
        eventually(lambda: spoke.get(APPLIED_MANIFEST_WORKS, old["metadata"]["name"]) is None, TIMEOUT,
                   what="the old record dropped")
        hub.delete(MANIFEST_WORKS, f"w-moved-{namespace}", namespace)
        eventually(lambda: spoke.get(CONFIGMAPS, "moved", namespace) is None, TIMEOUT,
                   what="deleted with the work, not kept by a stale record")
    finally:
        agent.stop()
        runtime.stop()
        clients.close(hub_client)
        clients.close(spoke_client)


def test_the_klusterlet_waits_for_the_hub_kubeconfig(apiserver: ApiServer, namespace: str, tmp_path: Path) -> None:
    spoke_client, hub_client = apiserver.api_client("cluster1"), apiserver.api_client("hub")
    spoke, hub = Kube(spoke_client, field_manager="work-test"), Kube(hub_client, field_manager="work-test")
    runtime = Runtime(spoke, namespace=namespace)
    kubeconfig = tmp_path / "hub.kubeconfig"
    klusterlet = Klusterlet(runtime, spoke_client, namespace, hub_kubeconfig=kubeconfig, hub_context="hub")
    runtime.start()
    klusterlet.start()  # returns at once although there is no kubeconfig yet
    try:
        hub.create(MANIFEST_WORKS, {"metadata": {"name": "w-late", "namespace": namespace}, "spec": {
            "workload": {"manifests": [configmap(namespace, "late-hub")]}}})
        assert klusterlet.agents == []
        shutil.copy(apiserver.kubeconfig, kubeconfig)
        eventually(lambda: spoke.get(CONFIGMAPS, "late-hub", namespace), 20.0, what="applied once it is there")
    finally:
        klusterlet.stop()
        runtime.stop()
        clients.close(spoke_client)
        clients.close(hub_client)


@pytest.fixture
def relay(apiserver: ApiServer) -> Iterator[Relay]:
    r = Relay(apiserver.port)
    yield r
    r.close()


class Relay:
    """`socat` forwarding a loopback port to the API server: `close()` makes the hub unreachable."""

    def __init__(self, target: int) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.target = target
        self.proc: subprocess.Popen[bytes] | None = None
        self.open()

    def open(self) -> None:
        self.proc = subprocess.Popen(["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork",
                                      f"TCP:127.0.0.1:{self.target}"], start_new_session=True)
        eventually(self._listening, 5.0, what="socat listening")

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def close(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


def test_the_agent_keeps_going_while_the_hub_is_unreachable(apiserver: ApiServer, namespace: str,
                                                            relay: Relay) -> None:
    ns, later = namespace, f"{namespace}-later"
    through_relay = apiserver.api_client("hub")
    through_relay.configuration.host = through_relay.configuration.host.replace(f":{apiserver.port}",
                                                                                f":{relay.port}")
    spoke_client, hub_client = apiserver.api_client("cluster1"), apiserver.api_client("hub")
    spoke, hub = Kube(spoke_client, field_manager="work-test"), Kube(hub_client, field_manager="work-test")

    def applied() -> str:
        work = hub.get(MANIFEST_WORKS, "w-outage", ns) or {}
        return str((condition((work.get("status") or {}).get("conditions"), "Applied") or {}).get("status"))

    relay.close()
    agent, runtime = _start(through_relay, spoke, ns)  # the hub is unreachable from the start
    try:
        hub.create(MANIFEST_WORKS, {"metadata": {"name": "w-outage", "namespace": ns}, "spec": {"workload": {
            "manifests": [configmap(ns, "drifts", v="1"), configmap(later, "late")]}}})
        assert not agent.connected
        relay.open()
        eventually(lambda: applied() == "False", 40.0, what="applied but for the missing namespace")
        relay.close()
        spoke.patch(CONFIGMAPS, "drifts", {"data": {"v": "drifted"}}, ns)
        spoke.create(NAMESPACES, {"metadata": {"name": later}})
        agent.requeue((ns, "w-outage"))  # the resync, from the last work the agent saw
        eventually(lambda: (spoke.get(CONFIGMAPS, "drifts", ns) or {})["data"] == {"v": "1"}, TIMEOUT,
                   what="drift put back while the hub is away")
        eventually(lambda: spoke.get(CONFIGMAPS, "late", later), TIMEOUT, what="applied while the hub is away")
        assert applied() == "False"
        relay.open()
        eventually(lambda: applied() == "True", 40.0, what="status caught up")
    finally:
        agent.stop()
        runtime.stop()
        spoke.delete(NAMESPACES, later)
        for client in (through_relay, spoke_client, hub_client):
            clients.close(client)
    assert agent.hub_hash == workplan.hub_hash(through_relay.configuration.host)


class FlakyDiscovery(Discovery):
    """The spoke's discovery, failing while `failing` is set (the API server answering errors for a while)."""

    failing = False

    def resource(self, group: str, version: str, kind: str) -> Any:
        if self.failing:
            raise ConnectionError("discovery unavailable")
        return super().resource(group, version, kind)


def test_a_transient_discovery_failure_deletes_nothing(env: Env) -> None:
    flaky = FlakyDiscovery(env.spoke)
    env.agent.applier.discovery = flaky
    name = f"{env.ns}-defaulted"  # no namespace in the manifest: applied to "default", recorded so
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}}
    env.work("w-flaky", [manifest])
    try:
        eventually(lambda: env.cond("w-flaky", "Applied") == "True", TIMEOUT, what="applied")
        flaky.failing = True
        work = env.hub.get(MANIFEST_WORKS, "w-flaky", env.ns) or {}
        work["spec"]["workload"]["manifests"] = [manifest, configmap(env.ns, "second")]
        env.hub.replace(MANIFEST_WORKS, work)
        eventually(lambda: "discovery unavailable" in str(
            (condition(env.status("w-flaky").get("conditions"), "Applied") or {}).get("message")), TIMEOUT,
            what="a pass with discovery failing")
        assert env.spoke.get(CONFIGMAPS, name, "default") is not None
        assert [r["name"] for r in (env.applied("w-flaky") or {})["status"]["appliedResources"]] == [name]
        flaky.failing = False
        eventually(lambda: env.spoke.get(CONFIGMAPS, "second", env.ns), TIMEOUT, what="applied once discovery is back")
        assert env.spoke.get(CONFIGMAPS, name, "default") is not None
    finally:
        env.spoke.delete(CONFIGMAPS, name, "default")


def test_an_object_stuck_terminating_is_looked_at_with_back_off(apiserver: ApiServer, namespace: str) -> None:
    hub_client, spoke_client = apiserver.api_client("hub"), apiserver.api_client("cluster1")
    spoke, hub = Kube(spoke_client, field_manager="work-test"), Kube(hub_client, field_manager="work-test")
    agent, runtime = _start(hub_client, spoke, namespace, sync=1.0)
    held = {**configmap(namespace, "held"), "metadata": {"name": "held", "namespace": namespace,
                                                        "finalizers": ["example.com/hold"]}}
    looks: list[float] = []
    real = agent.records.clean_up

    def clean_up(work_name: str, delete_option: Obj | None) -> bool:
        looks.append(agent.clock.monotonic())
        return real(work_name, delete_option)

    agent.records.clean_up = clean_up  # type: ignore[method-assign]
    try:
        hub.create(MANIFEST_WORKS, {"metadata": {"name": "w-held", "namespace": namespace},
                                    "spec": {"workload": {"manifests": [held]}}})
        eventually(lambda: spoke.get(CONFIGMAPS, "held", namespace), TIMEOUT, what="applied")
        hub.delete(MANIFEST_WORKS, "w-held", namespace)
        eventually(lambda: len(looks) >= 5, TIMEOUT, what="five looks at the terminating object")
        gaps = [b - a for a, b in zip(looks, looks[1:], strict=False)]
        assert gaps[-1] >= 0.9, gaps  # backed off to the resync period (1 s), not a 0.5 s poll
        spoke.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": []}}, namespace)
        eventually(lambda: hub.get(MANIFEST_WORKS, "w-held", namespace) is None, TIMEOUT, what="work gone")
    finally:
        if spoke.get(CONFIGMAPS, "held", namespace) is not None:
            spoke.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": []}}, namespace)
        agent.stop()
        runtime.stop()
        clients.close(hub_client)
        clients.close(spoke_client)


def test_records_unreadable_at_connect_start_no_second_runtime(apiserver: ApiServer, namespace: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[Runtime] = []

    class CountingRuntime(Runtime):
        def start(self, timeout: float = 30.0) -> Runtime:
            starts.append(self)
            return super().start(timeout)

    monkeypatch.setattr(workagent, "Runtime", CountingRuntime)
    hub_client, spoke_client = apiserver.api_client("hub"), apiserver.api_client("cluster1")
    agent = WorkAgent(Kube(hub_client, field_manager="work-agent"), Kube(spoke_client, field_manager="work-agent"),
                      namespace)
    reads: list[int] = []
    real = agent.records.work_names

    def work_names() -> list[str]:
        reads.append(1)
        if len(reads) < 3:
            raise ConnectionError("the cluster does not answer")
        return real()

    monkeypatch.setattr(agent.records, "work_names", work_names)
    agent.start()
    try:
        eventually(lambda: len(reads) >= 3, TIMEOUT, what="records read after two failures")
        assert len(starts) == 1 and agent.connected
    finally:
        agent.stop()
        clients.close(hub_client)
        clients.close(spoke_client)
