"""The one way this package runs `ip`, `nft` and `sysctl`: argv in, stdout out, stderr in the error.

Every command targets a namespace the project created (``ip -n <ns>``, ``ip netns exec <ns>``);
nothing here ever changes the host's own namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class NetCommandError(RuntimeError):
    """A network command failed; the message carries its argv and stderr."""


def run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run `argv` (no shell) and return its stdout; raise NetCommandError on failure when `check`."""
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise NetCommandError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def in_netns(netns: str, argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    """Run `argv` inside the named network namespace (``ip netns exec``)."""
    return run(["ip", "netns", "exec", netns, *argv], stdin=stdin, check=check)


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_names() -> list[str]:
    """The named network namespaces (entries of /run/netns)."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def netns_add(name: str) -> None:
    """Create the named namespace; an existing one is kept (idempotent)."""
    if not netns_exists(name):
        proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 and not netns_exists(name):
            raise NetCommandError(f"ip netns add {name}: {proc.stderr.strip()}")


def netns_delete(name: str) -> None:
    """Delete the named namespace (its veths go with it); a missing one is fine."""
    if netns_exists(name):
        proc = subprocess.run(["ip", "netns", "delete", name], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 and netns_exists(name):
            raise NetCommandError(f"ip netns delete {name}: {proc.stderr.strip()}")


def sysctl(netns: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl inside `netns`."""
    in_netns(netns, ["sysctl", "-q", "-w", f"{key}={value}"])


def nft_apply(netns: str, program: str) -> None:
    """Apply an nft program atomically (one transaction) inside `netns`."""
    in_netns(netns, ["nft", "-f", "-"], stdin=program)
