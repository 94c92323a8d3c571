"""A mover Job's Pod, as `agent/jobs.py` renders it, translated into `podman run` options the way a
kubelet would run it: the command and args, env, the pod's `runAsUser`, the container's capabilities,
read-only root filesystem and no privilege escalation, Memory emptyDirs as tmpfs, the key Secret as
files (its `defaultMode`) and the claim as a bind mount (read-only where the Pod says so), and the
termination message file at `terminationMessagePath`.

Anything in the Pod this translation does not know fails loudly, so that a change of the rendered
Jobs cannot pass the image test by being ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
TERMINATION_LOG = "/dev/termination-log"  # the kubelet's default terminationMessagePath
EMPTY_DIR = "rw,exec,nosuid,nodev,mode=0777"  # an emptyDir of medium Memory: a tmpfs like the kubelet's
_KNOWN_CONTAINER = {"name", "image", "command", "args", "env", "volumeMounts", "securityContext", "ports"}
_KNOWN_POD = {"containers", "restartPolicy", "serviceAccountName", "automountServiceAccountToken",
              "securityContext", "volumes"}


@dataclass(frozen=True)
class PodOnPodman:
    """What `podman run` needs for the Pod: the image, its options and arguments."""

    image: str
    options: list[str]
    args: list[str]
    termination_log: Path


def _pod_spec(job: Obj) -> tuple[Obj, Obj]:
    spec = job["spec"]["template"]["spec"]
    unknown = set(spec) - _KNOWN_POD
    assert not unknown, f"the Pod has fields this translation does not know: {sorted(unknown)}"
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False, spec
    (container,) = spec["containers"]
    unknown = set(container) - _KNOWN_CONTAINER
    assert not unknown, f"the container has fields this translation does not know: {sorted(unknown)}"
    return spec, container


def _security(spec: Obj, container: Obj) -> list[str]:
    context = container["securityContext"]
    options = ["--user", str(spec["securityContext"]["runAsUser"])]
    if context.get("readOnlyRootFilesystem"):
        options += ["--read-only", "--read-only-tmpfs=false"]  # a kubelet adds no tmpfs of its own
    if context.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    assert not context.get("privileged"), context
    capabilities = context["capabilities"]
    options += [f"--cap-drop={cap}" for cap in capabilities["drop"]]
    options += [f"--cap-add={cap}" for cap in capabilities["add"]]
    return options


def _volumes(spec: Obj, container: Obj, claims: dict[str, Path], secrets: dict[str, dict[str, bytes]],
             scratch: Path) -> list[str]:
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    options: list[str] = []
    for mount in container["volumeMounts"]:
        volume, path = volumes[mount["name"]], mount["mountPath"]
        if "emptyDir" in volume:
            assert volume["emptyDir"] == {"medium": "Memory"}, volume
            options += ["--tmpfs", f"{path}:{EMPTY_DIR}"]
        elif "secret" in volume:
            files = scratch / f"secret-{volume['name']}"
            files.mkdir(parents=True)
            for key, value in secrets[volume["secret"]["secretName"]].items():
                (files / key).write_bytes(value)
                (files / key).chmod(volume["secret"]["defaultMode"])
            options += ["--volume", f"{files}:{path}:ro"]
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            read_only = mount.get("readOnly") or claim.get("readOnly")
            options += ["--volume", f"{claims[claim['claimName']]}:{path}:{'ro' if read_only else 'rw'}"]
        else:
            raise AssertionError(f"volume kind this translation does not know: {volume}")
    return options


def pod_on_podman(job: Obj, *, claims: dict[str, Path], secrets: dict[str, dict[str, bytes]],
                  scratch: Path) -> PodOnPodman:
    """The Job's Pod as `podman run` options; `claims`/`secrets` map names to the host's data."""
    spec, container = _pod_spec(job)
    scratch.mkdir(parents=True, exist_ok=True)
    termination_log = scratch / "termination-log"
    termination_log.touch(mode=0o666)  # the kubelet's file, which the container may write
    options = [*_security(spec, container), *_volumes(spec, container, claims, secrets, scratch),
               "--volume", f"{termination_log}:{TERMINATION_LOG}:rw",
               "--entrypoint", json.dumps(container["command"])]
    options += [f"--env={item['name']}={item['value']}" for item in container.get("env", [])]
    return PodOnPodman(image=container["image"], options=options, args=list(container["args"]),
                       termination_log=termination_log)
