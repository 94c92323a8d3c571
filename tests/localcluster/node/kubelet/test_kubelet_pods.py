"""The kubelet against a real API server and the real runtime: Pods run, exit, restart, see their
volumes and environment, and nothing they write outside their volumes reaches the host."""

from __future__ import annotations

from conftest import KubeletEnv


def test_busybox_pod_succeeds_with_its_logs(kubelet: KubeletEnv) -> None:
    kubelet.pod("hello", "echo hello from $(hostname)")
    pod = kubelet.wait_phase("hello", "Succeeded")
    status = pod["status"]
    cs = status["containerStatuses"][0]
    term = cs["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert cs["containerID"].startswith("local://") and cs["restartCount"] == 0
    assert status["hostIP"] == "10.250.255.254" and status["podIP"].startswith("10.250.")
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["reason"] == "PodCompleted" and conds["Initialized"]["status"] == "True"
    assert kubelet.log(pod) == "hello from hello\n"
