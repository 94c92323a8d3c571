"""Property-based fuzzing of the embedded API server's read and write paths (issue 7, item 7).

Hypothesis drives random and mutated requests: methods, resource and discovery paths (and
garbage ones), media types, bodies (JSON values, mutations of real objects, YAML with anchors,
deep nesting, garbage bytes, protobuf-looking bytes) and query strings (`limit`, `continue`,
`resourceVersion`, `timeoutSeconds`, label and field selector garbage...). The properties: no
answer is a 5xx, every request finishes within its timeout, and `/version` still answers promptly
afterwards. The bulk runs in process through `httpx.ASGITransport` (fast); a shorter run drives a
real server process over HTTP. Runs are derandomized (reproducible) and bounded to well under a
minute; each prints its counts of requests and of 5xx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.apiserver import ApiServer

from apiserver.server import Server

REQUEST_TIMEOUT = 10.0  # seconds; a request slower than this is a hang
IN_PROCESS_EXAMPLES = 2000  # 15-30 s (each watch lasts its 1 s timeout)
REAL_PROCESS_EXAMPLES = 400  # 5-10 s
NS = "fuzz"
RS = "/apis/volsync.backube/v1alpha1/namespaces/{ns}/replicationsources"
CM = "/api/v1/namespaces/{ns}/configmaps"
SEEDS: dict[str, dict[str, Any]] = {
    CM: {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "cm", "labels": {"app": "a"}}, "data": {"k": "v"}},
    RS: {"apiVersion": "volsync.backube/v1alpha1", "kind": "ReplicationSource",
         "metadata": {"name": "rs"}, "spec": {"sourcePVC": "data", "trigger": {"manual": "once"}}},
}  # fmt: skip

# -- strategies -----------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.text(st.characters(exclude_categories=()), max_size=4),  # lone surrogates too: "\ud800" in JSON
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)
names = st.one_of(
    st.sampled_from(["cm", "rs", "x", "cm\n", "a.b", "UPPER", "-", "..", "%2F", "a" * 300, "\udc80", "\x00"]),
    st.text(max_size=12),
)
collections = st.sampled_from([CM, RS])
item_paths = st.tuples(
    collections, st.one_of(st.sampled_from(["cm", "rs"]), names), st.sampled_from(["", "", "/status", "/x"])
).map(lambda t: f"{t[0]}/{quote(t[1].encode('utf-8', 'surrogatepass'), safe='')}{t[2]}")
other_paths = st.one_of(
    st.sampled_from(["/api/v1/namespaces", "/api/v1/configmaps", "/api/v1/namespaces/{ns}/secrets",
                     "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                     "/apis/cluster.open-cluster-management.io/v1/managedclusters",
                     "/version", "/api", "/apis", "/api/v1", "/apis/volsync.backube/v1alpha1", "/openapi/v2"]),
    st.lists(st.text(alphabet="abcdeiopsv1/.%-", max_size=8), max_size=6).map(lambda ps: "/" + "/".join(ps)),
    st.sampled_from(["/api/v1/namespaces/%ED%A0%80", "/api/v1/namespaces/%FF/configmaps", "/apis/%ED%A0%80/v1/x",
                     "/api/v1/namespaces/{ns}/configmaps/%00", "/api/v1/namespaces/{ns}/configmaps/%ED%A0%80",
                     "/api/v1/namespaces/{ns}/configmaps?labelSelector=%ED%A0%80&fieldSelector=a%3D%FF",
                     "/api/v1/namespaces/{ns}/configmaps?limit=%FF&continue=%ED%A0%80&resourceVersion=%00"]),
)  # fmt: skip
paths = st.one_of(collections, item_paths, item_paths, other_paths)
content_types = st.one_of(
    st.sampled_from([
        "application/json", "application/yaml", "application/merge-patch+json", "application/json-patch+json",
        "application/strategic-merge-patch+json", "application/apply-patch+yaml", "application/vnd.kubernetes.protobuf",
        "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-8", "", "*/*",
    ]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)  # fmt: skip
accepts = st.sampled_from([
    "", "application/json", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", "application/yaml", "text/html",
])  # fmt: skip
selector_text = st.one_of(
    st.text(max_size=40),
    st.lists(
        st.tuples(
            st.sampled_from(["app", "metadata.name", "metadata.namespace", "a/b", "x" * 70, "!app", "spec.x", ""]),
            st.sampled_from(["=", "==", "!=", " in ", " notin ", "", ">", "<", " in (", ")"]),
            st.sampled_from(["a", "(a,b)", "(", "", "1", "a\n", "x" * 70, "-1"]),
        ).map("".join),
        max_size=3,
    ).map(",".join),
)
number_text = st.one_of(
    st.sampled_from(["0", "1", "-1", "abc", "nan", "inf", "1.5", "1e3", "99999999999999999999", "", " 1", "+1"]),
    st.integers(min_value=-(2**65), max_value=2**65).map(str),
)
query_values: dict[str, st.SearchStrategy[str]] = {
    "limit": number_text, "timeoutSeconds": number_text, "gracePeriodSeconds": number_text,
    "resourceVersion": number_text, "continue": st.one_of(st.text(max_size=40), st.just("eyJydiI6IDF9")),
    "labelSelector": selector_text, "fieldSelector": selector_text,
    "watch": st.sampled_from(["true", "1", "false", "x"]), "allowWatchBookmarks": st.sampled_from(["true", "x"]),
    "fieldValidation": st.sampled_from(["Strict", "Warn", "Ignore", "Lax", ""]),
    "fieldManager": st.text(max_size=10), "force": st.sampled_from(["true", "x"]),
    "dryRun": st.sampled_from(["All", "x", ""]), "propagationPolicy": st.sampled_from(["Orphan", "Foreground", "x"]),
    "resourceVersionMatch": st.sampled_from(["Exact", "NotOlderThan", "x"]),
    "includeObject": st.sampled_from(["None", "Metadata", "Object", "x"]), "sendInitialEvents": st.just("true"),
    "orphanDependents": st.sampled_from(["true", "false"]),
}  # fmt: skip
queries = st.dictionaries(st.sampled_from(sorted(query_values)), st.just(""), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: query_values[k] for k in keys})
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """`base` with a few random subtrees replaced, removed or retyped."""
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 4))):
        spots = list(_spots(obj))
        if not spots:
            break
        parent, key = spots[draw(st.integers(0, len(spots) - 1))]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(key, None)
        else:
            parent[key] = draw(json_values)
    return obj


def _spots(x: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield x, k
            yield from _spots(v)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield x, i
            yield from _spots(v)


def _yaml_with_aliases(value: Any, fanout: int, levels: int) -> bytes:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: y}", "x:", f"  a0: &a0 {json.dumps(value)}"]
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * fanout) + "]")
    return ("\n".join(lines) + "\n").encode()


PROTOBUF_BODIES = sorted(p.read_bytes() for p in (Path(__file__).parents[1] / "fixtures" / "protobuf").glob("*.bin"))


@st.composite
def mutated_protobuf(draw: st.DrawFn) -> bytes:
    """A body kubectl 1.32 sent (tests/fixtures/protobuf) with a few bytes changed, cut or added."""
    body = bytearray(draw(st.sampled_from(PROTOBUF_BODIES)))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        choice = draw(st.integers(0, 2))
        if choice == 0 and at < len(body):
            body[at] = draw(st.integers(0, 255))
        elif choice == 1:
            del body[at:at + draw(st.integers(1, 16))]
        else:
            body[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(body)


bodies = st.one_of(
    st.none(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(sorted(SEEDS)).flatmap(lambda p: mutated(SEEDS[p])).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(sorted(SEEDS)).flatmap(lambda p: mutated(SEEDS[p])).map(lambda v: yaml.safe_dump(v).encode()),
    st.tuples(json_values, st.integers(1, 12), st.integers(1, 12)).map(lambda t: _yaml_with_aliases(*t)),
    st.tuples(st.sampled_from(["[", "{\"a\":", "- ", "[{\"b\":"]), st.integers(1, 3000)).map(
        lambda t: (t[0] * t[1]).encode()
    ),
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: b"k8s\x00" + b),
    mutated_protobuf(),
    st.lists(st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "test", "move", "copy", "x"]),
                                    "path": st.sampled_from(["/data/k", "/metadata/name", "/spec", "", "/a~2", "/-"]),
                                    "value": json_values}), max_size=3).map(lambda v: json.dumps(v).encode()),
)  # fmt: skip


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    content_type: str
    accept: str
    query: dict[str, str]
    body: bytes | None
    cluster: str

    def prepared(self) -> Call:
        """A watch would stream until its timeout: keep it to one second (invalid values stay, for the 400)."""
        q = dict(self.query)
        if self.method == "GET" and q.get("watch") in ("true", "1", "True"):
            t = q.get("timeoutSeconds", "")
            if not t or (t.lstrip("+").isdigit() and int(t) != 1):  # 0 or absent: the server's 30 minutes
                q["timeoutSeconds"] = "1"
        path = self.path.replace("{ns}", NS)
        return Call(self.method, path, self.content_type, self.accept, q, self.body, self.cluster)


random_calls = st.builds(
    Call,
    method=st.sampled_from(["GET", "GET", "POST", "PUT", "PATCH", "PATCH", "DELETE"]),
    path=paths, content_type=content_types, accept=accepts, query=queries, body=bodies,
    cluster=st.sampled_from(["hub", "hub", "hub", "cluster1", "nocluster"]),
)  # fmt: skip
seed_paths = st.sampled_from(sorted(SEEDS))
object_media = st.sampled_from(["application/json", "application/yaml", ""])
patch_media = st.sampled_from(["application/merge-patch+json", "application/json-patch+json",
                               "application/strategic-merge-patch+json", "application/apply-patch+yaml"])
write_queries = st.fixed_dictionaries({}, optional={k: query_values[k] for k in (
    "fieldValidation", "fieldManager", "dryRun", "force")})  # fmt: skip
list_queries = st.fixed_dictionaries({}, optional={k: query_values[k] for k in (
    "limit", "continue", "resourceVersion", "labelSelector", "fieldSelector", "watch", "timeoutSeconds",
    "allowWatchBookmarks", "sendInitialEvents", "includeObject", "resourceVersionMatch")})  # fmt: skip
delete_bodies = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "gracePeriodSeconds": json_values, "propagationPolicy": st.sampled_from(["Orphan", "Foreground", "x"]),
    "preconditions": json_values, "dryRun": json_values, "orphanDependents": json_values,
}).map(lambda d: json.dumps(d).encode()))  # fmt: skip


def _encoded(media: str, value: Any) -> bytes:
    return yaml.safe_dump(value).encode() if "yaml" in media else json.dumps(value).encode()


@st.composite
def shaped_calls(draw: st.DrawFn) -> Call:
    """A request shaped like a client's: the right media type for the verb, a body near a valid one."""
    collection = draw(seed_paths)
    item = f"{collection}/{SEEDS[collection]['metadata']['name']}" + draw(st.sampled_from(["", "", "/status"]))
    cluster = draw(st.sampled_from(["hub", "cluster1"]))
    accept = draw(accepts)
    verb = draw(st.sampled_from(["create", "update", "patch", "list", "get", "delete"]))
    if verb == "create" and draw(st.integers(0, 4)) == 0:
        namespaced = draw(st.sampled_from(["/api/v1/namespaces", "/api/v1/namespaces/{ns}/configmaps",
                                           "/api/v1/namespaces/{ns}/secrets", "/api/v1/namespaces/{ns}/services"]))
        return Call("POST", namespaced, "application/vnd.kubernetes.protobuf", accept, {}, draw(mutated_protobuf()),
                    cluster)
    if verb in ("create", "update"):
        media = draw(object_media)
        obj = draw(mutated(SEEDS[collection]))
        if verb == "create" and isinstance(obj.get("metadata"), dict) and draw(st.booleans()):
            obj["metadata"]["name"] = draw(st.one_of(st.sampled_from(["new", "new.one", "n-1"]), names))
        body = _encoded(media, obj)
        method, path = ("POST", collection) if verb == "create" else ("PUT", item)
        return Call(method, path, media, accept, draw(write_queries), body, cluster)
    if verb == "patch":
        media = draw(patch_media)
        if media == "application/json-patch+json":
            body = draw(bodies.filter(lambda b: b is not None and b.startswith(b"[")))
        elif media == "application/apply-patch+yaml":
            body = _encoded(media, draw(mutated(SEEDS[collection])))
        else:
            body = json.dumps(draw(st.one_of(mutated(SEEDS[collection]), json_values))).encode()
        query = draw(write_queries)
        return Call("PATCH", item, media, accept, query, body, cluster)
    if verb == "delete":
        return Call("DELETE", item, "application/json", accept, draw(write_queries), draw(delete_bodies), cluster)
    return Call("GET", collection if verb == "list" else item, "", accept, draw(list_queries), None, cluster)


# Custom resources of CRDs the fuzzer itself registers, with random (often broken) schemas.
GROUP = "fuzz.example.com"
KINDS = {"things": "Thing", "gizmos": "Gizmo"}
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
field_names = st.sampled_from(["a", "b", "spec", "name", "items"])
schema_leaves = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null", 5]),
    "pattern": st.sampled_from(["^[a-z]+$", "^(a+)+$", "(?=x)", "[", "\\d{2,}", "^$", 7]),
    "maxLength": st.one_of(st.integers(-1, 5), st.just("3")), "minLength": st.integers(0, 3),
    "minimum": st.one_of(st.integers(-5, 5), st.floats(-1e30, 1e30), st.just("0")), "maximum": st.integers(-5, 5),
    "multipleOf": st.one_of(st.integers(-1, 3), st.just(0.1)), "exclusiveMinimum": st.booleans(),
    "enum": st.one_of(st.lists(scalars, max_size=3), st.just("a")), "nullable": st.booleans(),
    "format": st.sampled_from(["date-time", "byte", "int32", "int64", "email", 3]), "default": json_values,
    "x-kubernetes-int-or-string": st.booleans(), "x-kubernetes-preserve-unknown-fields": st.booleans(),
    "uniqueItems": st.booleans(),
})  # fmt: skip
schemas = st.recursive(schema_leaves, lambda inner: st.fixed_dictionaries(
    {"type": st.sampled_from(["object", "array"])},
    optional={
        "properties": st.dictionaries(field_names, inner, max_size=3), "items": inner,
        "additionalProperties": st.one_of(st.booleans(), inner), "anyOf": st.lists(inner, max_size=3),
        "oneOf": st.lists(inner, max_size=2), "allOf": st.lists(inner, max_size=2), "not": inner,
        "required": st.lists(field_names, max_size=2), "minProperties": st.integers(0, 2),
        "maxItems": st.integers(0, 3),
        "x-kubernetes-list-type": st.sampled_from(["atomic", "set", "map", "bag"]),
        "x-kubernetes-list-map-keys": st.lists(field_names, max_size=2),
        "x-kubernetes-embedded-resource": st.booleans(),
    },
), max_leaves=10)  # fmt: skip
columns = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["A", "B", ""]), "jsonPath": st.sampled_from(
    [".spec.a", ".spec.items[0].name", ".spec..a", "{.spec}", "[[", ".metadata.creationTimestamp", ".status"])},
    optional={"type": st.sampled_from(["string", "integer", "date", "number", "boolean"]),
              "priority": st.integers(0, 2), "format": st.sampled_from(["", "date", "int32"])}),
    max_size=2)  # fmt: skip
keyed_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(field_names, inner, max_size=3)), max_leaves=12)  # fmt: skip


@st.composite
def crd_calls(draw: st.DrawFn) -> Call:
    """Register (server-side apply) a CRD with a random schema, or write and read its resources."""
    plural = draw(st.sampled_from(sorted(KINDS)))
    if draw(st.integers(0, 3)) == 0:
        version = {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": draw(schemas)}}},
                   "additionalPrinterColumns": draw(columns)}  # fmt: skip
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": f"{plural}.{GROUP}"},
               "spec": {"group": GROUP, "scope": "Namespaced", "versions": [version],
                        "names": {"plural": plural, "kind": KINDS[plural]}}}  # fmt: skip
        return Call("PATCH", f"{CRDS}/{plural}.{GROUP}", "application/apply-patch+yaml", "",
                    {"fieldManager": "fuzz", "force": "true"}, json.dumps(crd).encode(), "hub")
    collection = f"/apis/{GROUP}/v1/namespaces/{{ns}}/{plural}"
    name = draw(st.sampled_from(["t1", "t2"]))
    obj = {"apiVersion": f"{GROUP}/v1", "kind": KINDS[plural], "metadata": {"name": name},
           "spec": draw(keyed_values), "status": draw(keyed_values)}  # fmt: skip
    body = json.dumps(obj).encode()
    method, path, media, query = draw(st.sampled_from([
        ("POST", collection, "application/json", {}),
        ("PATCH", f"{collection}/{name}", "application/apply-patch+yaml", {"fieldManager": "f", "force": "true"}),
        ("PATCH", f"{collection}/{name}/status", "application/merge-patch+json", {}),
        ("GET", collection, "", {}), ("GET", f"{collection}/{name}", "", {}),
        ("DELETE", f"{collection}/{name}", "", {}),
    ]))  # fmt: skip
    return Call(method, path, media, draw(accepts), query, body if method != "GET" else None, "hub")


calls = st.one_of(random_calls, shaped_calls(), shaped_calls(), crd_calls())


@dataclass
class Tally:
    """Requests sent, answers by status code, and the 5xx ones in full."""

    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def record(self, call: Call, status: int) -> None:
        self.requests += 1
        self.by_status[status] += 1
        if status >= 500:
            body = repr(call.body)[:300]
            self.failures.append(f"{status} {call.method} {call.path} {call.query} {call.content_type!r} {body}")

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.by_status.items() if code >= 500)

    def report(self, label: str) -> str:
        counts = dict(sorted(self.by_status.items()))
        return f"{label}: {self.requests} requests, {self.server_errors} 5xx, by status {counts}"


def _send_kwargs(call: Call) -> dict[str, Any]:
    headers = {"Accept": call.accept}
    if call.content_type.strip():
        headers["Content-Type"] = call.content_type.strip()
    return {"params": call.query, "headers": headers, "content": call.body}


def _fuzz(run: Callable[[Call], int], tally: Tally, examples: int) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(call=calls)
    def one(call: Call) -> None:
        prepared = call.prepared()
        status = run(prepared)
        tally.record(prepared, status)
        assert status < 500, tally.failures[-1]

    one()


# -- in process -------------------------------------------------------------------------------------


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[tuple[Server, asyncio.AbstractEventLoop]]:
    server = Server.open(tmp_path, ["hub", "cluster1"])
    loop = asyncio.new_event_loop()
    try:
        yield server, loop
    finally:
        loop.close()
        server.close()


def _reseed(server: Server) -> None:
    """Put back the namespace and the seed objects a previous example may have deleted."""
    from apiserver.writing import Options

    for cluster in server.clusters.values():
        ns_type = cluster.registry.by_key("/namespaces")
        assert ns_type is not None
        if cluster.store.get("/namespaces", "", NS) is None:
            cluster.writer.create(ns_type, "", {"metadata": {"name": NS}}, "v1", Options())
        ns = cluster.store.get("/namespaces", "", NS) or {}
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            continue
        for seed in SEEDS.values():
            rt = cluster.registry.by_kind(seed["apiVersion"], seed["kind"])
            if rt is not None and cluster.store.get(rt.key, NS, seed["metadata"]["name"]) is None:
                cluster.writer.create(rt, NS, json.loads(json.dumps(seed)), rt.storage_version, Options())


def test_fuzz_in_process(in_process: tuple[Server, asyncio.AbstractEventLoop]) -> None:
    server, loop = in_process
    tally = Tally()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://fuzz")

    def run(call: Call) -> int:
        _reseed(server)

        async def send() -> int:
            url = f"/clusters/{call.cluster}{call.path}"
            resp = await client.request(call.method, url, **_send_kwargs(call))
            return resp.status_code

        return loop.run_until_complete(asyncio.wait_for(send(), REQUEST_TIMEOUT))

    try:
        _fuzz(run, tally, examples=IN_PROCESS_EXAMPLES)

        async def version() -> float:
            start = time.monotonic()
            assert (await client.get("/clusters/cluster1/version")).status_code == 200
            return time.monotonic() - start

        assert loop.run_until_complete(asyncio.wait_for(version(), 1.0)) < 1.0
    finally:
        loop.run_until_complete(client.aclose())
    print("\n" + tally.report("fuzz in process"))
    assert tally.server_errors == 0, tally.failures
    assert tally.requests >= IN_PROCESS_EXAMPLES


# -- a real server process ----------------------------------------------------------------------------


def test_fuzz_real_process(fresh_apiserver: ApiServer) -> None:
    server = fresh_apiserver.start()
    tally = Tally()
    with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as client:
        for cluster in ("hub", "cluster1"):
            client.post(f"/clusters/{cluster}/api/v1/namespaces", json={"metadata": {"name": NS}})
            for path, seed in SEEDS.items():
                client.post(f"/clusters/{cluster}{path.format(ns=NS)}", json=seed)

        def run(call: Call) -> int:
            url = f"/clusters/{call.cluster}{call.path}"
            return client.request(call.method, url, **_send_kwargs(call)).status_code

        _fuzz(run, tally, examples=REAL_PROCESS_EXAMPLES)
        for cluster in ("hub", "cluster1", "cluster2"):
            start = time.monotonic()
            assert client.get(f"/clusters/{cluster}/version", timeout=1.0).status_code == 200
            assert time.monotonic() - start < 1.0
    print("\n" + tally.report("fuzz real process"))
    assert tally.server_errors == 0, tally.failures
    log = (server.data_dir / "apiserver.log").read_text()
    assert "Traceback" not in log, log[-3000:]
