"""Job, Deployment and friends as kube-apiserver defaults and validates them, created with kubectl 1.32's
generators (protobuf bodies) and scaled through the `scale` subresource (`kubectl scale`, the client)."""

from __future__ import annotations

import json

import kubernetes
import pytest
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl


def test_create_job_gets_generated_selector_and_defaults(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("create", "job", "j", "-n", namespace, "--image=busybox", "--", "sh", "-c", "exit 0")
    job = apiserver.get("job", "j", "-n", namespace)
    uid, spec = job["metadata"]["uid"], job["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
        "batch.kubernetes.io/job-name": "j", "job-name": "j"}
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["podReplacementPolicy"]) == (
        "NonIndexed", False, "TerminatingOrFailed")
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["containers"][0]["command"] == ["sh", "-c", "exit 0"]
    assert pod_spec["containers"][0]["terminationMessagePolicy"] == "File"


def test_manual_selector_is_kept(apiserver: ApiServer, namespace: str) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "m", "namespace": namespace},
           "spec": {"manualSelector": True, "selector": {"matchLabels": {"app": "m"}}, "parallelism": 2,
                    "template": {"metadata": {"labels": {"app": "m"}},
                                 "spec": {"restartPolicy": "OnFailure",
                                          "containers": [{"name": "c", "image": "busybox"}]}}}}
    apiserver.apply_yaml(json.dumps(job))
    spec = apiserver.get("job", "m", "-n", namespace)["spec"]
    assert spec["selector"] == {"matchLabels": {"app": "m"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "m"}
    assert "completions" not in spec and spec["parallelism"] == 2


def test_job_with_restart_policy_always_is_invalid(apiserver: ApiServer, namespace: str) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad", "namespace": namespace},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    res = apiserver.kubectl("create", "-f", "-", input=json.dumps(job), check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == (
        'The Job "bad" is invalid: spec.template.spec.restartPolicy: Required value: '
        'valid values: "OnFailure", "Never"')
    assert apiserver.kubectl("get", "job", "bad", "-n", namespace, check=False).returncode == 1
    chosen = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "chosen", "namespace": namespace},
              "spec": {"selector": {"matchLabels": {"app": "c"}},
                       "template": {"metadata": {"labels": {"app": "c"}},
                                    "spec": {"restartPolicy": "Never",
                                             "containers": [{"name": "c", "image": "busybox"}]}}}}
    res = apiserver.kubectl("create", "-f", "-", input=json.dumps(chosen), check=False)
    assert res.returncode == 1 and "spec.selector: Invalid value:" in res.stderr
    assert "`selector` not auto-generated" in res.stderr


def test_create_deployment_defaults_and_selector_mismatch(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("create", "deployment", "web", "-n", namespace, "--image=busybox:1.36", "--replicas=2",
                      "--", "sleep", "3600")
    spec = apiserver.get("deployment", "web", "-n", namespace)["spec"]
    assert spec["replicas"] == 2 and spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    assert spec["template"]["spec"]["containers"][0]["command"] == ["sleep", "3600"]
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad", "namespace": namespace},
           "spec": {"selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "y"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    res = apiserver.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
    assert res.stderr.strip() == (
        'The Deployment "bad" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"y"}: `selector` does not match template `labels`')


def test_kubectl_scale_and_client_scale(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("create", "deployment", "web", "-n", namespace, "--image=busybox", "--", "sleep", "9")
    assert apiserver.kubectl("scale", "deployment/web", "--replicas=3", "-n", namespace).stdout.strip() == (
        "deployment.apps/web scaled")
    assert apiserver.get("deployment", "web", "-n", namespace)["spec"]["replicas"] == 3
    res = apiserver.kubectl("scale", "deployment/web", "--current-replicas=2", "--replicas=1", "-n", namespace,
                            check=False)
    assert res.returncode != 0 and "Expected replicas to be 2, was 3" in res.stderr
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "namespace": namespace},
          "spec": {"selector": {"matchLabels": {"app": "rs"}},
                   "template": {"metadata": {"labels": {"app": "rs"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    apiserver.apply_yaml(json.dumps(rs))
    apiserver.kubectl("scale", "rs/rs", "--replicas=0", "-n", namespace)
    assert apiserver.get("rs", "rs", "-n", namespace)["spec"]["replicas"] == 0
    with apiserver.api_client() as client:
        apps = kubernetes.client.AppsV1Api(client)
        scale = apps.read_namespaced_deployment_scale("web", namespace)
        assert (scale.spec.replicas, scale.status.selector) == (3, "app=web")
        apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
        scale.spec.replicas = 4
        with pytest.raises(kubernetes.client.exceptions.ApiException) as stale:
            apps.replace_namespaced_deployment_scale("web", namespace, scale)  # its resourceVersion is old now
        assert stale.value.status == 409
        core = kubernetes.client.CoreV1Api(client)
        rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
              "spec": {"template": {"metadata": {"labels": {"app": "rc"}},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
        core.create_namespaced_replication_controller(namespace, rc)
        assert core.read_namespaced_replication_controller_scale("rc", namespace).status.selector == "app=rc"
    assert apiserver.get("deployment", "web", "-n", namespace)["spec"]["replicas"] == 5
    apiserver.kubectl("scale", "rc/rc", "--replicas=2", "-n", namespace)
    assert apiserver.get("rc", "rc", "-n", namespace)["spec"]["replicas"] == 2
    res = apiserver.kubectl("scale", "rc/rc", "--replicas=-1", "-n", namespace, check=False)
    assert res.returncode != 0


def test_selector_is_immutable(apiserver: ApiServer, namespace: str) -> None:
    apiserver.kubectl("create", "deployment", "web", "-n", namespace, "--image=busybox", "--", "sleep", "9")
    patch = {"spec": {"selector": {"matchLabels": {"app": "web", "tier": "x"}},
                      "template": {"metadata": {"labels": {"app": "web", "tier": "x"}}}}}
    res = apiserver.kubectl("patch", "deployment", "web", "-n", namespace, "--type=merge", "-p", json.dumps(patch),
                            check=False)
    assert res.returncode == 1
    assert 'The Deployment "web" is invalid: spec.selector: Invalid value:' in res.stderr
    assert "field is immutable" in res.stderr
    apiserver.kubectl("label", "deployment", "web", "-n", namespace, "tier=y")  # metadata changes are fine


def _job_manifest(namespace: str, image: str, **spec: object) -> str:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "frozen", "namespace": namespace},
           "spec": {**spec, "template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "c", "image": image}]}}}}
    return json.dumps(job)


def test_job_template_completions_and_mode_are_immutable(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(_job_manifest(namespace, "busybox", completions=2, parallelism=1))
    apiserver.apply_yaml(_job_manifest(namespace, "busybox", completions=2, parallelism=1))  # unchanged: fine
    for changed, field in ((_job_manifest(namespace, "alpine", completions=2, parallelism=1), "spec.template"),
                           (_job_manifest(namespace, "busybox", completions=3, parallelism=1), "spec.completions"),
                           (_job_manifest(namespace, "busybox", completions=2, parallelism=1,
                                          completionMode="Indexed"), "spec.completionMode")):
        res = apiserver.kubectl("apply", "-f", "-", input=changed, check=False)
        assert res.returncode == 1, res.stdout
        assert f'The Job "frozen" is invalid: {field}: Invalid value:' in res.stderr
        assert "field is immutable" in res.stderr
    apiserver.apply_yaml(_job_manifest(namespace, "busybox", completions=2, parallelism=2))  # parallelism may change


def test_a_suspended_job_may_change_its_scheduling_directives(apiserver: ApiServer, namespace: str) -> None:
    job = json.loads(_job_manifest(namespace, "busybox", suspend=True))
    apiserver.apply_yaml(json.dumps(job))
    job["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    job["spec"]["template"]["metadata"] = {"annotations": {"note": "placed"}}
    apiserver.apply_yaml(json.dumps(job))
    assert apiserver.get("job", "frozen", "-n", namespace)["spec"]["template"]["spec"]["nodeSelector"] == {
        "disk": "ssd"}
    job["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine"
    res = apiserver.kubectl("apply", "-f", "-", input=json.dumps(job), check=False)
    assert res.returncode == 1 and "spec.template: Invalid value:" in res.stderr
