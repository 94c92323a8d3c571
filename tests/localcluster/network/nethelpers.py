"""Helpers of the network tests: run things inside Pod namespaces, snapshot the host namespace."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def host_view() -> dict[str, str]:
    """The host namespace's addresses, routes, rules and links (link counters stripped)."""
    def out(*argv: str) -> str:
        return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout

    return {
        "addr": out("ip", "-o", "addr", "show"),
        "route": out("ip", "route", "show", "table", "all"),
        "rule": out("ip", "rule", "show"),
        "link": "\n".join(line.split(" state ")[0] for line in out("ip", "-o", "link", "show").splitlines()),
        "nft": out("nft", "list", "tables"),
    }


def in_pod(attachment_path: str, *argv: str, timeout: float = 20, check: bool = True) -> str:
    """Run a command inside a Pod namespace (by its netns path); stdout."""
    ns = Path(attachment_path).name
    proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} in {ns}: exit {proc.returncode}: {proc.stderr}")
    return proc.stdout


def start_echo_server(ns_path: str, ip: str, port: int) -> subprocess.Popen[bytes]:
    """A TCP server in a Pod namespace answering each connection with the peer's address."""
    ns = Path(ns_path).name
    return subprocess.Popen(["ip", "netns", "exec", ns, "socat", f"TCP-LISTEN:{port},bind={ip},reuseaddr,fork",
                             "SYSTEM:echo reply-from-$SOCAT_SOCKADDR-to-$SOCAT_PEERADDR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fetch(ns_path: str, ip: str, port: int, timeout: float = 3) -> str | None:
    """One connection from a Pod namespace to ip:port; its reply, or None when it fails."""
    ns = Path(ns_path).name
    proc = subprocess.run(["ip", "netns", "exec", ns, "socat", f"-T{timeout}", "-",
                           f"TCP:{ip}:{port},connect-timeout={timeout}"],
                          input="", capture_output=True, text=True, timeout=timeout + 10)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def fetch_until(ns_path: str, ip: str, port: int, deadline: float = 15) -> str:
    """`fetch` polled until it answers (a server just started may not listen yet)."""
    end = time.monotonic() + deadline
    while True:
        out = fetch(ns_path, ip, port, timeout=1)
        if out is not None:
            return out
        if time.monotonic() > end:
            raise AssertionError(f"no answer from {ip}:{port} in {Path(ns_path).name} within {deadline}s")
