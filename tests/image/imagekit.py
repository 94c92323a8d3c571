"""The project's container image for tests: built by `scripts/image` (or awaited from the background
build `scripts/test` starts), and Podman run with the project's private configuration inside a
network namespace the test made, so that its bridge and DNS never bind host addresses.

Every podman command goes through `scripts/image podman --netns PATH ...` (one place knows the
private containers.conf/storage.conf); every container and network a `Podman` creates carries its
label, so `cleanup` removes exactly those, also after a failed test.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "image"
STATUS = ROOT / ".cache" / "image" / "status"
BUILD_LOG = ROOT / ".cache" / "image" / "build.log"
BACKGROUND_DEADLINE = 15 * 60.0  # seconds a background build may still take when the tests need it
BUILD_TIMEOUT = 20 * 60.0  # a cold foreground build: debootstrap, wheels, podman build
TEST_LABEL = "io.volsync-addon.test"


@dataclass(frozen=True)
class BuiltImage:
    """The image `scripts/image` built: its name, id, and what this session waited for it."""

    name: str
    id: str
    waited_background: float  # seconds spent waiting for a background build
    build_seconds: float  # seconds of this session's own (usually warm) `scripts/image` run


def _background_settled(status: Path) -> str:
    """The status of a background build once it is no longer running ("" while it runs, "none"
    when none is recorded)."""
    try:
        text = status.read_text().strip()
    except FileNotFoundError:
        return "none"
    word, _, rest = text.partition(" ")
    if word == "running" and rest.split()[:1] and Path(f"/proc/{rest.split()[0]}").exists():
        return ""  # still building
    return text or "none"


def _log_tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return f"({path} does not exist)"


def await_background(status: Path = STATUS, build_log: Path = BUILD_LOG) -> float:
    """Wait for a background build still running; fail with its log's tail if it failed. The
    seconds waited."""
    started = time.monotonic()
    settled = eventually(lambda: _background_settled(status), BACKGROUND_DEADLINE, interval=1.0,
                         what="the background image build")
    if settled.startswith("failed"):
        raise AssertionError(f"the background image build failed ({settled}); {build_log} ends with:\n"
                             f"{_log_tail(build_log)}")
    return time.monotonic() - started


def build_image() -> BuiltImage:
    """`scripts/image` in the foreground once a background build is over: warm after one, cold
    otherwise."""
    waited = await_background()
    started = time.monotonic()
    done = subprocess.run([str(SCRIPT)], cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    if done.returncode != 0:
        raise AssertionError(f"scripts/image failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    name = subprocess.run([str(SCRIPT), "name"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    return BuiltImage(name=name, id=done.stdout.strip().splitlines()[-1], waited_background=waited,
                      build_seconds=time.monotonic() - started)


@contextlib.contextmanager
def podman_exclusive() -> Iterator[None]:
    """Hold the suite's one Podman lock (an flock on a file of the private configuration) while a
    module's containers live. Every test's Podman shares that configuration, its run directory and
    so its aardvark-dns and cgroup clean-up, which do not survive two network namespaces at once (a
    second namespace's containers resolved no names); with several pytest workers the image's and the
    compose stack's modules would otherwise overlap."""
    lock_path = ROOT / ".cache" / "podman" / "tests.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Podman:
    """podman with the project's private configuration inside the network namespace `netns`."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.label = f"{TEST_LABEL}={uuid.uuid4().hex[:12]}"
        self.networks: list[str] = []

    def command(self, *args: str) -> list[str]:
        return [str(SCRIPT), "podman", "--netns", self.netns, *args]

    def run(self, *args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.command(*args), cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def container(self, image: str, options: Sequence[str], args: Sequence[str] = (), *,
                  detach: bool = False, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`podman run` (removed on exit unless detached) labelled for `cleanup`."""
        keep = ["--detach"] if detach else ["--rm"]
        return self.run("run", *keep, "--label", self.label, *options, image, *args, timeout=timeout, check=False)

    def network(self, name: str) -> str:
        """An internal network (no route anywhere but between its containers), with DNS for their names."""
        self.run("network", "create", "--internal", "--label", self.label, name)
        self.networks.append(name)
        return name

    def inspect(self, what: str) -> dict[str, Any]:
        """`podman inspect` of one image or container."""
        found = json.loads(self.run("inspect", what).stdout)
        assert isinstance(found, list) and len(found) == 1 and isinstance(found[0], dict), found
        return found[0]

    def logs(self, container: str) -> str:
        done = self.run("logs", container, check=False)
        return done.stdout + done.stderr

    def cleanup(self) -> None:
        """Remove every container and network of this label (checking none is left), then the
        cgroups podman leaves behind."""
        self.run("rm", "--force", "--time", "5", "--filter", f"label={self.label}", check=False)
        for name in self.networks:
            self.run("network", "rm", "--force", name, check=False)
        left = self.run("ps", "--all", "--quiet", "--filter", f"label={self.label}", check=False).stdout.strip()
        subprocess.run([str(SCRIPT), "cleanup"], cwd=ROOT, stdin=subprocess.DEVNULL, check=True, timeout=60)
        assert not left, f"containers left behind: {left}"

