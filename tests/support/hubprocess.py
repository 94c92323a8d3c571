"""A real `volsync-hub` process (embedded API servers, local deployer, REST API) for end-to-end tests."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from support import processes
from support.apiserver import ROOT


class Hub:
    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.proc: Any = None
        self.ready: dict[str, Any] = {}

    def start(self) -> Hub:
        cmd = [sys.executable, "-m", "hub.main", "--data-dir", str(self.data_dir),
               "--stale-seconds", "4", "--renew-seconds", "0.5", "--log-level", "info", *self.extra_args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc, self.ready = processes.start_ready(cmd, "volsync-hub ready", self.data_dir / "hub.log", ROOT, 60)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            processes.stop(self.proc, sig, 30)
            self.proc = None

    @property
    def token(self) -> str:
        return Path(self.ready["adminTokenFile"]).read_text().strip()

    def rest(self, path: str) -> Any:
        ca = self.ready.get("caFile")  # the REST API is HTTPS: verify it with the hub's CA
        with httpx.Client(trust_env=False, timeout=10, verify=ssl.create_default_context(cafile=ca)) as http:
            resp = http.get(self.ready["rest"] + path, headers={"Authorization": f"Bearer {self.token}"})
            resp.raise_for_status()
            return resp.json()

    def kubectl(self, *args: str, context: str = "hub", input: str | None = None, check: bool = True) -> Any:
        cmd = ["kubectl", "--kubeconfig", self.ready["kubeconfig"], "--context", context,
               "--cache-dir", str(self.data_dir.with_name(self.data_dir.name + "-kcache")), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {res.stderr}")
        return res

    def get(self, *args: str, context: str = "hub") -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", context=context).stdout)

    def addon_condition(self, cluster: str, type_: str) -> dict[str, Any]:
        mca = self.get("managedclusteraddon", "volsync", "-n", cluster)
        return next((c for c in (mca.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})

    def agent_pids(self) -> dict[str, int]:
        out = {}
        for pidfile in (self.data_dir / "hub").glob("**/*.pid"):
            try:
                out[pidfile.stem] = int(pidfile.read_text())
            except ValueError:
                continue
        return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False
