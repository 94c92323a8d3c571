"""Hostile request input cannot take the API server down (issue 7, item 1).

One process serves every cluster, so each of these would otherwise be a fleet-wide outage: a YAML
alias bomb, an endless chunked body, JSON nested past the interpreter's recursion limit, a CRD
`pattern` that backtracks catastrophically, query parameters that do not parse, names that end in
a newline, and bodies of media types a web page can post. Each is a 4xx `Status`, quickly, and
nothing is stored; the other clusters keep answering meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.apiserver import ApiServer
from support.objects import assert_status, http, unique
from support.waiting import eventually

from apiserver.decoding import MAX_BODY, MAX_DEPTH
from apiserver.server import Server

MIB = 1024 * 1024


def _configmaps(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def _names(h: httpx.Client, path: str) -> list[str]:
    resp = h.get(path)
    assert resp.status_code == 200, resp.text
    return [item["metadata"]["name"] for item in resp.json()["items"]]


class _Concurrent:
    """Run `call` in a thread while the test keeps probing other clusters; `result()` joins it."""

    def __init__(self, call: Callable[[], httpx.Response]) -> None:
        self._out: list[httpx.Response | BaseException] = []
        self.elapsed = 0.0
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], httpx.Response]) -> None:
        start = time.monotonic()
        try:
            self._out.append(call())
        except BaseException as exc:  # handed to the test thread by result()
            self._out.append(exc)
        self.elapsed = time.monotonic() - start

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float) -> httpx.Response:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the request took more than {timeout} s"
        out = self._out[0]
        if isinstance(out, BaseException):
            raise out
        return out


def _version_latencies(apiserver: ApiServer, cluster: str, while_running: _Concurrent) -> list[float]:
    """Time `/version` of `cluster` repeatedly while the other request runs (at least once)."""
    latencies: list[float] = []
    with http(apiserver, cluster, timeout=5.0) as h:
        while True:
            start = time.monotonic()
            assert h.get("/version").status_code == 200
            latencies.append(time.monotonic() - start)
            if not while_running.running or len(latencies) >= 5000:
                return latencies


# -- YAML anchors and aliases -----------------------------------------------------------------------


def _alias_bomb(name: str, levels: int = 9) -> bytes:
    """A ConfigMap of about 1 KB whose aliases expand to 9**levels strings (billion laughs)."""
    lines = ["apiVersion: v1", "kind: ConfigMap", f"metadata: {{name: {name}}}", "data: {}", "x:"]
    lines.append('  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


def test_yaml_alias_bomb_is_refused_quickly(apiserver: ApiServer, namespace: str) -> None:
    body = _alias_bomb("lol")
    assert len(body) < 1100
    path = _configmaps(namespace)
    with http(apiserver, "cluster1", timeout=30.0) as h:
        post = _Concurrent(lambda: h.post(path, content=body, headers={"Content-Type": "application/yaml"}))
        latencies = _version_latencies(apiserver, "cluster2", post)
        resp = post.result(timeout=5.0)
        assert resp.status_code in (400, 413), resp.text
        assert "alias" in resp.json()["message"]
        assert post.elapsed < 1.0, f"refused after {post.elapsed:.2f} s"
        assert max(latencies) < 1.0, latencies
        assert "lol" not in _names(h, path)
        # The same request through apply (application/apply-patch+yaml) is refused the same way.
        resp = h.patch(f"{path}/lol", content=body, params={"fieldManager": "t"},
                       headers={"Content-Type": "application/apply-patch+yaml"})
        assert resp.status_code in (400, 413), resp.text
        assert "lol" not in _names(h, path)


def test_yaml_alias_of_a_long_string_cannot_amplify(apiserver: ApiServer, namespace: str) -> None:
    """Few nodes, but a 50 KB string aliased 1000 times would be 50 MB of JSON to store and serve."""
    body = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: long}\nx:\n"
            f"  s: &s \"{'x' * 50_000}\"\n  l: [{', '.join(['*s'] * 1000)}]\n").encode()
    path = _configmaps(namespace)
    with http(apiserver, timeout=30.0) as h:
        resp = h.post(path, content=body, headers={"Content-Type": "application/yaml"})
        assert_status(resp, 413, "RequestEntityTooLarge")
        assert "long" not in _names(h, path)


def test_yaml_with_modest_aliases_and_yaml_types_still_works(apiserver: ApiServer, namespace: str) -> None:
    body = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: anchors, labels: &l {app: web}, annotations: *l}\n"
        b"data: {when: 2024-01-01T00:00:00Z, 1: one}\n"
    )
    with http(apiserver) as h:
        resp = h.post(_configmaps(namespace), content=body, headers={"Content-Type": "application/yaml"})
        assert resp.status_code == 201, resp.text
        meta = resp.json()["metadata"]
        assert meta["labels"] == meta["annotations"] == {"app": "web"}
        # Timestamps stay strings and keys become strings, as sigs.k8s.io/yaml converts YAML to JSON.
        assert resp.json()["data"] == {"when": "2024-01-01T00:00:00Z", "1": "one"}
        recursive = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loop}\ndata: &d {a: *d}\n"
        resp = h.post(_configmaps(namespace), content=recursive, headers={"Content-Type": "application/yaml"})
        assert_status(resp, 400, "BadRequest")


# -- body size and nesting ------------------------------------------------------------------------


def _raw_post(apiserver: ApiServer, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request over a plain socket until the server answers; (bytes of body sent, answer)."""
    url = urlsplit(apiserver.cluster_url("hub"))
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10) as sock:
        head = [f"POST {url.path}{path} HTTP/1.1", f"Host: {url.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        sent, answer = 0, b""
        deadline = time.monotonic() + 60
        for chunk in chunks:
            view = memoryview(chunk)
            while view and not answer:
                assert time.monotonic() < deadline, "no answer from the server"
                with contextlib.suppress(BlockingIOError):
                    answer = sock.recv(65536)
                try:
                    n = sock.send(view)
                    sent, view = sent + n, view[n:]
                except BlockingIOError:
                    time.sleep(0.001)
                except (BrokenPipeError, ConnectionResetError):
                    break
            if answer:
                break
        sock.setblocking(True)
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        return sent, answer


def _chunked(total: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    data = b"{" + b" " * (piece - 1)
    for _ in range(total // piece):
        yield f"{len(data):x}\r\n".encode() + data + b"\r\n"
        data = b" " * piece
    yield b"0\r\n\r\n"


def test_chunked_body_over_the_limit_is_413_before_it_is_read(apiserver: ApiServer, namespace: str) -> None:
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    sent, answer = _raw_post(apiserver, _configmaps(namespace), headers, _chunked(256 * MIB))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Socket buffers on both sides hold a few MiB; the server stopped reading at its limit.
    assert sent < MAX_BODY + 16 * MIB, f"{sent / MIB:.1f} MiB sent before the answer"


def test_announced_length_over_the_limit_is_413_at_once(apiserver: ApiServer, namespace: str) -> None:
    headers = {"Content-Type": "application/json", "Content-Length": str(MAX_BODY + 1)}
    sent, answer = _raw_post(apiserver, _configmaps(namespace), headers, iter([b""]))
    assert sent == 0
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 1_000_000])
def test_json_nested_too_deep_is_400(apiserver: ApiServer, namespace: str, depth: int) -> None:
    name = f"deep{depth}"
    body = json.dumps({"metadata": {"name": name}, "data": {}, "x": "X"}).replace('"X"', _nested(depth))
    with http(apiserver) as h:
        resp = h.post(_configmaps(namespace), content=body, headers={"Content-Type": "application/json"})
        message = assert_status(resp, 400, "BadRequest")["message"]
        assert f"deeper than {MAX_DEPTH}" in message
        assert name not in _names(h, _configmaps(namespace))
        yaml_body = f"metadata: {{name: {name}}}\nx: {_nested(min(depth, 900))}\n"
        resp = h.post(_configmaps(namespace), content=yaml_body, headers={"Content-Type": "application/yaml"})
        assert resp.status_code == 400, resp.text


def test_json_nesting_within_the_bound_is_served(apiserver: ApiServer, namespace: str) -> None:
    body = json.dumps({"metadata": {"name": "nested"}, "x": "X"}).replace('"X"', _nested(MAX_DEPTH - 2))
    with http(apiserver) as h:
        resp = h.post(_configmaps(namespace), content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 201, resp.text
        assert h.get(f"{_configmaps(namespace)}/nested").json()["x"] == json.loads(_nested(MAX_DEPTH - 2))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_json_numbers_go_cannot_parse_are_400(apiserver: ApiServer, namespace: str, literal: str) -> None:
    body = json.dumps({"metadata": {"name": "num"}, "x": "X"}).replace('"X"', literal)
    with http(apiserver) as h:
        resp = h.post(_configmaps(namespace), content=body, headers={"Content-Type": "application/json"})
        assert_status(resp, 400, "BadRequest")
        assert "num" not in _names(h, _configmaps(namespace))


# -- CRD patterns ---------------------------------------------------------------------------------


def _crd(group: str, pattern: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "properties": {"value": {"type": "string", "pattern": pattern}},
                }}}},
            }],
        },
    }  # fmt: skip


CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def test_catastrophic_pattern_is_checked_in_linear_time(apiserver: ApiServer) -> None:
    group = f"{unique('h1')}.example.com"
    path = f"/apis/{group}/v1/gadgets"
    with http(apiserver, "cluster1") as h:
        assert h.post(CRDS, json=_crd(group, "^(a+)+$")).status_code == 201
        eventually(lambda: h.get(path).status_code == 200, what="the new CRD is served")
        good = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "ok"}, "spec": {"value": "aaaa"}}
        assert h.post(path, json=good).status_code == 201
        evil = {**good, "metadata": {"name": "evil"}, "spec": {"value": "a" * 4096 + "!"}}
        post = _Concurrent(lambda: h.post(path, json=evil))
        latencies = _version_latencies(apiserver, "cluster2", post)
        resp = post.result(timeout=5.0)
        body = assert_status(resp, 422, "Invalid")
        assert body["details"]["causes"][0]["field"] == "spec.value"
        assert post.elapsed < 1.0, f"checked in {post.elapsed:.2f} s"
        assert max(latencies) < 1.0, latencies
        assert _names(h, path) == ["ok"]
        # RE2's `$` is the end of the text: a trailing newline does not match.
        newline = {**good, "metadata": {"name": "newline"}, "spec": {"value": "aaaa\n"}}
        assert_status(h.post(path, json=newline), 422, "Invalid")


def test_pattern_re2_cannot_compile_is_refused_at_registration(apiserver: ApiServer) -> None:
    group = f"{unique('h1')}.example.com"
    with http(apiserver, "cluster1") as h:
        body = assert_status(h.post(CRDS, json=_crd(group, "^(?=a)a$")), 422, "Invalid")
        cause = body["details"]["causes"][0]
        assert cause["field"] == "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[value].pattern"
        assert "must be a valid regular expression" in cause["message"]
        assert h.get(f"{CRDS}/gadgets.{group}").status_code == 404


# -- query parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "abc"}, {"limit": "nan"}, {"limit": "-1"}, {"limit": "1.5"}, {"limit": "1e3"},
        {"timeoutSeconds": "abc"}, {"timeoutSeconds": "nan"}, {"timeoutSeconds": "-5"},
        {"watch": "true", "timeoutSeconds": "nan"}, {"watch": "true", "timeoutSeconds": "inf"},
        {"resourceVersion": "abc"}, {"resourceVersion": "-1"}, {"resourceVersion": "nan"},
        {"watch": "true", "resourceVersion": "abc"}, {"resourceVersionMatch": "Sometime", "resourceVersion": "1"},
        {"includeObject": "Everything"},
    ],
)  # fmt: skip
def test_bad_list_and_watch_parameters_are_400(apiserver: ApiServer, namespace: str, query: dict[str, str]) -> None:
    with http(apiserver, timeout=5.0) as h:
        body = assert_status(h.get(_configmaps(namespace), params=query), 400, "BadRequest")
        assert any(k in body["message"] for k in query if k != "watch"), body["message"]


def test_bad_write_and_delete_parameters_are_400_and_change_nothing(apiserver: ApiServer, namespace: str) -> None:
    path = _configmaps(namespace)
    with http(apiserver) as h:
        assert h.post(path, json={"metadata": {"name": "keep"}}).status_code == 201
        for grace in ("abc", "nan", "-1"):
            assert_status(h.delete(f"{path}/keep", params={"gracePeriodSeconds": grace}), 400, "BadRequest")
        for options in ({"dryRun": "All"}, {"gracePeriodSeconds": -1}, {"preconditions": "x"},
                        {"orphanDependents": "yes"}, {"propagationPolicy": 7}):
            resp = h.request("DELETE", f"{path}/keep", json=options)
            assert_status(resp, 400, "BadRequest")
        assert_status(h.post(path, json={"metadata": {"name": "new"}}, params={"fieldValidation": "Lax"}),
                      400, "BadRequest")
        assert _names(h, path) == ["keep"]


# -- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta",
    [
        {"name": "foo\n"}, {"generateName": "gen\n"}, {"name": "ok", "labels": {"a\n": "b"}},
        {"name": "ok", "labels": {"a": "b\n"}}, {"name": "ok", "annotations": {"a\n": "b"}},
        {"name": "ok", "finalizers": 7}, {"name": "ok", "ownerReferences": 7}, {"generateName": 7},
    ],
)  # fmt: skip
def test_names_and_keys_are_matched_in_full(apiserver: ApiServer, namespace: str, meta: dict[str, Any]) -> None:
    path = _configmaps(namespace)
    with http(apiserver) as h:
        assert_status(h.post(path, json={"metadata": meta}), 422, "Invalid")
        assert _names(h, path) == []


def test_namespace_names_are_matched_in_full(apiserver: ApiServer) -> None:
    with http(apiserver) as h:
        assert_status(h.post("/api/v1/namespaces", json={"metadata": {"name": "trailing\n"}}), 422, "Invalid")
        resp = h.post("/api/v1/namespaces/trailing%0A/configmaps", json={"metadata": {"name": "x"}})
        assert resp.status_code in (404, 422), resp.text
        assert "trailing\n" not in _names(h, "/api/v1/namespaces")


# -- media types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "application/xml", "application/merge-patch+json"],
)  # fmt: skip
def test_writes_of_other_media_types_are_415(apiserver: ApiServer, namespace: str, content_type: str) -> None:
    path = _configmaps(namespace)
    body = json.dumps({"metadata": {"name": "posted"}, "data": {"a": "1"}})
    with http(apiserver) as h:
        assert_status(h.post(path, content=body, headers={"Content-Type": content_type}), 415, "UnsupportedMediaType")
        assert _names(h, path) == []
        assert h.post(path, json={"metadata": {"name": "there"}}).status_code == 201
        resp = h.put(f"{path}/there", content=body.replace("posted", "there"), headers={"Content-Type": content_type})
        assert_status(resp, 415, "UnsupportedMediaType")
        if content_type != "application/merge-patch+json":
            resp = h.patch(f"{path}/there", content='{"data":{"b":"2"}}', headers={"Content-Type": content_type})
            assert_status(resp, 415, "UnsupportedMediaType")
        assert "data" not in h.get(f"{path}/there").json()


def test_create_without_content_type_is_json(apiserver: ApiServer, namespace: str) -> None:
    """The official Python client sends its creates without a Content-Type; kube-apiserver takes JSON."""
    path = _configmaps(namespace)
    with http(apiserver) as h:
        resp = h.post(path, content=json.dumps({"metadata": {"name": "bare"}}))
        assert "content-type" not in resp.request.headers
        assert resp.status_code == 201, resp.text


# -- found by tests/fuzz ---------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["apiVersion", "kind"])
def test_non_string_api_version_or_kind_is_400(apiserver: ApiServer, namespace: str, field: str) -> None:
    path = _configmaps(namespace)
    with http(apiserver) as h:
        for value in ({"a": 1}, ["v1"]):
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}, field: value}
            assert_status(h.post(path, json=body), 400, "BadRequest")
        assert _names(h, path) == []


def test_patches_that_leave_metadata_not_an_object_are_400(apiserver: ApiServer, namespace: str) -> None:
    path = _configmaps(namespace)
    with http(apiserver) as h:
        before = h.post(path, json={"metadata": {"name": "meta"}, "data": {"a": "1"}}).json()
        resp = h.patch(f"{path}/meta", content='{"metadata": [1]}',
                       headers={"Content-Type": "application/merge-patch+json"})
        assert_status(resp, 400, "BadRequest")
        resp = h.patch(f"{path}/meta", content="apiVersion: v1\nkind: ConfigMap\nmetadata: null\n",
                       params={"fieldManager": "t"}, headers={"Content-Type": "application/apply-patch+yaml"})
        assert_status(resp, 400, "BadRequest")
        assert h.get(f"{path}/meta").json() == before


def test_unknown_field_names_of_any_text_are_warned_about(apiserver: ApiServer) -> None:
    """The Warning header naming an unknown field survives names no header could carry as they are."""
    group = f"{unique('h1')}.example.com"
    path = f"/apis/{group}/v1/gadgets"
    with http(apiserver, "cluster1") as h:
        assert h.post(CRDS, json=_crd(group, "^a+$")).status_code == 201
        eventually(lambda: h.get(path).status_code == 200, what="the new CRD is served")
        body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "w"},
                "spec": {"value": "a", "€\u0001\"x": 1}}
        resp = h.post(path, json=body)
        assert resp.status_code == 201, resp.text
        assert "spec." in resp.headers["warning"]
        assert resp.json()["spec"] == {"value": "a"}


def test_lone_surrogates_become_replacement_characters(apiserver: ApiServer, namespace: str) -> None:
    path = _configmaps(namespace)
    with http(apiserver) as h:
        resp = h.post(path, content='{"metadata":{"name":"s"},"data":{"\\ud800":"\\udc00x"}}',
                      headers={"Content-Type": "application/json"})
        assert resp.status_code == 201, resp.text
        assert h.get(f"{path}/s").json()["data"] == {"\ufffd": "\ufffdx"}
        # The cluster's store still takes writes afterwards.
        assert h.post(path, json={"metadata": {"name": "after"}}).status_code == 201


def test_large_valid_write_is_admitted_off_the_event_loop(apiserver: ApiServer) -> None:
    """A body near the size limit whose every string is schema-checked: the other clusters answer
    `/version` within a second throughout its admission."""
    group = f"{unique('h1')}.example.com"
    path = f"/apis/{group}/v1/gadgets"
    crd = _crd(group, "^[a-z]+$")
    value_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    value_schema["values"] = {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}}
    with http(apiserver, "cluster1", timeout=120.0) as h:
        assert h.post(CRDS, json=crd).status_code == 201
        eventually(lambda: h.get(path).status_code == 200, what="the new CRD is served")
        body = {"apiVersion": f"{group}/v1", "kind": "Gadget", "metadata": {"name": "big"},
                "spec": {"values": ["ab"] * ((MAX_BODY - 1000) // 6)}}
        post = _Concurrent(lambda: h.post(path, json=body))
        latencies = _version_latencies(apiserver, "cluster2", post)
        resp = post.result(timeout=120.0)
        assert resp.status_code == 201, resp.text[:500]
        assert len(latencies) > 1 and max(latencies) < 1.0, (post.elapsed, latencies)


def _nested_any_of(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        node = {"anyOf": [node, node]}
    return node


@pytest.mark.parametrize(
    "value_schema",
    [
        {"type": "string", "maxLength": "abc"}, {"type": "integer", "multipleOf": "x"},
        {"type": "array", "maxItems": -1},
        {"type": "object", "required": "abc"}, {"type": "object", "minProperties": "1"}, {"anyOf": {"type": "string"}},
        {"type": ["string"]}, {"properties": []}, {"type": "object", "additionalProperties": "x"},
        {"type": "string", "format": 5}, {"type": "string", "pattern": 5}, {"type": "integer", "multipleOf": 0},
        {"type": "object", "x-kubernetes-preserve-unknown-fields": "yes"},
        {"type": "array", "x-kubernetes-list-type": "bag"},
        _nested_any_of(12),
    ],
)  # fmt: skip
def test_crd_schemas_that_cannot_be_enforced_are_refused(apiserver: ApiServer, value_schema: dict[str, Any]) -> None:
    """Each of these made every write of the CRD's resources a 500 (or, nested anyOf, exponential work)."""
    group = f"{unique('h1')}.example.com"
    crd = _crd(group, "^a+$")
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["value"] = value_schema
    with http(apiserver, "cluster1") as h:
        body = assert_status(h.post(CRDS, json=crd), 422, "Invalid")
        assert body["details"]["causes"][0]["field"].startswith("spec.versions[0].schema.openAPIV3Schema.")
        assert h.get(f"{CRDS}/gadgets.{group}").status_code == 404


@pytest.mark.parametrize("column", [
    {"name": 5, "jsonPath": ".spec"}, {"name": "A", "jsonPath": ".spec", "priority": "x"}, "x",
    {"name": "A", "jsonPath": ".spec", "type": "color"},
])  # fmt: skip
def test_crd_printer_columns_that_cannot_be_rendered_are_refused(apiserver: ApiServer, column: Any) -> None:
    group = f"{unique('h1')}.example.com"
    crd = _crd(group, "^a+$")
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = [column]
    with http(apiserver, "cluster1") as h:
        assert_status(h.post(CRDS, json=crd), 422, "Invalid")


def test_client_going_away_mid_body_is_no_internal_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A client that disconnects halfway through its body is a 400 for nobody, not a logged 500."""
    server = Server.open(tmp_path, ["hub"])
    incoming = [{"type": "http.request", "body": b'{"metadata":', "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/clusters/hub/api/v1/namespaces/default/configmaps",
             "raw_path": b"/clusters/hub/api/v1/namespaces/default/configmaps", "query_string": b"",
             "headers": [(b"content-type", b"application/json")], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": ""}  # fmt: skip
    try:
        asyncio.run(server(scope, receive, send))  # type: ignore[arg-type]
    finally:
        server.close()
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
