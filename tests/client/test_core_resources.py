"""The official Python client's CoreV1Api against built-in kinds: namespaces, secrets, configmaps,
services and PVCs, including the server-side defaulting a real kube-apiserver performs."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException, NotFoundException
from support.apiserver import ApiServer
from support.objects import unique
from support.waiting import eventually


def test_namespace_lifecycle(apiserver: ApiServer) -> None:
    name = unique("ns")
    with apiserver.api_client("cluster1") as api:
        v1 = client.CoreV1Api(api)
        created = v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        assert created.metadata.name == name
        assert created.metadata.uid
        assert created.status.phase == "Active"
        assert created.metadata.labels["kubernetes.io/metadata.name"] == name
        assert created.spec.finalizers == ["kubernetes"]

        got = v1.read_namespace(name)
        assert got.metadata.uid == created.metadata.uid
        assert name in {ns.metadata.name for ns in v1.list_namespace().items}
        # The namespace exists only on the cluster it was created on.
        with apiserver.api_client("cluster2") as other, pytest.raises(NotFoundException):
            client.CoreV1Api(other).read_namespace(name)

        v1.delete_namespace(name)

        def gone() -> bool:
            try:
                v1.read_namespace(name)
            except NotFoundException:
                return True
            return False

        eventually(gone)


def test_namespace_deletion_removes_its_contents(apiserver: ApiServer) -> None:
    name = unique("ns")
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        v1.create_namespaced_config_map(name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={}))
        v1.delete_namespace(name)
        eventually(lambda: not v1.list_namespaced_config_map(name).items)
        with pytest.raises(NotFoundException):
            v1.read_namespaced_config_map("c", name)


def test_secret_string_data_becomes_base64_data(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        secret = client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds", labels={"app": "volsync"}),
            string_data={"username": "admin", "password": "s3cr3t"},
            data={"existing": base64.b64encode(b"kept").decode()},
        )
        created = v1.create_namespaced_secret(namespace, secret)
        assert created.type == "Opaque"
        assert created.string_data is None
        assert base64.b64decode(created.data["username"]) == b"admin"
        assert base64.b64decode(created.data["password"]) == b"s3cr3t"
        assert base64.b64decode(created.data["existing"]) == b"kept"

        got = v1.read_namespaced_secret("creds", namespace)
        assert got.data == created.data
        assert got.string_data is None

        # stringData is converted on updates too, and overrides data for the same key.
        got.string_data = {"password": "rotated"}
        replaced = v1.replace_namespaced_secret("creds", namespace, got)
        assert base64.b64decode(replaced.data["password"]) == b"rotated"
        assert base64.b64decode(replaced.data["username"]) == b"admin"
        assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

        patched = v1.patch_namespaced_secret("creds", namespace, {"stringData": {"token": "abc"}})
        assert base64.b64decode(patched.data["token"]) == b"abc"
        assert patched.string_data is None

        listed = v1.list_namespaced_secret(namespace, label_selector="app=volsync")
        assert [s.metadata.name for s in listed.items] == ["creds"]

        status = v1.delete_namespaced_secret("creds", namespace)
        assert isinstance(status, dict)  # kubernetes 37: the delete response type is `object`
        assert status["kind"] == "Status"
        assert status["status"] == "Success"
        assert status["details"]["name"] == "creds"
        assert status["details"]["uid"] == created.metadata.uid
        with pytest.raises(NotFoundException):
            v1.read_namespaced_secret("creds", namespace)


def test_secret_type_is_kept_when_given(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        created = v1.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="tls"),
                type="kubernetes.io/tls",
                string_data={"tls.crt": "c", "tls.key": "k"},
            ),
        )
        assert created.type == "kubernetes.io/tls"
        assert sorted(created.data) == ["tls.crt", "tls.key"]


def test_configmap_crud(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        cm = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", annotations={"note": "x"}),
            data={"a": "1"},
            binary_data={"blob": base64.b64encode(b"\x00\x01").decode()},
        )
        created = v1.create_namespaced_config_map(namespace, cm)
        assert created.data == {"a": "1"}
        assert base64.b64decode(created.binary_data["blob"]) == b"\x00\x01"
        assert created.metadata.namespace == namespace

        created.data["b"] = "2"
        replaced = v1.replace_namespaced_config_map("settings", namespace, created)
        assert replaced.data == {"a": "1", "b": "2"}

        patched = v1.patch_namespaced_config_map("settings", namespace, {"data": {"a": None, "c": "3"}})
        assert patched.data == {"b": "2", "c": "3"}
        assert patched.metadata.annotations == {"note": "x"}

        names = [c.metadata.name for c in v1.list_namespaced_config_map(namespace).items]
        assert names == ["settings"]
        assert "settings" in {
            c.metadata.name
            for c in v1.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={namespace}").items
        }

        v1.delete_namespaced_config_map("settings", namespace)
        assert v1.list_namespaced_config_map(namespace).items == []


def test_service_defaulting(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        svc = client.V1Service(
            metadata=client.V1ObjectMeta(name="rsync"),
            spec=client.V1ServiceSpec(selector={"app": "mover"}, ports=[client.V1ServicePort(name="ssh", port=22)]),
        )
        created = v1.create_namespaced_service(namespace, svc)
        spec = created.spec
        assert spec.type == "ClusterIP"
        assert spec.cluster_ip and spec.cluster_ip != "None"
        assert spec.cluster_ips == [spec.cluster_ip]
        assert spec.ports[0].protocol == "TCP"
        assert spec.ports[0].target_port == 22
        assert spec.selector == {"app": "mover"}

        # A port added by a (strategic merge) patch is defaulted as well, and the IP is kept.
        patched = v1.patch_namespaced_service(
            "rsync", namespace, {"spec": {"ports": [{"name": "ssh", "port": 22}, {"name": "extra", "port": 8000}]}}
        )
        ports = {p.name: p for p in patched.spec.ports}
        assert set(ports) == {"ssh", "extra"}
        assert ports["extra"].protocol == "TCP"
        assert ports["extra"].target_port == 8000
        assert patched.spec.cluster_ip == spec.cluster_ip

        # And by a replace that adds a third port without protocol or targetPort.
        patched.spec.ports.append(client.V1ServicePort(name="metrics", port=9090))
        replaced = v1.replace_namespaced_service("rsync", namespace, patched)
        metrics = next(p for p in replaced.spec.ports if p.name == "metrics")
        assert (metrics.protocol, metrics.target_port) == ("TCP", 9090)
        assert replaced.spec.cluster_ip == spec.cluster_ip

        # Two services never share an allocated cluster IP.
        other = v1.create_namespaced_service(
            namespace,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="other"),
                spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]),
            ),
        )
        assert other.spec.cluster_ip != spec.cluster_ip

        deleted = v1.delete_namespaced_service("other", namespace)
        assert isinstance(deleted, client.V1Service)
        assert deleted.metadata.name == "other"
        assert [s.metadata.name for s in v1.list_namespaced_service(namespace).items] == ["rsync"]


def test_service_explicit_values_are_kept(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        created = v1.create_namespaced_service(
            namespace,
            client.V1Service(
                metadata=client.V1ObjectMeta(name="headless"),
                spec=client.V1ServiceSpec(
                    cluster_ip="None", ports=[client.V1ServicePort(port=53, protocol="UDP", target_port="dns")]
                ),
            ),
        )
        assert created.spec.cluster_ip == "None"
        assert created.spec.ports[0].protocol == "UDP"
        assert created.spec.ports[0].target_port == "dns"


def test_pvc_defaults_and_status(apiserver: ApiServer, namespace: str) -> None:
    with apiserver.api_client() as api:
        v1 = client.CoreV1Api(api)
        pvc = client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="data"),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=["ReadWriteOnce"],
                resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
            ),
        )
        created = v1.create_namespaced_persistent_volume_claim(namespace, pvc)
        assert created.status.phase == "Pending"
        assert created.spec.volume_mode == "Filesystem"
        assert created.spec.resources.requests == {"storage": "1Gi"}

        bound = v1.patch_namespaced_persistent_volume_claim_status(
            "data", namespace, {"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}
        )
        assert bound.status.phase == "Bound"

        # A main-resource write keeps the status the status subresource set.
        labelled = v1.patch_namespaced_persistent_volume_claim("data", namespace, {"metadata": {"labels": {"a": "b"}}})
        assert labelled.metadata.labels == {"a": "b"}
        assert labelled.status.phase == "Bound"
        assert labelled.status.capacity == {"storage": "1Gi"}

        # PVC storage returns the deleted object (ReturnDeletedObject), typed by the client.
        deleted = v1.delete_namespaced_persistent_volume_claim("data", namespace)
        assert isinstance(deleted, client.V1PersistentVolumeClaim)
        assert deleted.metadata.uid == created.metadata.uid
        with pytest.raises(ApiException) as err:
            v1.read_namespaced_persistent_volume_claim("data", namespace)
        assert err.value.status == 404
