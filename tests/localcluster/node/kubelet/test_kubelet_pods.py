"""The kubelet against a real API server and the real runtime: Pods run, exit, restart, see their
volumes and environment, and nothing they write outside their volumes reaches the host."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from kubeletenv import KubeletEnv
from support.waiting import eventually

from kube.rest import CONFIGMAPS, SECRETS


def test_busybox_pod_succeeds_with_its_logs(kubelet: KubeletEnv) -> None:
    kubelet.pod("hello", "echo hello from $(hostname)")
    pod = kubelet.wait_phase("hello", "Succeeded")
    status = pod["status"]
    cs = status["containerStatuses"][0]
    term = cs["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert cs["containerID"].startswith("local://") and cs["restartCount"] == 0
    assert cs["imageID"] == "local://busybox/busybox"
    assert status["hostIP"] == "10.250.255.254" and status["podIP"].startswith("10.250.")
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["reason"] == "PodCompleted" and conds["Initialized"]["status"] == "True"
    assert kubelet.log(pod) == "hello from hello\n"


def test_exit_three_fails_with_error(kubelet: KubeletEnv) -> None:
    kubelet.pod("boom", "echo bad >&2; exit 3")
    pod = kubelet.wait_phase("boom", "Failed")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert term["startedAt"] <= term["finishedAt"]


def test_restart_always_backs_off_and_counts_restarts(kubelet: KubeletEnv) -> None:
    kubelet.pod("crash", "echo run; exit 1", restart="Always")

    def restarted() -> dict[str, Any] | None:
        pod = kubelet.get("crash")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        return pod if statuses and statuses[0]["restartCount"] >= 1 else None

    pod = eventually(restarted, timeout=40, interval=0.2, what="one restart")
    assert pod["status"]["phase"] == "Running"
    waiting = eventually(lambda: (s := kubelet.get("crash")["status"]["containerStatuses"][0])["state"].get("waiting")
                         and s, timeout=20, interval=0.1, what="back-off after the second exit")
    assert waiting["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off 20s" in waiting["state"]["waiting"]["message"]
    assert waiting["lastState"]["terminated"]["exitCode"] == 1
    first, second = (kubelet.log(pod, attempt=i) for i in (0, 1))
    assert first == second == "run\n"


def test_secret_configmap_emptydir_and_env_are_visible(kubelet: KubeletEnv) -> None:
    ns = kubelet.namespace
    kubelet.kube.create(SECRETS, {"metadata": {"name": "s", "namespace": ns},
                                  "data": {"password": base64.b64encode(b"hunter2").decode()}})
    kubelet.kube.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": ns},
                                     "data": {"greeting": "hi", "other": "x", "COLOR": "blue"}})
    script = ("cat /s/pw; echo; cat /c/g.txt; echo; ls /c; stat -c %a /s/pw; echo $PASS $GREET $C_COLOR $ME $NS $FULL;"
              " echo $KUBERNETES_SERVICE_HOST; echo x > /scratch/f && cat /scratch/f; grep -c tmpfs /proc/mounts")
    kubelet.pod("vols", script, volumes=[
        {"name": "sec", "secret": {"secretName": "s", "items": [{"key": "password", "path": "pw"}],
                                   "defaultMode": 0o400}},
        {"name": "cm", "configMap": {"name": "c", "items": [{"key": "greeting", "path": "g.txt"}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "missing", "secret": {"secretName": "nope", "optional": True}},
    ], containers=[{
        "name": "main", "image": "busybox", "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "sec", "mountPath": "/s"}, {"name": "cm", "mountPath": "/c"},
                         {"name": "scratch", "mountPath": "/scratch"}],
        "env": [{"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                {"name": "GREET", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "greeting"}}},
                {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "FULL", "value": "$(ME).$(NS)"},
                {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}}}],
        "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "C_"}],
    }])
    pod = kubelet.wait_phase("vols", "Succeeded")
    lines = kubelet.log(pod).splitlines()
    assert lines[:5] == ["hunter2", "hi", "g.txt", "400", f"hunter2 hi blue vols {ns} vols.{ns}"]
    assert lines[6] == "x"


def test_a_pod_cannot_change_files_outside_its_volumes(kubelet: KubeletEnv, tmp_path: Path) -> None:
    marker = tmp_path / "host-file"
    marker.write_text("original\n")
    script = (f"(echo changed > {marker}) 2>/dev/null; (echo new > /etc/passwd) 2>/dev/null; "
              f"echo hi > /tmp/t && cat /tmp/t; cat {marker} 2>/dev/null || echo no-such-file; exit 0")
    kubelet.pod("jail", script)
    pod = kubelet.wait_phase("jail", "Succeeded")
    assert marker.read_text() == "original\n"
    assert kubelet.log(pod).splitlines()[0] == "hi"
    assert "changed" not in kubelet.log(pod)
