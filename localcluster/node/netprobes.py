"""The network probe handlers, each attempted from inside the Pod's network namespace: `tcpSocket`
(a connect) and `httpGet` (one GET request, as kubelet's prober makes it).

`in_netns` runs an attempt on a thread of its own that first joins the Pod's netns (`setns`), so
the socket it creates lives there; the calling thread never changes namespace. The attempt is
bounded by the probe's `timeoutSeconds`: past it, the caller gets the timeout message and the
attempt's socket is shut down, which ends any read it still blocks in.

`http_get` follows kubelet's `httpGet`: `scheme` HTTP or HTTPS (the certificate is **not**
verified, as kubelet does not), `host` (default the Pod IP), `path` (default `/`), `httpHeaders`
(which override the defaults `User-Agent: kube-probe/<major>.<minor>` and `Accept: */*`), no
keep-alive. A status 200 <= code < 400 passes; a redirect (3xx) passes without being followed
(kubelet follows one to the same host only, and passes one to another host with a warning). At
most 10 KiB of the body is read. Failure messages are short, in kubelet's words.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from localcluster.node.noderegistry import KUBELET_VERSION

CLONE_NEWNET = 0x40000000
BODY_LIMIT = 10 * 1024
_VERSION = re.match(r"v?(\d+)\.(\d+)", KUBELET_VERSION)
USER_AGENT = f"kube-probe/{_VERSION.group(1)}.{_VERSION.group(2)}" if _VERSION else "kube-probe"

# an attempt: given a list to park its socket in (for a shutdown on timeout), '' or why it failed
Attempt = Callable[[list[socket.socket]], str]


def in_netns(netns_path: str, attempt: Attempt, timeout: float, timed_out: str) -> str:
    """Run `attempt` on a thread inside `netns_path`; its outcome, or `timed_out` past `timeout`."""
    outcome: list[str] = []
    sockets: list[socket.socket] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    outcome.append(f"setns: {os.strerror(ctypes.get_errno())}")
                    return
            finally:
                os.close(fd)
            outcome.append(attempt(sockets))
        except Exception as exc:  # the netns is gone, or a fault in the attempt: a failed probe, never a crash
            outcome.append(f"probe could not run: {exc}")

    # a thread of its own: its network namespace changes, and it ends with the attempt
    thread = threading.Thread(target=run, name="net-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return timed_out
    return outcome[0] if outcome else timed_out


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial(host: str, port: int, timeout: float, sockets: list[socket.socket]) -> socket.socket:
    """A TCP connection to host:port (a name is resolved inside the netns), parked in `sockets`."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sockets.append(sock)
    return sock


def tcp_connect(netns_path: str, host: str, port: int, timeout: float) -> str:
    """Connect to host:port from inside `netns_path`; '' on success, else why not."""
    target = _address(host, port)

    def attempt(sockets: list[socket.socket]) -> str:
        try:
            _dial(host, port, timeout, sockets).close()
        except OSError as exc:
            return f"dial tcp {target}: {exc.strerror or exc}"
        return ""

    return in_netns(netns_path, attempt, timeout, f"dial tcp {target}: i/o timeout")


def request_headers(host: str, port: int, given: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The probe's request headers: `httpHeaders` in order, then each default they do not override."""
    headers = [(str(h.get("name") or ""), str(h.get("value") or "")) for h in given if h.get("name")]
    names = {name.lower() for name, _ in headers}
    defaults = [("Host", _address(host, port)), ("User-Agent", USER_AGENT), ("Accept", "*/*"),
                ("Connection", "close")]
    return headers + [(name, value) for name, value in defaults if name.lower() not in names]


def http_get(netns_path: str, action: Mapping[str, Any], host: str, port: int, timeout: float) -> str:
    """One GET of the `httpGet` action to host:port from inside `netns_path`; '' when it passed."""
    scheme = str(action.get("scheme") or "HTTP").upper()
    path = str(action.get("path") or "/")
    path = path if path.startswith("/") else "/" + path
    url = f"{scheme.lower()}://{_address(host, port)}{path}"
    headers = request_headers(host, port, action.get("httpHeaders") or [])

    expired = f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'

    def attempt(sockets: list[socket.socket]) -> str:
        try:
            sock = _dial(host, port, timeout, sockets)
        except TimeoutError:
            return expired
        except OSError as exc:
            return f'Get "{url}": dial tcp {_address(host, port)}: {exc.strerror or exc}'
        try:
            if scheme == "HTTPS":
                sock = _insecure_tls().wrap_socket(sock, server_hostname=None if _is_ip(host) else host)
                sockets.append(sock)
            return _exchange(sock, host, port, path, headers)
        except TimeoutError:  # the socket's own timeout ran out first: the same deadline, the same words
            return expired
        except (OSError, http.client.HTTPException) as exc:
            return f'Get "{url}": {str(exc) or type(exc).__name__}'[:512]
        finally:
            sock.close()

    if scheme not in ("HTTP", "HTTPS"):
        return f"unsupported scheme {scheme!r} (HTTP or HTTPS)"
    return in_netns(netns_path, attempt, timeout, expired)


def _exchange(sock: socket.socket, host: str, port: int, path: str, headers: list[tuple[str, str]]) -> str:
    """Send the GET over the connected `sock` and judge the response's status."""
    conn = http.client.HTTPConnection(host, port)
    conn.sock = sock  # already connected (inside the Pod's netns), and wrapped for HTTPS
    conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders()
    response = conn.getresponse()
    response.read(BODY_LIMIT)
    if 200 <= response.status < 400:
        return ""
    return f"HTTP probe failed with statuscode: {response.status}"


def _insecure_tls() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # kubelet's prober does not verify the serving certificate
    return context


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True
