"""A second, shorter `kubectl delete --grace-period` moves the SIGKILL earlier: the kubelet takes the
deadline from the Pod's `deletionTimestamp` on every sync (the API server moves it earlier)."""

from __future__ import annotations

import time

from kubeletenv import KubeletEnv
from support.waiting import eventually

from kube.rest import PODS
from localcluster.node.layout import NodeLayout


def test_a_shorter_second_grace_period_kills_sooner(kubelet: KubeletEnv) -> None:
    pod = kubelet.pod("stubborn", "trap 'echo got TERM' TERM; echo up; while true; do sleep 0.2; done",
                      terminationGracePeriodSeconds=120)
    kubelet.wait_phase("stubborn", "Running")
    log = NodeLayout(kubelet.state_dir).log_path(pod["metadata"]["uid"], "main", 0)
    eventually(lambda: "up" in log.read_text(), timeout=20, what="the script runs")
    kubectl = ("delete", "pod", "stubborn", "-n", kubelet.namespace, "--wait=false")
    kubelet.server.kubectl(*kubectl, context="cluster1")
    eventually(lambda: "got TERM" in log.read_text(), timeout=20, what="SIGTERM trapped")
    begin = time.monotonic()
    kubelet.server.kubectl(*kubectl, "--grace-period=2", context="cluster1")
    eventually(lambda: kubelet.kube.get(PODS, "stubborn", kubelet.namespace) is None, timeout=20,
               what="the Pod is gone soon after the 2 s grace")
    assert time.monotonic() - begin < 20
