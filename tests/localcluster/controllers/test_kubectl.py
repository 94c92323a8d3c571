"""The controllers as kubectl sees them: `wait --for=condition=complete`, `rollout status`, `scale`."""

from __future__ import annotations

import subprocess

import pytest
from fake_kubelet import FakeKubelet
from support.apiserver import ApiServer
from support.waiting import eventually

from kube.controller import Runtime

pytestmark = pytest.mark.kubectl


def kubectl(apiserver: ApiServer, namespace: str, *args: str, timeout: float = 60) -> str:
    return apiserver.kubectl("-n", namespace, *args, context="cluster1", timeout=timeout).stdout


def test_kubectl_wait_for_a_job_to_complete(apiserver: ApiServer, namespace: str, runtime: Runtime,
                                            kubelet: FakeKubelet) -> None:
    kubectl(apiserver, namespace, "create", "job", "hello", "--image=busybox", "--", "echo", "hi")
    argv = apiserver.kubectl_argv("-n", namespace, "wait", "--for=condition=complete", "job/hello",
                                  "--timeout=60s", context="cluster1")
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=apiserver.kubectl_env()) as waiting:
        [pod] = eventually(lambda: kubelet.pods(**{"job-name": "hello"}), what="the job's pod")
        assert waiting.poll() is None, "not complete before its Pod succeeded"
        kubelet.finish(pod)
        out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert out.strip() == "job.batch/hello condition met"
    table = kubectl(apiserver, namespace, "get", "job", "hello")
    assert "Complete" in table and "1/1" in table


def test_kubectl_rollout_status_and_scale(apiserver: ApiServer, namespace: str, runtime: Runtime,
                                          kubelet: FakeKubelet) -> None:
    with kubelet.serve():
        kubectl(apiserver, namespace, "create", "deployment", "web", "--image=busybox", "--replicas=2",
                "--", "sleep", "3600")
        out = kubectl(apiserver, namespace, "rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        assert 'deployment "web" successfully rolled out' in out
        assert kubectl(apiserver, namespace, "scale", "deployment/web", "--replicas=3").strip() \
            == "deployment.apps/web scaled"
        out = kubectl(apiserver, namespace, "rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        assert 'deployment "web" successfully rolled out' in out
        kubectl(apiserver, namespace, "set", "env", "deployment/web", "VERSION=2")
        out = kubectl(apiserver, namespace, "rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        assert 'deployment "web" successfully rolled out' in out
        pods = [p for p in kubelet.pods(app="web") if not p["metadata"].get("deletionTimestamp")]
        assert len(pods) == 3
        assert all(any(e.get("name") == "VERSION" for e in p["spec"]["containers"][0].get("env") or [])
                   for p in pods)
        history = kubectl(apiserver, namespace, "rollout", "history", "deployment/web")
        assert "1 " in history and "2 " in history
        kubectl(apiserver, namespace, "rollout", "pause", "deployment/web")
        eventually(lambda: (lambda c: c["reason"] == "DeploymentPaused" and c["status"] == "Unknown")(next(
            c for c in apiserver.get("-n", namespace, "deployment", "web", context="cluster1")["status"]["conditions"]
            if c["type"] == "Progressing")), what="Progressing: DeploymentPaused")
        kubectl(apiserver, namespace, "rollout", "resume", "deployment/web")
        kubectl(apiserver, namespace, "rollout", "undo", "deployment/web")
        out = kubectl(apiserver, namespace, "rollout", "status", "deployment/web", "--timeout=60s", timeout=90)
        assert 'deployment "web" successfully rolled out' in out
    pods = [p for p in kubelet.pods(app="web") if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 3 and not any(p["spec"]["containers"][0].get("env") for p in pods)
    revision = apiserver.get("-n", namespace, "deployment", "web", context="cluster1")["metadata"]["annotations"]
    assert revision["deployment.kubernetes.io/revision"] == "3", "the first ReplicaSet comes back as revision 3"


def test_kubectl_rollout_history_shows_the_change_cause(apiserver: ApiServer, namespace: str,
                                                        runtime: Runtime) -> None:
    """The new ReplicaSet carries the Deployment's annotations (not last-applied / revision ones)."""
    kubectl(apiserver, namespace, "create", "deployment", "hist", "--image=busybox", "--", "sleep", "9")
    kubectl(apiserver, namespace, "annotate", "deployment", "hist", "kubernetes.io/change-cause=first rollout")
    eventually(lambda: "first rollout" in kubectl(apiserver, namespace, "rollout", "history", "deployment/hist"),
               what="CHANGE-CAUSE of revision 1")
    kubectl(apiserver, namespace, "set", "image", "deployment/hist", "busybox=busybox:1")
    kubectl(apiserver, namespace, "annotate", "--overwrite", "deployment", "hist", "kubernetes.io/change-cause=second")
    history = eventually(lambda: (lambda out: out if "second" in out else None)(
        kubectl(apiserver, namespace, "rollout", "history", "deployment/hist")), what="CHANGE-CAUSE of revision 2")
    assert [line.split(None, 1) for line in history.splitlines()[2:] if line.strip()] == [
        ["1", "first rollout"], ["2", "second"]]


def test_a_finished_job_round_trips_through_kubectl_get_apply_and_replace(apiserver: ApiServer, namespace: str,
                                                                          runtime: Runtime,
                                                                          kubelet: FakeKubelet) -> None:
    """Job tracking (`status.uncountedTerminatedPods`, the Pods' finalizer) must not disturb kubectl:
    `get -o yaml` parses, `apply` of the manifest and `replace` of what `get` printed still work."""
    manifest = ('{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"}, "spec": {"template": '
                '{"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}')
    apiserver.kubectl("-n", namespace, "apply", "-f", "-", context="cluster1", input=manifest)
    [pod] = eventually(lambda: kubelet.pods(**{"job-name": "once"}), what="the job's pod")
    kubelet.finish(pod)
    eventually(lambda: "Complete" in kubectl(apiserver, namespace, "get", "job", "once"), what="complete")
    printed = kubectl(apiserver, namespace, "get", "job", "once", "-o", "yaml")
    assert "succeeded: 1" in printed
    relabelled = manifest.replace('"name": "once"}', '"name": "once", "labels": {"tier": "batch"}}')
    apiserver.kubectl("-n", namespace, "apply", "-f", "-", context="cluster1", input=relabelled)
    replaced = apiserver.kubectl("-n", namespace, "replace", "-f", "-", context="cluster1",
                                 input=kubectl(apiserver, namespace, "get", "job", "once", "-o", "yaml"))
    assert "job.batch/once replaced" in replaced.stdout
    assert "1/1" in kubectl(apiserver, namespace, "get", "job", "once")
