"""Error `Status` bodies byte for byte as kube-apiserver writes them: metav1.Status field order, details
in Go's field order with empty fields omitted, compact JSON and a trailing newline (client libraries
and tests compare the text). The 404, 409 and 405 texts are kube-apiserver's for the same requests;
the 422 and 400 bodies have kube's structure around this server's field messages."""

from __future__ import annotations

import pytest
from support.apiserver import ApiServer
from support.objects import http

pytestmark = pytest.mark.kubectl

PREFIX = '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'


def test_not_found_bodies(apiserver: ApiServer, namespace: str) -> None:
    with http(apiserver) as h:
        pod = h.get(f"/api/v1/namespaces/{namespace}/pods/nope")
        assert pod.status_code == 404
        assert pod.text == PREFIX + (
            '"message":"pods \\"nope\\" not found","reason":"NotFound",'
            '"details":{"name":"nope","kind":"pods"},"code":404}\n')
        deploy = h.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/nope")
        assert deploy.text == PREFIX + (
            '"message":"deployments.apps \\"nope\\" not found","reason":"NotFound",'
            '"details":{"name":"nope","group":"apps","kind":"deployments"},"code":404}\n')
        path = h.get("/apis/no.such.group/v1/things")
        assert path.text == PREFIX + (
            '"message":"the server could not find the requested resource","reason":"NotFound",'
            '"details":{},"code":404}\n')


def test_already_exists_and_conflict_bodies(apiserver: ApiServer, namespace: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    with http(apiserver) as h:
        assert h.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm).status_code == 201
        again = h.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm)
        assert again.status_code == 409
        assert again.text == PREFIX + (
            '"message":"configmaps \\"cm\\" already exists","reason":"AlreadyExists",'
            '"details":{"name":"cm","kind":"configmaps"},"code":409}\n')
        stale = {**cm, "metadata": {"name": "cm", "resourceVersion": "1"}}
        conflict = h.put(f"/api/v1/namespaces/{namespace}/configmaps/cm", json=stale)
        assert conflict.text == PREFIX + (
            '"message":"Operation cannot be fulfilled on configmaps \\"cm\\": the object has been modified; '
            'please apply your changes to the latest version and try again","reason":"Conflict",'
            '"details":{"name":"cm","kind":"configmaps"},"code":409}\n')


def test_invalid_body_with_causes(apiserver: ApiServer, namespace: str) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c"}]}}}}
    with http(apiserver) as h:
        resp = h.post(f"/apis/batch/v1/namespaces/{namespace}/jobs", json=job)
    assert resp.status_code == 422
    assert resp.text == PREFIX + (
        '"message":"Job.batch \\"j\\" is invalid: [spec.template.spec.containers[0].image: Required value, '
        'spec.template.spec.restartPolicy: Required value: valid values: \\"OnFailure\\", '
        '\\"Never\\"]","reason":"Invalid","details":{"name":"j","group":"batch","kind":"Job","causes":['
        '{"reason":"FieldValueRequired","message":"Required value","field":"spec.template.spec.containers[0].image"},'
        '{"reason":"FieldValueRequired","message":"Required value: valid values: '
        '\\"OnFailure\\", \\"Never\\"","field":"spec.template.spec.restartPolicy"}]},"code":422}\n')


def test_method_not_allowed_and_bad_request_bodies(apiserver: ApiServer, namespace: str) -> None:
    with http(apiserver) as h:
        resp = h.post(f"/api/v1/namespaces/{namespace}/configmaps/x", json={})
        assert resp.status_code == 405
        assert resp.text == PREFIX + (
            '"message":"the server does not allow this method on the requested resource",'
            '"reason":"MethodNotAllowed","details":{},"code":405}\n')
        bad = h.get(f"/api/v1/namespaces/{namespace}/configmaps", params={"limit": "-1"})
        assert bad.status_code == 400
        assert bad.text == PREFIX + (
            '"message":"limit: Invalid value: \\"-1\\": must be a non-negative integer","reason":"BadRequest",'
            '"code":400}\n')


def test_forbidden_body_in_a_terminating_namespace(apiserver: ApiServer, namespace: str) -> None:
    """A namespace stays Terminating while a bound Pod terminates gracefully; creating in it is a 403."""
    apiserver.kubectl("run", "p", "-n", namespace, "--image=busybox", "--restart=Never", "--", "true")
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "node1"}}
    with http(apiserver) as h:
        assert h.post(f"/api/v1/namespaces/{namespace}/pods/p/binding", json=binding).status_code == 201
        apiserver.kubectl("delete", "namespace", namespace, "--wait=false")
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
        resp = h.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm)
        assert resp.status_code == 403
        assert resp.text == PREFIX + (
            f'"message":"configmaps \\"cm\\" is forbidden: unable to create new content in namespace {namespace} '
            'because it is being terminated","reason":"Forbidden","details":{"name":"cm","kind":"configmaps"},'
            '"code":403}\n')
        assert h.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/p",
                         json={"gracePeriodSeconds": 0}).status_code == 200
