"""Helpers for the local deployer's tests (tests/hub_local): a stub of the hub's agent-side REST API,
the rendered manifests, and the live agent processes of a data directory (found through /proc)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hub import rendering
from hub.deployers.supervisor import cmdline, is_agent

CLUSTER = "cluster1"
TOKEN = "agent-token-of-cluster1"


class StubHub:
    """Answers the agent side of the hub's REST API and records (path, Authorization) of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stub.calls.append((self.path, self.headers.get("Authorization") or ""))
                body = json.dumps({"leaseDurationSeconds": 300, "renewIntervalSeconds": 60,
                                   "accepted": 0, "stale": 0}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def manifests(hub_url: str, token: str = TOKEN) -> list[dict[str, Any]]:
    mca = {"metadata": {"name": "volsync", "namespace": CLUSTER}}
    return rendering.render(CLUSTER, mca, None, hub_url=hub_url, token=token, ca_bundle="", image="volsync-agent:dev")


def agent_pids(data_dir: Path, cluster: str = CLUSTER) -> list[int]:
    """Live volsync-agent processes for `cluster` whose data root is under `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = cmdline(int(entry.name))
        if is_agent(argv, cluster) and argv is not None and any(a.startswith(str(data_dir)) for a in argv):
            found.append(int(entry.name))
    return sorted(found)
