"""Pod and Pod-template validation, the common part of kube-apiserver's `ValidatePodSpec`,
`ValidatePodCreate` and `ValidatePodTemplateSpec` (v1.32), run after defaulting.

    pod_causes(pod)                  a Pod's spec (`spec.…`), plus the Pod-only image check
    template_causes(template, path)  a workload's template: labels, annotations, `<path>.spec.…`
    spec_warnings(spec, path)        what upstream admits with a warning (negative grace period)

Order and wording follow upstream: volumes, containers, init containers, restartPolicy, dnsPolicy,
nodeSelector, securityContext, serviceAccountName, nodeName, activeDeadlineSeconds, hostname,
subdomain, priorityClassName. The container part is `containervalidation.py`.
"""

from __future__ import annotations

from typing import Any

from apiserver import containervalidation, metadata, quantities
from apiserver.errors import DUPLICATE, FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, FieldCause, cause

RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
# Upstream's order of the volume sources, with the path it names when one is the second source
# given (its own spelling, `downwarAPI` included).
_SOURCES = (("emptyDir", "emptyDir"), ("hostPath", "hostPath"), ("gitRepo", "gitRepo"),
            ("gcePersistentDisk", "gcePersistentDisk"), ("awsElasticBlockStore", "awsElasticBlockStore"),
            ("secret", "secret"), ("nfs", "nfs"), ("iscsi", "iscsi"), ("glusterfs", "glusterfs"),
            ("flocker", "flocker"), ("persistentVolumeClaim", "persistentVolumeClaim"), ("rbd", "rbd"),
            ("cinder", "cinder"), ("cephfs", "cephFS"), ("quobyte", "quobyte"), ("downwardAPI", "downwarAPI"),
            ("fc", "fc"), ("flexVolume", "flexVolume"), ("configMap", "configMap"), ("azureFile", "azureFile"),
            ("vsphereVolume", "vsphereVolume"), ("photonPersistentDisk", "photonPersistentDisk"),
            ("portworxVolume", "portworxVolume"), ("azureDisk", "azureDisk"), ("storageos", "storageos"),
            ("projected", "projected"), ("scaleIO", "scaleIO"), ("csi", "csi"), ("ephemeral", "ephemeral"),
            ("image", "image"))  # fmt: skip
_FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _mode_causes(source: dict[str, Any], path: str) -> list[FieldCause]:
    mode = source.get("defaultMode")
    if isinstance(mode, int) and not isinstance(mode, bool) and not 0 <= mode <= 0o777:
        return [cause(INVALID, f"{path}.defaultMode", _FILE_MODE_MSG, mode)]
    return []


def _source_causes(kind: str, source: dict[str, Any], path: str) -> list[FieldCause]:
    """The fields of the sources our clusters use (PVC, Secret, ConfigMap, hostPath, emptyDir)."""
    required = {"persistentVolumeClaim": "claimName", "secret": "secretName", "configMap": "name", "hostPath": "path"}
    if kind in required and not source.get(required[kind]):
        return [cause(REQUIRED, f"{path}.{required[kind]}")]
    if kind in ("secret", "configMap"):
        return _mode_causes(source, path)
    if kind == "hostPath" and ".." in str(source["path"]).split("/"):
        return [cause(INVALID, f"{path}.path", "must not contain '..'", source["path"])]
    size = quantities.parse_quantity(source.get("sizeLimit")) if kind == "emptyDir" else None
    if size is not None and size < 0:
        return [cause(FORBIDDEN, f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity")]
    return []


def _volume_source_causes(volume: dict[str, Any], path: str) -> list[FieldCause]:
    """Exactly one source, as validateVolumeSource."""
    out: list[FieldCause] = []
    count = 0
    for key, named in _SOURCES:
        if volume.get(key) is None:
            continue
        if count:
            out.append(cause(FORBIDDEN, f"{path}.{named}", "may not specify more than 1 volume type"))
            continue
        count += 1
        out += _source_causes(key, _dict(volume[key]), f"{path}.{key}")
    if not count:
        out.append(cause(REQUIRED, path, "must specify a volume type"))
    return out


def volumes_causes(volumes: Any, path: str) -> tuple[dict[str, Any], list[FieldCause]]:
    """ValidateVolumes: the volumes without problems (name → volume) for the mounts, and the causes."""
    valid: dict[str, Any] = {}
    out: list[FieldCause] = []
    names: set[Any] = set()
    for i, volume in enumerate(volumes if isinstance(volumes, list) else []):
        where, volume = f"{path}[{i}]", _dict(volume)
        name = volume.get("name")
        problems = _volume_source_causes(volume, where)
        if not name:
            problems.append(cause(REQUIRED, f"{where}.name"))
        else:
            problems += metadata.name_causes(str(name), label=True, path=f"{where}.name")
        if name in names:
            problems.append(cause(DUPLICATE, f"{where}.name", value=name))
        if problems:
            out += problems
        else:
            names.add(name)
            valid[str(name)] = volume
    return valid, out


def _choice_causes(value: Any, path: str, choices: tuple[str, ...]) -> list[FieldCause]:
    if not value:
        return [cause(REQUIRED, path)]
    if value not in choices:
        return [cause(NOT_SUPPORTED, path, "supported values: " + ", ".join(f'"{c}"' for c in choices), value)]
    return []


def _name_field_causes(spec: dict[str, Any], path: str) -> list[FieldCause]:
    """The names a spec refers to or sets: service account, node, hostname, subdomain, priority class."""
    out: list[FieldCause] = []
    for field, label in (("serviceAccountName", False), ("nodeName", False)):
        if spec.get(field):
            out += metadata.name_causes(str(spec[field]), label=label, path=f"{path}.{field}")
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not isinstance(deadline, bool) and not 1 <= deadline <= 2**31 - 1:
        detail = "must be between 1 and 2147483647, inclusive"
        out.append(cause(INVALID, f"{path}.activeDeadlineSeconds", detail, deadline))
    for field in ("hostname", "subdomain"):
        if spec.get(field):
            out += metadata.name_causes(str(spec[field]), label=True, path=f"{path}.{field}")
    if spec.get("priorityClassName"):
        out += metadata.name_causes(str(spec["priorityClassName"]), label=False, path=f"{path}.priorityClassName")
    return out


def pod_spec_causes(spec: Any, path: str) -> list[FieldCause]:
    """ValidatePodSpec's common part for the spec at `path` (`spec`, `spec.template.spec`)."""
    if not isinstance(spec, dict):
        return [cause(REQUIRED, path)]
    out: list[FieldCause] = []
    if spec.get("terminationGracePeriodSeconds") is None:
        out.append(cause(REQUIRED, f"{path}.terminationGracePeriodSeconds"))
    volumes, problems = volumes_causes(spec.get("volumes"), f"{path}.volumes")
    out += problems
    out += containervalidation.containers_causes(spec, volumes, path)
    out += _choice_causes(spec.get("restartPolicy"), f"{path}.restartPolicy", RESTART_POLICIES)
    out += _choice_causes(spec.get("dnsPolicy"), f"{path}.dnsPolicy", _DNS_POLICIES)
    if spec.get("nodeSelector"):
        out += metadata.label_causes(spec["nodeSelector"], f"{path}.nodeSelector")
    out += containervalidation.security_context_causes(spec.get("securityContext"), f"{path}.securityContext")
    return out + _name_field_causes(spec, path)


def pod_causes(pod: dict[str, Any]) -> list[FieldCause]:
    """A Pod's spec causes, then the check upstream makes for Pods only (not templates): an image
    without leading or trailing whitespace."""
    spec = pod.get("spec")
    out = pod_spec_causes(spec, "spec")
    for field in ("containers", "initContainers"):
        for i, c in enumerate(_dict(spec).get(field) or []):
            image = _dict(c).get("image")
            if isinstance(image, str) and image and image != image.strip():
                detail = "must not have leading or trailing whitespace"
                out.append(cause(INVALID, f"spec.{field}[{i}].image", detail, image))
    return out


def template_causes(template: Any, path: str) -> list[FieldCause]:
    """ValidatePodTemplateSpec for the template at `path` (`spec.template`)."""
    if not isinstance(template, dict):
        return [cause(REQUIRED, path)]
    meta = _dict(template.get("metadata"))
    out = metadata.label_causes(meta.get("labels") or {}, f"{path}.metadata.labels")
    out += metadata.annotation_causes(meta.get("annotations") or {}, f"{path}.metadata.annotations")
    out += pod_spec_causes(template.get("spec"), f"{path}.spec")
    if _dict(template.get("spec")).get("ephemeralContainers"):
        detail = "ephemeral containers not allowed in pod template"
        out.append(cause(FORBIDDEN, f"{path}.spec.ephemeralContainers", detail))
    return out


def always_restart_causes(template: Any, path: str, kind: str) -> list[FieldCause]:
    """What the replicated kinds add to a template: restartPolicy Always, no activeDeadlineSeconds
    (`kind` as upstream names it in the message: ReplicaSet, ReplicationController, DaemonSet)."""
    spec = _dict(_dict(template).get("spec"))
    out: list[FieldCause] = []
    if spec.get("restartPolicy") != "Always":
        detail = 'supported values: "Always"'
        out.append(cause(NOT_SUPPORTED, f"{path}.spec.restartPolicy", detail, spec.get("restartPolicy") or ""))
    if spec.get("activeDeadlineSeconds") is not None:
        detail = f"activeDeadlineSeconds in {kind} is not Supported"
        out.append(cause(FORBIDDEN, f"{path}.spec.activeDeadlineSeconds", detail))
    return out


def spec_warnings(spec: Any, path: str) -> list[str]:
    """Warnings upstream returns with a Pod or template it admits (pkg/api/pod/warnings.go)."""
    grace = _dict(spec).get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        detail = "must be >= 0; negative values are invalid and will be treated as 1"
        return [f"{path}.terminationGracePeriodSeconds: {detail}"]
    return []
