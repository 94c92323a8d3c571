"""`kill -9` in the middle of a write storm loses no acknowledged write.

A writer thread creates and updates ConfigMaps and patches a custom resource as fast as the server
answers, keeping a ledger of every write that got a 2xx (object, value, returned resourceVersion).
After a fixed number of acknowledged writes the server is SIGKILLed and restarted on the same data
directory: every acknowledged write must be there (or the single write that was in flight when the
server died, never anything older), and resourceVersions must keep increasing past everything seen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from support.apiserver import ApiServer
from support.objects import replication_source

MakeServer = Callable[..., ApiServer]

ACKED_BEFORE_KILL = 300
CM = "/api/v1/namespaces/default/configmaps"
RS = "/apis/volsync.backube/v1alpha1/namespaces/default/replicationsources"
MERGE = {"content-type": "application/merge-patch+json"}


@dataclass
class Ledger:
    acked: dict[str, tuple[int, str]] = field(default_factory=dict)  # object path -> (rv, value)
    rvs: list[int] = field(default_factory=list)  # every acknowledged rv, in the order answered
    inflight: tuple[str, str] | None = None  # (object path, value) of the write not yet answered
    error: str = ""


def _value_of(path: str, obj: dict[str, Any]) -> str:
    if path.startswith(RS):
        return str(obj["spec"]["sourcePVC"])
    return str(obj["data"]["v"])


def _write_storm(url: str, ledger: Ledger, enough: threading.Event, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        i = 0
        latest_cm = ""
        while not stop.is_set():
            value = str(i)
            if i % 3 == 0:
                name = f"cm-{i}"
                path, request = f"{CM}/{name}", ("POST", CM, {"metadata": {"name": name}, "data": {"v": value}}, None)
            elif i % 3 == 1:
                path, request = f"{CM}/{latest_cm}", ("PATCH", f"{CM}/{latest_cm}", {"data": {"v": value}}, MERGE)
            else:
                path, request = f"{RS}/rs", ("PATCH", f"{RS}/rs", {"spec": {"sourcePVC": value}}, MERGE)
            method, url_path, body, headers = request
            ledger.inflight = (path, value)
            try:
                resp = client.request(method, url_path, json=body, headers=headers)
            except httpx.TransportError:
                return  # the server is gone
            if resp.status_code >= 300:
                ledger.error = f"{method} {url_path}: {resp.status_code} {resp.text}"
                return
            rv = int(resp.json()["metadata"]["resourceVersion"])
            ledger.acked[path] = (rv, value)
            ledger.rvs.append(rv)
            ledger.inflight = None
            if i % 3 == 0:
                latest_cm = f"cm-{i}"
            if len(ledger.rvs) >= ACKED_BEFORE_KILL:
                enough.set()
            i += 1


def test_kill_9_during_a_write_loop_keeps_every_acknowledged_write(make_server: MakeServer) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        resp = client.post(RS, json=replication_source("rs"))
        assert resp.status_code == 201, resp.text
    ledger = Ledger()
    enough, stop = threading.Event(), threading.Event()
    writer = threading.Thread(target=_write_storm, args=(server.cluster_url("hub"), ledger, enough, stop))
    writer.start()
    try:
        assert enough.wait(60), f"only {len(ledger.rvs)} writes acknowledged; {ledger.error}"
        server.kill()
    finally:
        stop.set()
        writer.join(30)
    assert not writer.is_alive()
    assert not ledger.error
    assert len(ledger.rvs) >= ACKED_BEFORE_KILL
    assert ledger.rvs == sorted(set(ledger.rvs)), "acknowledged resourceVersions must strictly increase"
    highest_acked = ledger.rvs[-1]

    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        for path, (acked_rv, acked_value) in ledger.acked.items():
            resp = client.get(path)
            assert resp.status_code == 200, f"acknowledged {path} lost after kill -9: {resp.text}"
            obj = resp.json()
            rv, value = int(obj["metadata"]["resourceVersion"]), _value_of(path, obj)
            assert rv >= acked_rv, f"{path} went back from rv {acked_rv} to {rv}"
            if rv == acked_rv:
                assert value == acked_value, path
            else:  # only the write in flight at the kill may have landed after the acknowledged one
                assert ledger.inflight == (path, value), (path, rv, value, ledger.inflight)

        listed = client.get(CM)
        assert listed.status_code == 200
        list_rv = int(listed.json()["metadata"]["resourceVersion"])
        assert list_rv >= highest_acked
        names = {item["metadata"]["name"] for item in listed.json()["items"]}
        acked_names = {p.rsplit("/", 1)[1] for p in ledger.acked if p.startswith(CM)}
        assert acked_names <= names

        created = client.post(CM, json={"metadata": {"name": "after-restart"}})
        assert created.status_code == 201, created.text
        patched = client.patch(f"{RS}/rs", json={"spec": {"sourcePVC": "after"}}, headers=MERGE)
        assert patched.status_code == 200, patched.text
        new_rvs = [int(r.json()["metadata"]["resourceVersion"]) for r in (created, patched)]
        assert highest_acked < list_rv + 1 <= new_rvs[0] < new_rvs[1]


def test_kill_9_right_after_an_acknowledged_delete_keeps_it_deleted(make_server: MakeServer) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        for name in ("kept", "doomed"):
            assert client.post(CM, json={"metadata": {"name": name}, "data": {"v": name}}).status_code == 201
        resp = client.delete(f"{CM}/doomed")
        assert resp.status_code == 200, resp.text
    server.kill()
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        assert client.get(f"{CM}/doomed").status_code == 404
        assert client.get(f"{CM}/kept").json()["data"] == {"v": "kept"}
        names = [item["metadata"]["name"] for item in client.get(CM).json()["items"]]
        assert "doomed" not in names
