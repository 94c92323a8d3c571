"""One container of a Pod turned into the runtime's `ContainerLaunch`: argv, env, mounts, identity.

`LaunchBuilder.build(pod, container, attempt, attachment)` resolves everything the kubelet decides
for a container start: the command line (the image's default entrypoint when the Pod gives no
`command`: `sh` for busybox images, `python3` for python ones; the project's own image has none,
so such a container needs a `command`), the environment (`envvars`), the mounts of its volumes
(`volumes`), the merged pod/container `securityContext` (runAsUser, runAsGroup, fsGroup and
supplementalGroups as supplementary groups, capabilities, privileged) and the Pod's hostname.
A problem the Pod's author must fix raises `ConfigError` (kubelet's CreateContainerConfigError).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from localcluster.node.envvars import EnvError, PodContext, command_line, container_env, service_env
from localcluster.node.images import ImageMap
from localcluster.node.netseam import PodAttachment
from localcluster.node.runtime import ContainerLaunch, Mount, Tmpfs
from localcluster.node.termination import message_path
from localcluster.node.volumes import HostBind, MemoryDir, PodVolumes, container_mounts

IMAGE_CMDS: dict[str, list[str]] = {"busybox": ["sh"], "python": ["python3"], "host": []}
"""The images' default CMD (none has an ENTRYPOINT): `args` alone replace it, as with Docker's images."""
ObjectSource = Callable[[str, str, str], Mapping[str, Any] | None]


class ConfigError(Exception):
    """The container cannot be configured as its spec says (CreateContainerConfigError)."""


def security(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The effective identity and privileges: container securityContext over the Pod's."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = container.get("securityContext") or {}
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None:
        groups.append(int(pod_sc["fsGroup"]))
    caps = sc.get("capabilities") or {}
    return {
        "run_as_user": sc.get("runAsUser", pod_sc.get("runAsUser")),
        "run_as_group": sc.get("runAsGroup", pod_sc.get("runAsGroup")),
        "supplementary_groups": sorted(set(groups)),
        "cap_add": [str(c) for c in caps.get("add") or []],
        "cap_drop": [str(c) for c in caps.get("drop") or []],
        "privileged": bool(sc.get("privileged")),
        "read_only_root": bool(sc.get("readOnlyRootFilesystem")),
    }


class LaunchBuilder:
    """Builds `ContainerLaunch`es for the containers of this node's Pods."""

    def __init__(self, images: ImageMap, volumes: PodVolumes, objects: ObjectSource, node_name: str,
                 host_ip: str, allocatable: Mapping[str, str]) -> None:
        self.images = images
        self.volumes = volumes
        self.objects = objects
        self.node_name = node_name
        self.host_ip = host_ip
        self.allocatable = allocatable

    def kubernetes_service(self) -> dict[str, str]:
        """`KUBERNETES_SERVICE_*` from the `default/kubernetes` Service (none while it is missing)."""
        svc = self.objects("Service", "default", "kubernetes") or {}
        spec = svc.get("spec") or {}
        ports = spec.get("ports") or []
        port = next((p for p in ports if p.get("name") == "https"), ports[0] if ports else None)
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or port is None:
            return {}
        return service_env(str(ip), int(port.get("port", 443)))

    def lookup(self, namespace: str) -> Callable[[str, str], Mapping[str, str] | None]:
        def get(kind: str, name: str) -> Mapping[str, str] | None:
            obj = self.objects(kind, namespace, name)
            if obj is None:
                return None
            if kind == "Secret":
                return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
            return {k: str(v) for k, v in (obj.get("data") or {}).items()}

        return get

    def build(self, pod: Mapping[str, Any], container: Mapping[str, Any], attempt: int, attachment: PodAttachment,
              pod_dir: Path) -> ContainerLaunch:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        ctx = PodContext(pod_ip=attachment.ip, host_ip=self.host_ip, node_name=self.node_name)
        try:
            env = container_env(pod, container, ctx, self.lookup(str(meta.get("namespace"))),
                                self.kubernetes_service(), self.allocatable)
        except EnvError as exc:
            raise ConfigError(str(exc)) from exc
        image = str(container.get("image", ""))
        argv = command_line(container, [], IMAGE_CMDS.get(self.images.kind_of(image), []), env)
        if not argv:
            raise ConfigError(f'container "{container.get("name")}": no command given and image "{image}" '
                              "has no default entrypoint on this node")
        binds: list[Mount] = []
        tmpfs: list[Tmpfs] = []
        for m in container_mounts(pod, container, pod_dir, self.volumes):
            if isinstance(m, HostBind):
                binds.append(Mount(m.source, m.target, m.read_only, m.within))
            elif isinstance(m, MemoryDir):
                tmpfs.append(Tmpfs(m.target))
        hostname = str(spec.get("hostname") or meta.get("name") or "localhost")[:63]
        return ContainerLaunch(
            pod_uid=str(meta["uid"]), name=str(container["name"]), attempt=attempt, argv=argv, env=env,
            working_dir=container.get("workingDir") or None, image=image, mounts=binds, tmpfs=tmpfs,
            netns_path=attachment.netns_path, hostname=hostname, termination_message_path=message_path(container),
            **security(pod, container),
        )
