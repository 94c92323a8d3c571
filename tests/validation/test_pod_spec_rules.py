"""In-process table of Pod validation (`apiserver/podvalidation.py`): each bad Pod spec gives the
cause kube-apiserver v1.32 gives (field, reason, message); the mover Jobs the agent renders and a
plain valid Pod give none."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent import jobs
from apiserver import errors, metadata, podshapes, podspecs, podvalidation, quantities

_LABEL = metadata.LABEL_MSG
_SUBDOMAIN = metadata.SUBDOMAIN_MSG
_ENV = "a valid environment variable name must consist only of printable ASCII characters other than '='"


def _pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
    base.update(spec)
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": copy.deepcopy(base)}
    podspecs.default_pod(pod)
    return pod


def _mounting(mounts: list[dict[str, Any]], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return _pod(containers=[{"name": "main", "image": "busybox", "volumeMounts": mounts}], volumes=volumes or [])


_DATA = [{"name": "data", "emptyDir": {}}]
CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("mount-names-no-volume", _mounting([{"name": "data", "mountPath": "/data"}]),
     "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound", 'Not found: "data"'),
    ("duplicate-volume", _pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     "spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "v"'),
    ("duplicate-container", _pod(containers=[{"name": "a", "image": "x"}, {"name": "a", "image": "x"}]),
     "spec.containers[1].name", "FieldValueDuplicate", 'Duplicate value: "a"'),
    ("init-named-like-container", _pod(initContainers=[{"name": "main", "image": "x"}]),
     "spec.initContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "main"'),
    ("container-name-not-label", _pod(containers=[{"name": "Main_1", "image": "x"}]),
     "spec.containers[0].name", "FieldValueInvalid", f'Invalid value: "Main_1": {_LABEL}'),
    ("no-image", _pod(containers=[{"name": "main"}]),
     "spec.containers[0].image", "FieldValueRequired", "Required value"),
    ("port-out-of-range", _pod(containers=[{"name": "m", "image": "x", "ports": [{"containerPort": 70000}]}]),
     "spec.containers[0].ports[0].containerPort", "FieldValueInvalid",
     "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("port-protocol", _pod(containers=[{"name": "m", "image": "x", "ports": [{"containerPort": 1, "protocol": "IP"}]}]),
     "spec.containers[0].ports[0].protocol", "FieldValueNotSupported",
     'Unsupported value: "IP": supported values: "SCTP", "TCP", "UDP"'),
    ("subpath-absolute", _mounting([{"name": "data", "mountPath": "/d", "subPath": "/etc"}], _DATA),
     "spec.containers[0].volumeMounts.subPath", "FieldValueInvalid", 'Invalid value: "/etc": must be a relative path'),
    ("subpath-backstep", _mounting([{"name": "data", "mountPath": "/d", "subPath": "a/../../b"}], _DATA),
     "spec.containers[0].volumeMounts.subPath", "FieldValueInvalid",
     "Invalid value: \"a/../../b\": must not contain '..'"),
    ("mount-path-twice", _mounting([{"name": "data", "mountPath": "/d"}, {"name": "data", "mountPath": "/d"}], _DATA),
     "spec.containers[0].volumeMounts[1].mountPath", "FieldValueInvalid", 'Invalid value: "/d": must be unique'),
    ("env-name-with-equals", _pod(containers=[{"name": "m", "image": "x", "env": [{"name": "A=B", "value": "1"}]}]),
     "spec.containers[0].env[0].name", "FieldValueInvalid", f'Invalid value: "A=B": {_ENV}'),
    ("env-empty-value-from", _pod(containers=[{"name": "m", "image": "x", "env": [{"name": "A", "valueFrom": {}}]}]),
     "spec.containers[0].env[0].valueFrom", "FieldValueInvalid",
     'Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'),
    ("restart-policy", _pod(restartPolicy="Sometimes"), "spec.restartPolicy", "FieldValueNotSupported",
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("volume-without-source", _pod(volumes=[{"name": "v"}]),
     "spec.volumes[0]", "FieldValueRequired", "Required value: must specify a volume type"),
    ("volume-two-sources", _pod(volumes=[{"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}]),
     "spec.volumes[0].secret", "FieldValueForbidden", "Forbidden: may not specify more than 1 volume type"),
    ("pvc-without-claim", _pod(volumes=[{"name": "v", "persistentVolumeClaim": {}}]),
     "spec.volumes[0].persistentVolumeClaim.claimName", "FieldValueRequired", "Required value"),
    ("negative-limit", _pod(containers=[{"name": "m", "image": "x", "resources": {"limits": {"cpu": "-1"}}}]),
     "spec.containers[0].resources.limits[cpu]", "FieldValueInvalid",
     'Invalid value: "-1": must be greater than or equal to 0'),
    ("request-over-limit", _pod(containers=[{"name": "m", "image": "x", "resources": {
        "limits": {"memory": "1Gi"}, "requests": {"memory": "2Gi"}}}]),
     "spec.containers[0].resources.requests", "FieldValueInvalid",
     'Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi'),
    ("cpu-request-over-limit", _pod(containers=[{"name": "m", "image": "x", "resources": {
        "limits": {"cpu": "1000m"}, "requests": {"cpu": "1.5"}}}]),
     "spec.containers[0].resources.requests", "FieldValueInvalid",
     'Invalid value: "1500m": must be less than or equal to cpu limit of 1'),
    ("unknown-resource", _pod(containers=[{"name": "m", "image": "x", "resources": {"limits": {"gpu": "1"}}}]),
     "spec.containers[0].resources.limits[gpu]", "FieldValueInvalid",
     'Invalid value: "gpu": must be a standard resource for containers'),
    ("run-as-negative-user", _pod(securityContext={"runAsUser": -1}), "spec.securityContext.runAsUser",
     "FieldValueInvalid", "Invalid value: -1: must be between 0 and 2147483647, inclusive"),
    ("service-account-name", _pod(serviceAccountName="Bad_SA"), "spec.serviceAccountName",
     "FieldValueInvalid", f'Invalid value: "Bad_SA": {_SUBDOMAIN}'),
    ("pull-policy", _pod(containers=[{"name": "m", "image": "x", "imagePullPolicy": "Sometimes"}]),
     "spec.containers[0].imagePullPolicy", "FieldValueNotSupported",
     'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'),
    ("image-whitespace", _pod(containers=[{"name": "m", "image": " busybox"}]), "spec.containers[0].image",
     "FieldValueInvalid", 'Invalid value: " busybox": must not have leading or trailing whitespace'),
]  # fmt: skip


@pytest.mark.parametrize(("pod", "field", "reason", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_pod_spec_gives_upstreams_cause(pod: dict[str, Any], field: str, reason: str, message: str) -> None:
    causes = podvalidation.pod_causes(pod)
    assert [(c.field, c.reason, c.message) for c in causes] == [(field, reason, message)]


def test_a_volume_with_errors_is_not_mountable() -> None:
    """As upstream: the bad volume's own cause, and the mount naming it is Not found."""
    pod = _mounting([{"name": "Data", "mountPath": "/d"}], [{"name": "Data", "emptyDir": {}}])
    assert [c.field for c in podvalidation.pod_causes(pod)] == [
        "spec.volumes[0].name",
        "spec.containers[0].volumeMounts[0].name",
    ]


def test_bad_quantity_is_a_decoding_error() -> None:
    spec = _pod(containers=[{"name": "m", "image": "x", "resources": {"limits": {"cpu": "lots"}}}])["spec"]
    with pytest.raises(errors.ApiError) as err:
        quantities.check_quantities("Pod", spec)
    assert (err.value.code, err.value.message) == (400, 'Pod in version "v1" cannot be handled as a Pod: quantities '
                                                  "must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*"
                                                  "[-+]?[0-9]*)$'")  # fmt: skip
    for good in ("500m", "1.5", "2Gi", "1e3", 4):
        assert quantities.parse_quantity(good) is not None


_PRINTED = [("1000m", "1"), ("0.5", "500m"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("2000", "2k"), ("1500", "1500"),
            ("0.5Gi", "512Mi"), ("1e3", "1e3")]  # fmt: skip


@pytest.mark.parametrize(("given", "printed"), _PRINTED)
def test_quantities_print_as_upstreams_string(given: str, printed: str) -> None:
    assert quantities.canonical_quantity(given) == printed


_SHAPES = [
    ("Pod", {"containers": 1}, "spec",
     "json: cannot unmarshal number into Go struct field PodSpec.spec.containers of type []v1.Container"),
    ("Pod", {"containers": [{"name": ["m"]}]}, "spec",
     "json: cannot unmarshal array into Go struct field Container.spec.containers.name of type string"),
    ("Pod", "x", "spec", "json: cannot unmarshal string into Go struct field Pod.spec of type v1.PodSpec"),
    ("Deployment", {"volumes": [{"name": "v", "secret": {"defaultMode": "0600"}}]}, "spec.template.spec",
     "json: cannot unmarshal string into Go struct field SecretVolumeSource.spec.template.spec.volumes.secret"
     ".defaultMode of type int32"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "spec", "path", "message"), _SHAPES)
def test_a_value_of_the_wrong_type_is_a_decoding_error(kind: str, spec: Any, path: str, message: str) -> None:
    with pytest.raises(errors.ApiError) as err:
        podshapes.check_pod_spec(kind, spec, path)
    prefix = f'{kind} in version "v1" cannot be handled as a {kind}: '
    assert (err.value.code, err.value.message) == (400, prefix + message)


def test_negative_grace_period_is_a_warning() -> None:
    pod = _pod(terminationGracePeriodSeconds=-5)
    assert podvalidation.pod_causes(pod) == []
    assert podvalidation.spec_warnings(pod["spec"], "spec") == [
        "spec.terminationGracePeriodSeconds: must be >= 0; negative values are invalid and will be treated as 1"
    ]


def test_mover_jobs_and_a_plain_pod_are_valid() -> None:
    owner = {"kind": "ReplicationSource", "metadata": {"name": "rs", "namespace": "ns", "uid": "u"},
             "spec": {"rsync": {"moverResources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}}}  # fmt: skip
    view = jobs.MoverView.of(owner, pvc="src", secret="keys")
    for job in (jobs.source_job(view, image="img:1", address="10.1.128.5", iteration="i1"),
                jobs.destination_job(view, image="img:1")):  # fmt: skip
        template = job["spec"]["template"]
        podshapes.check_pod_spec("Job", template["spec"], "spec.template.spec")
        podspecs.default_pod_spec(template["spec"])
        assert podvalidation.template_causes(template, "spec.template") == []
    assert podvalidation.pod_causes(_pod(volumes=_DATA, hostname="h", nodeName="node-1")) == []


_FULL = _pod(
    containers=[{"name": "m", "image": "x", "ports": [{"containerPort": 1, "hostPort": 2}],
                 "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                 "volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": "s"}],
                 "resources": {"limits": {"cpu": "1"}}, "securityContext": {"runAsUser": 1},
                 "livenessProbe": {"exec": {"command": ["true"]}}}],
    initContainers=[{"name": "i", "image": "x", "restartPolicy": "Always"}],
    volumes=[{"name": "v", "secret": {"secretName": "s", "defaultMode": 1}}],
    securityContext={"supplementalGroups": [1]}, nodeSelector={"a": "b"}, serviceAccountName="sa",
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    return [prefix] + [p for k, v in children for p in _paths(v, prefix + (k,))]


def test_any_value_anywhere_is_a_400_or_causes_never_a_crash() -> None:
    """Every field of a full spec replaced in turn by values of every JSON type: the decoder's 400,
    or validation's causes, and nothing else (a 500 in the server)."""
    for path in _paths(_FULL["spec"])[1:]:
        for value in (None, -1, 1.5, True, "../x", [], {}, [1], {"a": 1}):
            pod = copy.deepcopy(_FULL)
            holder = pod["spec"]
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = copy.deepcopy(value)
            try:
                podshapes.check_pod_spec("Pod", pod["spec"], "spec")
                quantities.check_quantities("Pod", pod["spec"])
            except errors.ApiError as err:
                assert err.code == 400
                continue
            podspecs.default_pod(pod)
            assert isinstance(podvalidation.pod_causes(pod), list)
