"""Decoding kubectl's protobuf request bodies into the JSON-shaped dicts the server works on.

The ``.bin`` fixtures are real bodies captured from kubectl 1.32.4 (see
``tests/fixtures/protobuf/README.md`` for the exact commands); expectations are written from the
arguments given to kubectl.  Crafted bodies cover the error paths and wire details kubectl never
produces.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from apiserver import protobuf
from apiserver.protobuf import ProtobufError, decode

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "protobuf"


def _load(name: str) -> bytes:
    return (FIXTURES / f"{name}.bin").read_bytes()


def _b64(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


# ------------------------------------------------------------------------ a tiny test-side encoder


def _uvarint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative ints travel as 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _vfield(number: int, value: int) -> bytes:
    return _uvarint(number << 3) + _uvarint(value)


def _lfield(number: int, payload: bytes | str) -> bytes:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return _uvarint(number << 3 | 2) + _uvarint(len(data)) + data


def _body(api_version: str, kind: str, raw: bytes, *, encoding: str = "") -> bytes:
    type_meta = _lfield(1, api_version) + _lfield(2, kind)
    envelope = _lfield(1, type_meta) + _lfield(2, raw) + _lfield(3, encoding) + _lfield(4, "")
    return protobuf.MAGIC + envelope


def _meta(name: str, *extra: bytes) -> bytes:
    return _lfield(1, _lfield(1, name) + b"".join(extra))


# ------------------------------------------------------------------------------- captured bodies

BLOB = bytes(range(256))
DOCKER_CONFIG = (
    '{"auths":{"registry.example.com":{"username":"bob","password":"s3cret",'
    '"email":"bob@example.com","auth":"' + _b64("bob:s3cret") + '"}}}'
)
SERVICE_STATUS: dict[str, Any] = {"loadBalancer": {}}
PDB_STATUS = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
BINDING_SUBJECTS = [
    {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
    {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
    {"kind": "ServiceAccount", "name": "builder", "namespace": "team-a"},
]


def _namespace(name: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}, "spec": {}, "status": {}}


def _service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "team-a", "labels": {"app": name}},
        "spec": {**spec, "selector": {"app": name}},
        "status": SERVICE_STATUS,
    }


def _pod_template(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {}, "spec": {"containers": containers, **spec}}


EXPECTED: dict[str, dict[str, Any]] = {
    # kubectl create namespace team-a
    "namespace": _namespace("team-a"),
    "namespace-dryrun": _namespace("team-b"),
    "namespace-save-config": _namespace(
        "team-c",
        annotations={
            "kubectl.kubernetes.io/last-applied-configuration": (
                '{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"team-c","creationTimestamp":null},'
                '"spec":{},"status":{}}\n'
            )
        },
    ),
    "secret-generic": {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app-creds", "namespace": "team-a"},
        "data": {"username": _b64("admin"), "greeting": _b64("héllo wörld ✓"), "blob": _b64(BLOB)},
        "type": "example.com/custom",
    },
    "secret-generic-dryrun": {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1", "namespace": "team-a"},
        "data": {"a": _b64("b")},
    },
    "secret-docker-registry": {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": "team-a"},
        "data": {".dockerconfigjson": _b64(DOCKER_CONFIG)},
        "type": "kubernetes.io/dockerconfigjson",
    },
    "configmap": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": "team-a"},
        "data": {"mode": "fast", "emoji": "☃ snow", "app.properties": "color=blue\nsize=2\n"},
    },
    "configmap-binary": {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bin-config", "namespace": "team-a"},
        "binaryData": {"blob": _b64(BLOB)},
    },
    "service-clusterip": _service(
        "web",
        {
            "ports": [
                {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
            ],
            "type": "ClusterIP",
        },
    ),
    "service-clusterip-headless": _service("headless", {"clusterIP": "None", "type": "ClusterIP"}),
    "service-loadbalancer": _service(
        "lb",
        {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}], "type": "LoadBalancer"},
    ),
    "service-nodeport": _service(
        "np",
        {
            "ports": [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            "type": "NodePort",
        },
    ),
    "service-externalname": _service("ext", {"type": "ExternalName", "externalName": "db.example.com"}),
    "serviceaccount": {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": "team-a"},
    },
    "role": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-reader", "namespace": "team-a"},
        "rules": [
            {
                "verbs": ["get", "list", "watch"],
                "apiGroups": [""],
                "resources": ["pods", "configmaps"],
                "resourceNames": ["cfg1"],
            }
        ],
    },
    "rolebinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-pods", "namespace": "team-a"},
        "subjects": BINDING_SUBJECTS,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
    },
    "clusterrole": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "cr1"},
        "rules": [
            {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        ],
    },
    "clusterrole-aggregation": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate": "true"}}]},
    },
    "clusterrolebinding": {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "crb1"},
        "subjects": BINDING_SUBJECTS,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr1"},
    },
    "deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "team-a", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 8080}], "resources": {}}
                    ]
                },
            },
            "strategy": {},
        },
        "status": {},
    },
    "deployment-multi": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "multi", "namespace": "team-a", "labels": {"app": "multi"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "multi"}},
            "template": {
                "metadata": {"labels": {"app": "multi"}},
                "spec": {
                    "containers": [
                        {"name": "busybox", "image": "busybox", "resources": {}},
                        {"name": "nginx", "image": "nginx:1.27", "resources": {}},
                    ]
                },
            },
            "strategy": {},
        },
        "status": {},
    },
    "job": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "once", "namespace": "team-a"},
        "spec": {
            "template": _pod_template(
                [{"name": "once", "image": "busybox", "command": ["echo", "hi"], "resources": {}}],
                restartPolicy="Never",
            )
        },
        "status": {},
    },
    "cronjob": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "team-a"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "metadata": {"name": "nightly"},
                "spec": {
                    "template": _pod_template(
                        [{"name": "nightly", "image": "busybox", "command": ["date"], "resources": {}}],
                        restartPolicy="OnFailure",
                    )
                },
            },
        },
        "status": {},
    },
    "priorityclass": {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "high"},
        "value": 1000,
        "globalDefault": True,
        "description": "high prio",
        "preemptionPolicy": "Never",
    },
    "quota": {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q1", "namespace": "team-a"},
        "spec": {"hard": {"cpu": "1", "memory": "1Gi", "pods": "10"}, "scopes": ["NotTerminating"]},
        "status": {},
    },
    "pdb": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb1", "namespace": "team-a"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        "status": PDB_STATUS,
    },
    "pdb-percent": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "pdb2", "namespace": "team-a"},
        "spec": {"maxUnavailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
        "status": PDB_STATUS,
    },
    "ingress": {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "ing1", "namespace": "team-a", "annotations": {"a.example.com/x": "y"}},
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "defsvc", "port": {"number": 80}}},
            "tls": [{"hosts": ["foo.example.com"], "secretName": "my-cert"}],
            "rules": [
                {
                    "host": "foo.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/bar",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
                            }
                        ]
                    },
                },
                {
                    "http": {
                        "paths": [
                            {
                                "path": "/path",
                                "pathType": "Exact",
                                "backend": {"service": {"name": "svc2", "port": {"name": "http"}}},
                            }
                        ]
                    }
                },
            ],
        },
        "status": {"loadBalancer": {}},
    },
    "token": {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {},
        "spec": {"audiences": ["api"], "expirationSeconds": 600},
        "status": {"token": ""},
    },
    "token-bound": {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {},
        "spec": {
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": "pod1",
                "uid": "0c9a5c1e-7777-8888-9999-000011112222",
            }
        },
        "status": {"token": ""},
    },
    "autoscale": {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "minReplicas": 1,
            "maxReplicas": 5,
            "targetCPUUtilizationPercentage": 70,
        },
        "status": {"currentReplicas": 0, "desiredReplicas": 0},
    },
    "auth-can-i": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "team-a", "verb": "create", "resource": "pods"}},
        "status": {"allowed": False},
    },
    "auth-can-i-subresource": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {
            "resourceAttributes": {
                "namespace": "team-a",
                "verb": "get",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
                "name": "web",
            }
        },
        "status": {"allowed": False},
    },
    "auth-can-i-nonresource": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"nonResourceAttributes": {"path": "/logs", "verb": "get"}},
        "status": {"allowed": False},
    },
    "auth-can-i-list": {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "metadata": {},
        "spec": {"namespace": "team-a"},
        "status": {"incomplete": False},
    },
    "auth-whoami": {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
        "metadata": {},
        "status": {"userInfo": {}},
    },
}

# Fixtures with a test of their own below.
SPECIAL = {"secret-tls", "job-from-cronjob"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_body_decodes_to_expected_json(name: str) -> None:
    assert decode(_load(name)) == EXPECTED[name]


def test_every_fixture_is_covered() -> None:
    on_disk = {path.stem for path in FIXTURES.glob("*.bin")}
    assert on_disk == set(EXPECTED) | SPECIAL


def test_secret_tls_carries_pem_cert_and_key() -> None:
    obj = decode(_load("secret-tls"))
    assert obj["type"] == "kubernetes.io/tls"
    assert obj["metadata"] == {"name": "web-tls", "namespace": "team-a"}
    assert set(obj["data"]) == {"tls.crt", "tls.key"}
    cert = base64.b64decode(obj["data"]["tls.crt"], validate=True).decode("ascii")
    key = base64.b64decode(obj["data"]["tls.key"], validate=True).decode("ascii")
    assert cert.startswith("-----BEGIN CERTIFICATE-----\n")
    assert cert.endswith("-----END CERTIFICATE-----\n")
    assert key.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert key.endswith("-----END PRIVATE KEY-----\n")


def test_job_from_cronjob_copies_the_whole_pod_template() -> None:
    """``create job --from=cronjob/nightly`` re-encodes the CronJob the server returned.

    That CronJob sets nearly every JobSpec/PodSpec/ObjectMeta field, so this checks their field
    numbers, ``inline`` structs (``VolumeSource``, ``ProbeHandler``, ``LocalObjectReference``),
    IntOrString/Quantity/Time values and ``managedFields`` raw JSON in one go.
    """
    cronjob = json.loads((FIXTURES / "job-from-cronjob.cronjob.json").read_text(encoding="utf-8"))
    template = cronjob["spec"]["jobTemplate"]
    expected_spec = copy.deepcopy(template["spec"])
    # Go's non-pointer ResourceRequirements struct is always written: {} where the source had none.
    expected_spec["template"]["spec"]["initContainers"][0]["resources"] = {}

    obj = decode(_load("job-from-cronjob"))

    assert obj == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "manual-1",
            "namespace": "team-a",
            "labels": {"tier": "batch"},
            "annotations": {"cronjob.kubernetes.io/instantiate": "manual", "jt": "1"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "nightly",
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": expected_spec,
        "status": {},
    }
    # A few spot checks, so a failure above is easy to read.
    pod_meta = obj["spec"]["template"]["metadata"]
    assert pod_meta["creationTimestamp"] == "2024-05-06T07:08:09Z"
    assert pod_meta["managedFields"][0]["fieldsV1"] == {"f:metadata": {"f:labels": {".": {}, "f:job": {}}}}
    main = obj["spec"]["template"]["spec"]["containers"][0]
    assert main["livenessProbe"]["httpGet"]["port"] == "http"
    assert main["startupProbe"]["tcpSocket"]["port"] == 8080
    assert main["env"][2]["valueFrom"]["secretKeyRef"] == {"name": "app-creds", "key": "username", "optional": True}
    assert obj["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"] == [4000, 5000]


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


KUBECTL_JSON: dict[str, Any] = json.loads((FIXTURES / "kubectl-dry-run.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(KUBECTL_JSON))
def test_matches_kubectls_own_json_rendering(name: str) -> None:
    """Same command with ``--dry-run=client -o json``: the JSON kubectl < 1.32 would have sent."""
    assert decode(_load(name)) == _without_nulls(KUBECTL_JSON[name])


def test_unknown_fields_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    raw = _meta("ns1", _lfield(99, "future"), _vfield(98, 7)) + _lfield(42, b"\x08\x01") + _vfield(43, 1)
    with caplog.at_level(logging.DEBUG, logger="apiserver.protobuf"):
        obj = decode(_body("v1", "Namespace", raw))
    assert obj == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}}
    assert "Namespace.42" in caplog.text
    assert "ObjectMeta.99" in caplog.text


def test_fixed_width_fields_are_skipped() -> None:
    fixed64 = _uvarint(50 << 3 | 1) + bytes(8)
    fixed32 = _uvarint(51 << 3 | 5) + bytes(4)
    obj = decode(_body("v1", "ConfigMap", fixed64 + _meta("cm") + fixed32))
    assert obj == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}


def test_negative_and_int64_values() -> None:
    raw = _meta("low") + _vfield(2, -5)
    assert decode(_body("scheduling.k8s.io/v1", "PriorityClass", raw))["value"] == -5
    raw = _meta("big", _vfield(7, 2**40))  # ObjectMeta.generation is int64
    assert decode(_body("v1", "Namespace", raw))["metadata"]["generation"] == 2**40


def test_pointer_fields_keep_explicit_zero_values() -> None:
    spec = _vfield(1, 0) + _vfield(7, 0)  # replicas: *int32 = 0; paused: bool = false (omitempty)
    obj = decode(_body("apps/v1", "Deployment", _meta("d") + _lfield(2, spec)))
    assert obj["spec"] == {"replicas": 0}
    secret = _meta("s") + _vfield(5, 0)  # immutable: *bool = false
    assert decode(_body("v1", "Secret", secret))["immutable"] is False


def test_timestamps_are_rfc3339_and_zero_time_is_omitted() -> None:
    stamp = _vfield(1, 1_700_000_000) + _vfield(2, 999_000_000)
    raw = _meta("ns", _lfield(8, stamp), _lfield(9, b""))
    assert decode(_body("v1", "Namespace", raw))["metadata"] == {
        "name": "ns",
        "creationTimestamp": "2023-11-14T22:13:20Z",
    }
    early = _meta("ns", _lfield(8, _vfield(1, -62_135_596_800 + 86_400)))  # 0001-01-02
    assert decode(_body("v1", "Namespace", early))["metadata"]["creationTimestamp"] == "0001-01-02T00:00:00Z"


def test_int_or_string_zero_int_is_kept() -> None:
    port = _vfield(3, 80)
    port += _lfield(4, _vfield(1, 0) + _vfield(2, 0) + _lfield(3, ""))
    obj = decode(_body("v1", "Service", _meta("svc") + _lfield(2, _lfield(1, port))))
    assert obj["spec"]["ports"] == [{"port": 80, "targetPort": 0}]


def test_packed_repeated_ints_are_accepted() -> None:
    groups = _uvarint(4 << 3 | 2) + _uvarint(3) + _uvarint(1) + _uvarint(300)
    pod = _lfield(14, groups)  # PodSpec.securityContext.supplementalGroups, packed
    job = _meta("j") + _lfield(2, _lfield(6, _lfield(2, pod)))
    obj = decode(_body("batch/v1", "Job", job))
    assert obj["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"] == [1, 300]


def test_map_entry_without_value_gets_the_zero_value() -> None:
    raw = _meta("cm", _lfield(11, _lfield(1, "empty"))) + _lfield(2, _lfield(1, "k"))  # keys only
    obj = decode(_body("v1", "ConfigMap", raw))
    assert obj["metadata"]["labels"] == {"empty": ""}
    assert obj["data"] == {"k": ""}


def test_cluster_role_binding_and_supported_kinds() -> None:
    kinds = protobuf.supported_kinds()
    assert ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") in kinds
    assert ("v1", "Namespace") in kinds
    assert kinds == sorted(kinds)


# ----------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"", "magic", id="empty"),
        pytest.param(b"k8s", "magic", id="short-magic"),
        pytest.param(b'{"kind":"Namespace"}', "magic", id="json-body"),
        pytest.param(b"k8s\x01" + _load("namespace")[4:], "magic", id="wrong-magic"),
        pytest.param(protobuf.MAGIC + b"\x0a", "truncated varint", id="truncated-key-varint"),
        pytest.param(protobuf.MAGIC + b"\x0a\xff", "truncated varint", id="truncated-length-varint"),
        pytest.param(protobuf.MAGIC + b"\x08" + b"\xff" * 11, "longer than 10 bytes", id="overlong-varint"),
        pytest.param(protobuf.MAGIC + b"\x0a\x05ab", "exceeds the remaining", id="length-past-end"),
        pytest.param(protobuf.MAGIC + b"\x0b", "unsupported wire type 3", id="group-wire-type"),
        pytest.param(protobuf.MAGIC + b"\x00\x00", "field number 0", id="field-number-zero"),
        pytest.param(protobuf.MAGIC + b"\x09\x00\x00", "truncated fixed64", id="truncated-fixed64"),
        pytest.param(protobuf.MAGIC, "typeMeta lacks apiVersion or kind", id="no-type-meta"),
        pytest.param(protobuf.MAGIC + _lfield(2, b""), "typeMeta lacks apiVersion or kind", id="empty-type-meta"),
        pytest.param(protobuf.MAGIC + _vfield(1, 3), "typeMeta is not length-delimited", id="type-meta-not-bytes"),
        pytest.param(_body("v1", "Pod", _meta("p")), "unsupported kind", id="unsupported-pod"),
        pytest.param(_body("v1", "Widget", b""), "unsupported kind", id="unknown-kind"),
        pytest.param(_body("apps/v1beta1", "Deployment", b""), "unsupported kind", id="unsupported-version"),
        pytest.param(_body("v1", "Namespace", _meta("ns"), encoding="gzip"), "contentEncoding", id="content-encoding"),
        pytest.param(
            _body("v1", "Namespace", _lfield(1, _vfield(1, 5))),
            "expected length-delimited",
            id="wrong-wire-type-message",
        ),
        pytest.param(
            _body("scheduling.k8s.io/v1", "PriorityClass", _lfield(2, "1000")),
            "expected a varint",
            id="wrong-wire-type-int",
        ),
        pytest.param(_body("v1", "Namespace", _lfield(1, _lfield(1, b"\xff\xfe"))), "invalid UTF-8", id="bad-utf8"),
        pytest.param(
            _body("v1", "ConfigMap", _vfield(2, 1)), "map entry is not length-delimited", id="map-entry-varint"
        ),
        pytest.param(
            _body("v1", "Namespace", _meta("ns", _lfield(8, _vfield(1, 2**62)))),
            "timestamp out of range",
            id="timestamp-overflow",
        ),
        pytest.param(
            _body("v1", "Namespace", _meta("ns", _lfield(17, _lfield(7, _lfield(1, "{nope"))))),
            "raw JSON",
            id="bad-fields-v1-json",
        ),
        pytest.param(_load("secret-generic")[:100], "exceeds the remaining", id="truncated-capture"),
    ],
)
def test_malformed_bodies_raise_protobuf_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message):
        decode(body)


def test_protobuf_error_is_a_value_error() -> None:
    assert issubclass(ProtobufError, ValueError)
    assert protobuf.PROTOBUF == "application/vnd.kubernetes.protobuf"


@pytest.mark.parametrize("name", ["secret-generic", "service-clusterip", "job-from-cronjob", "ingress"])
def test_truncated_or_corrupted_captures_only_raise_protobuf_error(name: str) -> None:
    """No prefix and no single-byte corruption of a real body may escape as another exception."""
    body = _load(name)
    for end in range(len(body)):
        with contextlib.suppress(ProtobufError):
            decode(body[:end])
    for pos in range(4, len(body), 7):
        for flip in (0x01, 0x80, 0xFF):
            corrupted = bytearray(body)
            corrupted[pos] ^= flip
            with contextlib.suppress(ProtobufError):
                decode(bytes(corrupted))
