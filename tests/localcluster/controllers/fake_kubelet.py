"""The kubelet's part in controller tests: writing Pod status as a node would (phase, podIP,
conditions, containerStatuses), as upstream's controller tests do. `serve()` marks every new Pod of
the namespace Running and Ready as it appears (driven by an informer, no polling)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, rfc3339
from kube.informing import Informer
from kube.rest import PODS, Kube, Obj

_ips = itertools.count(2)


class FakeKubelet:
    def __init__(self, kube: Kube, namespace: str, clock: Clock, node: str = "node-a") -> None:
        self.kube = kube
        self.namespace = namespace
        self.clock = clock
        self.node = node
        self.ips: dict[str, str] = {}
        self._lock = threading.Lock()

    def pods(self, **labels: str) -> list[Obj]:
        selector = ",".join(f"{k}={v}" for k, v in labels.items()) or None
        return self.kube.list(PODS, self.namespace, label_selector=selector)[0]

    def _ip(self, pod: Obj) -> str:
        uid = pod["metadata"]["uid"]
        with self._lock:
            if uid not in self.ips:
                n = next(_ips)
                self.ips[uid] = f"10.244.{n // 250}.{n % 250 + 2}"
            return self.ips[uid]

    def run(self, pod: Obj, *, ready: bool = True) -> Obj:
        """Running, with an IP; Ready as asked."""
        now = rfc3339(self.clock.now())
        flag = "True" if ready else "False"
        containers = (pod.get("spec") or {}).get("containers") or [{"name": "main"}]
        status = {
            "phase": "Running", "podIP": self._ip(pod), "podIPs": [{"ip": self._ip(pod)}], "hostIP": "10.1.127.254",
            "startTime": now,
            "conditions": [{"type": t, "status": flag if t in ("Ready", "ContainersReady") else "True",
                            "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c["name"], "ready": ready, "restartCount": 0, "started": True,
                                   "image": c.get("image", ""), "imageID": "", "state": {"running": {"startedAt": now}}}
                                  for c in containers],
        }
        return self.kube.patch_status(PODS, pod["metadata"]["name"], status, self.namespace)

    def finish(self, pod: Obj, exit_code: int = 0) -> Obj:
        """Succeeded (exit 0) or Failed, with the container's terminated state and finishedAt."""
        now = rfc3339(self.clock.now())
        containers = (pod.get("spec") or {}).get("containers") or [{"name": "main"}]
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "conditions": [{"type": t, "status": "False" if t in ("Ready", "ContainersReady") else "True",
                            "lastTransitionTime": now, "reason": "PodCompleted"}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c["name"], "ready": False, "restartCount": 0, "started": False,
                                   "image": c.get("image", ""), "imageID": "",
                                   "state": {"terminated": {"exitCode": exit_code,
                                                            "reason": "Completed" if exit_code == 0 else "Error",
                                                            "startedAt": now, "finishedAt": now}}}
                                  for c in containers],
        }
        return self.kube.patch_status(PODS, pod["metadata"]["name"], status, self.namespace)

    def remove(self, name: str) -> None:
        """What the kubelet does once a deleted Pod's containers stopped: delete it with grace period 0."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0}
        try:
            self.kube.request("DELETE", PODS.path(self.namespace, name), body=body)
        except ApiException as exc:
            if exc.status != 404:
                raise

    @contextmanager
    def serve(self) -> Iterator[None]:
        """Mark every Pod of the namespace Running and Ready once, as soon as it is created, and remove
        deleted Pods as soon as they are marked for deletion (their containers stop at once)."""

        def handle(kind: str, obj: Obj, _prev: Obj | None) -> None:
            if kind == "DELETED":
                return
            if obj["metadata"].get("deletionTimestamp"):
                self.remove(obj["metadata"]["name"])
            elif kind == "ADDED" and (obj.get("status") or {}).get("phase", "Pending") == "Pending":
                self.run(obj)

        informer = Informer(self.kube, PODS, handle, namespace=self.namespace).start()
        informer.wait_synced(10)
        try:
            yield
        finally:
            informer.stop()
