"""CRD openAPIV3Schema enforcement: pruning, defaulting and kube-apiserver-worded validation causes."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiserver.schema import default, prune, validate

Obj = dict[str, Any]


def spec_schema(**props: Any) -> Obj:
    """A CR root schema whose spec has the given properties."""
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {"type": "object", "properties": props},
        },
    }


def messages(schema: Obj, spec: Any) -> list[str]:
    return [str(c) for c in validate({"apiVersion": "x/v1", "kind": "X", "spec": spec}, schema)]


# A schema resembling VolSync's ReplicationDestination.
QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE])?$"
RD_SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {
                "trigger": {
                    "type": "object",
                    "properties": {
                        "schedule": {"type": "string", "pattern": r"^(@(hourly|daily)|(\S+\s+){4}\S+)$"},
                        "manual": {"type": "string"},
                    },
                },
                "rsync": {
                    "type": "object",
                    "properties": {
                        "copyMethod": {"type": "string", "enum": ["Direct", "None", "Clone", "Snapshot"]},
                        "capacity": {
                            "anyOf": [{"type": "integer"}, {"type": "string"}],
                            "pattern": QUANTITY,
                            "x-kubernetes-int-or-string": True,
                        },
                        "accessModes": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "serviceType": {
                            "type": "string",
                            "enum": ["ClusterIP", "LoadBalancer"],
                            "default": "ClusterIP",
                        },
                        "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                        "serviceAnnotations": {"type": "object", "additionalProperties": {"type": "string"}},
                        "moverSecurityContext": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        },
                    },
                },
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}

RD_SEED = """
apiVersion: volsync.backube/v1alpha1
kind: ReplicationDestination
metadata:
  name: rd-app
  namespace: app
  labels: {app: db}
  annotations: {note: "kept as is"}
spec:
  trigger:
    schedule: "*/5 * * * *"
  rsync:
    copyMethod: Snapshot
    capacity: 10Gi
    accessModes: [ReadWriteOnce]
    port: 2222
    serviceAnnotations: {lb.example.com/type: nlb}
    moverSecurityContext: {runAsUser: 1000, fsGroup: 1000}
status:
  lastSyncTime: "2024-01-01T00:00:00Z"
  conditions: [{type: Synchronizing, status: "True"}]
"""


def admit(obj: Obj, schema: Obj) -> list[str]:
    """What the server does on a write: prune, default, validate."""
    prune(obj, schema)
    default(obj, schema)
    return [str(c) for c in validate(obj, schema)]


# ---------------------------------------------------------------- realistic schema


def test_seed_like_replication_destination_is_valid_and_defaulted() -> None:
    obj = yaml.safe_load(RD_SEED)
    expected = copy.deepcopy(obj)
    assert admit(obj, RD_SCHEMA) == []
    expected["spec"]["rsync"]["serviceType"] = "ClusterIP"
    assert obj == expected


def test_bogus_replication_destination_reports_every_problem_at_once() -> None:
    obj = yaml.safe_load(RD_SEED)
    rsync = obj["spec"]["rsync"]
    rsync.update(copyMethod="Bogus", capacity=True, accessModes=[], port=70000, serviceType="NodePort")
    obj["spec"]["trigger"]["schedule"] = "every day"
    causes = validate(obj, RD_SCHEMA)
    assert [str(c) for c in causes] == [
        'spec.trigger.schedule: Invalid value: "every day": spec.trigger.schedule in body should match '
        "'^(@(hourly|daily)|(\\S+\\s+){4}\\S+)$'",
        'spec.rsync.copyMethod: Unsupported value: "Bogus": supported values: "Direct", "None", "Clone", "Snapshot"',
        'spec.rsync.capacity: Invalid value: "boolean": spec.rsync.capacity in body must be of type '
        'integer,string: "boolean"',
        'Invalid value: "": "spec.rsync.capacity" must validate at least one schema (anyOf)',
        'spec.rsync.capacity: Invalid value: "boolean": spec.rsync.capacity in body must be of type integer: "boolean"',
        "spec.rsync.accessModes: Invalid value: 0: spec.rsync.accessModes in body should have at least 1 items",
        "spec.rsync.port: Invalid value: 70000: spec.rsync.port in body should be less than or equal to 65535",
        'spec.rsync.serviceType: Unsupported value: "NodePort": supported values: "ClusterIP", "LoadBalancer"',
    ]
    assert [c.reason for c in causes][:4] == [
        "FieldValueInvalid",
        "FieldValueNotSupported",
        "FieldValueTypeInvalid",
        "FieldValueInvalid",
    ]
    assert causes[3].field == ""


def test_int_or_string_accepts_both_and_applies_string_rules_to_strings_only() -> None:
    schema = RD_SCHEMA
    for capacity in (5, "10Gi", "1.5"):
        obj = {"spec": {"rsync": {"capacity": capacity}}}
        assert validate(obj, schema) == []
    assert [str(c) for c in validate({"spec": {"rsync": {"capacity": "lots"}}}, schema)] == [
        f"spec.rsync.capacity: Invalid value: \"lots\": spec.rsync.capacity in body should match '{QUANTITY}'"
    ]


def test_shipped_crd_patterns_compile_with_python_re() -> None:
    crds = Path(__file__).resolve().parents[2] / "manifests" / "crds"
    patterns: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                patterns.append(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(crds.glob("*.yaml")):
        walk(list(yaml.safe_load_all(path.read_text())))
    assert patterns, "expected the shipped CRDs to declare patterns"
    for pattern in patterns:
        re.compile(pattern)


# ---------------------------------------------------------------- validation: one keyword at a time


@pytest.mark.parametrize(
    ("declared", "value", "actual"),
    [
        ("integer", "5", "string"),
        ("integer", True, "boolean"),
        ("integer", 1.5, "number"),
        ("number", "1", "string"),
        ("string", 7, "integer"),
        ("boolean", "true", "string"),
        ("object", [1], "array"),
        ("array", {"a": 1}, "object"),
        ("string", None, "null"),
    ],
)
def test_wrong_type(declared: str, value: Any, actual: str) -> None:
    causes = validate({"spec": {"x": value}}, spec_schema(x={"type": declared}))
    assert [str(c) for c in causes] == [
        f'spec.x: Invalid value: "{actual}": spec.x in body must be of type {declared}: "{actual}"'
    ]
    assert causes[0].reason == "FieldValueTypeInvalid"


@pytest.mark.parametrize(("declared", "value"), [("integer", 3), ("integer", 2.0), ("number", 3), ("number", 0.5)])
def test_json_numbers(declared: str, value: Any) -> None:
    assert messages(spec_schema(x={"type": declared}), {"x": value}) == []


def test_nullable_accepts_null() -> None:
    assert messages(spec_schema(x={"type": "string", "nullable": True}), {"x": None}) == []


def test_required() -> None:
    schema = spec_schema(rsync={"type": "object", "required": ["foo", "bar"], "properties": {"bar": {}}})
    causes = validate({"spec": {"rsync": {"bar": 1}}}, schema)
    assert [str(c) for c in causes] == ["spec.rsync.foo: Required value"]
    assert (causes[0].field, causes[0].reason) == ("spec.rsync.foo", "FieldValueRequired")


def test_required_at_root() -> None:
    schema = {"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}
    assert [str(c) for c in validate({"apiVersion": "v", "kind": "K", "metadata": {}}, schema)] == [
        "spec: Required value"
    ]


def test_enum_of_numbers_quotes_values_and_does_not_confuse_bool_with_int() -> None:
    schema = spec_schema(n={"type": "integer", "enum": [1, 2]}, b={"enum": [True]})
    assert messages(schema, {"n": 2, "b": True}) == []
    assert messages(schema, {"n": 3, "b": 1}) == [
        'spec.n: Unsupported value: 3: supported values: "1", "2"',
        'spec.b: Unsupported value: 1: supported values: "true"',
    ]


def test_pattern_is_an_unanchored_search() -> None:
    schema = spec_schema(x={"type": "string", "pattern": "[0-9]"})
    assert messages(schema, {"x": "abc1def"}) == []
    assert messages(schema, {"x": "abc"}) == ["spec.x: Invalid value: \"abc\": spec.x in body should match '[0-9]'"]


def test_max_and_min_length_count_characters() -> None:
    schema = spec_schema(x={"type": "string", "maxLength": 3, "minLength": 2})
    assert messages(schema, {"x": "été"}) == []
    too_long = validate({"spec": {"x": "abcd"}}, schema)
    assert [str(c) for c in too_long] == ["spec.x: Too long: may not be more than 3 bytes"]
    assert too_long[0].reason == "FieldValueTooLong"
    assert messages(schema, {"x": "a"}) == [
        'spec.x: Invalid value: "a": spec.x in body should be at least 2 chars long'
    ]


def test_string_checks_stop_at_the_first_failure_like_go_openapi() -> None:
    schema = spec_schema(x={"type": "string", "maxLength": 2, "pattern": "^[a-z]+$"})
    assert messages(schema, {"x": "ABCD"}) == ["spec.x: Too long: may not be more than 2 bytes"]


@pytest.mark.parametrize(
    ("keywords", "value", "message"),
    [
        ({"minimum": 1}, 0, "should be greater than or equal to 1"),
        ({"minimum": 1, "exclusiveMinimum": True}, 1, "should be greater than 1"),
        ({"maximum": 10}, 11, "should be less than or equal to 10"),
        ({"maximum": 10, "exclusiveMaximum": True}, 10, "should be less than 10"),
        ({"maximum": 1000000}, 1000000.5, "should be less than or equal to 1e+06"),
        ({"minimum": 0.5}, 0.25, "should be greater than or equal to 0.5"),
        ({"multipleOf": 5}, 12, "should be a multiple of 5"),
        ({"multipleOf": 0.5}, 0.7, "should be a multiple of 0.5"),
    ],
)
def test_numeric_bounds(keywords: Obj, value: float, message: str) -> None:
    schema = spec_schema(x={"type": "number", **keywords})
    assert messages(schema, {"x": value}) == [f"spec.x: Invalid value: {value}: spec.x in body {message}"]


def test_numeric_bounds_inside_limits() -> None:
    schema = spec_schema(x={"type": "number", "minimum": 1, "maximum": 10, "multipleOf": 0.5})
    assert [messages(schema, {"x": v}) for v in (1, 10, 5.5)] == [[], [], []]
    exclusive = spec_schema(x={"type": "integer", "minimum": 1, "exclusiveMinimum": True})
    assert messages(exclusive, {"x": 2}) == []


def test_item_counts() -> None:
    schema = spec_schema(l={"type": "array", "minItems": 1, "maxItems": 2})
    assert messages(schema, {"l": [1, 2]}) == []
    too_many = validate({"spec": {"l": [1, 2, 3]}}, schema)
    assert [str(c) for c in too_many] == ["spec.l: Too many: 3: must have at most 2 items"]
    assert too_many[0].reason == "FieldValueTooMany"
    assert messages(schema, {"l": []}) == ["spec.l: Invalid value: 0: spec.l in body should have at least 1 items"]


def test_unique_items() -> None:
    schema = spec_schema(l={"type": "array", "uniqueItems": True})
    assert messages(schema, {"l": [1, "1", {"a": 1}]}) == []
    assert messages(schema, {"l": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]}) == [
        'spec.l: Invalid value: "": spec.l in body shouldn\'t contain duplicates'
    ]


def test_property_counts() -> None:
    schema = spec_schema(m={"type": "object", "minProperties": 1, "maxProperties": 2})
    assert messages(schema, {"m": {"a": 1}}) == []
    assert messages(schema, {"m": {}}) == ["spec.m: Invalid value: 0: spec.m in body should have at least 1 properties"]
    assert messages(schema, {"m": {"a": 1, "b": 2, "c": 3}}) == ["spec.m: Too many: 3: must have at most 2 items"]


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("date-time", "2024-02-29T23:59:59Z", "2024-02-30T00:00:00Z"),
        ("date-time", "2024-01-01T10:00:00.123+02:00", "2024-01-01 10:00:00Z"),
        ("date-time", "2024-01-01t10:00:00z", "2024-01-01T10:00:00"),
        ("date-time", "2024-01-01T23:00:00Z", "2024-01-01T24:00:00Z"),
        ("byte", "aGVsbG8=", "hello!"),
    ],
)
def test_string_formats(fmt: str, good: str, bad: str) -> None:
    schema = spec_schema(x={"type": "string", "format": fmt})
    assert messages(schema, {"x": good}) == []
    causes = validate({"spec": {"x": bad}}, schema)
    assert [str(c) for c in causes] == [
        f'spec.x: Invalid value: "{bad}": spec.x in body must be of type {fmt}: "{bad}"'
    ]


def test_integer_formats_and_unknown_formats() -> None:
    schema = spec_schema(
        a={"type": "integer", "format": "int32"},
        b={"type": "integer", "format": "int64"},
        c={"type": "string", "format": "no-such-format"},
    )
    assert messages(schema, {"a": 2**31 - 1, "b": -(2**63), "c": "anything"}) == []
    assert messages(schema, {"a": 2**31, "b": 2**63}) == [
        f'spec.a: Invalid value: {2**31}: spec.a in body must be of type int32: "{2**31}"',
        f'spec.b: Invalid value: {2**63}: spec.b in body must be of type int64: "{2**63}"',
    ]


def test_preserve_unknown_fields_without_type_accepts_anything() -> None:
    schema = spec_schema(free={"x-kubernetes-preserve-unknown-fields": True})
    for value in (1, "s", [1, {"a": None}], {"deep": {"er": [True]}}, 2.5):
        assert messages(schema, {"free": value}) == []


def test_declared_properties_under_preserve_unknown_are_still_validated() -> None:
    schema = spec_schema(
        free={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"n": {"type": "integer"}},
        }
    )
    assert messages(schema, {"free": {"n": "one", "other": "ok"}}) == [
        'spec.free.n: Invalid value: "string": spec.free.n in body must be of type integer: "string"'
    ]


def test_paths_for_array_items_and_map_values() -> None:
    schema = spec_schema(
        accessModes={"type": "array", "items": {"type": "string", "enum": ["ReadWriteOnce"]}},
        labels={"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
        ports={"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
    )
    assert messages(
        schema,
        {
            "accessModes": ["ReadWriteOnce", "Bogus"],
            "labels": {"team": "storage"},
            "ports": [{}, {"port": "x"}],
        },
    ) == [
        'spec.accessModes[1]: Unsupported value: "Bogus": supported values: "ReadWriteOnce"',
        "spec.labels[team]: Too long: may not be more than 3 bytes",
        'spec.ports[1].port: Invalid value: "string": spec.ports[1].port in body must be of type integer: "string"',
    ]


def test_additional_properties_false_forbids_unknown_fields() -> None:
    schema = spec_schema(o={"type": "object", "additionalProperties": False, "properties": {"a": {}}})
    assert messages(schema, {"o": {"a": 1, "b": 2}}) == [
        'spec.o: Invalid value: "b": spec.o.b in body is a forbidden property'
    ]


def test_list_type_set_reports_each_repeated_value_once() -> None:
    schema = spec_schema(tags={"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}})
    assert messages(schema, {"tags": ["a", "b"]}) == []
    causes = validate({"spec": {"tags": ["a", "b", "a", "a", "b"]}}, schema)
    assert [str(c) for c in causes] == [
        'spec.tags[2]: Duplicate value: "a"',
        'spec.tags[4]: Duplicate value: "b"',
    ]
    assert causes[0].reason == "FieldValueDuplicate"


def test_list_type_map_compares_only_the_keys() -> None:
    item = {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}
    one_key = {
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }
    two_keys = {**one_key, "x-kubernetes-list-map-keys": ["port", "name"]}
    schema = spec_schema(one=one_key, two=two_keys)
    ports = [{"name": "http", "port": 80}, {"name": "http", "port": 8080}, {"name": "ssh", "port": 80}]
    assert messages(schema, {"one": ports[:1] + ports[2:], "two": ports}) == []
    assert messages(schema, {"one": ports, "two": [*ports, {"port": 80, "name": "ssh"}]}) == [
        'spec.one[1]: Duplicate value: map[string]interface {}{"name":"http"}',
        'spec.two[3]: Duplicate value: map[string]interface {}{"name":"ssh", "port":80}',
    ]
    assert messages(schema, {"one": [{"name": "a"}, "b"]}) == [
        'spec.one[1]: Invalid value: "string": spec.one[1] in body must be of type object: "string"',
        'spec.one[1]: Invalid value: "b": must be an object for an array of list-type map',
    ]


def test_any_of_one_of_all_of_not() -> None:
    schema = spec_schema(
        any={"type": "object", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
        one={"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}]},
        all={"type": "integer", "allOf": [{"minimum": 0}, {"maximum": 10}]},
        nope={"type": "string", "not": {"enum": ["forbidden"]}},
    )
    assert messages(schema, {"any": {"b": 1}, "one": -5, "all": 5, "nope": "fine"}) == []
    assert messages(schema, {"any": {}, "one": 5, "all": 11, "nope": "forbidden"}) == [
        'Invalid value: "": "spec.any" must validate at least one schema (anyOf)',
        "spec.any.a: Required value",
        'Invalid value: "": "spec.one" must validate one and only one schema (oneOf). Found 2 valid alternatives',
        "spec.all: Invalid value: 11: spec.all in body should be less than or equal to 10",
        'Invalid value: "": "spec.all" must validate all the schemas (allOf)',
        'Invalid value: "": "spec.nope" must not validate the schema (not)',
    ]
    # The summaries have no field of their own (kube prints them after an empty field name).
    summaries = [c for c in validate({"spec": {"one": 5}}, schema) if c.field == ""]
    assert [c.reason for c in summaries] == ["FieldValueInvalid"]


def test_root_apiversion_kind_and_metadata_are_not_validated() -> None:
    schema = spec_schema()
    schema["properties"]["metadata"] = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 2}},
    }
    schema["required"] = ["metadata"]
    obj = {"apiVersion": 1, "kind": ["K"], "metadata": {"name": "much-too-long"}, "spec": {}}
    assert validate(obj, schema) == []
    assert [str(c) for c in validate({"spec": "oops"}, schema)] == [
        'spec: Invalid value: "string": spec in body must be of type object: "string"'
    ]


def test_x_kubernetes_validations_are_ignored() -> None:
    schema = spec_schema(x={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 100"}]})
    assert messages(schema, {"x": 1}) == []


# ---------------------------------------------------------------- pruning


def test_prune_drops_unknown_fields_at_every_depth_but_keeps_root_meta() -> None:
    metadata = {"name": "rd", "labels": {"a": "b"}, "unknownMetaField": {"x": 1}}
    obj: Obj = {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationDestination",
        "metadata": copy.deepcopy(metadata),
        "bogusTop": 1,
        "spec": {
            "bogusSpec": True,
            "trigger": {"schedule": "@hourly", "bogusTrigger": "x"},
            "rsync": {
                "copyMethod": "Direct",
                "bogusRsync": {"deep": 1},
                "serviceAnnotations": {"a": "b"},
                "moverSecurityContext": {"runAsUser": 1, "seLinuxOptions": {"level": "s0"}},
            },
        },
        "status": {"anything": ["goes"]},
    }
    prune(obj, RD_SCHEMA)
    assert obj == {
        "apiVersion": "volsync.backube/v1alpha1",
        "kind": "ReplicationDestination",
        "metadata": metadata,
        "spec": {
            "trigger": {"schedule": "@hourly"},
            "rsync": {
                "copyMethod": "Direct",
                "serviceAnnotations": {"a": "b"},
                "moverSecurityContext": {"runAsUser": 1, "seLinuxOptions": {"level": "s0"}},
            },
        },
        "status": {"anything": ["goes"]},
    }


def test_prune_does_not_descend_into_root_metadata_even_if_declared() -> None:
    schema = spec_schema()
    schema["properties"]["metadata"] = {"type": "object", "properties": {"name": {"type": "string"}}}
    obj: Obj = {"metadata": {"name": "n", "namespace": "ns"}, "spec": {}}
    prune(obj, schema)
    assert obj["metadata"] == {"name": "n", "namespace": "ns"}


def test_prune_inside_array_items_and_map_values() -> None:
    schema = spec_schema(
        ports={"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
        byName={"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {}}}},
        anyMap={"type": "object", "additionalProperties": True},
    )
    obj: Obj = {
        "spec": {
            "ports": [{"port": 1, "junk": 1}, {"junk": 2}],
            "byName": {"a": {"v": 1, "junk": 3}},
            "anyMap": {"k": {"kept": 1}},
        }
    }
    prune(obj, schema)
    assert obj == {"spec": {"ports": [{"port": 1}, {}], "byName": {"a": {"v": 1}}, "anyMap": {"k": {"kept": 1}}}}


def test_preserve_unknown_keeps_unknowns_but_still_prunes_declared_children() -> None:
    schema = spec_schema(
        free={
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"strict": {"type": "object", "properties": {"a": {}}}},
        },
        freeList={
            "type": "array",
            "x-kubernetes-preserve-unknown-fields": True,
            "items": {"type": "object", "properties": {"a": {}}},
        },
    )
    obj: Obj = {
        "spec": {
            "free": {"unknown": {"x": 1}, "strict": {"a": 1, "junk": 2}},
            "freeList": [{"a": 1, "unknown": 2}],
        }
    }
    prune(obj, schema)
    assert obj == {"spec": {"free": {"unknown": {"x": 1}, "strict": {"a": 1}}, "freeList": [{"a": 1, "unknown": 2}]}}


def test_preserve_unknown_at_the_root_keeps_everything_undeclared() -> None:
    schema: Obj = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    obj: Obj = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "anything": {"at": "all"}}
    expected = copy.deepcopy(obj)
    prune(obj, schema)
    assert obj == expected


def test_embedded_resource_keeps_its_apiversion_kind_and_metadata() -> None:
    schema = spec_schema(
        template={
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}},
        }
    )
    template = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"a": "b"}},
        "spec": {"replicas": 1, "junk": 1},
        "junk": 2,
    }
    obj: Obj = {"spec": {"template": template}}
    prune(obj, schema)
    assert obj["spec"]["template"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"a": "b"}},
        "spec": {"replicas": 1},
    }


# ---------------------------------------------------------------- defaulting


def test_defaults_fill_missing_fields_recursively_including_inside_applied_defaults() -> None:
    schema = spec_schema(
        rsync={
            "type": "object",
            "default": {},
            "properties": {
                "serviceType": {"type": "string", "default": "ClusterIP"},
                "port": {"type": "integer", "default": 22},
                "nested": {"type": "object", "default": {"a": 1}, "properties": {"b": {"default": "b"}}},
            },
        },
        paused={"type": "boolean", "default": False},
    )
    obj: Obj = {"spec": {"paused": True}}
    default(obj, schema)
    assert obj == {
        "spec": {
            "paused": True,
            "rsync": {"serviceType": "ClusterIP", "port": 22, "nested": {"a": 1, "b": "b"}},
        }
    }


def test_defaults_in_array_items_and_map_values() -> None:
    item = {"type": "object", "properties": {"protocol": {"type": "string", "default": "TCP"}}}
    schema = spec_schema(
        ports={"type": "array", "items": item},
        byName={"type": "object", "additionalProperties": item},
        names={"type": "array", "items": {"type": "string", "default": "unnamed"}},
    )
    obj: Obj = {
        "spec": {
            "ports": [{"protocol": "UDP"}, {}],
            "byName": {"a": {}},
            "names": ["x", None],
        }
    }
    default(obj, schema)
    assert obj["spec"] == {
        "ports": [{"protocol": "UDP"}, {"protocol": "TCP"}],
        "byName": {"a": {"protocol": "TCP"}},
        "names": ["x", "unnamed"],
    }


def test_null_handling() -> None:
    schema = spec_schema(
        withDefault={"type": "string", "default": "d"},
        withoutDefault={"type": "string"},
        nullable={"type": "string", "nullable": True, "default": "unused"},
        list={"type": "array", "items": {"type": "string"}},
        free={"x-kubernetes-preserve-unknown-fields": True, "type": "object"},
    )
    obj: Obj = {
        "spec": {
            "withDefault": None,
            "withoutDefault": None,
            "nullable": None,
            "list": ["a", None],
            "free": {"undeclared": None},
        }
    }
    default(obj, schema)
    assert obj["spec"] == {
        "withDefault": "d",
        "nullable": None,
        "list": ["a", None],
        "free": {"undeclared": None},
    }
    # A null array item has no default, so it stays and validation rejects it.
    assert messages(schema, obj["spec"]) == [
        'spec.list[1]: Invalid value: "null": spec.list[1] in body must be of type string: "null"'
    ]


def test_defaults_are_deep_copies() -> None:
    schema = spec_schema(opts={"type": "object", "default": {"list": [1]}})
    first: Obj = {"spec": {}}
    second: Obj = {"spec": {}}
    default(first, schema)
    first["spec"]["opts"]["list"].append(2)
    default(second, schema)
    assert second["spec"]["opts"] == {"list": [1]}
    assert schema["properties"]["spec"]["properties"]["opts"]["default"] == {"list": [1]}


def test_defaults_do_not_touch_root_metadata() -> None:
    schema = spec_schema()
    schema["properties"]["metadata"] = {
        "type": "object",
        "properties": {"labels": {"type": "object", "default": {"a": "b"}}},
    }
    obj: Obj = {"metadata": {"name": "n", "annotations": None}, "spec": {}}
    default(obj, schema)
    assert obj["metadata"] == {"name": "n", "annotations": None}
