"""What a user sees from real kubectl when a Pod or a workload's Pod template breaks kube-apiserver's
rules: the exact `The Pod "x" is invalid: …` line, a 422 Status whose causes carry upstream's field
and reason, nothing stored; and the warning upstream gives for a negative grace period."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.apiserver import ApiServer
from support.objects import assert_status, http

from apiserver import metadata

CONTEXT = "cluster1"


def _pod(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    body = {"containers": [{"name": "main", "image": "busybox:1.36"}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": body}


def _job(namespace: str, container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
    spec = {"restartPolicy": "Never", "containers": [container], "volumes": volumes}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"template": {"spec": spec}}}  # fmt: skip


def _deployment(namespace: str, name: str = "bad") -> dict[str, Any]:
    labels = {"app": "d"}
    containers = [{"name": "main", "image": "busybox:1.36"}]
    template = {"metadata": {"labels": labels}, "spec": {"restartPolicy": "Never", "containers": containers}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, "template": template}}  # fmt: skip


def _refused(apiserver: ApiServer, obj: dict[str, Any]) -> str:
    """`kubectl apply` must fail, print nothing on stdout, and store nothing; returns stderr."""
    res = apiserver.kubectl("apply", "-f", "-", input=json.dumps(obj), check=False, context=CONTEXT)
    assert (res.returncode, res.stdout) == (1, ""), res.stderr
    meta = obj["metadata"]
    got = apiserver.kubectl("get", obj["kind"].lower(), meta["name"], "-n", meta["namespace"], check=False,
                            context=CONTEXT)  # fmt: skip
    assert got.returncode == 1 and "(NotFound)" in got.stderr, got.stdout
    return str(res.stderr).strip()


def _listed(head: str, *causes: str) -> str:
    """kubectl's rendering of a 422 with several causes: the head, then one `* cause` line each."""
    return f"{head} \n" + "\n".join(f"* {c}" for c in causes)


def test_kubectl_shows_upstreams_lines(apiserver: ApiServer, namespace: str) -> None:
    data_mount = {"name": "main", "image": "busybox:1.36", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    cases = [
        (_pod("bad", namespace, containers=[data_mount]),
         'The Pod "bad" is invalid: spec.containers[0].volumeMounts[0].name: Not found: "data"'),
        (_pod("Bad_Pod", namespace, containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "x"}]),
         _listed('The Pod "Bad_Pod" is invalid:', f'metadata.name: Invalid value: "Bad_Pod": {metadata.SUBDOMAIN_MSG}',
                 'spec.containers[1].name: Duplicate value: "a"')),
        (_pod("bad", namespace, containers=[{"name": "main", "image": "x", "ports": [{"containerPort": 0}]}],
              volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
         _listed('The Pod "bad" is invalid:', 'spec.volumes[1].name: Duplicate value: "v"',
                 "spec.containers[0].ports[0].containerPort: Required value")),
        (_job(namespace, {**data_mount, "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "../x"}]},
              [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]),
         "The Job \"bad\" is invalid: spec.template.spec.containers[0].volumeMounts.subPath: "
         "Invalid value: \"../x\": must not contain '..'"),
        (_deployment(namespace),
         'The Deployment "bad" is invalid: spec.template.spec.restartPolicy: Unsupported value: "Never": '
         'supported values: "Always"'),
        (_deployment(namespace, "Bad.Dep"),
         _listed('The Deployment "Bad.Dep" is invalid:',
                 f'metadata.name: Invalid value: "Bad.Dep": {metadata.SUBDOMAIN_MSG}',
                 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"')),
    ]  # fmt: skip
    for obj, line in cases:
        assert _refused(apiserver, obj) == line


@pytest.mark.parametrize(
    ("spec", "causes"),
    [
        ({"containers": [{"name": "Main", "image": "x", "env": [{"name": "A=B", "value": "1"}]}]},
         [("spec.containers[0].name", "FieldValueInvalid"), ("spec.containers[0].env[0].name", "FieldValueInvalid")]),
        ({"containers": [{"name": "m", "image": "x"}], "restartPolicy": "Sometimes", "volumes": [{"name": "v"}]},
         [("spec.volumes[0]", "FieldValueRequired"), ("spec.restartPolicy", "FieldValueNotSupported")]),
    ],
    ids=["names", "policy-and-volume"],
)  # fmt: skip
def test_status_causes_name_field_and_reason(apiserver: ApiServer, namespace: str, spec: dict[str, Any],
                                             causes: list[tuple[str, str]]) -> None:  # fmt: skip
    with http(apiserver, context=CONTEXT) as h:
        resp = h.post(f"/api/v1/namespaces/{namespace}/pods", json=_pod("bad", namespace, **spec))
        body = assert_status(resp, 422, "Invalid")
        assert body["details"]["kind"] == "Pod" and body["details"]["name"] == "bad"
        assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == causes
        assert_status(h.get(f"/api/v1/namespaces/{namespace}/pods/bad"), 404, "NotFound")


def test_negative_grace_period_is_admitted_with_a_warning(apiserver: ApiServer, namespace: str) -> None:
    pod = _pod("graceless", namespace, terminationGracePeriodSeconds=-3)
    res = apiserver.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), context=CONTEXT)
    assert res.stdout.strip() == "pod/graceless created (server dry run)"
    expected = "spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"
    assert f"Warning: {expected}" in res.stderr
