"""Clean shutdown and restart: SIGTERM exits 0 with everything on disk, one server per data
directory, and custom resource types created at run time come back with their objects."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
from support.apiserver import ROOT, ApiServer
from support.store_db import integrity
from support.waiting import eventually

from manifests import CRD_DIR

CM = "/api/v1/namespaces/default/configmaps"
GROUP = "durable.example.com"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = f"/apis/{GROUP}/v1/namespaces/default/widgets"


def widget_crd(extra_columns: list[dict[str, str]] | None = None) -> dict[str, object]:
    version: dict[str, object] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {"size": {"type": "integer", "minimum": 1}, "color": {"type": "string"}},
                    }
                },
            }
        },
    }
    if extra_columns:
        version["additionalPrinterColumns"] = extra_columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [version],
        },
    }


def test_sigterm_exits_0_and_the_data_is_there_after_restart(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        for i in range(20):
            assert client.post(CM, json={"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}}).status_code == 201
        before = client.get(CM).json()
    assert server.stop() == 0
    assert integrity(server.data_dir / "hub.db") == "ok"
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        after = client.get(CM).json()
    assert after["items"] == before["items"]
    # a restart writes nothing of its own: the shipped CRDs and default namespaces are already there
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_sigterm_with_an_open_watch_still_exits_0_promptly(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        params = {"watch": "true", "timeoutSeconds": "600"}
        with client.stream("GET", "/api/v1/namespaces", params=params) as resp:
            lines = resp.iter_lines()
            assert '"ADDED"' in next(lines)  # the watch is established
            assert server.proc is not None
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(15) == 0
            assert time.monotonic() - started < 10
            # the stream ends (the server cuts it after its graceful-shutdown grace) rather than hang
            with contextlib.suppress(httpx.RemoteProtocolError, httpx.ReadError):
                for _ in lines:
                    pass
    assert server.stop() == 0


def test_a_second_server_on_the_same_data_dir_is_refused(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    kubeconfig = server.kubeconfig.read_text()
    cmd = [sys.executable, "-m", "apiserver.main", "--data-dir", str(server.data_dir), "--clusters", "hub",
           "--crd-dir", str(CRD_DIR)]
    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert "in use by another process" in second.stderr
    assert "ready" not in second.stdout
    # the first server is untouched: still serving, its kubeconfig not overwritten
    assert server.kubeconfig.read_text() == kubeconfig
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        assert client.post(CM, json={"metadata": {"name": "still-mine"}}).status_code == 201
    assert server.stop() == 0


def test_custom_resource_types_created_at_run_time_survive_a_restart(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        assert client.post(CRDS, json=widget_crd()).status_code == 201
        eventually(lambda: client.get(f"/apis/{GROUP}/v1").status_code == 200)
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
        created = client.post(WIDGETS, json=body)
        assert created.status_code == 201, created.text
    server.kill()
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        resources = client.get(f"/apis/{GROUP}/v1").json()["resources"]
        assert [r["name"] for r in resources] == ["widgets"]
        got = client.get(f"{WIDGETS}/w1")
        assert got.status_code == 200
        assert got.json() == created.json()
        # the type is fully served again: its schema still validates, new objects can be written
        bad = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": 0}}
        assert client.post(WIDGETS, json=bad).status_code == 422
        good = {**bad, "spec": {"size": 2, "color": "red"}}
        assert client.post(WIDGETS, json=good).status_code == 201
        assert [w["metadata"]["name"] for w in client.get(WIDGETS).json()["items"]] == ["w1", "w2"]


def test_a_deleted_custom_resource_type_stays_deleted_after_restart(make_server: Callable[..., ApiServer]) -> None:
    server = make_server().start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        assert client.post(CRDS, json=widget_crd()).status_code == 201
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
        assert client.post(WIDGETS, json=body).status_code == 201
        assert client.delete(f"{CRDS}/widgets.{GROUP}").status_code == 200
        eventually(lambda: client.get(f"/apis/{GROUP}/v1").status_code == 404)
    server.stop()
    server.start()
    with httpx.Client(base_url=server.cluster_url("hub"), timeout=10.0) as client:
        assert client.get(f"/apis/{GROUP}/v1").status_code == 404
        assert client.get(f"{CRDS}/widgets.{GROUP}").status_code == 404
        # recreating the type does not bring the old objects back
        assert client.post(CRDS, json=widget_crd()).status_code == 201
        assert eventually(lambda: client.get(WIDGETS).status_code == 200)
        assert client.get(WIDGETS).json()["items"] == []
