"""CustomResourceDefinitions created, changed and deleted while the server runs: the type shows up
in discovery and is served at once, a new printer column appears in Tables, and deleting the
CRD deletes its objects and takes the type out of discovery."""

from __future__ import annotations

from typing import Any

import httpx
from support.objects import unique
from support.waiting import eventually

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TABLE = {"accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}


def gadget_crd(group: str, columns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {"color": {"type": "string"}, "size": {"type": "integer"}},
                    }
                },
            }
        },
    }
    if columns is not None:
        version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [version],
        },
    }


def gadget(group: str, name: str, color: str) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {"color": color}}


def test_a_crd_created_at_run_time_is_discovered_and_served(hub: httpx.Client, ns: str) -> None:
    group = f"{unique('rt')}.example.com"
    assert hub.get(f"/apis/{group}/v1").status_code == 404
    created = hub.post(CRDS, json=gadget_crd(group))
    assert created.status_code == 201, created.text
    conditions = {c["type"]: c["status"] for c in created.json()["status"]["conditions"]}
    assert conditions["Established"] == "True"

    resources = eventually(lambda: hub.get(f"/apis/{group}/v1").json().get("resources"))
    gadgets = next(r for r in resources if r["name"] == "gadgets")
    assert gadgets["kind"] == "Gadget" and gadgets["namespaced"] is True and gadgets["shortNames"] == ["gd"]
    groups = [g["name"] for g in hub.get("/apis").json()["groups"]]
    assert group in groups

    path = f"/apis/{group}/v1/namespaces/{ns}/gadgets"
    made = hub.post(path, json=gadget(group, "g1", "red"))
    assert made.status_code == 201, made.text
    assert made.json()["metadata"]["generation"] == 1
    assert hub.get(f"{path}/g1").json()["spec"] == {"color": "red"}
    assert [g["metadata"]["name"] for g in hub.get(path).json()["items"]] == ["g1"]
    assert hub.post(path, json={**gadget(group, "g2", "x"), "spec": {"size": "big"}}).status_code == 422


def test_adding_a_printer_column_shows_in_tables(hub: httpx.Client, ns: str) -> None:
    group = f"{unique('rt')}.example.com"
    crd = hub.post(CRDS, json=gadget_crd(group)).json()
    path = f"/apis/{group}/v1/namespaces/{ns}/gadgets"
    assert hub.post(path, json=gadget(group, "g1", "blue")).status_code == 201

    before = hub.get(path, headers=TABLE).json()
    assert [c["name"] for c in before["columnDefinitions"]] == ["Name", "Age"]

    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [
        {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    updated = hub.put(f"{CRDS}/gadgets.{group}", json=crd)
    assert updated.status_code == 200, updated.text
    assert updated.json()["metadata"]["generation"] == 2

    def table_with_three_columns() -> dict[str, Any] | None:
        table: dict[str, Any] = hub.get(path, headers=TABLE).json()
        return table if len(table["columnDefinitions"]) == 3 else None

    table = eventually(table_with_three_columns)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Color", "Age"]
    assert table["rows"][0]["cells"][:2] == ["g1", "blue"]
    single = hub.get(f"{path}/g1", headers=TABLE).json()
    assert single["rows"][0]["cells"][:2] == ["g1", "blue"]
    # the stored object is untouched by a change of presentation
    assert hub.get(f"{path}/g1").json()["spec"] == {"color": "blue"}


def test_deleting_a_crd_deletes_its_objects_and_its_discovery(hub: httpx.Client, ns: str) -> None:
    group = f"{unique('rt')}.example.com"
    assert hub.post(CRDS, json=gadget_crd(group)).status_code == 201
    path = f"/apis/{group}/v1/namespaces/{ns}/gadgets"
    for i in range(3):
        assert hub.post(path, json=gadget(group, f"g{i}", "green")).status_code == 201
    other_ns = hub.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "unrelated"}}).json()

    resp = hub.delete(f"{CRDS}/gadgets.{group}")
    assert resp.status_code == 200, resp.text
    eventually(lambda: hub.get(f"{CRDS}/gadgets.{group}").status_code == 404)
    eventually(lambda: hub.get(f"/apis/{group}/v1").status_code == 404)
    assert group not in [g["name"] for g in hub.get("/apis").json()["groups"]]
    assert hub.get(path).status_code == 404

    # the objects went with their type: recreating it brings back an empty collection
    assert hub.post(CRDS, json=gadget_crd(group)).status_code == 201
    assert eventually(lambda: hub.get(path).status_code == 200)
    assert hub.get(path).json()["items"] == []
    unrelated = hub.get(f"/api/v1/namespaces/{ns}/configmaps/unrelated").json()
    assert unrelated["metadata"]["resourceVersion"] == other_ns["metadata"]["resourceVersion"]
