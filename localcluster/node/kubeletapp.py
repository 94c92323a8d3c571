"""The kubelet API's ASGI app: routes `containerLogs`, `exec`, `attach`, `portForward` and `healthz`
(see `kubeletserver.py` for the endpoints), resolves `{ns}/{pod}[/{container}]` to the runtime's
container records and answers refusals with a `Status` (`Refused`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from localcluster.kubeletapi import channels, logs, netns, portforward, spdy, wsportforward
from localcluster.kubeletapi.asgi import Scope, WebSocket, http_reply, read_query

if TYPE_CHECKING:
    from localcluster.node.runtime import ContainerRecord

PORTFORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
Pod = Mapping[str, Any]


class Runtime(Protocol):
    """What the server needs of the container runtime (`localcluster.node.runtime.ContainerRuntime`)."""

    def containers(self, pod_uid: str) -> list[ContainerRecord]: ...
    def inspect(self, pod_uid: str, name: str, attempt: int) -> ContainerRecord | None: ...
    def exec_argv(self, record: ContainerRecord, command: list[str]) -> list[str]: ...
    def netns_of(self, record: ContainerRecord) -> str | None: ...


class Refused(Exception):
    """A request the kubelet answers with a `Status` (`code`, `reason`) instead of serving it."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = {400: "BadRequest", 404: "NotFound"}.get(code, "InternalError")

    def body(self) -> bytes:
        return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": str(self), "reason": self.reason, "code": self.code}).encode() + b"\n"


@dataclass(frozen=True)
class _Target:
    pod: Pod
    uid: str
    records: list[ContainerRecord]  # this container's starts, oldest first (all containers' for a port-forward)


class KubeletApp:
    """The ASGI app (see the module docstring)."""

    def __init__(self, runtime: Runtime, pods: Callable[[str, str], Pod | None]) -> None:
        self.runtime = runtime
        self.pods = pods

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        parts = [p for p in scope["path"].split("/") if p]
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        try:
            if scope["type"] == "http" and parts == ["healthz"]:
                await http_reply(send, 200, b"ok", "text/plain")
                return
            self._check_uid(parts, query)
            if scope["type"] == "http" and len(parts) == 4 and parts[0] == "containerLogs":
                await self._logs(parts[1], parts[2], parts[3], read_query(query), send)
            elif scope["type"] == "websocket" and len(parts) == 4 and parts[0] == "exec":
                await self._exec(parts[1], parts[2], parts[3], query, WebSocket(scope, receive, send))
            elif scope["type"] == "websocket" and len(parts) == 4 and parts[0] == "attach":
                await self._attach(parts[1], parts[2], parts[3], query, WebSocket(scope, receive, send))
            elif scope["type"] == "websocket" and len(parts) == 3 and parts[0] == "portForward":
                await self._port_forward(parts[1], parts[2], query, WebSocket(scope, receive, send))
            else:
                raise Refused(404, f"the kubelet serves no {scope['path']}")
        except Refused as refused:
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).deny(refused.code, refused.body())
            else:
                await http_reply(send, refused.code, refused.body(), "application/json")

    # -- lookups ------------------------------------------------------------------------------------
    def _check_uid(self, parts: list[str], query: dict[str, list[str]]) -> None:
        """Refuse when the API server names another Pod (`podUID`) than the one of that name here."""
        wanted = (query.get("podUID") or [""])[0]
        if wanted and len(parts) >= 3:
            pod = self.pods(parts[1], parts[2])
            if str(((pod or {}).get("metadata") or {}).get("uid") or "") != wanted:
                raise Refused(404, f'pod "{parts[2]}" with UID {wanted} not found in namespace "{parts[1]}" '
                                   "on this node")

    def _target(self, namespace: str, name: str, container: str | None) -> _Target:
        pod = self.pods(namespace, name)
        if pod is None:
            raise Refused(404, f'pod "{name}" not found in namespace "{namespace}" on this node')
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        records = sorted(self.runtime.containers(uid), key=lambda r: r.attempt)
        if container is not None:
            names = [c.get("name") for key in ("containers", "initContainers") for c in pod["spec"].get(key) or []]
            if container not in names:
                raise Refused(400, f'container "{container}" in pod "{name}" is not available')
            records = [r for r in records if r.name == container]
        return _Target(pod, uid, records)

    def _log_record(self, target: _Target, container: str, previous: bool) -> ContainerRecord:
        """Which start's log to show, as kubelet's validateContainerLogStatus decides."""
        name = target.pod["metadata"]["name"]
        status = _status_of(target.pod, container)
        waiting = (status.get("state") or {}).get("waiting")
        records = target.records
        if previous:
            candidates = records if waiting and records and not records[-1].running else records[:-1]
            if not candidates:
                raise Refused(400, f'previous terminated container "{container}" in pod "{name}" not found')
            return candidates[-1]
        if not records:
            reason = (waiting or {}).get("reason") or "ContainerCreating"
            raise Refused(400, f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        return records[-1]

    # -- handlers -----------------------------------------------------------------------------------
    async def _logs(self, namespace: str, name: str, container: str, query: dict[str, str], send: Any) -> None:
        try:
            options = logs.parse_options(query)
        except ValueError as exc:
            raise Refused(400, str(exc)) from exc
        target = self._target(namespace, name, container)
        record = self._log_record(target, container, options.previous)
        uid, attempt = target.uid, record.attempt

        def running() -> bool:
            current = self.runtime.inspect(uid, container, attempt)
            return bool(current is not None and current.running)

        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"cache-control", b"no-cache")]})
        async for chunk in logs.stream(record.log_path, options, running):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _stream_request(query: dict[str, list[str]], ws: WebSocket) -> tuple[channels.ExecRequest, str]:
        """The streams and command an exec/attach asks for, and the channel protocol to speak."""
        flags = read_query(query)
        try:
            request = channels.ExecRequest(
                command=query.get("command") or [],
                **{k: logs.parse_bool(k, flags[k]) for k in ("stdin", "stdout", "stderr", "tty") if k in flags},
            )
        except ValueError as exc:
            raise Refused(400, str(exc)) from exc
        protocol = channels.choose(ws.subprotocols)
        if protocol is None:
            raise Refused(400, f"none of the offered protocols is supported: {ws.subprotocols}; "
                               f"this kubelet speaks {', '.join(channels.PROTOCOLS)}")
        return request, protocol

    def _running(self, namespace: str, name: str, container: str) -> ContainerRecord:
        running = [r for r in self._target(namespace, name, container).records if r.running]
        if not running:
            raise Refused(400, f'container not found ("{container}")')
        return running[-1]

    async def _exec(self, namespace: str, name: str, container: str, query: dict[str, list[str]],
                    ws: WebSocket) -> None:
        request, protocol = self._stream_request(query, ws)
        if not request.command:
            raise Refused(400, "you must specify at least one command for the container")
        record = self._running(namespace, name, container)
        try:
            argv = self.runtime.exec_argv(record, request.command)
        except ValueError as exc:  # it ended since it was listed
            raise Refused(400, f'container not found ("{container}")') from exc
        await ws.accept(protocol)
        await channels.run(argv, request, ws.send_bytes, ws.receive_bytes)
        await ws.close()

    async def _attach(self, namespace: str, name: str, container: str, query: dict[str, list[str]],
                      ws: WebSocket) -> None:
        """The container's output from now on until it ends; its stdin cannot be attached (the
        runtime gives containers /dev/null)."""
        request, protocol = self._stream_request(query, ws)
        if request.stdin:
            raise Refused(400, "attaching to a container's stdin is not supported by this node "
                               "(containers run with stdin /dev/null): use kubectl exec -i")
        record = self._running(namespace, name, container)
        uid, attempt = record.pod_uid, record.attempt

        def alive() -> bool:
            current = self.runtime.inspect(uid, container, attempt)
            return bool(current is not None and current.running)

        await ws.accept(protocol)
        lines = logs.batches(record.log_path, follow=True, running=alive, from_end=True)
        output = asyncio.create_task(channels.attach_output(lines, request, ws.send_bytes))
        gone = asyncio.create_task(_until_closed(ws))
        await asyncio.wait({output, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if output.done() and not output.cancelled() and output.exception() is None:
            await ws.send_bytes(bytes([channels.ERROR]) + channels.exit_status(0, []))
        output.cancel()
        await ws.close()

    async def _port_forward(self, namespace: str, name: str, query: dict[str, list[str]], ws: WebSocket) -> None:
        channel_protocol = channels.choose(ws.subprotocols)
        if PORTFORWARD_PROTOCOL not in ws.subprotocols and channel_protocol is None:
            raise Refused(400, f"port-forward speaks {PORTFORWARD_PROTOCOL} (SPDY in WebSocket) or "
                               f"{', '.join(channels.PROTOCOLS)}; offered: {ws.subprotocols}")
        target = self._target(namespace, name, None)
        running = [r for r in target.records if r.running]
        if not running:
            raise Refused(400, f'pod "{name}" has no running container to forward to')
        netns_path = self.runtime.netns_of(running[-1])
        if PORTFORWARD_PROTOCOL not in ws.subprotocols:
            await self._port_forward_channels(name, target.uid, netns_path, query, channel_protocol, ws)
            return
        await ws.accept(PORTFORWARD_PROTOCOL)
        forwarder = portforward.Forwarder(lambda: session, lambda port: netns.dial(netns_path, port), name,
                                          target.uid)
        session = spdy.Session(ws.send_bytes, forwarder.on_stream)
        try:
            while (chunk := await ws.receive_bytes()) is not None and not session.gone:
                await session.feed(chunk)
        except spdy.ProtocolError:
            pass
        finally:
            session.end()
            for task in list(forwarder.tasks):
                task.cancel()
            await asyncio.gather(*forwarder.tasks, return_exceptions=True)
            await ws.close()


    @staticmethod
    async def _port_forward_channels(name: str, uid: str, netns_path: str | None, query: dict[str, list[str]],
                                     protocol: str | None, ws: WebSocket) -> None:
        """The channel flavour (the Python client's): ports from the query, two channels each."""
        try:
            ports = wsportforward.parse_ports(query.get("port") or query.get("ports") or [])
        except ValueError as exc:
            raise Refused(400, str(exc)) from exc
        await ws.accept(protocol)

        def describe(port: int) -> str:
            return f"error forwarding port {port} to pod {name}, uid {uid}"

        await wsportforward.serve(ports, lambda port: netns.dial(netns_path, port), ws.send_bytes,
                                  ws.receive_bytes, describe)
        await ws.close()


async def _until_closed(ws: WebSocket) -> None:
    while await ws.receive_bytes() is not None:
        pass


def _status_of(pod: Pod, container: str) -> Mapping[str, Any]:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return entry  # type: ignore[no-any-return]
    return {}
