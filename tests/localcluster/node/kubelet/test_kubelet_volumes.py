"""Volumes and identity against a real API server: a bound PVC's directory with `subPath` and
`readOnly`, `fsGroup`/`runAsUser` ownership, a Memory emptyDir, the downward API volume, the
`kubernetes` Service's variables, and `activeDeadlineSeconds`."""

from __future__ import annotations

import os
from pathlib import Path

from kubeletenv import KubeletEnv

from kube.rest import PVCS, PVS, SERVICES


def _bound_claim(kubelet: KubeletEnv, directory: Path, kind: str = "local") -> None:
    ns = kubelet.namespace
    pv_name = f"pv-{ns}"
    affinity = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [kubelet.node_name]}]}]}}
    kubelet.kube.create(PVS, {"metadata": {"name": pv_name}, "spec": {
        "capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"], kind: {"path": str(directory)},
        **({"nodeAffinity": affinity} if kind == "local" else {}),
        "storageClassName": "manual", "claimRef": {"namespace": ns, "name": "data"}}})
    kubelet.kube.create(PVCS, {"metadata": {"name": "data", "namespace": ns}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "manual", "volumeName": pv_name,
        "resources": {"requests": {"storage": "1Mi"}}}})
    kubelet.kube.patch_status(PVCS, "data", {"phase": "Bound"}, ns)


def test_claim_subpath_readonly_fsgroup_and_memory_dir(kubelet: KubeletEnv, tmp_path: Path) -> None:
    volume = tmp_path / "pv"
    volume.mkdir()
    (volume / "ro.txt").write_text("read me\n")
    _bound_claim(kubelet, volume)
    script = ("id -u; id -G; echo written > /data/sub/out; cat /ro/ro.txt; (echo no > /ro/x) 2>/dev/null || echo ro;"
              " echo m > /mem/f && grep ' /mem ' /proc/mounts | cut -d' ' -f3; cat /info/labels")
    kubelet.pod("claimed", script, securityContext={"runAsUser": 1234, "runAsGroup": 2345, "fsGroup": 3456},
                containers=[{
                    "name": "main", "image": "busybox", "command": ["sh", "-c", script],
                    "volumeMounts": [{"name": "d", "mountPath": "/data/sub", "subPath": "sub"},
                                     {"name": "d", "mountPath": "/ro", "readOnly": True},
                                     {"name": "m", "mountPath": "/mem"},
                                     {"name": "info", "mountPath": "/info"}]}],
                volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                         {"name": "m", "emptyDir": {"medium": "Memory"}},
                         {"name": "info", "downwardAPI": {"items": [
                             {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}])
    pod = kubelet.wait_phase("claimed", "Succeeded")
    lines = kubelet.log(pod).splitlines()
    assert lines[0] == "1234"
    assert "3456" in lines[1].split() and "2345" in lines[1].split()
    assert lines[2:6] == ["read me", "ro", "tmpfs", 'app="claimed"']
    out = volume / "sub" / "out"
    assert out.read_text() == "written\n"
    assert (out.stat().st_uid, volume.stat().st_gid) == (1234, 3456)
    assert os.stat(volume).st_mode & 0o2000  # setgid root, as kubelet leaves an fsGroup volume


def test_kubernetes_service_variables_and_active_deadline(kubelet: KubeletEnv) -> None:
    svc = kubelet.kube.get(SERVICES, "kubernetes", "default")
    kubelet.pod("deadline", "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; sleep 60",
                activeDeadlineSeconds=3)
    pod = kubelet.wait_phase("deadline", "Failed", timeout=30)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    if svc is not None:
        port = next(p["port"] for p in svc["spec"]["ports"])
        assert kubelet.log(pod) == f"{svc['spec']['clusterIP']}:{port}\n"


def test_fsgroup_leaves_a_hostpath_volume_alone(kubelet: KubeletEnv, tmp_path: Path) -> None:
    volume = tmp_path / "hostpath"
    volume.mkdir()
    before = volume.stat()
    _bound_claim(kubelet, volume, "hostPath")
    kubelet.pod("hostpath", "id -G > /data/groups", securityContext={"fsGroup": 3456},
                containers=[{"name": "main", "image": "busybox", "command": ["sh", "-c", "id -G > /data/groups"],
                             "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    kubelet.wait_phase("hostpath", "Succeeded")
    assert "3456" in (volume / "groups").read_text().split()  # the process still gets the group
    after = volume.stat()
    assert (after.st_gid, after.st_mode) == (before.st_gid, before.st_mode)  # as kubelet: no chown, no setgid
