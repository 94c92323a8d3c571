"""Issue 8's acceptance, end to end with real kubectl: the embedded clusters run workloads like real
ones (node, Job/Deployment controllers, Services with stable addresses, CSI-style storage).

One fleet (API server + a cluster process per cluster) serves the whole module; every test uses
its own namespace, so the tests do not depend on each other's objects.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fleet import LocalFleet, local_fleet, processes_with
from support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

BUSYBOX = "busybox:1.36"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    with local_fleet(tmp_path_factory.mktemp("fleet")) as running:
        yield running


@pytest.fixture
def ns(fleet: LocalFleet) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    for cluster in ("cluster1", "cluster2"):
        fleet.kubectl("create", "namespace", name, context=cluster)
    yield name
    for cluster in ("cluster1", "cluster2"):
        fleet.kubectl("delete", "namespace", name, "--wait=false", context=cluster, check=False)


def phase(fleet: LocalFleet, ns: str, pod: str, context: str = "cluster1") -> str:
    res = fleet.kubectl("get", "pod", pod, "-n", ns, "-o", "jsonpath={.status.phase}", context=context, check=False)
    return res.stdout.strip()


def container_status(fleet: LocalFleet, ns: str, pod: str, context: str = "cluster1") -> dict[str, Any]:
    statuses = (fleet.get("pod", pod, "-n", ns, context=context).get("status") or {}).get("containerStatuses") or []
    return dict(statuses[0]) if statuses else {}


def wait_phase(fleet: LocalFleet, ns: str, pod: str, want: str, context: str = "cluster1",
               timeout: float = 90.0) -> None:
    eventually(lambda: phase(fleet, ns, pod, context) == want, timeout=timeout, interval=0.2,
               what=f"pod {ns}/{pod} {want}")


def run_to_completion(fleet: LocalFleet, ns: str, name: str, script: str, context: str = "cluster1",
                      image: str = BUSYBOX) -> str:
    """`kubectl run` a one-shot Pod, wait for Succeeded, return its logs."""
    fleet.kubectl("run", name, "-n", ns, f"--image={image}", "--restart=Never", "--", "sh", "-c", script,
                  context=context)
    wait_phase(fleet, ns, name, "Succeeded", context)
    return fleet.kubectl("logs", name, "-n", ns, context=context).stdout


def test_kubectl_run_logs_and_wide_listing(fleet: LocalFleet, ns: str) -> None:
    out = run_to_completion(fleet, ns, "hello", "echo hello from $(hostname); echo oops >&2")
    assert "hello from hello" in out and "oops" in out
    wide = fleet.kubectl("get", "pods", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    row = wide[1].split()
    assert row[0] == "hello" and row[2] == "Completed" and row[5].startswith("10.1.") and row[6] == "cluster1-node"


def test_logs_follow_and_previous(fleet: LocalFleet, ns: str) -> None:
    fleet.kubectl("run", "counter", "-n", ns, f"--image={BUSYBOX}", "--restart=Always", "--",
                  "sh", "-c", "for i in 1 2 3; do echo line $i; done; exit 1")
    eventually(lambda: container_status(fleet, ns, "counter").get("restartCount", 0) >= 1,
               timeout=60, interval=0.3, what="a restart")
    previous = fleet.kubectl("logs", "counter", "-n", ns, "--previous").stdout
    assert previous.split("\n")[:3] == ["line 1", "line 2", "line 3"]
    fleet.kubectl("run", "talker", "-n", ns, f"--image={BUSYBOX}", "--restart=Never", "--",
                  "sh", "-c", "echo first; sleep 2; echo last")
    wait_phase(fleet, ns, "talker", "Running")
    followed = fleet.kubectl("logs", "-f", "talker", "-n", ns, timeout=60).stdout  # returns when the container ends
    assert followed.split() == ["first", "last"]


def test_job_wait_complete_and_backoff_limit(fleet: LocalFleet, ns: str) -> None:
    fleet.kubectl("create", "job", "ok", "-n", ns, f"--image={BUSYBOX}", "--", "sh", "-c", "echo done")
    fleet.kubectl("wait", "--for=condition=complete", "job/ok", "-n", ns, "--timeout=90s")
    fleet.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: bad, namespace: {ns}}}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: "{BUSYBOX}", command: [sh, -c, "exit 3"]}}]
""")
    fleet.kubectl("wait", "--for=condition=failed", "job/bad", "-n", ns, "--timeout=120s")
    pods = fleet.get("pods", "-n", ns, "-l", "job-name=bad")["items"]
    assert len(pods) == 2
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods} == {3}
    job = fleet.get("job", "bad", "-n", ns)
    failed = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == "BackoffLimitExceeded" and job["status"]["failed"] == 2


def test_deployment_behind_cluster_ip_and_load_balancer_across_clusters(fleet: LocalFleet, ns: str) -> None:
    serve = "mkdir -p /tmp/www && echo hi from $(hostname) > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"
    fleet.kubectl("create", "deployment", "web", "-n", ns, f"--image={BUSYBOX}", "--port=8080", "--",
                  "sh", "-c", serve, context="cluster2")
    fleet.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", context="cluster2")
    fleet.kubectl("scale", "deployment/web", "-n", ns, "--replicas=2", context="cluster2")
    fleet.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", context="cluster2")
    assert fleet.get("deployment", "web", "-n", ns, context="cluster2")["status"]["readyReplicas"] == 2
    fleet.kubectl("expose", "deployment", "web", "-n", ns, "--port=80", "--target-port=8080", context="cluster2")
    fleet.kubectl("expose", "deployment", "web", "-n", ns, "--name=web-lb", "--type=LoadBalancer", "--port=80",
                  "--target-port=8080", context="cluster2")
    slices = fleet.kubectl("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web",
                           context="cluster2").stdout
    assert "8080" in slices and slices.count("10.2.") == 2  # both ready Pods
    cluster_ip = fleet.get("service", "web", "-n", ns, context="cluster2")["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.2.")
    out = run_to_completion(fleet, ns, "inside", f"wget -qO- http://{cluster_ip}/", context="cluster2")
    assert out.startswith("hi from web-")

    def ingress() -> str | None:
        lb = fleet.get("service", "web-lb", "-n", ns, context="cluster2")["status"]["loadBalancer"]
        return (lb.get("ingress") or [{}])[0].get("ip")

    address = eventually(ingress, timeout=30, what="a LoadBalancer address")
    first = run_to_completion(fleet, ns, "across", f"wget -qO- http://{address}/", context="cluster1")
    assert first.startswith("hi from web-")
    # the address is the Service's, not the Pod's: it survives the Pod being replaced
    fleet.kubectl("delete", "pods", "-n", ns, "-l", "app=web", "--wait=true", context="cluster2")
    fleet.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=90s", context="cluster2")
    assert ingress() == address
    # (Debian's busybox wget crashes with -T: no timeout option here)
    second = run_to_completion(fleet, ns, "again", f"wget -qO- http://{address}/", context="cluster1")
    assert second.startswith("hi from web-") and second != first


def test_a_daemonset_runs_one_pod_on_the_node(fleet: LocalFleet, ns: str) -> None:
    fleet.apply(f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agentish, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: agentish}}}}
  template:
    metadata: {{labels: {{app: agentish}}}}
    spec:
      containers: [{{name: c, image: "{BUSYBOX}", command: [sleep, "3600"]}}]
""")
    fleet.kubectl("rollout", "status", "daemonset/agentish", "-n", ns, "--timeout=90s")
    pods = fleet.get("pods", "-n", ns, "-l", "app=agentish")["items"]
    assert [(p["spec"]["nodeName"], p["status"]["phase"]) for p in pods] == [("cluster1-node", "Running")]


def test_job_files_in_a_pvc_survive_a_snapshot_restore(fleet: LocalFleet, ns: str) -> None:
    fleet.apply(f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: data, namespace: {ns}}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
""")
    write = "echo payload > /data/f && chown 1234:5678 /data/f && chmod 640 /data/f && mkdir -m 700 /data/d"
    read = "cd /data && stat -c '%n %u:%g %a' f d && cat f"
    for name, script, claim in (("writer", write, "data"), ("reader", read, "data")):
        _job_with_claim(fleet, ns, name, script, claim)
    expected = "f 1234:5678 640\nd 0:0 700\npayload\n"
    assert fleet.kubectl("logs", "job/reader", "-n", ns).stdout == expected
    fleet.apply(f"""
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {{name: snap, namespace: {ns}}}
spec: {{source: {{persistentVolumeClaimName: data}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: restored, namespace: {ns}}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  dataSource: {{apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap}}
""")
    _job_with_claim(fleet, ns, "restore-reader", read, "restored")
    assert fleet.kubectl("logs", "job/restore-reader", "-n", ns).stdout == expected


def _job_with_claim(fleet: LocalFleet, ns: str, name: str, script: str, claim: str) -> None:
    fleet.apply(f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: {ns}}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      volumes: [{{name: v, persistentVolumeClaim: {{claimName: {claim}}}}}]
      containers:
      - {{name: c, image: "{BUSYBOX}", command: [sh, -c, {json.dumps(script)}],
          volumeMounts: [{{name: v, mountPath: /data}}]}}
""")
    fleet.kubectl("wait", "--for=condition=complete", f"job/{name}", "-n", ns, "--timeout=120s")


def test_unknown_image_is_an_image_pull_error(fleet: LocalFleet, ns: str) -> None:
    fleet.kubectl("run", "nope", "-n", ns, "--image=registry.invalid/nothing/here:1", "--restart=Never")

    def waiting() -> dict[str, str] | None:
        state = container_status(fleet, ns, "nope").get("state", {}).get("waiting")
        return state if state and state.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None

    state = eventually(waiting, timeout=60, what="ErrImagePull")
    assert "registry.invalid/nothing/here:1" in state["message"]
    assert phase(fleet, ns, "nope") == "Pending"


def test_deleting_a_job_leaves_no_process(fleet: LocalFleet, ns: str) -> None:
    marker = f"{3000 + int(uuid.uuid4().int % 5000)}"
    fleet.kubectl("create", "job", "sleeper", "-n", ns, f"--image={BUSYBOX}", "--", "sleep", marker)
    eventually(lambda: processes_with(f"sleep {marker}"), timeout=60, what="the Job's process")
    fleet.kubectl("delete", "job", "sleeper", "-n", ns, "--cascade=foreground", "--timeout=120s")
    eventually(lambda: not processes_with(f"sleep {marker}"), timeout=60, what="no process left")


def test_a_pod_cannot_change_files_outside_its_volumes(fleet: LocalFleet, ns: str) -> None:
    target = Path("/etc") / f"pod-escape-{uuid.uuid4().hex[:8]}"
    secret = fleet.api.kubeconfig  # the admin kubeconfig: on the host, but hidden from every Pod
    out = run_to_completion(fleet, ns, "escape", f"(echo x > {target}) 2>/dev/null && echo wrote || echo refused; "
                            f"(cat {secret}) >/dev/null 2>&1 && echo read || echo hidden; "
                            "echo y > /tmp/scratch && echo tmp-ok", image="python:3.11")
    assert out.split() == ["refused", "hidden", "tmp-ok"]
    assert not target.exists()


def test_in_cluster_python_client_lists_its_own_namespace(fleet: LocalFleet, ns: str) -> None:
    script = ("from kubernetes import client, config; config.load_incluster_config(); "
              "print(sorted(p.metadata.name for p in client.CoreV1Api().list_namespaced_pod(open("
              "'/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()).items))")
    # As on a real cluster, the Pod's ServiceAccount lists Pods only once a binding grants it.
    fleet.kubectl("create", "role", "pod-lister", "--verb=list", "--resource=pods", "-n", ns)
    fleet.kubectl("create", "rolebinding", "pod-lister", "--role=pod-lister", f"--serviceaccount={ns}:default",
                  "-n", ns)
    fleet.kubectl("run", "lister", "-n", ns, "--image=python:3.11", "--restart=Never", "--",
                  "python", "-c", script)
    wait_phase(fleet, ns, "lister", "Succeeded")
    assert fleet.kubectl("logs", "lister", "-n", ns).stdout.strip() == "['lister']"


def test_delete_pod_honours_the_grace_period(fleet: LocalFleet, ns: str) -> None:
    fleet.kubectl("run", "stubborn", "-n", ns, f"--image={BUSYBOX}", "--restart=Never", "--",
                  "sh", "-c", "trap '' TERM; while true; do sleep 0.2; done")
    wait_phase(fleet, ns, "stubborn", "Running")
    started = time.monotonic()
    fleet.kubectl("delete", "pod", "stubborn", "-n", ns, "--grace-period=3")
    took = time.monotonic() - started
    assert 3.0 <= took < 30.0  # SIGTERM ignored: SIGKILL only once the grace period is over


def test_kill_9_of_the_cluster_process_during_a_job(fleet: LocalFleet, ns: str) -> None:
    marker = f"{7000 + int(uuid.uuid4().int % 2000)}"
    fleet.kubectl("create", "job", "survivor", "-n", ns, f"--image={BUSYBOX}", "--",
                  "sh", "-c", f"echo started; sleep 4 && echo {marker} > /dev/null; echo finished")
    eventually(lambda: phase_of_job_pod(fleet, ns, "survivor") == "Running", timeout=60, what="running")
    old = fleet.cluster_pid("cluster1")
    os.kill(old, signal.SIGKILL)
    eventually(lambda: fleet.cluster_pid("cluster1") != old and fleet.clusters.daemons["cluster1"].alive(),
               timeout=60, what="the cluster process restarted")
    fleet.kubectl("wait", "--for=condition=complete", "job/survivor", "-n", ns, "--timeout=120s")
    pods = fleet.get("pods", "-n", ns, "-l", "job-name=survivor")["items"]
    assert len(pods) == 1  # adopted, not re-run
    assert fleet.kubectl("logs", "job/survivor", "-n", ns).stdout.split() == ["started", "finished"]
    assert not processes_with(f"echo {marker}")


def phase_of_job_pod(fleet: LocalFleet, ns: str, job: str) -> str:
    pods = fleet.get("pods", "-n", ns, "-l", f"job-name={job}")["items"]
    return str(pods[0].get("status", {}).get("phase", "")) if pods else ""
