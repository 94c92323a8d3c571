"""Label and field selectors as kubectl and the Python client send them in list/watch query strings."""

from __future__ import annotations

from typing import Any

import pytest

from apiserver.errors import ApiError
from apiserver.selectors import (
    LabelSelector,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
)

WEB = {"app": "web", "tier": "frontend", "example.com/team": "storage", "empty": ""}
DB = {"app": "db", "tier": "backend", "version": "12"}
NONE: dict[str, str] = {}


def _matching(selector: LabelSelector) -> list[str]:
    objects = {"web": WEB, "db": DB, "none": NONE}
    return [name for name, labels in objects.items() if selector.matches(labels)]


# ---------------------------------------------------------------------------------- label selectors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["web", "db", "none"]),
        ("app=web", ["web"]),
        ("app==web", ["web"]),
        ("app!=web", ["db", "none"]),  # != also matches objects without the label
        ("app in (web,db)", ["web", "db"]),
        ("app in (web, db)", ["web", "db"]),
        ("app notin (web)", ["db", "none"]),
        ("app", ["web", "db"]),
        ("!app", ["none"]),
        ("!version", ["web", "none"]),
        ("app,tier=backend", ["db"]),
        ("app=web,tier=backend", []),
        ("example.com/team=storage", ["web"]),
        ("example.com/team", ["web"]),
        ("empty=", ["web"]),  # `key=` means the label exists with an empty value
        ("app=", []),
        ("empty in ()", ["web"]),
        ("version>5", ["db"]),
        ("version<5", []),
        ("app>5", []),
        ("  app  =  web ,  tier  in(  frontend  )  ", ["web"]),
        ("app in (a,,web)", ["web"]),
        ("in=x", []),  # `in` is an ordinary key outside the operator position
        ("app=in", []),
    ],
)
def test_label_selector_operators(text: str, expected: list[str]) -> None:
    assert _matching(parse_label_selector(text)) == expected


def test_label_selector_none_and_empty() -> None:
    assert parse_label_selector(None).empty
    assert parse_label_selector("  ").empty
    assert parse_label_selector(None).matches(None)
    assert not parse_label_selector("app").empty
    assert not parse_label_selector("app").matches(None)
    assert parse_label_selector("!app").matches(None)


def test_label_selector_requirements_and_str() -> None:
    selector = parse_label_selector("app in (web, db),!legacy,tier!=backend,version>3,x")
    assert [(r.key, r.operator, r.values) for r in selector.requirements] == [
        ("app", "in", ("db", "web")),
        ("legacy", "!", ()),
        ("tier", "!=", ("backend",)),
        ("version", ">", ("3",)),
        ("x", "exists", ()),
    ]
    assert str(selector) == "app in (db,web),!legacy,tier!=backend,version>3,x"
    assert str(parse_label_selector(str(selector))) == str(selector)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app=web tier", "found 'tier', expected: ',' or 'end of string'"),
        ("app=web,", "found '', expected: identifier after ','"),
        (",app", "found ',', expected: !, identifier, or 'end of string'"),
        ("=web", "found '=', expected: !, identifier, or 'end of string'"),
        ("app in web", "unable to parse requirement: found 'web', expected: '('"),
        ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("app in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("app foo", "unable to parse requirement: found 'foo', expected: in, notin, =, ==, !=, gt, lt"),
        ("app=(x)", "unable to parse requirement: found '(', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!app=web", "found '=', expected: ',' or 'end of string'"),
        ("app=we$b", 'unable to parse requirement: values[0]: Invalid value: "we$b"'),
        ("bad key!=x", "found 'key', expected: in, notin, =, ==, !=, gt, lt"),
        ("-app=x", 'unable to parse requirement: key: Invalid value: "-app": name part must consist'),
        ("Example.com/app=x", "prefix part must be a lowercase RFC 1123 subdomain"),
        ("/app=x", "prefix part must be non-empty"),
        ("a" * 64 + "=x", "name part must be no more than 63 characters"),
        ("app=" + "v" * 64, "at most 63 characters"),
        ("version>x", "for 'Gt', 'Lt' operators, the value must be an integer"),
    ],
)
def test_label_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(text)
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    assert message in err.value.message


def test_label_selector_from_dict() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"tier": "frontend"},
            "matchExpressions": [
                {"key": "app", "operator": "In", "values": ["web", "api"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "example.com/team", "operator": "Exists"},
                {"key": "stage", "operator": "NotIn", "values": ["canary"]},
            ],
        }
    )
    assert selector.matches(WEB)
    assert not selector.matches(WEB | {"legacy": "yes"})
    assert not selector.matches(WEB | {"stage": "canary"})
    assert not selector.matches({k: v for k, v in WEB.items() if k != "example.com/team"})
    assert not selector.matches(DB)
    assert label_selector_from_dict({}).empty
    assert label_selector_from_dict({"matchLabels": None, "matchExpressions": None}).matches(NONE)
    assert label_selector_from_dict({"matchLabels": {"app": "db"}}).matches(DB)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            "'Gt' is not a valid label",
        ),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values set can't be empty"),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            "values set must be empty",
        ),
        ({"matchLabels": {"a b": "x"}}, 'key: Invalid value: "a b"'),
        ({"matchLabels": {"a": 1}}, "must be strings"),
        ({"matchExpressions": ["a"]}, "must be objects"),
    ],
)
def test_label_selector_from_dict_errors(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as err:
        label_selector_from_dict(selector)
    assert err.value.code == 400
    assert message in err.value.message


# ---------------------------------------------------------------------------------- field selectors

POD = {
    "metadata": {"name": "web-0", "namespace": "apps"},
    "spec": {"nodeName": "node-a", "replicas": 3, "paused": False},
    "status": {"phase": "Running"},
}
EVENT_CLUSTER_SCOPED = {
    "metadata": {"name": "ev1", "namespace": "default"},
    "involvedObject": {"kind": "Node", "name": "node-a", "uid": "u-1"},
}
EVENT_NAMESPACED = {
    "metadata": {"name": "ev2", "namespace": "apps"},
    "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "apps", "uid": "u-2"},
}


@pytest.mark.parametrize(
    ("text", "obj", "expected"),
    [
        ("", POD, True),
        ("metadata.name=web-0", POD, True),
        ("metadata.name==web-0", POD, True),
        ("metadata.name=web-1", POD, False),
        ("metadata.name!=web-1", POD, True),
        ("metadata.name!=web-0", POD, False),
        ("metadata.name=web-0,metadata.namespace=apps", POD, True),
        ("metadata.name=web-0,metadata.namespace=other", POD, False),
        ("spec.nodeName=node-a,status.phase!=Succeeded", POD, True),
        ("spec.replicas=3", POD, True),
        ("spec.paused=false", POD, True),
        ("spec.nodeName=", {"spec": {}}, True),  # a missing field compares as ""
        ("spec.nodeName=", POD, False),
        ("spec.nodeName!=", {"spec": {"nodeName": None}}, False),
        ("status.phase=Running", {"status": "weird"}, False),
        (
            "involvedObject.kind=Node,involvedObject.name=node-a,involvedObject.namespace=",
            EVENT_CLUSTER_SCOPED,
            True,
        ),
        ("involvedObject.namespace=", EVENT_NAMESPACED, False),
        ("involvedObject.uid=u-2,involvedObject.namespace=apps", EVENT_NAMESPACED, True),
    ],
)
def test_field_selector_matches(text: str, obj: dict[str, Any], expected: bool) -> None:
    assert parse_field_selector(text).matches(obj) is expected


def test_field_selector_fields_and_empty() -> None:
    selector = parse_field_selector("metadata.name=a,,status.phase!=Failed,metadata.name!=b")
    assert selector.fields() == {"metadata.name", "status.phase"}
    assert not selector.empty
    assert [(r.field, r.operator, r.value) for r in selector.requirements] == [
        ("metadata.name", "=", "a"),
        ("status.phase", "!=", "Failed"),
        ("metadata.name", "!=", "b"),
    ]
    assert parse_field_selector(None).empty
    assert parse_field_selector("").fields() == set()


def test_field_selector_escapes() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d,type=x\!y")
    assert [(r.field, r.value) for r in selector.requirements] == [
        ("metadata.name", "a,b=c\\d"),
        ("type", "x!y"),
    ]
    assert selector.matches({"metadata": {"name": "a,b=c\\d"}, "type": "x!y"})
    assert not selector.matches({"metadata": {"name": "a"}, "type": "x!y"})
    assert str(selector) == r"metadata.name=a\,b\=c\\d,type=x!y"
    assert parse_field_selector("type=a!b").requirements[0].value == "a!b"  # an unescaped ! is fine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "can't understand 'c'"),
        ("a=b=c", "unescaped character in value: ="),
        (r"a=b\x", r"invalid escape sequence: \x"),
        ("a=b\\", "invalid escape sequence: \\"),
    ],
)
def test_field_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_field_selector(text)
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    assert message in err.value.message
