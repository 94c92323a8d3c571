"""agent/jobs.py's manifests run unchanged on an embedded cluster's node (real kubectl, sshd, rsync).

The agent is not involved: the test applies the objects `agent.jobs` renders for a
ReplicationDestination and a ReplicationSource, as rendered: the project's default image (the node
maps `*/volsync-addon` to this installation), the `volsync-mover` console script, the default
security contexts (`runAsUser: 0`, the source keeping only DAC_READ_SEARCH). The only addition is the
source's `ITERATION` env, which the destination names in its termination message.

The destination Pod is deleted once it runs (a mover Pod killed mid-iteration): the Job starts a
new one behind the same Service. The source Job's rsync then sends the tree, both Jobs
succeed, `kubectl logs job/...` shows rsync's stats, the destination Pod's
`state.terminated.message` is `{"code": 0, "sourceIteration": <ITERATION>}`, and the tree arrives with
owners, modes (a setgid file of a foreign group, a mode-000 file, a read-only directory), hard links and
symlinks; `observe_job` and `log_tail` read the result as the agent will.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import LocalFleet, local_fleet
from support.waiting import eventually

from agent import jobs
from agent.jobs import MoverView
from agent.moverpods import log_tail, observe_job
from api.images import default_image
from movers import keys

pytestmark = pytest.mark.timeout(300)

Obj = dict[str, Any]
BUSYBOX = "busybox:1.36"
ITERATION = "it-20261208-1"
WRITE = ("mkdir -p /data/d /data/ro && echo hello > /data/d/f && chown 1234:5678 /data/d/f && chmod 2750 /data/d/f"
         " && echo secret > /data/locked && chown 4321:4321 /data/locked && chmod 000 /data/locked"
         " && ln /data/d/f /data/hard && ln -s d/f /data/link && echo in-ro > /data/ro/x && chmod 500 /data/ro")
READ = "cd /data && find . | sort | while read p; do stat -c '%n %u:%g %a %h %F' \"$p\"; done && cat d/f"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.skip("sshd is not installed")
    with local_fleet(tmp_path_factory.mktemp("fleet"), names=("cluster1",)) as running:
        yield running


@pytest.fixture
def ns(fleet: LocalFleet) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    fleet.kubectl("create", "namespace", name)
    yield name
    fleet.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _apply(fleet: LocalFleet, *objs: Obj | None) -> None:
    items = [o for o in objs if o is not None]
    fleet.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def _secret(ns: str, name: str, data: dict[str, bytes]) -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def _claim(ns: str, name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}


def _helper_job(fleet: LocalFleet, ns: str, name: str, script: str, claim: str) -> str:
    """Run `script` in a busybox Job with `claim` at /data; its log."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
           "spec": {"backoffLimit": 0, "template": {"spec": {
               "restartPolicy": "Never",
               "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
               "containers": [{"name": "c", "image": BUSYBOX, "command": ["sh", "-c", script],
                               "volumeMounts": [{"name": "v", "mountPath": "/data"}]}]}}}}
    _apply(fleet, job)
    fleet.kubectl("wait", "--for=condition=complete", f"job/{name}", "-n", ns, "--timeout=120s")
    return fleet.kubectl("logs", f"job/{name}", "-n", ns).stdout


def _replication(fleet: LocalFleet, ns: str, kind: str, name: str, rsync: Obj, extra: Obj) -> Obj:
    plural = {"ReplicationDestination": "replicationdestination", "ReplicationSource": "replicationsource"}[kind]
    obj = {"apiVersion": "volsync.backube/v1alpha1", "kind": kind, "metadata": {"name": name, "namespace": ns},
           "spec": {"rsync": rsync, "trigger": {"manual": "once"}, **extra}}
    _apply(fleet, obj)
    created: Obj = fleet.get(plural, name, "-n", ns)
    return created


def _movers_state(fleet: LocalFleet, ns: str) -> str:
    """The mover Pods and their logs, for a failure's message."""
    lines = [fleet.kubectl("get", "jobs,pods", "-n", ns, "-o", "wide", check=False).stdout]
    for pod in fleet.get("pods", "-n", ns)["items"]:
        name = pod["metadata"]["name"]
        if name.startswith("volsync-"):
            lines += [f"--- {name}: {json.dumps(pod.get('status', {}).get('containerStatuses'))}",
                      fleet.kubectl("logs", name, "-n", ns, check=False).stdout[-3000:]]
            if pod.get("status", {}).get("phase") == "Running":  # the destination's sshd log
                lines.append(fleet.kubectl("exec", name, "-n", ns, "--", "tail", "-n", "30",
                                           f"{jobs.WORK_DIR}/sshd.log", check=False).stdout)
    return "\n".join(lines)


def _accounts(view: MoverView) -> tuple[Obj | None, ...]:
    return jobs.mover_service_account(view), jobs.mover_role(view), jobs.mover_role_binding(view)


def _with_iteration(job: Obj) -> Obj:
    """The source Job with `ITERATION` in its container's env (whatever the renderer put there)."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = [e for e in container.get("env") or [] if e.get("name") != "ITERATION"]
    container["env"] = [*env, {"name": "ITERATION", "value": ITERATION}]
    return job


def _job_pods(fleet: LocalFleet, ns: str, job: str) -> list[Obj]:
    pods: list[Obj] = fleet.get("pods", "-n", ns, "-l", f"job-name={job}")["items"]
    return pods


def _replace_running_pod(fleet: LocalFleet, ns: str, job: str) -> str:
    """Delete the Job's running Pod (a mover killed mid-iteration); the name of the Pod the Job starts
    instead, once that one runs."""
    def running(other_than: str = "") -> str:
        return next((p["metadata"]["name"] for p in _job_pods(fleet, ns, job)
                     if p["metadata"]["name"] != other_than and p.get("status", {}).get("phase") == "Running"), "")

    first = eventually(running, 90, interval=0.2, what=f"a running Pod of {job}")
    fleet.kubectl("delete", "pod", first, "-n", ns, "--wait=false")
    return eventually(lambda: running(other_than=first), 90, interval=0.2, what=f"a new running Pod of {job}")


def test_a_source_job_replicates_into_a_destination_job(fleet: LocalFleet, ns: str) -> None:
    pair = keys.generate()
    _apply(fleet, _claim(ns, "data"), _claim(ns, "recv"), _secret(ns, "dst-keys", pair.destination_secret_data()),
           _secret(ns, "src-keys", pair.source_secret_data()))
    _helper_job(fleet, ns, "writer", WRITE, "data")

    rd = _replication(fleet, ns, "ReplicationDestination", "backup",
                      {"copyMethod": "Direct", "destinationPVC": "recv", "sshKeys": "dst-keys"}, {})
    dst = MoverView.of(rd, pvc="recv", secret="dst-keys")
    dst_job = jobs.mover_name("destination", "backup")
    _apply(fleet, *_accounts(dst), jobs.destination_service(dst), jobs.destination_job(dst, image=default_image()))
    dst_pod = _replace_running_pod(fleet, ns, dst_job)
    # the killed mover Pod is a failed attempt (Job tracking with finalizers), released, not left Terminating
    eventually(lambda: fleet.get("job", dst_job, "-n", ns).get("status", {}).get("failed") == 1, 30,
               interval=0.2, what=f"{dst_job}'s status.failed 1")
    assert [p["metadata"]["name"] for p in _job_pods(fleet, ns, dst_job)] == [dst_pod]
    address = fleet.get("service", dst_job, "-n", ns)["spec"]["clusterIP"]
    rs = _replication(fleet, ns, "ReplicationSource", "app",
                      {"copyMethod": "Direct", "address": address, "sshKeys": "src-keys"}, {"sourcePVC": "data"})
    src = MoverView.of(rs, pvc="data", secret="src-keys")
    src_job = jobs.mover_name("source", "app")
    _apply(fleet, *_accounts(src), _with_iteration(jobs.source_job(src, image=default_image(), address=address)))
    for name in (src_job, dst_job):
        done = fleet.kubectl("wait", "--for=condition=complete", f"job/{name}", "-n", ns,
                             "--timeout=150s", timeout=170, check=False)
        assert done.returncode == 0, _movers_state(fleet, ns)

    pods = fleet.get("pods", "-n", ns)["items"]
    seen = observe_job(fleet.get("job", src_job, "-n", ns), pods)
    assert seen.state == "Succeeded" and seen.failed == 0 and seen.pod
    job_log = fleet.kubectl("logs", f"job/{src_job}", "-n", ns).stdout
    assert "Rsync completed in" in job_log and "total size is" in job_log, job_log
    assert "Rsync completed in" in log_tail(fleet.kubectl("logs", seen.pod, "-n", ns).stdout)
    dst_seen = observe_job(fleet.get("job", dst_job, "-n", ns), pods)
    assert (dst_seen.state, dst_seen.pod) == ("Succeeded", dst_pod)
    dst_counts = fleet.get("job", dst_job, "-n", ns)["status"]
    assert (dst_counts.get("failed"), dst_counts.get("succeeded")) == (1, 1), dst_counts
    terminated = fleet.get("pod", dst_pod, "-n", ns)["status"]["containerStatuses"][0]["state"]["terminated"]
    assert json.loads(terminated["message"]) == {"code": 0, "sourceIteration": ITERATION}, terminated
    expected = _helper_job(fleet, ns, "read-source", READ, "data")
    assert "./d/f 1234:5678 2750 2 regular file" in expected and "./locked 4321:4321 0 1" in expected
    assert _helper_job(fleet, ns, "read-destination", READ, "recv") == expected
