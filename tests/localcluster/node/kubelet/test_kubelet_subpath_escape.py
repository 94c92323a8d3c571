"""subPath cannot leave its volume (CVE-2017-1002101): a symlink a container of the Pod puts in a
volume is never followed by the kubelet, neither to bind a host path nor to create directories."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubeletenv import KubeletEnv
from support.waiting import eventually

from localcluster.node.runtime import Mount, _refuse_escapes
from localcluster.node.volumes import MountError, PodVolumes, container_mounts


def _pod(sub: str) -> dict[str, Any]:
    return {"metadata": {"uid": "u1", "namespace": "ns", "name": "p"}, "spec": {
        "securityContext": {"fsGroup": 4321},
        "volumes": [{"name": "data", "emptyDir": {}}],
        "containers": [{"name": "main", "volumeMounts": [{"name": "data", "mountPath": "/m", "subPath": sub}]}]}}


def _volumes() -> PodVolumes:
    return PodVolumes(lambda kind, ns, name: None, lambda pod, src: None, {})


@pytest.mark.parametrize("sub", ["x", "x/new", "x/new/deeper"])
def test_subpath_through_a_symlink_is_refused_and_creates_nothing_on_the_host(tmp_path: Path, sub: str) -> None:
    victim = tmp_path / "host"
    victim.mkdir()
    pod_dir = tmp_path / "pod"
    (pod_dir / "volumes" / "data").mkdir(parents=True)
    os.symlink(victim, pod_dir / "volumes" / "data" / "x")  # what `ln -s / /data/x` in a container leaves
    pod = _pod(sub)
    with pytest.raises(MountError, match="symlink"):
        container_mounts(pod, pod["spec"]["containers"][0], pod_dir, _volumes())
    assert list(victim.iterdir()) == []
    assert os.stat(victim).st_gid != 4321


def test_subpath_components_are_created_inside_the_volume(tmp_path: Path) -> None:
    pod_dir = tmp_path / "pod"
    (pod_dir / "volumes" / "data").mkdir(parents=True)
    pod = _pod("a/b")
    [bind] = container_mounts(pod, pod["spec"]["containers"][0], pod_dir, _volumes())
    assert bind.source == pod_dir / "volumes" / "data" / "a" / "b"  # type: ignore[union-attr]
    assert bind.source.is_dir() and bind.source.stat().st_gid == 4321  # type: ignore[union-attr]


def test_a_component_swapped_for_a_link_after_resolution_is_refused_at_start(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    (root / "a").mkdir(parents=True)
    _refuse_escapes([Mount(root / "a", "/m", False, root)])
    (root / "a").rmdir()
    os.symlink("/", root / "a")
    with pytest.raises(ValueError, match="outside its volume"):
        _refuse_escapes([Mount(root / "a", "/m", False, root)])


def test_a_pod_cannot_bind_the_host_through_a_link_in_its_emptydir(kubelet: KubeletEnv, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    mounts = [{"name": "data", "mountPath": "/data"}]
    kubelet.pod("escape", "echo pwned > /m/pwned; mkdir -p /m/made", volumes=[{"name": "data", "emptyDir": {}}],
                initContainers=[{"name": "link", "image": "busybox", "volumeMounts": mounts,
                                 "command": ["sh", "-c", f"ln -s {victim} /data/x && ln -s {victim} /data/y"]}],
                containers=[{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo pwned > /m/pwned"],
                             "volumeMounts": [{"name": "data", "mountPath": "/m", "subPath": "x"},
                                              {"name": "data", "mountPath": "/n", "subPath": "y/new"}]}])

    def refused() -> str | None:
        statuses = (kubelet.get("escape").get("status") or {}).get("containerStatuses") or []
        waiting = next(iter(statuses), {}).get("state", {}).get("waiting") or {}
        return str(waiting.get("message")) if waiting.get("reason") == "CreateContainerConfigError" else None

    message = eventually(refused, timeout=60, interval=0.2, what="CreateContainerConfigError")
    assert "symlink" in message
    assert list(victim.iterdir()) == []
