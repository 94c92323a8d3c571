"""The seam between the node's kubelet and the Pod network.

The kubelet asks the network for a Pod's network namespace and address before it starts the Pod's
first container (`attach`), and gives them back after the Pod's last container is gone (`detach`).
Both are idempotent and keyed by the Pod's uid only, so a kubelet restarted after `kill -9` calls
`attach` again for a Pod that is already attached and gets the same namespace and address back.
The implementation lives in `localcluster/network/podnet.py` (the network owns addresses, veths,
routes); the kubelet never touches a network namespace except to run a probe inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class PodAttachment:
    """Where a Pod's containers live on the network: its netns (a path to bind) and its IP."""

    netns_path: str
    ip: str


class PodNetwork(Protocol):
    """What the kubelet needs from the Pod network (see the module docstring)."""

    def attach(self, pod_uid: str) -> PodAttachment:
        """Create (or find again) the Pod's network namespace and address."""
        ...

    def detach(self, pod_uid: str) -> None:
        """Release the Pod's namespace and address; a no-op when it has none."""
        ...

    def host_ip(self) -> str:
        """The node's own address as Pods see it (the Node's InternalIP, `status.hostIP`)."""
        ...
