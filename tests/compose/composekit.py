"""docker-compose.yml run for real: Debian's `docker-compose` (1.29) against `podman system service`.

The stack runs in a network namespace the test makes (`support.loopnet.loopback_netns`: only its
loopback up, no route anywhere): rootful Podman with the project's private configuration
(`scripts/image podman --netns ...`) serves the Docker API on a unix socket of the test's directory,
`docker-compose` talks to that socket, and the published API ports (127.0.0.1:16443-16445) are the
namespace's loopback, which kubectl reaches through `ip netns exec`.

Why docker-compose and not podman-compose: docker-compose drives the Docker API, which `podman
system service` serves, exactly as a user's `docker compose up` drives Docker; podman-compose
1.0.3 runs podman commands itself, which would have to carry our private configuration and the
namespace in every call.

`ComposeStack` offers what the seed helpers (`support.seed`) use: `kubectl(..., context=)` and
`get(..., context=)`, with the three kubeconfigs the containers write into the shared directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "image"
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONTEXTS = ("hub", "cluster1", "cluster2")


class ComposeStack:
    """The stack of docker-compose.yml in `netns`, its state under `base` (see the module docstring)."""

    def __init__(self, netns: str, base: Path) -> None:
        self.netns = netns  # /run/netns/<name>
        self.base = base
        self.data = base / "stack"  # VOLSYNC_COMPOSE_DIR = VOLSYNC_DATA_ROOT
        self.socket = base / "podman.sock"
        self.project = f"vsacmp{uuid.uuid4().hex[:8]}"
        self.service: subprocess.Popen[bytes] | None = None

    # -- the engine and compose --------------------------------------------------------------------
    def start_engine(self) -> None:
        """`podman system service` on `socket`, inside the namespace; returns once it answers."""
        with open(self.base / "podman-service.log", "ab") as log:
            self.service = subprocess.Popen(
                [str(SCRIPT), "podman", "--netns", self.netns, "system", "service", "--time=0",
                 f"unix://{self.socket}"], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        eventually(lambda: self.compose("version", check=False).returncode == 0, 30, 0.2,
                   what="podman system service answering docker-compose")

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "COMPOSE_PROJECT_NAME": self.project,
                "VOLSYNC_COMPOSE_DIR": str(self.data), "VOLSYNC_DATA_ROOT": str(self.data),
                "COMPOSE_INTERACTIVE_NO_CLI": "1"}

    def compose(self, *args: str, check: bool = True, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        binary = shutil.which("docker-compose") or "docker-compose"
        done = subprocess.run([binary, "-f", str(COMPOSE_FILE), *args], cwd=ROOT, env=self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {done.returncode}:\n{done.stdout}"
                                 f"{done.stderr}\n{self.logs()}")
        return done

    def podman(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), "podman", "--netns", self.netns, *args], cwd=ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=check)

    def logs(self) -> str:
        """The containers' logs (for failure messages)."""
        done = self.compose("logs", "--no-color", "--tail", "40", check=False, timeout=60)
        return done.stdout[-6000:] + done.stderr[-2000:]

    def up(self) -> None:
        for name in ("shared", *CONTEXTS):
            (self.data / name).mkdir(parents=True, exist_ok=True)
        self.compose("up", "-d", "--no-build")

    def down(self) -> None:
        """`docker-compose down`, then whatever of the project is left, the engine, podman's cgroups."""
        try:
            self.compose("down", "--timeout", "30", check=False)
            label = f"label=com.docker.compose.project={self.project}"
            self.podman("rm", "--force", "--time", "5", "--filter", label)
            self.podman("network", "rm", "--force", f"{self.project}_default")
        finally:
            if self.service is not None:
                self.service.terminate()
                try:
                    self.service.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.service.kill()
                    self.service.wait()
            subprocess.run([str(SCRIPT), "cleanup"], cwd=ROOT, stdin=subprocess.DEVNULL, check=False, timeout=60)

    def containers(self) -> list[str]:
        """The project's live containers' names."""
        out = self.podman("ps", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}").stdout
        return out.split()

    # -- kubectl from the "host" (the namespace's loopback, the published ports) ----------------------
    @property
    def kubeconfigs(self) -> list[Path]:
        return [self.data / "shared" / "kubeconfig" / f"{name}.kubeconfig" for name in CONTEXTS]

    def kubectl(self, *args: str, context: str, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": os.pathsep.join(map(str, self.kubeconfigs)), "HOME": str(self.base)}
        cmd = ["ip", "netns", "exec", Path(self.netns).name, "kubectl", "--context", context,
               "--request-timeout", "20s", *args]
        done = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60, env=env, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} ({context}) failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    def get(self, *args: str, context: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", context=context).stdout)

    def rest(self, path: str) -> Any:
        """GET `path` of the hub's REST API at its published port (https://127.0.0.1:16080), verified
        with the hub's CA, as the admin (run inside the namespace: the port is its loopback)."""
        hub = self.data / "hub" / "hub"
        done = subprocess.run(["ip", "netns", "exec", Path(self.netns).name, sys.executable, "-c", _REST_GET,
                               f"{REST_URL}{path}", str(hub / "hub-pki" / "ca.crt"), str(hub / "admin-token")],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise AssertionError(f"GET {path} failed ({done.returncode}): {done.stdout}{done.stderr[-2000:]}")
        return json.loads(done.stdout)


REST_URL = "https://127.0.0.1:16080"
_REST_GET = """import sys, httpx
url, ca, token = sys.argv[1:]
with httpx.Client(trust_env=False, timeout=20, verify=ca) as http:
    resp = http.get(url, headers={"Authorization": "Bearer " + open(token).read().strip()})
    resp.raise_for_status()
    print(resp.text)
"""
