"""A kubelet in a process of its own, for the tests that `kill -9` it:
`python noderunner.py KUBECONFIG CONTEXT NODE_NAME STATE_DIR NETNS_PREFIX` prints `node ready` once
its Pod cache synced, then runs until killed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import kubernetes
from support.loopnet import LoopbackPodNetwork

from kube.controller import Runtime
from kube.rest import Kube
from localcluster.node.kubelet import Node


def main(kubeconfig: str, context: str, name: str, state_dir: str, prefix: str) -> None:
    kube = Kube(kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context),
                field_manager="kubelet")
    runtime = Runtime(kube)
    node = Node(runtime, kube, name=name, state_dir=Path(state_dir), network=LoopbackPodNetwork(prefix))
    node.start()
    runtime.start()
    print("node ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:6])
