"""Write options that change what a write does: `generateName` picks a fresh name, and
`dryRun=All` runs a create, update, patch or delete through admission without storing anything."""

from __future__ import annotations

import re

import httpx
from support.objects import assert_status
from support.watch_stream import watch_events

MERGE = {"content-type": "application/merge-patch+json"}
DRY = {"dryRun": "All"}


def cms(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps"


def list_rv(hub: httpx.Client, ns: str) -> str:
    return str(hub.get(cms(ns)).json()["metadata"]["resourceVersion"])


def test_generate_name_appends_a_random_suffix(hub: httpx.Client, ns: str) -> None:
    names = set()
    for _ in range(5):
        resp = hub.post(cms(ns), json={"metadata": {"generateName": "job-"}, "data": {"k": "v"}})
        assert resp.status_code == 201, resp.text
        meta = resp.json()["metadata"]
        assert re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", meta["name"]), meta["name"]
        assert meta["generateName"] == "job-"
        assert hub.get(f"{cms(ns)}/{meta['name']}").status_code == 200
        names.add(meta["name"])
    assert len(names) == 5


def test_an_explicit_name_wins_over_generate_name(hub: httpx.Client, ns: str) -> None:
    resp = hub.post(cms(ns), json={"metadata": {"name": "exact", "generateName": "job-"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["metadata"]["name"] == "exact"


def test_generate_name_must_make_a_valid_name(hub: httpx.Client, ns: str) -> None:
    assert_status(hub.post(cms(ns), json={"metadata": {"generateName": "Bad_Prefix-"}}), 422, "Invalid")
    assert_status(hub.post(cms(ns), json={"metadata": {}}), 422, "Invalid")  # neither name nor generateName


def test_dry_run_create_stores_nothing(hub: httpx.Client, ns: str) -> None:
    before = list_rv(hub, ns)
    resp = hub.post(cms(ns), params=DRY, json={"metadata": {"name": "ghost"}, "data": {"k": "v"}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["metadata"]["name"] == "ghost"
    assert resp.json()["metadata"]["uid"]  # fully admitted: defaulted as a real create would be
    assert hub.get(f"{cms(ns)}/ghost").status_code == 404
    assert list_rv(hub, ns) == before

    generated = hub.post(cms(ns), params=DRY, json={"metadata": {"generateName": "ghost-"}})
    assert generated.status_code == 201, generated.text
    assert hub.get(f"{cms(ns)}/{generated.json()['metadata']['name']}").status_code == 404
    assert hub.get(cms(ns)).json()["items"] == []

    # a dry run is still validated
    assert_status(hub.post(cms(ns), params=DRY, json={"metadata": {"name": "Not_Valid"}}), 422, "Invalid")


def test_dry_run_update_and_patch_change_nothing(hub: httpx.Client, ns: str) -> None:
    created = hub.post(cms(ns), json={"metadata": {"name": "cfg"}, "data": {"k": "v"}}).json()
    before = list_rv(hub, ns)

    put = {**created, "data": {"k": "put"}}
    resp = hub.put(f"{cms(ns)}/cfg", params=DRY, json=put)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"k": "put"}

    resp = hub.patch(f"{cms(ns)}/cfg", params=DRY, json={"data": {"k": "patched"}}, headers=MERGE)
    assert resp.status_code == 200, resp.text
    assert resp.json()["data"] == {"k": "patched"}

    assert hub.get(f"{cms(ns)}/cfg").json() == created
    assert list_rv(hub, ns) == before
    # nothing was announced either: a watch from before sees no event (only the real write below)
    assert hub.patch(f"{cms(ns)}/cfg", json={"data": {"k": "real"}}, headers=MERGE).status_code == 200
    events = watch_events(hub, cms(ns), before, lambda evs: True)
    assert [(e["type"], e["object"]["data"]) for e in events] == [("MODIFIED", {"k": "real"})]


def test_dry_run_delete_keeps_the_object(hub: httpx.Client, ns: str) -> None:
    created = hub.post(cms(ns), json={"metadata": {"name": "cfg"}}).json()
    held = hub.post(cms(ns), json={"metadata": {"name": "held", "finalizers": ["example.com/x"]}}).json()
    before = list_rv(hub, ns)

    resp = hub.delete(f"{cms(ns)}/cfg", params=DRY)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "Success"
    assert hub.get(f"{cms(ns)}/cfg").json() == created

    marked = hub.delete(f"{cms(ns)}/held", params=DRY)
    assert marked.status_code == 200, marked.text
    assert marked.json()["metadata"]["deletionTimestamp"]  # what would happen...
    assert hub.get(f"{cms(ns)}/held").json() == held  # ...but did not

    in_body = hub.request("DELETE", f"{cms(ns)}/cfg", json={"dryRun": ["All"]})
    assert in_body.status_code == 200, in_body.text
    assert hub.get(f"{cms(ns)}/cfg").status_code == 200
    assert list_rv(hub, ns) == before


def test_dry_run_delete_of_an_owner_collects_nothing(hub: httpx.Client, ns: str) -> None:
    owner = hub.post(cms(ns), json={"metadata": {"name": "owner"}}).json()
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    child = hub.post(cms(ns), json={"metadata": {"name": "child", "ownerReferences": [ref]}}).json()
    before = list_rv(hub, ns)
    assert hub.delete(f"{cms(ns)}/owner", params=DRY).status_code == 200
    assert hub.get(f"{cms(ns)}/child").json() == child
    assert list_rv(hub, ns) == before


def test_an_unknown_dry_run_value_is_refused(hub: httpx.Client, ns: str) -> None:
    resp = hub.post(cms(ns), params={"dryRun": "Everything"}, json={"metadata": {"name": "cfg"}})
    assert_status(resp, 400, "BadRequest")
    assert hub.get(f"{cms(ns)}/cfg").status_code == 404
