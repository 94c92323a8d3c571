"""Server-side apply (`application/apply-patch+yaml`): create by apply, field ownership recorded
in managedFields, removal of fields an applier stops applying, 409 conflicts between managers,
`force=true`, and managers sharing an object without stepping on each other's fields."""

from __future__ import annotations

from typing import Any

import httpx
import yaml
from support.objects import assert_status

APPLY = {"content-type": "application/apply-patch+yaml"}


def cm_path(ns: str, name: str = "cfg") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps/{name}"


def apply(hub: httpx.Client, path: str, obj: dict[str, Any], manager: str, **params: str) -> httpx.Response:
    body = yaml.safe_dump(obj).encode()
    return hub.patch(path, content=body, headers=APPLY, params={"fieldManager": manager, **params})


def configmap(name: str = "cfg", labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def entry(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    found = [e for e in obj["metadata"].get("managedFields", []) if e["manager"] == manager]
    assert len(found) == 1, obj["metadata"].get("managedFields")
    return dict(found[0])


def test_apply_creates_and_records_the_manager(hub: httpx.Client, ns: str) -> None:
    resp = apply(hub, cm_path(ns), configmap(labels={"team": "a"}, a="1", b="2"), "alice")
    assert resp.status_code == 201, resp.text
    obj = resp.json()
    assert obj["data"] == {"a": "1", "b": "2"}
    assert obj["metadata"]["labels"] == {"team": "a"}
    mine = entry(obj, "alice")
    assert mine["operation"] == "Apply"
    assert mine["apiVersion"] == "v1"
    assert mine["fieldsType"] == "FieldsV1"
    assert mine["fieldsV1"]["f:data"] == {"f:a": {}, "f:b": {}}
    assert mine["fieldsV1"]["f:metadata"]["f:labels"] == {"f:team": {}}
    assert hub.get(cm_path(ns)).json() == obj  # what was answered is what is stored

    again = apply(hub, cm_path(ns), configmap(labels={"team": "a"}, a="1", b="2"), "alice")
    assert again.status_code == 200, again.text  # an existing object: 200, and an identical apply is a no-op
    assert again.json()["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_reapplying_without_a_field_removes_it(hub: httpx.Client, ns: str) -> None:
    assert apply(hub, cm_path(ns), configmap(labels={"team": "a", "tier": "x"}, a="1", b="2"), "alice").is_success
    resp = apply(hub, cm_path(ns), configmap(labels={"team": "a"}, a="1"), "alice")
    assert resp.status_code == 200, resp.text
    obj = resp.json()
    assert obj["data"] == {"a": "1"}
    assert obj["metadata"]["labels"] == {"team": "a"}
    assert entry(obj, "alice")["fieldsV1"]["f:data"] == {"f:a": {}}


def test_a_conflicting_apply_by_another_manager_is_refused_with_the_field_named(hub: httpx.Client, ns: str) -> None:
    created = apply(hub, cm_path(ns), configmap(a="1", b="2"), "alice").json()
    resp = apply(hub, cm_path(ns), configmap(a="changed"), "bob")
    body = assert_status(resp, 409, "Conflict")
    assert 'conflict with "alice"' in body["message"]
    assert ".data.a" in body["message"]
    assert {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.a"} in body[
        "details"
    ]["causes"]
    unchanged = hub.get(cm_path(ns)).json()
    assert unchanged["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    # applying the same value is not a conflict: both managers then own the field
    same = apply(hub, cm_path(ns), configmap(a="1"), "bob")
    assert same.status_code == 200, same.text
    assert entry(same.json(), "bob")["fieldsV1"]["f:data"] == {"f:a": {}}
    assert entry(same.json(), "alice")["fieldsV1"]["f:data"] == {"f:a": {}, "f:b": {}}
    # a co-owned field stays when one of its owners stops applying it
    alone = apply(hub, cm_path(ns), configmap(b="2"), "alice")
    assert alone.status_code == 200, alone.text
    assert alone.json()["data"] == {"a": "1", "b": "2"}


def test_force_takes_ownership_of_the_conflicting_field(hub: httpx.Client, ns: str) -> None:
    apply(hub, cm_path(ns), configmap(a="1", b="2"), "alice")
    resp = apply(hub, cm_path(ns), configmap(a="forced"), "bob", force="true")
    assert resp.status_code == 200, resp.text
    obj = resp.json()
    assert obj["data"] == {"a": "forced", "b": "2"}
    assert entry(obj, "bob")["fieldsV1"]["f:data"] == {"f:a": {}}
    assert entry(obj, "alice")["fieldsV1"]["f:data"] == {"f:b": {}}

    # alice no longer owns data.a: dropping it from her configuration leaves bob's value alone
    after = apply(hub, cm_path(ns), configmap(b="2"), "alice")
    assert after.status_code == 200, after.text
    assert after.json()["data"] == {"a": "forced", "b": "2"}
    # and she can no longer change it without force
    assert_status(apply(hub, cm_path(ns), configmap(a="mine", b="2"), "alice"), 409, "Conflict")


def test_a_second_manager_adding_its_own_field_keeps_the_first_managers_fields(hub: httpx.Client, ns: str) -> None:
    apply(hub, cm_path(ns), configmap(labels={"owner": "alice"}, a="1"), "alice")
    resp = apply(hub, cm_path(ns), configmap(labels={"audit": "yes"}, extra="x"), "bob")
    assert resp.status_code == 200, resp.text
    obj = resp.json()
    assert obj["data"] == {"a": "1", "extra": "x"}
    assert obj["metadata"]["labels"] == {"owner": "alice", "audit": "yes"}
    assert entry(obj, "alice")["fieldsV1"]["f:data"] == {"f:a": {}}
    assert entry(obj, "bob")["fieldsV1"]["f:data"] == {"f:extra": {}}

    # bob stops applying his field: only his field goes
    mine_only = apply(hub, cm_path(ns), configmap(), "bob")
    assert mine_only.status_code == 200, mine_only.text
    assert mine_only.json()["data"] == {"a": "1"}
    assert mine_only.json()["metadata"]["labels"] == {"owner": "alice"}


def test_apply_requires_a_field_manager(hub: httpx.Client, ns: str) -> None:
    resp = hub.patch(cm_path(ns), content=yaml.safe_dump(configmap(a="1")).encode(), headers=APPLY)
    assert_status(resp, 400, "BadRequest")
    assert hub.get(cm_path(ns)).status_code == 404


def test_apply_to_a_custom_resource(hub: httpx.Client, ns: str) -> None:
    path = f"/apis/volsync.backube/v1alpha1/namespaces/{ns}/replicationsources/rs"
    rs = {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationSource",
        "metadata": {"name": "rs"},
        "spec": {"sourcePVC": "data", "trigger": {"manual": "first"}},
    }
    created = apply(hub, path, rs, "alice")
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["generation"] == 1
    conflict = apply(hub, path, {**rs, "spec": {"sourcePVC": "other"}}, "bob")
    assert ".spec.sourcePVC" in assert_status(conflict, 409, "Conflict")["message"]
    rs["spec"] = {"sourcePVC": "data"}
    dropped = apply(hub, path, rs, "alice")
    assert dropped.status_code == 200, dropped.text
    assert dropped.json()["spec"] == {"sourcePVC": "data"}
    assert dropped.json()["metadata"]["generation"] == 2
