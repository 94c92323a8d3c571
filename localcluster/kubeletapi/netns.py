"""Dial `127.0.0.1:<port>` inside a Pod's network namespace (what kubelet's port-forward does).

A socket belongs to the network namespace of the thread that created it, for its whole life. So a
fresh thread enters the Pod's namespace (`setns(2)` through ctypes: Python 3.11 has no
`os.setns`), connects, and goes back to its own namespace before it ends; the connected socket
stays in the Pod's namespace and is used from anywhere. Entering a network namespace needs
CAP_SYS_ADMIN.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import os
import socket

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def dial_blocking(netns_path: str | None, port: int) -> socket.socket:
    """A TCP connection to `127.0.0.1:port` in the namespace at `netns_path` (host's when None)."""
    if netns_path is None:
        return socket.create_connection(("127.0.0.1", port), CONNECT_TIMEOUT)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            return socket.create_connection(("127.0.0.1", port), CONNECT_TIMEOUT)
        finally:
            _setns(own)  # raises if it cannot: the thread ends with the executor either way
    finally:
        os.close(own)


async def dial(netns_path: str | None, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """`dial_blocking` on a thread of its own (never a shared pool's), as asyncio streams."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="netns-dial") as pool:
        sock = await asyncio.get_running_loop().run_in_executor(pool, dial_blocking, netns_path, port)
    sock.setblocking(False)
    return await asyncio.open_connection(sock=sock)
