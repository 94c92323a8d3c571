"""A Pod's volumes materialised under its pod directory, and each container's mounts of them.

`PodVolumes.prepare(pod)` turns every volume of the spec into a host directory (or a tmpfs):
- `secret` / `configMap`: files from `data` (and `binaryData`), only `items` when given, modes from
  `mode` / `defaultMode` (default 0644); a missing object or key fails unless `optional: true`;
- `downwardAPI`: `fieldRef` / `resourceFieldRef` items; `projected`: `secret`, `configMap`,
  `downwardAPI` and `serviceAccountToken` sources into one directory (the token comes from a
  TokenRequest bound to the Pod and is refreshed at 80 % of its life by `refresh_tokens`);
- `emptyDir`: a directory, or with `medium: Memory` a tmpfs in each container that mounts it;
- `persistentVolumeClaim`: the bound PV's `spec.local.path` / `spec.hostPath.path`.
Files are written aside and renamed into place. `fsGroup` becomes the group of emptyDir and `local`
PV roots (setgid; not of `hostPath` PVs, as kubelet) and of projected files (group-readable). A
`subPath` is reached without following links; it names a directory (made when missing) or a file
(bound as that file, as a Secret's or ConfigMap's key). A volume that cannot be prepared raises
`MountError` (the kubelet reports `FailedMount` and keeps the Pod Pending).
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from localcluster.node.envvars import EnvError, PodContext, field_value, resource_value

# (pod, serviceAccountToken source) -> (token, issued at, expires at), None when none can be had
TokenSource = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[str, datetime, datetime] | None]
ObjectSource = Callable[[str, str, str], Mapping[str, Any] | None]  # (kind, namespace, name) -> object


class MountError(Exception):
    """A volume cannot be prepared (kubelet: FailedMount)."""


@dataclass(frozen=True)
class HostBind:
    """A host directory bound into a container; `within`: the volume root a subPath source must stay in."""

    source: Path
    target: str
    read_only: bool
    within: Path | None = None


@dataclass(frozen=True)
class MemoryDir:
    target: str


ContainerMount = HostBind | MemoryDir


def _data_of(obj: Mapping[str, Any], kind: str) -> dict[str, bytes]:
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def _safe_rel(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise MountError(f"invalid path {path!r}")
    return rel


def write_file(root: Path, rel: str, content: bytes, mode: int, gid: int | None) -> None:
    target = root / _safe_rel(rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
        if gid is not None:
            os.fchown(fd, 0, gid)
            mode |= 0o040
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, target)


class PodVolumes:
    """Prepares the volumes of Pods under `<pod dir>/volumes/` (see the module docstring)."""

    def __init__(self, objects: ObjectSource, tokens: TokenSource, allocatable: Mapping[str, str]) -> None:
        self.objects = objects
        self.tokens = tokens
        self.allocatable = allocatable
        self.token_life: dict[tuple[str, str], tuple[datetime, datetime]] = {}  # (uid, volume) -> issued, expiry

    def prepare(self, pod: Mapping[str, Any], pod_dir: Path, ctx: PodContext) -> None:
        root = pod_dir / "volumes"
        root.mkdir(parents=True, exist_ok=True)
        gid = (pod.get("spec", {}).get("securityContext") or {}).get("fsGroup")
        for vol in pod.get("spec", {}).get("volumes") or []:
            name = str(vol.get("name", ""))
            target = root / str(_safe_rel(name))
            if "emptyDir" in vol:
                if (vol["emptyDir"] or {}).get("medium") != "Memory":
                    self.own_dir(target, gid)
            elif "persistentVolumeClaim" in vol:
                path, local = self.claim_source(pod, vol["persistentVolumeClaim"])
                self.own_dir(path, gid if local else None)  # as kubelet: hostPath keeps its ownership
            else:
                target.mkdir(parents=True, exist_ok=True)
                self._project(pod, vol, target, ctx, gid)

    @staticmethod
    def own_dir(path: Path, gid: int | None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if gid is not None:
            os.chown(path, -1, gid)
            os.chmod(path, os.stat(path).st_mode | 0o2070)

    def claim_source(self, pod: Mapping[str, Any], source: Mapping[str, Any]) -> tuple[Path, bool]:
        """The bound PV's directory, and whether it is a `local` PV (fsGroup applies) not a `hostPath`."""
        ns = str(pod["metadata"]["namespace"])
        claim = str(source.get("claimName", ""))
        pvc = self.objects("PersistentVolumeClaim", ns, claim)
        if pvc is None:
            raise MountError(f'persistentvolumeclaim "{claim}" not found')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise MountError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = self.objects("PersistentVolume", "", str(pv_name))
        spec = (pv or {}).get("spec") or {}
        local = (spec.get("local") or {}).get("path")
        path = local or (spec.get("hostPath") or {}).get("path")
        if not path:
            raise MountError(f'persistentvolume "{pv_name}" has no local or hostPath path this node can mount')
        return Path(path), bool(local)

    def _project(self, pod: Mapping[str, Any], vol: Mapping[str, Any], target: Path, ctx: PodContext,
                 gid: int | None) -> None:
        if "projected" in vol:
            spec = vol["projected"] or {}
            sources = list(spec.get("sources") or [])
            default = int(spec.get("defaultMode", 0o644))
        else:
            key = next((k for k in ("secret", "configMap", "downwardAPI") if k in vol), None)
            if key is None:
                raise MountError(f"volume {vol.get('name')!r}: unsupported volume type")
            sources = [{key: vol[key]}]
            default = int((vol[key] or {}).get("defaultMode", 0o644))
        for src in sources:
            for rel, content, mode in self._files(pod, src, ctx, str(vol.get("name"))):
                write_file(target, rel, content, default if mode is None else mode, gid)

    def _files(self, pod: Mapping[str, Any], src: Mapping[str, Any], ctx: PodContext,
               volume: str) -> list[tuple[str, bytes, int | None]]:
        ns = str(pod["metadata"]["namespace"])
        for key, kind, name_field in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name")):
            if key in src:
                ref = src[key] or {}
                name = str(ref.get(name_field) or ref.get("name") or "")
                obj = self.objects(kind, ns, name)
                if obj is None:
                    if ref.get("optional"):
                        return []
                    raise MountError(f'{kind.lower()} "{name}" not found')
                return self._items(_data_of(obj, kind), ref, kind, name)
        if "downwardAPI" in src:
            return self._downward(pod, src["downwardAPI"] or {}, ctx)
        if "serviceAccountToken" in src:
            spec = src["serviceAccountToken"] or {}
            got = self.tokens(pod, spec)
            if got is None:
                return []
            token, issued, expiry = got
            self.token_life[(str(pod["metadata"]["uid"]), volume)] = (issued, expiry)
            return [(str(spec.get("path", "token")), token.encode(), None)]
        raise MountError("unsupported projected source")

    @staticmethod
    def _items(data: Mapping[str, bytes], ref: Mapping[str, Any], kind: str,
               name: str) -> list[tuple[str, bytes, int | None]]:
        items = ref.get("items")
        if not items:
            return [(k, v, None) for k, v in data.items()]
        out: list[tuple[str, bytes, int | None]] = []
        for item in items:
            key = str(item.get("key", ""))
            if key not in data:
                if ref.get("optional"):
                    continue
                raise MountError(f'configmap references non-existent config key: {key}' if kind == "ConfigMap"
                                 else f'couldn\'t find key {key} in Secret {name}')
            out.append((str(item.get("path", key)), data[key], item.get("mode")))
        return out

    def _downward(self, pod: Mapping[str, Any], spec: Mapping[str, Any],
                  ctx: PodContext) -> list[tuple[str, bytes, int | None]]:
        out: list[tuple[str, bytes, int | None]] = []
        containers = {c.get("name"): c for c in pod.get("spec", {}).get("containers") or []}
        for item in spec.get("items") or []:
            try:
                if "fieldRef" in item:
                    value = field_value(pod, str(item["fieldRef"].get("fieldPath", "")), ctx)
                else:
                    ref = item.get("resourceFieldRef") or {}
                    value = resource_value(containers.get(ref.get("containerName"), {}), ref, self.allocatable)
            except EnvError as exc:
                raise MountError(str(exc)) from exc
            out.append((str(item.get("path", "")), value.encode(), item.get("mode")))
        return out

    def tokens_due(self, pod_uid: str, now: datetime) -> bool:
        """Whether a token of the Pod reached 80 % of its life (then `prepare` again renews it)."""
        return any(uid == pod_uid and now >= issued + (expiry - issued) * 0.8
                   for (uid, _), (issued, expiry) in self.token_life.items())

    def forget(self, pod_uid: str) -> None:
        for key in [k for k in self.token_life if k[0] == pod_uid]:
            del self.token_life[key]


def container_mounts(pod: Mapping[str, Any], container: Mapping[str, Any], pod_dir: Path,
                     volumes: PodVolumes) -> list[ContainerMount]:
    """The container's `volumeMounts` as host binds and tmpfs (with `subPath` and `readOnly`)."""
    by_name = {v.get("name"): v for v in pod.get("spec", {}).get("volumes") or []}
    out: list[ContainerMount] = []
    for vm in container.get("volumeMounts") or []:
        vol = by_name.get(vm.get("name"))
        if vol is None:
            raise MountError(f"volumeMount {vm.get('name')!r}: no such volume")
        path = str(vm.get("mountPath", ""))
        if (vol.get("emptyDir") or {}).get("medium") == "Memory":
            out.append(MemoryDir(path))
            continue
        owned = True  # fsGroup applies (not to hostPath PVs)
        if "persistentVolumeClaim" in vol:
            source, owned = volumes.claim_source(pod, vol["persistentVolumeClaim"])
            read_only = bool(vm.get("readOnly") or vol["persistentVolumeClaim"].get("readOnly"))
        else:
            source = pod_dir / "volumes" / str(vol.get("name"))
            projected = any(k in vol for k in ("secret", "configMap", "downwardAPI", "projected"))
            read_only = bool(vm.get("readOnly")) or projected
        sub = vm.get("subPath")
        within = None
        if sub:
            gid = (pod.get("spec", {}).get("securityContext") or {}).get("fsGroup") if owned else None
            within, source = source, resolve_subpath(source, str(sub), gid)
        out.append(HostBind(source, path, read_only, within))
    return out


def resolve_subpath(root: Path, sub: str, gid: int | None) -> Path:
    """`root/sub` reached one component at a time without following any link (as kubelet since
    CVE-2017-1002101): each component is opened `O_NOFOLLOW | O_DIRECTORY` relative to its parent's
    fd, a missing one is made with `mkdir(dir_fd=)` (never through a link); the last one may be a
    regular file (bound as a file, as the kubelet binds a Secret's or ConfigMap's key). A symlink on
    the way, put there by a container of the Pod, raises `MountError` instead of binding a host path."""
    rel = _safe_rel(sub)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags & ~os.O_NOFOLLOW)  # the root itself is the node's or the PV's, not the Pod's
    try:
        for index, part in enumerate(rel.parts):
            try:
                child = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, flags, dir_fd=fd)
                if gid is not None:
                    os.fchown(child, -1, gid)
                    os.fchmod(child, 0o2775)
            except OSError as exc:  # ELOOP (a symlink) or ENOTDIR (a file or a link to one)
                if index == len(rel.parts) - 1 and _is_plain_file(fd, part):
                    break
                raise MountError(f"subPath {sub!r}: {part!r} is a symlink or not a directory; "
                                 "a subPath may not leave its volume") from exc
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    return root / rel


def _is_plain_file(dir_fd: int, name: str) -> bool:
    """`name` in `dir_fd` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
