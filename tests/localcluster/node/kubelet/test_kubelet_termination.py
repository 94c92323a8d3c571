"""Termination messages and file subPaths as the kubelet does them: `terminationMessagePath` (the
default `/dev/termination-log`, or a path of the Pod's choosing, written by a non-root user), the last
4096 bytes kept, `FallbackToLogsOnError` taking the log's last 80 lines / 2048 bytes of a failed
container with an empty file; a restarted container's message in `lastState`; a `subPath` naming a
file of a Secret, a ConfigMap and an emptyDir bound as that file."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeletenv import KubeletEnv

from kube.rest import CONFIGMAPS, SECRETS
from localcluster.node.podplans import Observed, PodFacts, plan_pod
from localcluster.node.podstatus import StatusExtras, pod_status

BUSYBOX = "busybox:1.36"


def _container(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": BUSYBOX, "command": ["sh", "-c", script], **extra}


def _terminated(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s["state"]["terminated"] for s in pod["status"]["containerStatuses"]}


def test_termination_messages_from_the_file_or_the_log(kubelet: KubeletEnv) -> None:
    long = "head -c 5000 /dev/zero | tr '\\0' a > /dev/termination-log; echo -n END >> /dev/termination-log"
    containers = [
        _container("file", "echo '{\"code\": 0}' > /dev/termination-log", securityContext={"runAsUser": 1000}),
        _container("custom", "echo custom > /tmp/done/why; exit 2", terminationMessagePath="/tmp/done/why",
                   volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}]),
        _container("long", long),
        _container("fallback", "for i in $(seq 1 100); do echo line $i; done; exit 1",
                   terminationMessagePolicy="FallbackToLogsOnError"),
        _container("fallback-wide", "for i in $(seq 1 30); do printf '%099d\\n' $i; done; exit 1",
                   terminationMessagePolicy="FallbackToLogsOnError"),
        _container("fallback-ok", "echo fine", terminationMessagePolicy="FallbackToLogsOnError"),
    ]
    kubelet.pod("ended", "", containers=containers, volumes=[{"name": "tmp", "emptyDir": {"medium": "Memory"}}])
    terminated = _terminated(kubelet.wait_phase("ended", "Failed"))

    assert terminated["file"]["message"] == '{"code": 0}\n'
    assert (terminated["custom"]["exitCode"], terminated["custom"]["message"]) == (2, "custom\n")
    assert terminated["long"]["message"] == "a" * 4093 + "END"  # the last 4096 bytes
    assert terminated["fallback"]["message"] == "".join(f"line {i}\n" for i in range(21, 101))  # the last 80
    wide = "".join(f"{i:099d}\n" for i in range(1, 31))
    assert terminated["fallback-wide"]["message"] == wide[-2048:]  # cut to the last 2048 bytes
    assert "message" not in terminated["fallback-ok"]  # succeeded: no fallback to the log


def test_a_subpath_naming_a_file_binds_that_file(kubelet: KubeletEnv) -> None:
    ns = kubelet.namespace
    kubelet.kube.create(SECRETS, {"metadata": {"name": "s", "namespace": ns},
                                  "data": {"key.pem": base64.b64encode(b"secret-key\n").decode()}})
    kubelet.kube.create(CONFIGMAPS, {"metadata": {"name": "cm", "namespace": ns}, "data": {"app.conf": "a=1\n"}})
    mounts = [{"name": "s", "mountPath": "/keys/key.pem", "subPath": "key.pem"},
              {"name": "cm", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
              {"name": "work", "mountPath": "/data/made.txt", "subPath": "made.txt"}]
    script = "cat /keys/key.pem /etc/app.conf /data/made.txt; ls /etc/passwd; stat -c %F /etc/app.conf"
    kubelet.pod("subpaths", "", initContainers=[_container("init", "echo made > /work/made.txt", volumeMounts=[
                    {"name": "work", "mountPath": "/work"}])],
                containers=[_container("main", script, volumeMounts=mounts)],
                volumes=[{"name": "s", "secret": {"secretName": "s"}}, {"name": "cm", "configMap": {"name": "cm"}},
                         {"name": "work", "emptyDir": {}}])
    pod = kubelet.wait_phase("subpaths", "Succeeded")
    assert kubelet.log(pod) == "secret-key\na=1\nmade\n/etc/passwd\nregular file\n"


def test_a_restarted_containers_message_moves_to_last_state() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
           "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "main", "image": "busybox"}]},
           "status": {"startTime": "2026-01-01T00:00:00Z"}}
    first = Observed("main", 0, "main-0", False, 1, t0, t0 + timedelta(seconds=1), message="first try\n")
    again = Observed("main", 1, "main-1", True, None, t0 + timedelta(seconds=12))
    plan = plan_pod(pod, [first, again], PodFacts(now=t0 + timedelta(seconds=13)))
    status = pod_status(pod, plan, StatusExtras(now=t0 + timedelta(seconds=13)))["containerStatuses"][0]
    assert status["lastState"]["terminated"]["message"] == "first try\n"
    assert status["lastState"]["terminated"]["reason"] == "Error" and "running" in status["state"]
