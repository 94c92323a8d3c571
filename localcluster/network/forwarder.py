"""User-space forwarding from an address inside the fabric to a listener on the host's loopback.

The API server listens only on ``127.0.0.1``; its ``default/kubernetes`` Service (Endpoints
``127.0.0.1:<port>``) is reached by Pods at ``clusterIP:443`` through this forwarder: a listening
socket created *inside the fabric namespace* (a short-lived thread `setns`es into it, creates the
socket, which stays in that namespace, and returns), and, per accepted connection, a socket to the
host's loopback created in the process's own namespace. Python 3.11 has no ``os.setns``, hence
ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import threading

log = logging.getLogger(__name__)

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in_netns(netns_path: str, ip: str, port: int) -> socket.socket:
    """A TCP socket listening on ``ip:port`` inside the network namespace at `netns_path`."""
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((ip, port))
                sock.listen(128)
                result.append(sock)
            finally:
                _setns(own)
        except BaseException as exc:  # handed to the caller's thread
            result.append(exc)
        finally:
            os.close(own)
            os.close(target)

    t = threading.Thread(target=make, name=f"netns-listen-{ip}:{port}")
    t.start()
    t.join()
    out = result[0]
    if isinstance(out, BaseException):
        raise out
    return out


class LoopbackForwarder:
    """Accepts in the fabric on ``listen_ip:listen_port``, forwards to ``target_ip:target_port`` on the host."""

    def __init__(self, netns_path: str, listen_ip: str, listen_port: int, target_ip: str, target_port: int) -> None:
        self.target = (target_ip, target_port)
        self.listen = (listen_ip, listen_port)
        self._sock = listen_in_netns(netns_path, listen_ip, listen_port)
        self._stopped = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name=f"fwd-{listen_ip}:{listen_port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every forwarded connection."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError as exc:
            log.warning("forwarder %s:%s: cannot reach %s:%s: %s", *self.listen, *self.target, exc)
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._conns.update((client, upstream))
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        with self._lock:
            self._conns.difference_update((client, upstream))
        client.close()
        upstream.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy until EOF, then half-close the other side."""
    try:
        while data := src.recv(262144):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)
