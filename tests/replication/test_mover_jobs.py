"""agent/jobs.py and agent/moverpods.py: the mover Jobs, Service and accounts, and how a Job is read.

VolSync semantics followed (reference §1.3, §3.2-3.4): Job and Service `volsync-rsync-dst-<rd>` /
`volsync-rsync-src-<rs>` (over 63 characters: prefix + CRC32 of the CR name), backoffLimit 2,
restartPolicy Never, container `rsync`, keys at `/keys` (0600), data at `/data` (read-only for the
source), in-memory work dir and `/tmp`, capabilities dropped but for the few the mover needs; the
mover options of `spec.rsync`; success/failure from the Job, `latestMoverStatus.logs` filtered to
rsync's summary lines and cut to 1 KiB. The manifests are also created (dry run) in our API server,
so they are objects a cluster accepts.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.replication_objects import NS, RD_UID, RS_UID, rd, rs

from agent import jobs, moverpods
from agent.jobs import MoverOptions, MoverView
from agent.moverpods import JobObservation, log_tail, observe_job
from apiserver.cluster import Cluster, load_crd_files
from apiserver.store import Store
from apiserver.writing import Options

Obj = dict[str, Any]
IMAGE = "volsync-addon:0.1.0"
REPO = Path(__file__).resolve().parents[2]
OPTIONS: Obj = {
    "moverServiceAccount": "my-mover",
    "moverSecurityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
    "moverPodLabels": {"team": "storage", "app.kubernetes.io/component": "mine"},
    "moverResources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "moverAffinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app.kubernetes.io/component": "rsync-mover"}},
         "topologyKey": "kubernetes.io/hostname"}]}},
}


def _rd_view(**fields: Any) -> MoverView:
    return MoverView.of(rd(**fields), pvc="volsync-backup-dst", secret="volsync-rsync-dst-dest-backup")


def _rs_view(pvc: str = "volsync-app-src", **fields: Any) -> MoverView:
    return MoverView.of(rs(**fields), pvc=pvc, secret="rs-keys")


def _owner(uid: str, kind: str, name: str) -> Obj:
    return {"apiVersion": "volsync.backube/v1alpha1", "kind": kind, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


# -- names ------------------------------------------------------------------------------------------
def test_names_follow_volsync() -> None:
    assert jobs.mover_name("destination", "backup") == "volsync-rsync-dst-backup"
    assert jobs.mover_name("source", "app") == "volsync-rsync-src-app"
    assert jobs.account_name("destination", "backup") == "volsync-dst-backup"
    assert jobs.account_name("source", "app") == "volsync-src-app"


def test_long_names_become_prefix_and_crc32_of_the_cr_name() -> None:
    fits = "a" * (63 - len("volsync-rsync-dst-"))
    assert jobs.mover_name("destination", fits) == "volsync-rsync-dst-" + fits
    long = "a-very-long-replication-destination-name-for-the-database-1"  # 59 characters
    assert len(long) == 59
    name = jobs.mover_name("destination", long)
    assert name == f"volsync-rsync-dst-{zlib.crc32(long.encode()):08x}"
    assert len(name) <= 63 and name == jobs.mover_name("destination", long)  # stable
    assert jobs.mover_name("destination", long + "2") != name
    assert jobs.mover_name("source", long).startswith("volsync-rsync-src-")
    view = _rd_view(name=long)
    assert jobs.selector_labels(view)["app.kubernetes.io/name"] == f"dst-{long}"  # 63: still fits
    view = _rd_view(name=long + "xyz")
    assert jobs.selector_labels(view)["app.kubernetes.io/name"] == f"dst-{zlib.crc32((long + 'xyz').encode()):08x}"


# -- manifests --------------------------------------------------------------------------------------
def test_destination_job_with_defaults() -> None:
    job = jobs.destination_job(_rd_view(), image=IMAGE)
    labels = {"app.kubernetes.io/name": "dst-backup", "app.kubernetes.io/component": "rsync-mover",
              "app.kubernetes.io/part-of": "volsync-addon"}
    assert job["metadata"] == {
        "name": "volsync-rsync-dst-backup", "namespace": NS,
        "labels": {"app.kubernetes.io/created-by": "volsync", **labels},
        "ownerReferences": [_owner(RD_UID, "ReplicationDestination", "backup")],
    }
    assert job["spec"]["backoffLimit"] == 2
    template = job["spec"]["template"]
    assert template["metadata"] == {"labels": {"app.kubernetes.io/created-by": "volsync", **labels}}
    assert template["spec"] == {
        "containers": [{
            "name": "rsync",
            "image": IMAGE,
            "command": ["volsync-mover"],
            "args": ["destination", "--data-dir", "/data", "--keys-dir", "/keys", "--port", "8022",
                     "--work-dir", "/var/lib/volsync-mover"],
            "ports": [{"name": "ssh", "containerPort": 8022, "protocol": "TCP"}],
            "volumeMounts": [
                {"name": "data", "mountPath": "/data", "readOnly": False},
                {"name": "keys", "mountPath": "/keys", "readOnly": True},
                {"name": "work", "mountPath": "/var/lib/volsync-mover"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            "securityContext": {
                "capabilities": {"drop": ["ALL"], "add": ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER",
                                                           "FSETID", "SETGID", "SETUID", "SYS_CHROOT"]},
                "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "privileged": False,
            },
        }],
        "restartPolicy": "Never",
        "serviceAccountName": "volsync-dst-backup",
        "automountServiceAccountToken": False,
        "securityContext": {"runAsUser": 0},
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "volsync-backup-dst", "readOnly": False}},
            {"name": "keys", "secret": {"secretName": "volsync-rsync-dst-dest-backup", "defaultMode": 0o600}},
            {"name": "work", "emptyDir": {"medium": "Memory"}},
            {"name": "tmp", "emptyDir": {"medium": "Memory"}},
        ],
    }


def test_source_job_with_defaults() -> None:
    job = jobs.source_job(_rs_view(), image=IMAGE, address="10.96.0.20")
    assert job["metadata"]["name"] == "volsync-rsync-src-app"
    assert job["metadata"]["ownerReferences"] == [_owner(RS_UID, "ReplicationSource", "app")]
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["source", "--data-dir", "/data", "--keys-dir", "/keys",
                                 "--work-dir", "/var/lib/volsync-mover"]
    assert container["env"] == [{"name": "DESTINATION_ADDRESS", "value": "10.96.0.20"},
                                {"name": "DESTINATION_PORT", "value": "22"}]
    assert "ports" not in container
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    assert container["volumeMounts"][0] == {"name": "data", "mountPath": "/data", "readOnly": True}
    assert spec["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "volsync-app-src",
                                                                            "readOnly": True}}
    assert spec["serviceAccountName"] == "volsync-src-app"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "src-app"
    port = jobs.source_job(_rs_view(), image=IMAGE, address="dst.example", port=2222)
    assert port["spec"]["template"]["spec"]["containers"][0]["env"][1] == {"name": "DESTINATION_PORT",
                                                                           "value": "2222"}


@pytest.mark.parametrize(("method", "claim"), [("Direct", "data"), ("Snapshot", "volsync-app-src"),
                                                ("Clone", "volsync-app-src")])
def test_the_claim_at_data_is_the_callers_choice(method: str, claim: str) -> None:
    view = _rs_view(pvc=claim, copy_method=method)
    spec = jobs.source_job(view, image=IMAGE, address="10.0.0.9")["spec"]["template"]["spec"]
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim


def test_every_mover_option() -> None:
    view = _rd_view(**OPTIONS)
    assert view.options == MoverOptions(
        service_account="my-mover", security_context=OPTIONS["moverSecurityContext"],
        pod_labels=OPTIONS["moverPodLabels"], resources=OPTIONS["moverResources"],
        affinity=OPTIONS["moverAffinity"])
    job = jobs.destination_job(view, image=IMAGE)
    template = job["spec"]["template"]
    spec = template["spec"]
    assert spec["serviceAccountName"] == "my-mover"
    assert spec["securityContext"] == OPTIONS["moverSecurityContext"]
    assert spec["affinity"] == OPTIONS["moverAffinity"]
    assert spec["containers"][0]["resources"] == OPTIONS["moverResources"]
    # the user's labels are added; ours (the Service's selector) are never overridden
    assert template["metadata"]["labels"] == {"team": "storage", "app.kubernetes.io/created-by": "volsync",
                                              **jobs.selector_labels(view)}
    # the manifest does not share the CR's dicts
    spec["affinity"]["podAntiAffinity"] = {}
    assert view.options.affinity == OPTIONS["moverAffinity"]
    # with moverServiceAccount, no account, Role or binding is generated
    assert (jobs.mover_service_account(view), jobs.mover_role(view), jobs.mover_role_binding(view)) == (None,) * 3


def test_mover_options_ignore_values_of_the_wrong_type() -> None:
    bad = {"moverServiceAccount": 5, "moverSecurityContext": "root", "moverPodLabels": ["x"],
           "moverResources": None, "moverAffinity": {}}
    assert MoverOptions.parse(bad) == MoverOptions()
    assert MoverOptions.parse(None) == MoverOptions()


def test_destination_service() -> None:
    svc = jobs.destination_service(_rd_view())
    assert svc["metadata"]["name"] == "volsync-rsync-dst-backup"
    assert svc["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    assert svc["spec"] == {
        "type": "ClusterIP",
        "selector": {"app.kubernetes.io/name": "dst-backup", "app.kubernetes.io/component": "rsync-mover",
                     "app.kubernetes.io/part-of": "volsync-addon"},
        "ports": [{"name": "ssh", "port": 22, "targetPort": 8022, "protocol": "TCP"}],
    }
    pod_labels = jobs.destination_job(_rd_view(**OPTIONS), image=IMAGE)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    lb = jobs.destination_service(_rd_view(port=2022, serviceType="LoadBalancer", serviceAnnotations={}))
    assert lb["spec"]["type"] == "LoadBalancer"
    assert lb["spec"]["ports"][0]["port"] == 2022 and lb["spec"]["ports"][0]["targetPort"] == 8022
    assert "annotations" not in lb["metadata"]


def test_generated_account_and_a_role_without_rules() -> None:
    view = _rs_view()
    sa, role, binding = jobs.mover_service_account(view), jobs.mover_role(view), jobs.mover_role_binding(view)
    assert sa is not None and role is not None and binding is not None
    assert sa["metadata"]["name"] == role["metadata"]["name"] == binding["metadata"]["name"] == "volsync-src-app"
    assert sa["automountServiceAccountToken"] is False
    assert role["rules"] == []  # the mover never calls the API
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "volsync-src-app"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "volsync-src-app", "namespace": NS}]


# -- the manifests in a real API server (dry run) ---------------------------------------------------
@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    store = Store(tmp_path / "c1.db")
    try:
        yield Cluster("c1", store, load_crd_files(REPO / "manifests" / "crds"))
    finally:
        store.close()


def _create(cluster: Cluster, obj: Obj, *, dry_run: bool) -> Obj:
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = {"Job": "jobs", "Service": "services", "ServiceAccount": "serviceaccounts", "Role": "roles",
              "RoleBinding": "rolebindings", "Pod": "pods", "Namespace": "namespaces",
              "ReplicationSource": "replicationsources", "ReplicationDestination": "replicationdestinations"}
    rt = cluster.registry.by_key(f"{group}/{plural[obj['kind']]}")
    assert rt is not None, obj["kind"]
    namespace = obj["metadata"].get("namespace", "")
    return cluster.writer.create(rt, namespace, copy.deepcopy(obj), version, Options(dry_run=dry_run)).obj


DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "SETGID", "SETUID",
        "SYS_CHROOT"}


def _kube_rules(obj: Obj) -> None:
    """Kubernetes' validation our API server does not do (yet): names, label values, mounts, caps."""
    meta = obj["metadata"]
    assert len(meta["name"]) <= 63 and DNS1035.match(meta["name"]), meta["name"]
    templates = [obj["spec"]["template"]] if obj["kind"] == "Job" else []
    for labels in [meta.get("labels") or {}, *(t["metadata"]["labels"] for t in templates)]:
        assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in labels.values()), labels
    for template in templates:
        volumes = {v["name"] for v in template["spec"]["volumes"]}
        for container in template["spec"]["containers"]:
            assert {m["name"] for m in container["volumeMounts"]} <= volumes
            assert set(container["securityContext"]["capabilities"]["add"]) <= CAPS


@pytest.mark.parametrize("options", [{}, OPTIONS], ids=["defaults", "every-option"])
def test_the_api_server_accepts_the_manifests(cluster: Cluster, options: Obj) -> None:
    _create(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, dry_run=False)
    long = "a-very-long-replication-destination-name-for-the-database-0123"
    if options:  # the user's ServiceAccount must exist for a Pod of the template to be admitted
        _create(cluster, {"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": "my-mover", "namespace": NS}}, dry_run=False)
    for owner in (rd(**options), rs(**options), rd(name=long, uid="uid-long", **options)):
        # the server's uid (the collector deletes what an absent owner owns); the options as given, as our
        # CRD's spec.rsync prunes moverSecurityContext and moverAffinity (VolSync's legacy rsync has neither)
        stored = _create(cluster, owner, dry_run=False)
        view = MoverView.of({**owner, "metadata": stored["metadata"]}, pvc="claim", secret="keys")
        assert view.options == MoverOptions.parse(options)
        for extra in (jobs.mover_service_account(view), jobs.mover_role(view), jobs.mover_role_binding(view)):
            if extra is not None:
                _create(cluster, extra, dry_run=False)
        if view.role == "destination":
            job = jobs.destination_job(view, image=IMAGE)
            svc = _create(cluster, jobs.destination_service(view), dry_run=True)
            assert svc["spec"]["ports"][0]["targetPort"] == 8022 and svc["spec"]["clusterIP"]
        else:
            job = jobs.source_job(view, image=IMAGE, address="10.96.0.20")
        for obj in (job, *([jobs.destination_service(view)] if view.role == "destination" else [])):
            _kube_rules(obj)
        created = _create(cluster, job, dry_run=True)
        template = created["spec"]["template"]
        assert created["spec"]["backoffLimit"] == 2 and template["spec"]["restartPolicy"] == "Never"
        assert jobs.selector_labels(view).items() <= template["metadata"]["labels"].items()
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": job["metadata"]["name"] + "-x", "namespace": NS, **template["metadata"]},
               "spec": template["spec"]}
        admitted = _create(cluster, pod, dry_run=True)
        assert admitted["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert cluster.store.get("batch/jobs", NS, jobs.mover_name("destination", "backup")) is None  # dry run


# -- observing a Job --------------------------------------------------------------------------------
JOB_UID = "uid-job-1"


def _job(*, status: Obj | None = None, backoff: int | None = 2) -> Obj:
    spec = {} if backoff is None else {"backoffLimit": backoff}
    return {"metadata": {"name": "volsync-rsync-src-app", "namespace": NS, "uid": JOB_UID},
            "spec": spec, "status": status or {}}


def _pod(name: str, phase: str, created: str, *, owner: str = JOB_UID) -> Obj:
    return {"metadata": {"name": name, "namespace": NS, "creationTimestamp": created,
                         "ownerReferences": [{"kind": "Job", "name": "j", "uid": owner, "controller": True}]},
            "status": {"phase": phase}}


def test_observe_job_states() -> None:
    assert observe_job(None, []) == JobObservation("Missing")
    assert observe_job(_job(), []) == JobObservation("Running")
    first = _pod("p-1", "Failed", "2026-03-02T10:00:00Z")
    second = _pod("p-2", "Running", "2026-03-02T10:00:30Z")
    other = _pod("q-9", "Failed", "2026-03-02T11:00:00Z", owner="someone-else")
    assert observe_job(_job(status={"failed": 1, "active": 1}), [second, first, other]) == \
        JobObservation("Running", 1, "p-2")
    done = _job(status={"succeeded": 1, "failed": 1,
                        "conditions": [{"type": "Complete", "status": "True"}]})
    assert observe_job(done, [first, _pod("p-2", "Succeeded", "2026-03-02T10:00:30Z")]) == \
        JobObservation("Succeeded", 1, "p-2")
    # VolSync gives up at backoffLimit failed Pods, before the Job controller marks the Job Failed
    third = _pod("p-3", "Failed", "2026-03-02T10:01:00Z")
    assert observe_job(_job(status={"failed": 2}), [first, third]) == JobObservation("Failed", 2, "p-3")
    # failed Pods seen before the Job's status counted them
    assert observe_job(_job(status={}), [first, third]).state == "Failed"
    failed = _job(status={"failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                                          "reason": "DeadlineExceeded"}]})
    assert observe_job(failed, [first]) == JobObservation("Failed", 1, "p-1")
    # Kubernetes' default backoffLimit (6) when the Job has none
    assert observe_job(_job(status={"failed": 2}, backoff=None), []).state == "Running"


RSYNC_LOG = """\
Attempt 1 of 5
>f+++++++++ a/file
cd+++++++++ a/
sent 1.23K bytes  received 35 bytes  2.52K bytes/sec
total size is 1.02K  speedup is 0.81
Number of files: 3 (reg: 2, dir: 1)
Rsync completed in 2s
"""


def test_log_tail_keeps_rsyncs_summary_lines() -> None:
    assert log_tail(RSYNC_LOG) == ("sent 1.23K bytes  received 35 bytes  2.52K bytes/sec\n"
                                   "total size is 1.02K  speedup is 0.81\nRsync completed in 2s")
    assert log_tail(RSYNC_LOG, keep_all=True).splitlines()[0] == "Attempt 1 of 5"
    assert log_tail("") == ""


def test_log_tail_keeps_the_last_kib_at_a_line_start() -> None:
    many = "".join(f"sent {i} bytes  received {i} bytes  1 bytes/sec\n" for i in range(200)) + "Rsync completed in 9s\n"
    tail = log_tail(many)
    assert len(tail.encode()) <= moverpods.LOG_MAX_BYTES
    assert tail.endswith("Rsync completed in 9s")
    assert tail.startswith("sent ")  # no line cut in two
    assert len(tail.encode()) > moverpods.LOG_MAX_BYTES - 60  # as much as fits
    wide = "é" * 2000  # one line over the limit: its end, on a character boundary
    cut = log_tail(wide, keep_all=True)
    assert len(cut.encode()) <= 1024 and set(cut) == {"é"}


def test_the_module_imports_neither_kubernetes_nor_subprocess() -> None:
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import agent.jobs, agent.moverpods; "
            "print(sorted(m for m in ('kubernetes', 'subprocess') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
