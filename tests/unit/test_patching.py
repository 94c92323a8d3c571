"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch as kubectl sends them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver.errors import ApiError
from apiserver.patching import DEFAULT_MERGE_KEYS, json_patch, merge_patch, strategic_merge_patch

# ---------------------------------------------------------------------------------- RFC 7386


# The test cases from RFC 7386 Appendix A.
RFC7386_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_CASES)
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_rfc7386_full_example() -> None:
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_merge_patch_does_not_mutate_or_alias_inputs() -> None:
    target = {"metadata": {"labels": {"a": "1"}}, "spec": {"list": [1, 2]}}
    patch = {"metadata": {"labels": {"b": "2"}}, "spec": {"new": {"x": [1]}}}
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert target == target_before and patch == patch_before
    result["spec"]["list"].append(3)
    result["spec"]["new"]["x"].append(2)
    result["metadata"]["labels"]["c"] = "3"
    assert target == target_before and patch == patch_before


# ---------------------------------------------------------------------------------- RFC 6902


def test_json_patch_add_to_object_and_array() -> None:
    doc = {"foo": ["bar", "baz"]}
    assert json_patch({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}]) == {
        "foo": "bar",
        "baz": "qux",
    }
    assert json_patch(doc, [{"op": "add", "path": "/foo/1", "value": "qux"}]) == {
        "foo": ["bar", "qux", "baz"]
    }
    assert json_patch(doc, [{"op": "add", "path": "/foo/-", "value": ["abc"]}]) == {
        "foo": ["bar", "baz", ["abc"]]
    }
    assert json_patch(doc, [{"op": "add", "path": "/foo/2", "value": "end"}]) == {
        "foo": ["bar", "baz", "end"]
    }
    # Adding to the root replaces the document; adding a null value is a real value.
    assert json_patch(doc, [{"op": "add", "path": "", "value": {"x": 1}}]) == {"x": 1}
    assert json_patch({}, [{"op": "add", "path": "/a", "value": None}]) == {"a": None}


def test_json_patch_remove_and_replace() -> None:
    doc = {"baz": "qux", "foo": "bar", "list": ["bar", "qux", "baz"]}
    assert json_patch(doc, [{"op": "remove", "path": "/baz"}]) == {
        "foo": "bar",
        "list": ["bar", "qux", "baz"],
    }
    assert json_patch(doc, [{"op": "remove", "path": "/list/1"}])["list"] == ["bar", "baz"]
    replaced = json_patch(doc, [{"op": "replace", "path": "/baz", "value": "boo"}])
    assert replaced == {"baz": "boo", "foo": "bar", "list": ["bar", "qux", "baz"]}
    assert list(replaced) == ["baz", "foo", "list"]  # replace keeps the key where it was
    assert json_patch(doc, [{"op": "replace", "path": "/list/0", "value": 7}])["list"] == [7, "qux", "baz"]


def test_json_patch_move_and_copy() -> None:
    doc = {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}}
    assert json_patch(doc, [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}]) == {
        "foo": {"bar": "baz"},
        "qux": {"corge": "grault", "thud": "fred"},
    }
    arr = {"foo": ["all", "grass", "cows", "eat"]}
    assert json_patch(arr, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}]) == {
        "foo": ["all", "cows", "eat", "grass"]
    }
    copied = json_patch(doc, [{"op": "copy", "from": "/qux", "path": "/foo/qux"}])
    assert copied["foo"]["qux"] == {"corge": "grault"}
    copied["foo"]["qux"]["corge"] = "changed"
    assert copied["qux"] == {"corge": "grault"}  # copy is deep, not an alias
    assert json_patch(doc, [{"op": "move", "from": "/foo", "path": "/foo"}]) == doc


def test_json_patch_test_operation() -> None:
    doc = {"baz": "qux", "foo": ["a", 2, "c"], "n": 1, "flag": True}
    ops = [
        {"op": "test", "path": "/baz", "value": "qux"},
        {"op": "test", "path": "/foo/1", "value": 2.0},  # JSON numbers compare by value
        {"op": "test", "path": "/foo", "value": ["a", 2, "c"]},
    ]
    assert json_patch(doc, ops) == doc
    for value in (True, "1", None):
        with pytest.raises(ApiError) as err:
            json_patch(doc, [{"op": "test", "path": "/n", "value": value}])
        assert err.value.code == 422 and err.value.reason == "Invalid"
        assert '"/n"' in err.value.message
    with pytest.raises(ApiError) as err:
        json_patch(doc, [{"op": "test", "path": "/flag", "value": 1}])  # true is not 1
    assert err.value.code == 422


def test_json_patch_failed_test_is_atomic_and_names_the_path() -> None:
    doc = {"spec": {"replicas": 3}}
    with pytest.raises(ApiError) as err:
        json_patch(
            doc,
            [
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "test", "path": "/spec/replicas", "value": 3},
            ],
        )
    assert err.value.code == 422
    assert err.value.message.startswith("the server rejected our request due to an error in our request")
    assert err.value.details["causes"][0]["field"] == "/spec/replicas"
    assert doc == {"spec": {"replicas": 3}}


def test_json_patch_escaped_pointers() -> None:
    doc = {"metadata": {"annotations": {"example.com/owner": "a", "m~n": "b"}}}
    result = json_patch(
        doc,
        [
            {"op": "replace", "path": "/metadata/annotations/example.com~1owner", "value": "z"},
            {"op": "remove", "path": "/metadata/annotations/m~0n"},
            {"op": "add", "path": "/metadata/annotations/~01", "value": "tilde-one"},
        ],
    )
    assert result == {"metadata": {"annotations": {"example.com/owner": "z", "~1": "tilde-one"}}}


@pytest.mark.parametrize(
    ("doc", "op"),
    [
        ({"a": 1}, {"op": "remove", "path": "/b"}),
        ({"a": 1}, {"op": "replace", "path": "/b", "value": 2}),
        ({"a": 1}, {"op": "add", "path": "/b/c", "value": 2}),
        ({"a": [1]}, {"op": "add", "path": "/a/5", "value": 2}),
        ({"a": [1]}, {"op": "remove", "path": "/a/1"}),
        ({"a": [1]}, {"op": "remove", "path": "/a/-"}),
        ({"a": [1]}, {"op": "replace", "path": "/a/01", "value": 2}),
        ({"a": [1]}, {"op": "add", "path": "/a/x", "value": 2}),
        ({"a": "s"}, {"op": "add", "path": "/a/b", "value": 2}),
        ({"a": 1}, {"op": "move", "from": "/x", "path": "/y"}),
        ({"a": 1}, {"op": "copy", "from": "/x", "path": "/y"}),
        ({"a": {"b": 1}}, {"op": "move", "from": "/a", "path": "/a/b/c"}),
        ({"a": 1}, {"op": "remove", "path": ""}),
    ],
)
def test_json_patch_ops_that_do_not_apply_are_422(doc: Any, op: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as err:
        json_patch(doc, [op])
    assert err.value.code == 422
    assert err.value.reason == "Invalid"
    assert op["path"] in err.value.message or op.get("from", "?") in err.value.message


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "add", "path": "/a", "value": 1},
        [["add", "/a", 1]],
        [{"path": "/a", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "add", "path": "/a"}],
        [{"op": "replace", "value": 1}],
        [{"op": "move", "path": "/a"}],
        [{"op": "add", "path": "a", "value": 1}],
        [{"op": "add", "path": "/a~2b", "value": 1}],
        [{"op": "add", "path": "/a~", "value": 1}],
    ],
)
def test_json_patch_malformed_documents_are_400(ops: Any) -> None:
    with pytest.raises(ApiError) as err:
        json_patch({"a": 0}, ops)
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    assert "invalid JSON patch" in err.value.message


def test_json_patch_does_not_mutate_inputs() -> None:
    doc = {"a": [1, {"b": 2}]}
    ops = [
        {"op": "add", "path": "/c", "value": {"d": [1]}},
        {"op": "replace", "path": "/a/1/b", "value": 3},
        {"op": "add", "path": "/a/-", "value": 9},
    ]
    doc_before, ops_before = copy.deepcopy(doc), copy.deepcopy(ops)
    result = json_patch(doc, ops)
    assert result == {"a": [1, {"b": 3}, 9], "c": {"d": [1]}}
    result["c"]["d"].append(2)
    assert doc == doc_before and ops == ops_before


# ---------------------------------------------------------------------------------- strategic merge patch


def _service(*ports: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": list(ports)},
    }


def test_smp_kubectl_apply_service_port_change() -> None:
    live = _service(
        {"name": "http", "port": 8000, "protocol": "TCP", "targetPort": 8000},
        {"name": "old", "port": 9000, "protocol": "TCP", "targetPort": 9000},
    )
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 8000}, {"port": 9001}],
            "ports": [{"name": "extra", "port": 9001}, {"$patch": "delete", "port": 9000}],
        }
    }
    result = strategic_merge_patch(live, patch, DEFAULT_MERGE_KEYS)
    assert result["spec"]["ports"] == [
        {"name": "http", "port": 8000, "protocol": "TCP", "targetPort": 8000},
        {"name": "extra", "port": 9001},
    ]
    assert "$setElementOrder/ports" not in result["spec"]
    assert result["metadata"] == {"name": "web"}


def test_smp_set_element_order_reorders_and_keeps_unlisted_items_at_the_end() -> None:
    live = _service({"port": 1}, {"port": 2}, {"port": 3})
    patch = {
        "spec": {"$setElementOrder/ports": [{"port": 3}, {"port": 1}], "ports": [{"port": 1, "name": "a"}]}
    }
    result = strategic_merge_patch(live, patch)
    assert result["spec"]["ports"] == [{"port": 3}, {"port": 1, "name": "a"}, {"port": 2}]


def test_smp_merges_keyed_lists_recursively() -> None:
    live = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:1",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "name": "http"}],
                },
                {"name": "sidecar", "image": "side:1"},
            ]
        }
    }
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:2",
                    "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}],
                }
            ]
        }
    }
    app, sidecar = strategic_merge_patch(live, patch)["spec"]["containers"]
    assert app["image"] == "app:2"
    assert app["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "two"},
        {"name": "C", "value": "3"},
    ]
    # containers[].ports merge by containerPort, not by the Service's `port`
    assert app["ports"] == [{"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}]
    assert sidecar == {"name": "sidecar", "image": "side:1"}


def test_smp_conditions_and_owner_references_use_their_keys() -> None:
    live = {
        "metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}, {"type": "Synced", "status": "True"}]
        },
    }
    patch = {
        "metadata": {"ownerReferences": [{"uid": "u2", "name": "b"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Up"}]},
    }
    result = strategic_merge_patch(live, patch)
    assert result["metadata"]["ownerReferences"] == [{"uid": "u1", "name": "a"}, {"uid": "u2", "name": "b"}]
    assert result["status"]["conditions"] == [
        {"type": "Ready", "status": "True", "reason": "Up"},
        {"type": "Synced", "status": "True"},
    ]


def test_smp_unkeyed_lists_and_scalars_are_replaced_and_null_deletes() -> None:
    live = {"spec": {"args": ["a", "b"], "tolerations": [{"key": "x"}], "replicas": 1, "paused": True}}
    patch = {"spec": {"args": ["c"], "tolerations": [{"key": "y"}], "replicas": 2, "paused": None}}
    assert strategic_merge_patch(live, patch) == {
        "spec": {"args": ["c"], "tolerations": [{"key": "y"}], "replicas": 2}
    }


def test_smp_patch_replace_on_a_map() -> None:
    live = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}
    patch = {"metadata": {"labels": {"$patch": "replace", "c": "3"}}}
    assert strategic_merge_patch(live, patch) == {"metadata": {"labels": {"c": "3"}}, "spec": {"x": 1}}


def test_smp_patch_delete_on_a_map() -> None:
    live = {"spec": {"selector": {"app": "web"}, "type": "ClusterIP"}}
    assert strategic_merge_patch(live, {"spec": {"selector": {"$patch": "delete"}}}) == {
        "spec": {"type": "ClusterIP"}
    }
    assert strategic_merge_patch(live, {"$patch": "delete"}) == {}


def test_smp_patch_replace_as_list_element() -> None:
    live = _service({"port": 1, "name": "a"}, {"port": 2, "name": "b"})
    patch = {"spec": {"ports": [{"port": 3, "name": "c"}, {"$patch": "replace"}]}}
    assert strategic_merge_patch(live, patch)["spec"]["ports"] == [{"port": 3, "name": "c"}]
    # a replace with no other elements empties the list
    assert strategic_merge_patch(live, {"spec": {"ports": [{"$patch": "replace"}]}})["spec"]["ports"] == []


def test_smp_patch_delete_list_element_by_key() -> None:
    live = {"spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]}}
    patch = {"spec": {"volumes": [{"name": "a", "$patch": "delete"}]}}
    assert strategic_merge_patch(live, patch)["spec"]["volumes"] == [{"name": "b", "emptyDir": {}}]


def test_smp_retain_keys() -> None:
    live = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert strategic_merge_patch(live, patch) == {"spec": {"strategy": {"type": "Recreate"}}}


def test_smp_finalizers_merge_as_a_set() -> None:
    live = {"metadata": {"finalizers": ["a", "b"]}}
    patch = {"metadata": {"finalizers": ["b", "c", "c"]}}
    assert strategic_merge_patch(live, patch)["metadata"]["finalizers"] == ["a", "b", "c"]


def test_smp_delete_from_primitive_list() -> None:
    live = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}}
    assert strategic_merge_patch(live, patch) == {"metadata": {"finalizers": ["a", "c", "d"]}}


def test_smp_directives_are_stripped_from_new_content() -> None:
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 1}],
            "ports": [{"port": 1, "name": "a", "extra": None}],
            "template": {"$retainKeys": ["spec"], "spec": {"a": 1}},
        }
    }
    assert strategic_merge_patch({}, patch) == {
        "spec": {"ports": [{"port": 1, "name": "a"}], "template": {"spec": {"a": 1}}}
    }
    assert strategic_merge_patch(None, {"a": {"$patch": "replace", "b": 1}}) == {"a": {"b": 1}}


@pytest.mark.parametrize(
    "patch",
    [
        ["not", "an", "object"],
        {"spec": {"ports": [{"$patch": "delete", "name": "no-port-key"}]}},
        {"spec": {"ports": [{"name": "no-port-key"}]}},
        {"spec": {"args": [{"$patch": "delete"}]}},
        {"spec": {"$patch": "frobnicate"}},
        {"spec": {"$retainKeys": "type"}},
    ],
)
def test_smp_malformed_patches_are_400(patch: Any) -> None:
    with pytest.raises(ApiError) as err:
        strategic_merge_patch({"spec": {"ports": [{"port": 1}], "args": ["x"]}}, patch)
    assert err.value.code == 400
    assert err.value.message.startswith("strategic merge patch:")


def test_smp_custom_merge_keys_and_qualified_keys() -> None:
    live = {"items": [{"id": 1, "v": "a"}], "outer": [{"k": "x", "items": [{"sub": 1, "v": "a"}]}]}
    patch = {"items": [{"id": 1, "v": "b"}], "outer": [{"k": "x", "items": [{"sub": 1, "w": "c"}]}]}
    keys = {"items": "id", "outer": "k", "outer.items": "sub"}
    assert strategic_merge_patch(live, patch, keys) == {
        "items": [{"id": 1, "v": "b"}],
        "outer": [{"k": "x", "items": [{"sub": 1, "v": "a", "w": "c"}]}],
    }


def test_smp_does_not_mutate_or_alias_inputs() -> None:
    live = _service({"name": "http", "port": 80}, {"name": "old", "port": 90})
    live["metadata"]["finalizers"] = ["a"]
    patch = {
        "metadata": {"finalizers": ["b"], "labels": {"x": "1"}},
        "spec": {
            "ports": [{"port": 80, "targetPort": 8080}, {"$patch": "delete", "port": 90}, {"port": 100}]
        },
    }
    live_before, patch_before = copy.deepcopy(live), copy.deepcopy(patch)
    result = strategic_merge_patch(live, patch)
    assert result["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080}, {"port": 100}]
    assert result["metadata"]["finalizers"] == ["a", "b"]
    result["spec"]["ports"][1]["name"] = "mutated"
    result["metadata"]["labels"]["y"] = "2"
    assert live == live_before and patch == patch_before
