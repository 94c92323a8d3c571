"""Server-side field validation (`fieldValidation=Strict|Warn|Ignore`): unknown fields in a custom
resource are refused with 400 under Strict, reported in a `Warning` header under Warn (the
default), and silently pruned under Ignore."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import BadRequestException
from support.apiserver import ApiServer
from support.objects import RS_PATH, VOLSYNC, assert_status, http, replication_source

MERGE = {"Content-Type": "application/merge-patch+json"}


def _with_unknown(name: str) -> dict[str, Any]:
    body = replication_source(name)
    body["spec"]["bogusField"] = 1
    body["spec"]["rsync"] = {"copyMethod": "Direct", "extraKnob": "x"}
    return body


def _warnings(resp: httpx.Response) -> str:
    return ", ".join(resp.headers.get_list("warning"))


def test_strict_rejects_unknown_fields(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        resp = h.post(path, params={"fieldValidation": "Strict"}, json=_with_unknown("strict"))
        body = assert_status(resp, 400, "BadRequest")
        assert 'unknown field "spec.bogusField"' in body["message"]
        assert 'unknown field "spec.rsync.extraKnob"' in body["message"]
        assert body["message"].startswith("strict decoding error")
        assert_status(h.get(f"{path}/strict"), 404, "NotFound")
        assert h.get(path).json()["items"] == []


def test_strict_rejects_unknown_fields_on_update(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        created = h.post(path, params={"fieldValidation": "Strict"}, json=replication_source("upd"))
        assert created.status_code == 201, created.text
        before = created.json()

        patch = json.dumps({"spec": {"paused": True, "bogusField": 1}})
        resp = h.patch(f"{path}/upd", params={"fieldValidation": "Strict"}, content=patch, headers=MERGE)
        assert 'unknown field "spec.bogusField"' in assert_status(resp, 400, "BadRequest")["message"]

        replaced = json.loads(json.dumps(before))
        replaced["spec"]["bogusField"] = 1
        resp = h.put(f"{path}/upd", params={"fieldValidation": "Strict"}, json=replaced)
        assert_status(resp, 400, "BadRequest")

        after = h.get(f"{path}/upd").json()
        assert after == before


def test_warn_accepts_and_reports(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        resp = h.post(path, params={"fieldValidation": "Warn"}, json=_with_unknown("warn"))
        assert resp.status_code == 201, resp.text
        warning = _warnings(resp)
        assert warning.startswith("299 - ")
        assert "spec.bogusField" in warning
        assert "spec.rsync.extraKnob" in warning
        # The unknown fields are pruned, not stored.
        stored = h.get(f"{path}/warn").json()
        assert "bogusField" not in stored["spec"]
        assert "extraKnob" not in stored["spec"]["rsync"]
        assert stored["spec"]["rsync"]["copyMethod"] == "Direct"
        assert stored == resp.json()


@pytest.mark.parametrize("param", [None, "Ignore"])
def test_default_and_ignore(apiserver: ApiServer, namespace: str, param: str | None) -> None:
    path = RS_PATH.format(ns=namespace)
    params = {"fieldValidation": param} if param else {}
    with http(apiserver) as h:
        resp = h.post(path, params=params, json=_with_unknown("quiet"))
        assert resp.status_code == 201, resp.text
        if param == "Ignore":
            assert "warning" not in resp.headers
        else:  # kube-apiserver's default is Warn
            assert "spec.bogusField" in _warnings(resp)
        stored = h.get(f"{path}/quiet").json()
        assert "bogusField" not in stored["spec"]


def test_known_fields_raise_no_warning(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        resp = h.post(path, params={"fieldValidation": "Strict"}, json=replication_source("clean", paused=True))
        assert resp.status_code == 201, resp.text
        assert "warning" not in resp.headers


def test_strict_through_the_client(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        with pytest.raises(BadRequestException) as err:
            co.create_namespaced_custom_object(
                *VOLSYNC, namespace, "replicationsources", _with_unknown("c"), field_validation="Strict"
            )
        assert "spec.bogusField" in json.loads(err.value.body)["message"]
        assert co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources")["items"] == []

        created = co.create_namespaced_custom_object(
            *VOLSYNC, namespace, "replicationsources", _with_unknown("c"), field_validation="Warn"
        )
        assert "bogusField" not in created["spec"]
