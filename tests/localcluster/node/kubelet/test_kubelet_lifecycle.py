"""Pod lifecycle against a real API server: graceful deletion (SIGTERM, then SIGKILL after the
grace period, then the final delete), adoption after `kill -9` of the kubelet's process, init
containers, probes, an image the node cannot map, binding of unscheduled Pods."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubeletenv import KubeletEnv
from support.waiting import eventually

from kube.rest import PODS
from localcluster.node.layout import NodeLayout

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]


def test_delete_sends_sigterm_then_sigkill_after_the_grace_period(kubelet: KubeletEnv) -> None:
    pod = kubelet.pod("graceful", "trap 'echo got TERM' TERM; echo up; while true; do sleep 0.2; done",
                      terminationGracePeriodSeconds=3)
    kubelet.wait_phase("graceful", "Running")
    uid = pod["metadata"]["uid"]
    log = NodeLayout(kubelet.state_dir).log_path(uid, "main", 0)
    eventually(lambda: "up" in log.read_text(), timeout=20, what="the script runs")
    begin = time.monotonic()
    kubelet.kube.delete(PODS, "graceful", kubelet.namespace)
    eventually(lambda: log.exists() and "got TERM" in log.read_text(), timeout=10, what="SIGTERM trapped")
    eventually(lambda: kubelet.kube.get(PODS, "graceful", kubelet.namespace) is None, timeout=30,
               what="the Pod is gone")
    assert time.monotonic() - begin >= 2.5  # the trap kept it alive until SIGKILL at the grace period
    assert not NodeLayout(kubelet.state_dir).pod_dir(uid).exists()


def _start_runner(kubelet: KubeletEnv) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), str(ROOT / "tests")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "noderunner.py"), str(kubelet.server.kubeconfig), "cluster1",
                             kubelet.node_name, str(kubelet.state_dir), kubelet.network.prefix],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "node ready"
    return proc


def _stop_runners(*procs: subprocess.Popen[str] | None) -> None:
    for proc in procs:
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def test_a_running_pod_is_adopted_after_kill_9_of_the_kubelet(kubelet: KubeletEnv) -> None:
    kubelet.runtime.stop()
    kubelet.node.stop()  # this test's kubelet runs in child processes instead
    first = _start_runner(kubelet)
    second: subprocess.Popen[str] | None = None
    try:
        pod = kubelet.pod("adopted", "echo start; sleep 4; echo done")
        kubelet.wait_phase("adopted", "Running")
        first.send_signal(signal.SIGKILL)
        first.wait()
        uid = pod["metadata"]["uid"]
        records = kubelet.node.containers.containers(uid)
        assert [r.running for r in records] == [True]  # the container outlived its kubelet
        second = _start_runner(kubelet)
        done = kubelet.wait_phase("adopted", "Succeeded", timeout=30)
        status = done["status"]["containerStatuses"][0]
        assert status["restartCount"] == 0 and status["state"]["terminated"]["exitCode"] == 0
        assert [r.attempt for r in kubelet.node.containers.containers(uid)] == [0]  # never started twice
        assert kubelet.log(done) == "start\ndone\n"
    finally:
        _stop_runners(first, second)


def test_init_containers_then_app_with_probes(kubelet: KubeletEnv) -> None:
    kubelet.pod("probed", "", restartPolicy="Always", initContainers=[
        {"name": "one", "image": "busybox", "command": ["sh", "-c", "echo one > /work/order"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
        {"name": "two", "image": "busybox", "command": ["sh", "-c", "echo two >> /work/order"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    ], containers=[{
        "name": "main", "image": "busybox",
        "command": ["sh", "-c", "cat /work/order; sleep 2; touch /tmp/ready; nc -l -p 8080 -e true; sleep 3600"],
        "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "initialDelaySeconds": 4,
                          "failureThreshold": 2},
    }], volumes=[{"name": "work", "emptyDir": {}}])

    def ready() -> dict[str, Any] | None:
        pod = kubelet.get("probed")
        conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        return pod if conds.get("Ready") == "True" else None

    pod = eventually(ready, timeout=40, interval=0.2, what="Ready after the readiness probe passed")
    assert [s["state"]["terminated"]["reason"] for s in pod["status"]["initContainerStatuses"]] == ["Completed"] * 2
    assert kubelet.log(pod).startswith("one\ntwo\n")
    # nc answers one connection and exits: the liveness probe then fails twice and the container restarts

    def restarted() -> bool:
        statuses = kubelet.get("probed")["status"]["containerStatuses"]
        return bool(statuses[0]["restartCount"] >= 1)

    eventually(restarted, timeout=60, interval=0.5, what="a restart after the liveness probe failed")


def test_an_unmappable_image_gives_err_image_pull(kubelet: KubeletEnv) -> None:
    kubelet.pod("noimage", "", containers=[{"name": "main", "image": "example.com/not-here:1", "command": ["true"]}])

    def waiting() -> dict[str, Any] | None:
        statuses = (kubelet.get("noimage").get("status") or {}).get("containerStatuses") or []
        return statuses[0]["state"].get("waiting") if statuses else None

    state = eventually(waiting, timeout=20, interval=0.2, what="a waiting state")
    assert state["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "example.com/not-here:1" in state["message"]
    assert kubelet.get("noimage")["status"]["phase"] == "Pending"


def test_an_exit_while_the_kubelet_was_down_is_recorded_and_restarted(kubelet: KubeletEnv) -> None:
    kubelet.runtime.stop()
    kubelet.node.stop()
    first = _start_runner(kubelet)
    second: subprocess.Popen[str] | None = None
    try:
        pod = kubelet.pod("flaky", "sleep 1; exit 3", restart="OnFailure")
        kubelet.wait_phase("flaky", "Running")
        first.send_signal(signal.SIGKILL)
        first.wait()
        uid = pod["metadata"]["uid"]
        eventually(lambda: not any(r.running for r in kubelet.node.containers.containers(uid)), timeout=20,
                   what="the container ended while no kubelet ran")
        second = _start_runner(kubelet)

        def restarted() -> dict[str, Any] | None:
            statuses = (kubelet.get("flaky").get("status") or {}).get("containerStatuses") or []
            return statuses[0] if statuses and statuses[0]["restartCount"] >= 1 else None

        status = eventually(restarted, timeout=40, interval=0.2, what="restarted after the back-off")
        assert status["lastState"]["terminated"]["exitCode"] == 3
        attempts = [r.attempt for r in kubelet.node.containers.containers(uid)]
        assert attempts[:2] == [0, 1] and len(attempts) == len(set(attempts))
    finally:
        _stop_runners(first, second)
