"""What a klusterlet runs on a managed cluster: the registration agent and the work agent.

    klusterlet = Klusterlet(runtime, spoke_api, "cluster1", hub_kubeconfig=path, hub_context="hub")
    runtime.start()
    klusterlet.start()   # returns at once
    ...
    klusterlet.stop()

Built before the cluster's Runtime starts (the work agent's `FeedbackTrigger` joins its informers);
started after. `start` returns at once: a background thread reads the hub's kubeconfig (retrying with
back-off while it is missing or unreadable, e.g. not yet written by a hub started alongside), then
starts both agents, which reach the hub in their own background loops. So neither a missing
kubeconfig nor an unreachable hub blocks or stops the cluster process.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import kubernetes

from kube import clients
from kube.controller import Runtime
from kube.rest import Kube
from localcluster.ocm.registration import RegistrationAgent
from localcluster.ocm.workagent import FeedbackTrigger, WorkAgent

log = logging.getLogger("localcluster.ocm.klusterlet")

LOAD_BACKOFF = (1.0, 30.0)


class Klusterlet:
    """The OCM agents of one managed cluster (see the module docstring)."""

    def __init__(self, runtime: Runtime, spoke_api: kubernetes.client.ApiClient, cluster: str, *,
                 hub_kubeconfig: Path, hub_context: str | None, status_sync_seconds: float = 30.0) -> None:
        self.spoke_api = spoke_api
        self.cluster = cluster
        self.hub_kubeconfig = hub_kubeconfig
        self.hub_context = hub_context
        self.status_sync_seconds = status_sync_seconds
        self.trigger = FeedbackTrigger()
        runtime.add(self.trigger)
        self.agents: list[RegistrationAgent | WorkAgent] = []
        self._hub_api: kubernetes.client.ApiClient | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"klusterlet-{self.cluster}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = LOAD_BACKOFF[0]
        while not self._stopping.is_set():
            try:
                hub_api = clients.load(str(self.hub_kubeconfig), self.hub_context)
            except Exception as exc:
                log.warning("%s: hub kubeconfig %s not usable yet (%s); retrying in %.0fs", self.cluster,
                            self.hub_kubeconfig, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, LOAD_BACKOFF[1])
                continue
            with self._lock:
                if self._stopping.is_set():
                    clients.close(hub_api)
                    return
                self._hub_api = hub_api
                self.agents = self._agents(hub_api)
                for agent in self.agents:
                    agent.start()
            return

    def _agents(self, hub_api: kubernetes.client.ApiClient) -> list[RegistrationAgent | WorkAgent]:
        spoke = Kube(self.spoke_api, field_manager="registration-agent")
        ca_file = self.spoke_api.configuration.ssl_ca_cert
        registration = RegistrationAgent(hub=Kube(hub_api, field_manager="registration-agent"), spoke=spoke,
                                         cluster=self.cluster, client_url=str(self.spoke_api.configuration.host),
                                         ca_bundle=Path(ca_file).read_bytes() if ca_file else b"")
        work = WorkAgent(Kube(hub_api, field_manager="work-agent"), Kube(self.spoke_api, field_manager="work-agent"),
                         self.cluster, trigger=self.trigger, status_sync_seconds=self.status_sync_seconds)
        return [registration, work]

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            agents, hub_api = list(self.agents), self._hub_api
        for agent in agents:
            agent.stop()
        if hub_api is not None:
            clients.close(hub_api)
        if self._thread is not None:
            self._thread.join(timeout=10)
