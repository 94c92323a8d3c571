"""Compaction: with a small `--history` the superseded rows really leave the SQLite file, while
every current object (however old its last write) stays, on disk and through the API."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from support.apiserver import ApiServer
from support.store_db import compacted, rows_for

CM = "/api/v1/namespaces/default/configmaps"
MERGE = {"content-type": "application/merge-patch+json"}


def test_compaction_drops_old_rows_but_keeps_every_current_object(make_server: Callable[..., ApiServer]) -> None:
    server = make_server("--history", "20").start()
    db = server.data_dir / "hub.db"
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        for i in range(10):  # written once, never again: their only row is older than any window
            assert client.post(CM, json={"metadata": {"name": f"quiet-{i}"}, "data": {"i": str(i)}}).status_code == 201
        assert client.post(CM, json={"metadata": {"name": "gone"}}).status_code == 201
        assert client.delete(f"{CM}/gone").status_code == 200
        assert client.post(CM, json={"metadata": {"name": "hot"}}).status_code == 201

        writes, start = 0, compacted(db)  # start-up writes (CRDs, APIServices, ServiceAccounts) may compact
        while compacted(db) <= start:
            assert writes < 20_000, "the store never compacted"
            for _ in range(250):
                resp = client.patch(f"{CM}/hot", json={"data": {"n": str(writes)}}, headers=MERGE)
                assert resp.status_code == 200, resp.text
                writes += 1
        hot_rv = int(resp.json()["metadata"]["resourceVersion"])

        hot_rows = rows_for(db, "/configmaps", "default", "hot")
        assert len(hot_rows) < writes // 4, f"{len(hot_rows)} rows left of {writes + 1} writes"
        assert hot_rows[-1] == (hot_rv, "MODIFIED")
        assert all(rv > compacted(db) for rv, _ in hot_rows[:-1])  # only the window survives, plus the head
        assert rows_for(db, "/configmaps", "default", "gone") == []  # a deletion older than the window
        for i in range(10):
            assert len(rows_for(db, "/configmaps", "default", f"quiet-{i}")) == 1

        items = {o["metadata"]["name"]: o for o in client.get(CM).json()["items"]}
        assert sorted(items) == sorted(["hot", *(f"quiet-{i}" for i in range(10))])
        assert items["hot"]["data"] == {"n": str(writes - 1)}
        assert all(items[f"quiet-{i}"]["data"] == {"i": str(i)} for i in range(10))

    server.kill()  # and what was compacted stays compacted, what was kept stays served
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        after = {o["metadata"]["name"]: o for o in client.get(CM).json()["items"]}
        assert after == items
        # the resourceVersion counter survives the compaction of old rows: new writes go past it
        created = client.post(CM, json={"metadata": {"name": "gone"}})
        assert created.status_code == 201, created.text
        assert int(created.json()["metadata"]["resourceVersion"]) > hot_rv
