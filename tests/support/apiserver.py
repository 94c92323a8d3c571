"""Start the embedded API server as a real process on loopback and drive it with real clients."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from manifests import CRD_DIR
from support import processes

ROOT = Path(__file__).resolve().parents[2]
KUBECTL_120 = ROOT / ".cache" / "kubectl-1.20" / "usr" / "bin" / "kubectl"


def kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("no kubectl on PATH: run scripts/bootstrap (installs Debian's kubernetes-client)")
    return found


class ApiServer:
    """One `volsync-apiserver` process serving several clusters from `data_dir`.

    `auth=False` (the default here, for the suites that speak the raw protocol over plain HTTP) runs
    it with `--insecure-no-auth`; `auth=True` (or `--auth` in `extra_args`) runs the server's own
    default: HTTPS with the private CA and a token per cluster, which kubectl and the Python client
    take from the kubeconfig."""

    def __init__(self, data_dir: Path, clusters: Sequence[str] = ("hub", "cluster1", "cluster2"),
                 extra_args: Sequence[str] = (), port: int = 0, auth: bool = False) -> None:
        self.auth = auth
        self.data_dir = data_dir
        self.clusters = list(clusters)
        self.extra_args = list(extra_args)
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.kubeconfig = data_dir / "kubeconfig"
        self.cache_dir = data_dir / "kubectl-cache"

    def start(self, timeout: float = 30.0) -> ApiServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "apiserver.main", "--data-dir", str(self.data_dir),
               "--clusters", ",".join(self.clusters), "--port", str(self.port), *self.extra_args]
        if "--crd-dir" not in self.extra_args:
            cmd += ["--crd-dir", str(CRD_DIR)]
        if not self.auth and "--auth" not in self.extra_args:
            cmd.append("--insecure-no-auth")
        self.proc, ready = processes.start_ready(cmd, "volsync-apiserver ready", self.data_dir / "apiserver.log",
                                                 ROOT, timeout)
        self.url = ready["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.listeners: dict[str, int] = ready.get("listeners", {})  # --cluster-listeners: cluster -> port
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        rc = processes.stop(self.proc, sig, timeout)
        self.proc = None
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def cluster_url(self, cluster: str) -> str:
        return f"{self.url}/clusters/{cluster}"

    @property
    def ca_file(self) -> Path:
        """The private CA's certificate (servers with authentication)."""
        return self.data_dir / "pki" / "ca.crt"

    def tokens(self) -> dict[str, str]:
        """context -> the token its kubeconfig user carries."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        users = {u["name"]: (u.get("user") or {}).get("token", "") for u in config["users"]}
        return {c["name"]: users[c["context"]["user"]] for c in config["contexts"]}

    # -- clients ------------------------------------------------------------------------------------
    def kubectl_argv(self, *args: str, context: str = "hub", binary: str | None = None) -> list[str]:
        """The command line `kubectl` runs (for callers that need a Popen, e.g. `get -w`)."""
        return [binary or kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "--context", context,
                "--cache-dir", str(self.cache_dir / Path(binary or "default").name), *args]

    def kubectl_env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.data_dir)}

    def kubectl(self, *args: str, context: str = "hub", input: str | bytes | None = None, check: bool = True,
                binary: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        cmd = self.kubectl_argv(*args, context=context, binary=binary)
        data = input.decode() if isinstance(input, bytes) else input
        res = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=timeout, env=self.kubectl_env())
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def apply_yaml(self, manifest: str, *args: str, context: str = "hub") -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *args, context=context, input=manifest)

    def get(self, *args: str, context: str = "hub") -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", context=context).stdout)

    def api_client(self, context: str = "hub") -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig), context=context)


def dump(obj: Any) -> str:
    return yaml.safe_dump(obj, sort_keys=False)
