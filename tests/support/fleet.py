"""An embedded fleet for end-to-end tests: the API server (HTTPS, tokens, per-cluster listeners) and
one cluster process per cluster (node, controllers, network, storage), as the embedded default runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localcluster.launcher import Fleet
from support.apiserver import ApiServer


class LocalFleet:
    """`api` (the API server process) and `clusters` (the launcher of their cluster processes)."""

    def __init__(self, api: ApiServer, clusters: Fleet) -> None:
        self.api = api
        self.clusters = clusters

    def kubectl(self, *args: str, context: str = "cluster1", input: str | None = None, check: bool = True,
                timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return self.api.kubectl(*args, context=context, input=input, check=check, timeout=timeout)

    def get(self, *args: str, context: str = "cluster1") -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", context=context).stdout)

    def apply(self, manifest: str, context: str = "cluster1") -> None:
        self.kubectl("apply", "-f", "-", context=context, input=manifest)

    def cluster_pid(self, cluster: str) -> int:
        return self.clusters.daemons[cluster].pid


@contextmanager
def local_fleet(base: Path, names: tuple[str, ...] = ("cluster1", "cluster2"),
                hub: str | None = None, loopback_services: Sequence[tuple[str, str]] = ()) -> Iterator[LocalFleet]:
    """Start the API server and the cluster processes under `base`; stop everything afterwards.
    With `hub`, that cluster is the OCM hub and the others join it (`Fleet(hub=...)`);
    `loopback_services` as `Fleet` takes them."""
    api_dir = base / "api"
    api_dir.mkdir(parents=True, exist_ok=True)
    clusters = Fleet(base / "clusters", list(names), api_dir / "kubeconfig", api_dir / "pki", hub=hub,
                     loopback_services=loopback_services)
    api = ApiServer(api_dir, clusters=names, auth=True, extra_args=tuple(clusters.apiserver_args())).start()
    try:
        clusters.start()
        try:
            yield LocalFleet(api, clusters)
        finally:
            clusters.stop()
    finally:
        api.stop()


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmd and state != "Z":
            found.append(int(entry.name))
    return found
