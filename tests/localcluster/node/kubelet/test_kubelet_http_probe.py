"""A real Pod whose readiness follows an httpGet probe: busybox httpd serves an emptyDir, the probe
asks for a file in it (by the named port, from inside the Pod's netns, to the Pod IP); the Pod turns
Ready when the file appears (200) and not Ready when it goes (404)."""

from __future__ import annotations

from kubeletenv import KubeletEnv
from support.waiting import eventually

from kube.rest import EVENTS
from localcluster.node.layout import NodeLayout


def _ready(kubelet: KubeletEnv, name: str) -> str:
    conditions = (kubelet.get(name).get("status") or {}).get("conditions") or []
    return next((str(c["status"]) for c in conditions if c["type"] == "Ready"), "")


def _events(kubelet: KubeletEnv, name: str) -> list[str]:
    events, _ = kubelet.kube.list(EVENTS, kubelet.namespace)
    return [str(e.get("message")) for e in events if (e.get("involvedObject") or {}).get("name") == name]


def test_readiness_follows_an_http_get_probe(kubelet: KubeletEnv) -> None:
    pod = kubelet.pod("web", "", restart="Always", containers=[{
        "name": "main", "image": "busybox", "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "volumeMounts": [{"name": "www", "mountPath": "/www"}],
        "readinessProbe": {"httpGet": {"path": "/ready.txt", "port": "http"}, "periodSeconds": 1,
                           "failureThreshold": 1},
    }], volumes=[{"name": "www", "emptyDir": {}}])
    kubelet.wait_phase("web", "Running")
    www = NodeLayout(kubelet.state_dir).pod_dir(pod["metadata"]["uid"]) / "volumes" / "www"
    eventually(www.is_dir, timeout=10, what="the emptyDir")
    eventually(lambda: "Readiness probe failed: HTTP probe failed with statuscode: 404" in _events(kubelet, "web"),
               timeout=20, interval=0.2, what="the 404 reported")
    assert _ready(kubelet, "web") == "False"
    marker = www / "ready.txt"
    marker.write_text("ok\n")
    marker.chmod(0o644)
    eventually(lambda: _ready(kubelet, "web") == "True", timeout=20, interval=0.2, what="Ready on 200")
    marker.unlink()
    eventually(lambda: _ready(kubelet, "web") == "False", timeout=20, interval=0.2, what="not Ready on 404")
