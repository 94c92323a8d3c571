"""Bad input through kubectl: the server validates against the CRD schemas and stores nothing it refuses.

kubectl 1.32 sends `fieldValidation=Strict` by default, so unknown fields are errors; with
`--validate=warn` they are dropped with a warning, with `--validate=false` silently dropped.
Every refusal is followed by a `get` that must answer NotFound.
"""

from __future__ import annotations

import pytest
from support import manifests
from support.apiserver import ApiServer

pytestmark = pytest.mark.kubectl

RD = "replicationdestination"


def refused(apiserver: ApiServer, manifest: str, *args: str, verb: str = "apply") -> str:
    """Run `kubectl <verb> -f -`; it must fail. Returns stderr."""
    res = apiserver.kubectl(verb, "-f", "-", *args, input=manifest, check=False, context="cluster2")
    assert res.returncode == 1, res.stdout
    assert res.stdout == ""
    return res.stderr


def assert_absent(apiserver: ApiServer, namespace: str, kind: str = RD, name: str = "bad") -> None:
    res = apiserver.kubectl("get", kind, name, "-n", namespace, check=False, context="cluster2")
    assert res.returncode == 1
    assert "(NotFound)" in res.stderr


def test_unsupported_enum_value(apiserver: ApiServer, namespace: str) -> None:
    bad = manifests.replication_destination("bad", namespace, copy_method="Bogus")
    for verb in ("apply", "create"):
        err = refused(apiserver, bad, verb=verb)
        assert err.strip() == (
            'The ReplicationDestination "bad" is invalid: spec.rsync.copyMethod: Unsupported value: "Bogus": '
            'supported values: "Direct", "None", "Clone", "Snapshot"'
        )
        assert_absent(apiserver, namespace)


def test_wrong_type(apiserver: ApiServer, namespace: str) -> None:
    err = refused(apiserver, manifests.replication_destination("bad", namespace, capacity="[1]"))
    assert 'The ReplicationDestination "bad" is invalid' in err
    assert "spec.rsync.capacity: Invalid value: \"array\"" in err
    assert_absent(apiserver, namespace)

    err = refused(apiserver, manifests.replication_destination("bad", namespace, extra="    port: twenty-two\n"))
    assert 'spec.rsync.port: Invalid value: "string": spec.rsync.port in body must be of type integer: "string"' in err
    assert_absent(apiserver, namespace)


def test_missing_required_field(apiserver: ApiServer, namespace: str) -> None:
    snapshot = f"""\
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: bad
  namespace: {namespace}
spec:
  volumeSnapshotClassName: csi-aws-vsc
"""
    err = refused(apiserver, snapshot)
    assert err.strip() == 'The VolumeSnapshot "bad" is invalid: spec.source: Required value'
    assert_absent(apiserver, namespace, "volumesnapshot")

    claims = manifests.replication_destination("bad", namespace,
                                               extra="    moverResources:\n      claims: [{request: gpu}]\n")
    err = refused(apiserver, claims)
    assert "spec.rsync.moverResources.claims[0].name: Required value" in err
    assert_absent(apiserver, namespace)


def test_unknown_field_with_default_validation(apiserver: ApiServer, namespace: str) -> None:
    bad = manifests.replication_destination("bad", namespace, extra="    bogusField: 1\n")
    for verb in ("apply", "create"):
        err = refused(apiserver, bad, verb=verb)
        assert err.startswith("Error from server (BadRequest)")
        assert 'strict decoding error: unknown field "spec.rsync.bogusField"' in err
        assert_absent(apiserver, namespace)


def test_unknown_field_on_an_update_is_refused_too(apiserver: ApiServer, namespace: str) -> None:
    apiserver.apply_yaml(manifests.replication_destination("dest", namespace), context="cluster2")
    bad = manifests.replication_destination("dest", namespace, storage_class="gp3-csi", extra="    bogusField: 1\n")
    err = refused(apiserver, bad)
    assert 'unknown field "spec.rsync.bogusField"' in err
    got = apiserver.get(RD, "dest", "-n", namespace, context="cluster2")
    assert got["spec"]["rsync"]["storageClassName"] == "gp2-csi"


def test_unknown_field_with_warn_or_no_validation_is_dropped(apiserver: ApiServer, namespace: str) -> None:
    extra = "    bogusField: 1\n"
    warned = apiserver.kubectl("apply", "--validate=warn", "-f", "-", context="cluster2",
                               input=manifests.replication_destination("warned", namespace, extra=extra))
    assert warned.stdout.strip() == "replicationdestination.volsync.backube/warned created"
    assert 'Warning: unknown field "spec.rsync.bogusField"' in warned.stderr
    quiet = apiserver.kubectl("apply", "--validate=false", "-f", "-", context="cluster2",
                              input=manifests.replication_destination("quiet", namespace, extra=extra))
    assert quiet.stdout.strip() == "replicationdestination.volsync.backube/quiet created"
    assert "bogusField" not in quiet.stderr
    for name in ("warned", "quiet"):
        rsync = apiserver.get(RD, name, "-n", namespace, context="cluster2")["spec"]["rsync"]
        assert "bogusField" not in rsync
        assert rsync["copyMethod"] == "Snapshot"


def test_invalid_names_and_namespaces(apiserver: ApiServer, namespace: str) -> None:
    err = refused(apiserver, manifests.replication_destination("Bad_Name", namespace))
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in err
    missing_ns = f"{namespace}-missing"
    err = refused(apiserver, manifests.replication_destination("bad", missing_ns), verb="create")
    assert f'namespaces "{missing_ns}" not found' in err
    assert_absent(apiserver, namespace)


def test_unknown_resource_type(apiserver: ApiServer) -> None:
    res = apiserver.kubectl("get", "replicationwidgets", check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == 'error: the server doesn\'t have a resource type "replicationwidgets"'
    unknown_kind = """\
apiVersion: volsync.backube/v1alpha1
kind: ReplicationWidget
metadata:
  name: bad
  namespace: default
"""
    err = refused(apiserver, unknown_kind)
    assert 'no matches for kind "ReplicationWidget" in version "volsync.backube/v1alpha1"' in err
