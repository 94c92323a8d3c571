"""Objects that break their CRD schema or metadata rules get a 422 Invalid `Status` naming the
field, on create and on update alike, and nothing is stored or changed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import UnprocessableEntityException
from support.apiserver import ApiServer
from support.objects import (
    ADDON,
    RS_PATH,
    VOLSYNC,
    assert_status,
    http,
    managed_cluster_addon,
    replication_destination,
    replication_source,
    unique,
)

RD_PATH = "/apis/volsync.backube/v1alpha1/namespaces/{ns}/replicationdestinations"
VSC_PATH = "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses"
MCA_PATH = f"/apis/{ADDON}/v1alpha1/namespaces/{{ns}}/managedclusteraddons"
MERGE = {"Content-Type": "application/merge-patch+json"}


def assert_invalid(resp: httpx.Response, *fields: str) -> dict[str, Any]:
    """A 422 Invalid Status whose message and causes name every one of `fields`."""
    body = assert_status(resp, 422, "Invalid")
    causes = body["details"]["causes"]
    for f in fields:
        assert f in body["message"], body["message"]
        assert f in {c.get("field") for c in causes}, causes
    for c in causes:
        assert c["reason"].startswith("FieldValue"), c
        assert c["message"]
    return body


def assert_nothing_stored(h: httpx.Client, path: str, name: str) -> None:
    assert_status(h.get(f"{path}/{name}"), 404, "NotFound")
    assert name not in {o["metadata"]["name"] for o in h.get(path).json()["items"]}


def test_unsupported_enum_value(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    body = replication_source("bogus", rsync={"copyMethod": "Bogus"})
    with http(apiserver) as h:
        out = assert_invalid(h.post(path, json=body), "spec.rsync.copyMethod")
        cause = next(c for c in out["details"]["causes"] if c.get("field") == "spec.rsync.copyMethod")
        assert cause["reason"] == "FieldValueNotSupported"
        assert '"Bogus"' in cause["message"]
        assert '"Snapshot"' in cause["message"]  # the supported values are listed
        assert out["details"]["name"] == "bogus"
        assert out["details"]["group"] == "volsync.backube"
        assert out["details"]["kind"] == "ReplicationSource"
        assert out["message"].startswith('ReplicationSource.volsync.backube "bogus" is invalid')
        assert_nothing_stored(h, path, "bogus")


def test_unsupported_enum_value_through_the_client(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        co = client.CustomObjectsApi(api)
        body = replication_source("bogus", rsync={"copyMethod": "Bogus"})
        with pytest.raises(UnprocessableEntityException) as err:
            co.create_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources", body)
        assert err.value.status == 422
        status = json.loads(err.value.body)
        assert status["reason"] == "Invalid"
        assert [c["field"] for c in status["details"]["causes"]] == ["spec.rsync.copyMethod"]
        assert co.list_namespaced_custom_object(*VOLSYNC, namespace, "replicationsources")["items"] == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"paused": "yes"}, "spec.paused"),
        ({"paused": 1}, "spec.paused"),
        ({"trigger": "hourly"}, "spec.trigger"),
        ({"rsync": {"accessModes": "ReadWriteOnce"}}, "spec.rsync.accessModes"),
        ({"rsync": {"capacity": [1]}}, "spec.rsync.capacity"),
        ({"rsync": {"capacity": {"size": 1}}}, "spec.rsync.capacity"),
    ],
)
def test_wrong_type(apiserver: ApiServer, namespace: str, spec: dict[str, Any], field: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        assert_invalid(h.post(path, json=replication_source("typed", **spec)), field)
        assert_nothing_stored(h, path, "typed")


def test_wrong_type_on_destination_capacity(apiserver: ApiServer, namespace: str) -> None:
    path = RD_PATH.format(ns=namespace)
    body = replication_destination("rd")
    body["spec"]["rsync"]["capacity"] = [1]
    with http(apiserver) as h:
        out = assert_invalid(h.post(path, json=body), "spec.rsync.capacity")
        # Like kube-apiserver, the anyOf failure of the int-or-string is reported at the root ("").
        assert {c.get("field", "") for c in out["details"]["causes"]} <= {"spec.rsync.capacity", ""}
        assert "must be of type integer,string" in out["message"]
        assert_nothing_stored(h, path, "rd")


def test_bad_quantity_pattern(apiserver: ApiServer, namespace: str) -> None:
    path = RD_PATH.format(ns=namespace)
    body = replication_destination("rd")
    body["spec"]["rsync"]["capacity"] = "lots"
    with http(apiserver) as h:
        assert_invalid(h.post(path, json=body), "spec.rsync.capacity")
        assert_nothing_stored(h, path, "rd")


def test_bad_cron_schedule(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        out = assert_invalid(
            h.post(path, json=replication_source("cron", trigger={"schedule": "bogus"})), "spec.trigger.schedule"
        )
        assert '"bogus"' in out["message"]
        assert_nothing_stored(h, path, "cron")
        # A valid schedule is accepted, so the rejection is about the value.
        ok = h.post(path, json=replication_source("cron", trigger={"schedule": "0 */6 * * *"}))
        assert ok.status_code == 201, ok.text


def test_missing_required_field(apiserver: ApiServer) -> None:
    name = unique("vsc")
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": name},
        "deletionPolicy": "Delete",
    }
    with http(apiserver) as h:
        out = assert_invalid(h.post(VSC_PATH, json=body), "driver")
        cause = next(c for c in out["details"]["causes"] if c.get("field") == "driver")
        assert cause["reason"] == "FieldValueRequired"
        assert_nothing_stored(h, VSC_PATH, name)

        both = dict(body)
        del both["deletionPolicy"]
        assert_invalid(h.post(VSC_PATH, json=both), "driver", "deletionPolicy")
        assert_nothing_stored(h, VSC_PATH, name)


def test_missing_required_condition_fields_in_status(apiserver: ApiServer, namespace: str) -> None:
    path = MCA_PATH.format(ns=namespace)
    with http(apiserver) as h:
        created = h.post(path, json=managed_cluster_addon("volsync"))
        assert created.status_code == 201, created.text
        good = {
            "type": "Available",
            "status": "True",
            "reason": "Ok",
            "message": "fine",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        ok = h.patch(f"{path}/volsync/status", content=json.dumps({"status": {"conditions": [good]}}), headers=MERGE)
        assert ok.status_code == 200, ok.text
        before = ok.json()

        partial = {"type": "Degraded", "status": "True"}
        resp = h.patch(
            f"{path}/volsync/status", content=json.dumps({"status": {"conditions": [good, partial]}}), headers=MERGE
        )
        out = assert_invalid(resp, "status.conditions[1].reason", "status.conditions[1].lastTransitionTime")
        assert {c["reason"] for c in out["details"]["causes"]} == {"FieldValueRequired"}

        after = h.get(f"{path}/volsync").json()
        assert after["status"] == before["status"]
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_bad_metadata_name(apiserver: ApiServer, namespace: str) -> None:
    with http(apiserver) as h:
        path = RS_PATH.format(ns=namespace)
        out = assert_invalid(h.post(path, json=replication_source("Bad_Name")), "metadata.name")
        assert '"Bad_Name"' in out["message"]
        assert h.get(path).json()["items"] == []

        cms = f"/api/v1/namespaces/{namespace}/configmaps"
        assert_invalid(h.post(cms, json={"metadata": {"name": "Bad_Name"}}), "metadata.name")
        assert h.get(cms).json()["items"] == []

        assert_invalid(h.post("/api/v1/namespaces", json={"metadata": {"name": "Bad.Namespace"}}), "metadata.name")
        assert_status(h.get("/api/v1/namespaces/Bad.Namespace"), 404, "NotFound")


def test_missing_metadata_name(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    body = replication_source("x")
    del body["metadata"]["name"]
    with http(apiserver) as h:
        assert_invalid(h.post(path, json=body), "metadata.name")
        assert h.get(path).json()["items"] == []


def test_bad_label_value(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        assert_invalid(h.post(path, json=replication_source("l", labels={"ok": "not valid!"})), "metadata.labels")
        assert_nothing_stored(h, path, "l")


def test_several_problems_are_reported_together(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    body = replication_source("many", paused="yes", rsync={"copyMethod": "Bogus"})
    with http(apiserver) as h:
        out = assert_invalid(h.post(path, json=body), "spec.paused", "spec.rsync.copyMethod")
        assert out["message"].count(":") >= 2
        assert_nothing_stored(h, path, "many")


def test_invalid_update_changes_nothing(apiserver: ApiServer, namespace: str) -> None:
    path = RS_PATH.format(ns=namespace)
    with http(apiserver) as h:
        created = h.post(path, json=replication_source("keep", rsync={"copyMethod": "Snapshot"}))
        assert created.status_code == 201
        before = created.json()

        patch = json.dumps({"spec": {"rsync": {"copyMethod": "Bogus"}}})
        assert_invalid(h.patch(f"{path}/keep", content=patch, headers=MERGE), "spec.rsync.copyMethod")

        replaced = dict(before)
        replaced["spec"] = {"sourcePVC": "data", "trigger": {"schedule": "bogus"}}
        assert_invalid(h.put(f"{path}/keep", json=replaced), "spec.trigger.schedule")

        json_patch = json.dumps([{"op": "replace", "path": "/spec/sourcePVC", "value": 7}])
        assert_invalid(
            h.patch(f"{path}/keep", content=json_patch, headers={"Content-Type": "application/json-patch+json"}),
            "spec.sourcePVC",
        )

        relabel = json.dumps({"metadata": {"name": "Bad_Name"}})
        assert_status(h.patch(f"{path}/keep", content=relabel, headers=MERGE), 400, "BadRequest")

        after = h.get(f"{path}/keep").json()
        assert after == before
