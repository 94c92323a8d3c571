"""Mover Jobs in VolSync's shape (pure): names, the Job and Service manifests of a replication's mover.

A ReplicationDestination's mover is a Job `volsync-rsync-dst-<rd>` whose Pod runs our sshd
(`volsync-mover destination`, port 8022) behind the Service `volsync-rsync-dst-<rd>`; a
ReplicationSource's is a Job `volsync-rsync-src-<rs>` running `volsync-mover source`, rsync over
ssh to `DESTINATION_ADDRESS:DESTINATION_PORT`. Which claim a mover mounts at `/data` (the live PVC
for Direct, the point-in-time copy for Snapshot/Clone, the receiving PVC) is the caller's choice,
given in `MoverView.pvc`. Without `moverServiceAccount` a mover runs as the per-mover ServiceAccount
`volsync-dst-<rd>` / `volsync-src-<rs>`, bound to a Role without rules: our mover needs no API
access (VolSync's Role exists only to `use` an OpenShift SCC). The observation of a running Job and
its log tail are in `moverpods`.

Capabilities (all dropped, then only these added):

- destination, sshd: SETUID/SETGID (privilege separation drops to the unprivileged user),
  SYS_CHROOT (the pre-auth child chroots), AUDIT_WRITE (Debian's sshd writes login audit records
  and refuses the session when it cannot); rsync receiving as root: CHOWN (owners), FOWNER (modes,
  times, ACLs of files it does not own), DAC_OVERRIDE (writing into read-only directories) and
  FSETID, which VolSync's list lacks: without it the kernel clears the setgid bit when root
  chmods a file of a group it is not in, so such modes would not be replicated.
- source: DAC_READ_SEARCH only (rsync must read every file and directory whatever its mode; it
  writes nothing to the volume, which is mounted read-only, and ssh needs no privilege).

Movers get no API access: `automountServiceAccountToken: false`.

`agent/jobmovers.py` creates these objects and reads them back for the replication controller.
"""

from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass, field
from typing import Any

from api.volsync import LABEL_CREATED_BY
from kube import objects

Obj = dict[str, Any]

MAX_NAME = 63
CREATED_BY = "volsync"  # the agent's `app.kubernetes.io/created-by` (agent.iterations.CREATED_BY)
PART_OF = "volsync-addon"  # `app.kubernetes.io/part-of`: ours
COMPONENT = "rsync-mover"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
MOVER_PORT = 8022  # the destination's sshd in the Pod; the Service's targetPort
DEFAULT_PORT = 22
BACKOFF_LIMIT = 2
DATA_DIR = "/data"
KEYS_DIR = "/keys"
WORK_DIR = "/var/lib/volsync-mover"  # the mover's files (sshd config, authorized_keys, known_hosts): in memory
NLB_ANNOTATION = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}  # VolSync's default
ANNOTATION_ITERATION = "volsync-addon.io/iteration"  # on a mover Job: the iteration it moves data for
DESTINATION_CAPS = ("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETGID", "SETUID", "SYS_CHROOT")
SOURCE_CAPS = ("DAC_READ_SEARCH",)
ROLES = {"ReplicationDestination": "destination", "ReplicationSource": "source"}
_SHORT = {"destination": "dst", "source": "src"}


def bounded(prefix: str, name: str) -> str:
    """`prefix + name`, or when that exceeds 63 characters `prefix` + the CRC32 of `name` in hex
    (VolSync's rule for the names and label values it derives from a CR's name)."""
    full = prefix + name
    return full if len(full) <= MAX_NAME else f"{prefix}{zlib.crc32(name.encode()):08x}"


def mover_name(role: str, cr_name: str) -> str:
    """The Job (and, for a destination, Service) name: `volsync-rsync-dst-<rd>` / `volsync-rsync-src-<rs>`."""
    return bounded(f"volsync-rsync-{_SHORT[role]}-", cr_name)


def account_name(role: str, cr_name: str) -> str:
    """The generated per-mover ServiceAccount (and Role, RoleBinding): `volsync-dst-<rd>` / `volsync-src-<rs>`."""
    return bounded(f"volsync-{_SHORT[role]}-", cr_name)


def _str_map(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def _obj(raw: Any) -> Obj | None:
    return copy.deepcopy(raw) if isinstance(raw, dict) and raw else None


@dataclass(frozen=True)
class MoverOptions:
    """VolSync's mover options of `spec.rsync` (MoverConfig); None/empty: the default."""

    service_account: str | None = None
    security_context: Obj | None = None
    pod_labels: dict[str, str] = field(default_factory=dict)
    resources: Obj | None = None
    affinity: Obj | None = None

    @classmethod
    def parse(cls, rsync: Any) -> MoverOptions:
        """The options from a raw `spec.rsync` (anything not an object of the right type is ignored)."""
        raw = rsync if isinstance(rsync, dict) else {}
        account = raw.get("moverServiceAccount")
        return cls(
            service_account=account if isinstance(account, str) and account else None,
            security_context=_obj(raw.get("moverSecurityContext")),
            pod_labels=_str_map(raw.get("moverPodLabels")),
            resources=_obj(raw.get("moverResources")),
            affinity=_obj(raw.get("moverAffinity")),
        )


@dataclass(frozen=True)
class MoverView:
    """What a mover's objects are made from: the CR, the claim at `/data` and the key Secret at `/keys`."""

    owner: Obj  # the ReplicationSource or ReplicationDestination
    pvc: str  # Direct: the live (source) or receiving (destination) PVC; Snapshot/Clone: the copy
    secret: str  # the key Secret this side's mover uses
    options: MoverOptions = field(default_factory=MoverOptions)

    @classmethod
    def of(cls, owner: Obj, *, pvc: str, secret: str) -> MoverView:
        """A view with the mover options read from the owner's `spec.rsync`."""
        return cls(owner, pvc, secret, MoverOptions.parse((owner.get("spec") or {}).get("rsync")))

    @property
    def role(self) -> str:
        return ROLES[str(self.owner.get("kind"))]

    @property
    def name(self) -> str:
        return objects.name_of(self.owner)

    @property
    def namespace(self) -> str:
        return objects.namespace_of(self.owner)

    @property
    def rsync(self) -> Obj:
        raw = (self.owner.get("spec") or {}).get("rsync")
        return raw if isinstance(raw, dict) else {}


def selector_labels(view: MoverView) -> dict[str, str]:
    """The labels that identify a mover's Pods (the destination Service selects by them)."""
    return {
        LABEL_NAME: bounded(f"{_SHORT[view.role]}-", view.name),
        LABEL_COMPONENT: COMPONENT,
        LABEL_PART_OF: PART_OF,
    }


def owned_meta(view: MoverView, name: str) -> Obj:
    """Metadata of an object the CR owns: name, namespace, our labels, the controller reference."""
    return {
        "name": name,
        "namespace": view.namespace,
        "labels": {LABEL_CREATED_BY: CREATED_BY, **selector_labels(view)},
        "ownerReferences": [objects.owner_ref(view.owner)],
    }


def destination_job(view: MoverView, *, image: str, iteration: str = "") -> Obj:
    """The destination's Job for `iteration`: sshd on 8022 receiving into the PVC at `/data` until the
    source signals completion; its exit code is the source's, its termination message names the
    source's iteration."""
    args = ["destination", "--data-dir", DATA_DIR, "--keys-dir", KEYS_DIR, "--port", str(MOVER_PORT),
            "--work-dir", WORK_DIR]
    container = _container(view, image, args, env=[], caps=DESTINATION_CAPS)
    container["ports"] = [{"name": "ssh", "containerPort": MOVER_PORT, "protocol": "TCP"}]
    return _job(view, container, read_only=False, iteration=iteration)


def source_job(view: MoverView, *, image: str, address: str, port: int | None = None, iteration: str = "",
               retries: int | None = None) -> Obj:
    """The source's Job for `iteration`: rsync over ssh from the claim at `/data` (read-only) to
    `address:port` (`retries` attempts), then the completion signal naming `iteration`."""
    env = [{"name": "DESTINATION_ADDRESS", "value": address},
           {"name": "DESTINATION_PORT", "value": str(port or DEFAULT_PORT)}]
    args = ["source", "--data-dir", DATA_DIR, "--keys-dir", KEYS_DIR, "--work-dir", WORK_DIR]
    if iteration:
        env.append({"name": "ITERATION", "value": iteration})
        args += ["--iteration-id", iteration]
    if retries is not None:
        args += ["--retries", str(retries)]
    return _job(view, _container(view, image, args, env=env, caps=SOURCE_CAPS), read_only=True, iteration=iteration)


def _container(view: MoverView, image: str, args: list[str], *, env: list[Obj], caps: tuple[str, ...]) -> Obj:
    container: Obj = {
        "name": "rsync",
        "image": image,
        "command": ["volsync-mover"],
        "args": args,
        "env": env,
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR, "readOnly": view.role == "source"},
            {"name": "keys", "mountPath": KEYS_DIR, "readOnly": True},
            {"name": "work", "mountPath": WORK_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": {
            "capabilities": {"drop": ["ALL"], "add": list(caps)},
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
        },
    }
    if not env:
        del container["env"]
    if view.options.resources is not None:
        container["resources"] = copy.deepcopy(view.options.resources)
    return container


def _job(view: MoverView, container: Obj, *, read_only: bool, iteration: str) -> Obj:
    opts = view.options
    pod_spec: Obj = {
        "containers": [container],
        "restartPolicy": "Never",
        "serviceAccountName": opts.service_account or account_name(view.role, view.name),
        "automountServiceAccountToken": False,  # movers never call the API
        # VolSync's rsync movers run as root (owners, modes, ACLs); moverSecurityContext replaces it
        "securityContext": copy.deepcopy(opts.security_context) if opts.security_context else {"runAsUser": 0},
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": view.pvc, "readOnly": read_only}},
            {"name": "keys", "secret": {"secretName": view.secret, "defaultMode": 0o600}},
            {"name": "work", "emptyDir": {"medium": "Memory"}},
            {"name": "tmp", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if opts.affinity is not None:
        pod_spec["affinity"] = copy.deepcopy(opts.affinity)
    meta = owned_meta(view, mover_name(view.role, view.name))
    if iteration:
        meta["annotations"] = {ANNOTATION_ITERATION: iteration}
    pod_labels = {**opts.pod_labels, LABEL_CREATED_BY: CREATED_BY, **selector_labels(view)}  # ours win
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }


def destination_service(view: MoverView) -> Obj:
    """The Service in front of the destination mover: port `spec.rsync.port` (22) → 8022, of
    `serviceType` (ClusterIP), annotated with `serviceAnnotations` (unset: VolSync's NLB hint)."""
    rsync = view.rsync
    port = rsync.get("port")
    port = port if isinstance(port, int) and not isinstance(port, bool) and port > 0 else DEFAULT_PORT
    service_type = rsync.get("serviceType")
    annotations = rsync.get("serviceAnnotations")
    meta = owned_meta(view, mover_name(view.role, view.name))
    chosen = NLB_ANNOTATION if annotations is None else _str_map(annotations)
    if chosen:
        meta["annotations"] = dict(chosen)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": service_type if isinstance(service_type, str) and service_type else "ClusterIP",
            "selector": selector_labels(view),
            "ports": [{"name": "ssh", "port": port, "targetPort": MOVER_PORT, "protocol": "TCP"}],
        },
    }


def mover_service_account(view: MoverView) -> Obj | None:
    """The generated ServiceAccount the mover runs as (None with `moverServiceAccount`: the user's)."""
    if view.options.service_account:
        return None
    meta = owned_meta(view, account_name(view.role, view.name))
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False}


def mover_role(view: MoverView) -> Obj | None:
    """The mover's Role: no rules, as the mover reads its keys and data from mounts and never calls
    the API (it exists so a cluster's policy, e.g. an SCC `use` rule, has one place to be granted)."""
    if view.options.service_account:
        return None
    meta = owned_meta(view, account_name(view.role, view.name))
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": []}


def mover_role_binding(view: MoverView) -> Obj | None:
    """Binds `mover_role` to `mover_service_account` (None with `moverServiceAccount`)."""
    if view.options.service_account:
        return None
    name = account_name(view.role, view.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": owned_meta(view, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": view.namespace}],
    }
