"""agent/jobs.py's manifests run for real on an embedded cluster's node (real kubectl, sshd, rsync).

The agent is not involved (issue 10 wires the Jobs into it): the test applies the objects
`agent.jobs` renders for a ReplicationDestination and a ReplicationSource, the destination Job's sshd
behind its Service receives what the source Job sends, both Jobs succeed, and the tree arrives with
owners, modes (a setgid file of a foreign group, a mode-000 file, a read-only directory), hard links
and symlinks; `observe_job` and `log_tail` read the result as the agent will.

The only change to the rendered Jobs: the command is `python -m movers.entrypoint` on the node's
`python` image, the module behind the `volsync-mover` console script, because an editable install
made before that script existed has no `.venv/bin/volsync-mover`, and the node's `host` image has
no `python` on PATH. The source's security context is set (see SOURCE_CONTEXT).

The node's host-root images carry an `/etc/shadow` like a Debian image's (`root:*`): sshd with
`UsePAM no` refuses a locked or missing entry even for key login.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import LocalFleet, local_fleet

from agent import jobs
from agent.jobs import MoverOptions, MoverView
from agent.moverpods import log_tail, observe_job
from movers import keys

# Known emulation gap (issue 10): on the embedded node a host-root image sees our virtualenv and
# checkout through binds, and a Job's emptyDir at /tmp hides them when they live under /tmp (a CI
# clone in /tmp): `python` is then not found. A real image has its own /usr; the node must re-bind
# what it keeps after mounting volumes. Until then the test runs wherever the checkout is elsewhere.
_UNDER_TMP = any(str(p).startswith("/tmp/") for p in (Path(sys.prefix).resolve(), Path(__file__).resolve()))
pytestmark = [pytest.mark.timeout(300), pytest.mark.skipif(
    _UNDER_TMP, reason="the node hides a virtualenv under /tmp behind a Job's /tmp emptyDir (issue 10 gap)")]

Obj = dict[str, Any]
BUSYBOX = "busybox:1.36"
IMAGE = "python:3.11"  # the node's `python` image: the host root, the virtualenv's python first on PATH
# The source runs as the image's user (root here) rather than with our default `runAsUser: 0`: the
# embedded node switches users with setpriv *after* dropping capabilities, and setgroups needs
# CAP_SETGID, which a source mover does not get (runc switches users before it drops them).
SOURCE_CONTEXT = {"runAsNonRoot": False}
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


def _runnable(job: Obj) -> Obj:
    """The rendered Job, run through the entrypoint module (see the module docstring)."""
    spec = job["spec"]["template"]["spec"]
    spec["containers"][0]["command"] = ["python", "-m", "movers.entrypoint"]
    return job


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


def test_a_source_job_replicates_into_a_destination_job(fleet: LocalFleet, ns: str) -> None:
    pair = keys.generate()
    _apply(fleet, _claim(ns, "data"), _claim(ns, "recv"), _secret(ns, "dst-keys", pair.destination_secret_data()),
           _secret(ns, "src-keys", pair.source_secret_data()))
    _helper_job(fleet, ns, "writer", WRITE, "data")

    rd = _replication(fleet, ns, "ReplicationDestination", "backup",
                      {"copyMethod": "Direct", "destinationPVC": "recv", "sshKeys": "dst-keys"}, {})
    dst = MoverView.of(rd, pvc="recv", secret="dst-keys")
    _apply(fleet, *_accounts(dst), jobs.destination_service(dst), _runnable(jobs.destination_job(dst, image=IMAGE)))
    address = fleet.get("service", jobs.mover_name("destination", "backup"), "-n", ns)["spec"]["clusterIP"]
    rs = _replication(fleet, ns, "ReplicationSource", "app",
                      {"copyMethod": "Direct", "address": address, "sshKeys": "src-keys"}, {"sourcePVC": "data"})
    # our CRD's spec.rsync has no moverSecurityContext (VolSync's legacy rsync has none): given directly
    src = MoverView(rs, "data", "src-keys", MoverOptions(security_context=SOURCE_CONTEXT))
    _apply(fleet, *_accounts(src), _runnable(jobs.source_job(src, image=IMAGE, address=address)))
    for role, name in (("source", "app"), ("destination", "backup")):
        done = fleet.kubectl("wait", "--for=condition=complete", f"job/{jobs.mover_name(role, name)}", "-n", ns,
                             "--timeout=150s", timeout=170, check=False)
        assert done.returncode == 0, _movers_state(fleet, ns)
    source_job = fleet.get("job", jobs.mover_name("source", "app"), "-n", ns)
    pods = fleet.get("pods", "-n", ns)["items"]
    seen = observe_job(source_job, pods)
    assert seen.state == "Succeeded" and seen.failed == 0 and seen.pod
    logs = log_tail(fleet.kubectl("logs", seen.pod, "-n", ns).stdout)
    assert "Rsync completed in" in logs and "sent " in logs, logs
    assert observe_job(fleet.get("job", jobs.mover_name("destination", "backup"), "-n", ns), pods).state == \
        "Succeeded"
    expected = _helper_job(fleet, ns, "read-source", READ, "data")
    assert "./d/f 1234:5678 2750 2 regular file" in expected and "./locked 4321:4321 0 1" in expected
    assert _helper_job(fleet, ns, "read-destination", READ, "recv") == expected
