"""`kubectl exec` over WebSocket: the remotecommand channel protocols v4 and v5.channel.k8s.io.

Every binary message starts with a channel byte: 0 stdin (client to server), 1 stdout, 2 stderr,
3 error (a v1 `Status` JSON once the command has ended: `Success`, or `Failure` with reason
`NonZeroExitCode` and the exit code as the cause, as kubelet writes it), 4 resize (`{"Width":w,
"Height":h}` for a TTY). v5 adds the close signal: `[255, channel]` half-closes a channel (kubectl
sends `[255, 0]` when its stdin ends). The command runs as a local process (the runtime's
`exec_argv` puts it inside the container); with `tty` it gets a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
CHUNK = 32 * 1024

Send = Callable[[bytes], Awaitable[None]]
Receive = Callable[[], Awaitable[bytes | None]]  # None: the client went away


@dataclass(frozen=True)
class ExecRequest:
    """The query of `/exec/...`: the command and which streams the client attaches."""

    command: list[str]
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


def choose(offered: list[str]) -> str | None:
    """The first protocol the client offers that we speak (the client's order, as kubelet picks)."""
    return next((p for p in offered if p in PROTOCOLS), None)


def exit_status(code: int, command: list[str]) -> bytes:
    """The error channel's message for an exit code, worded as kubelet words it. A process killed by
    signal N (Popen's -N) exits 128+N, as the container runtimes report it (kubectl refuses a negative)."""
    if code < 0:
        code = 128 - code
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}, separators=(",", ":")).encode()
    body = {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: command '{' '.join(command)}' exited with {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def failure(message: str) -> bytes:
    """The error channel's message when the command could not run at all."""
    return json.dumps({"metadata": {}, "status": "Failure", "message": message}, separators=(",", ":")).encode()


async def run(argv: list[str], request: ExecRequest, send: Send, receive: Receive) -> None:
    """Run `argv` attached to the channels until it ends; the last message is its status."""
    master = slave = -1
    if request.tty:
        master, slave = os.openpty()
    io = {"stdin": asyncio.subprocess.PIPE if request.stdin else asyncio.subprocess.DEVNULL,
          "stdout": asyncio.subprocess.PIPE if request.stdout else asyncio.subprocess.DEVNULL,
          "stderr": asyncio.subprocess.PIPE if request.stderr else asyncio.subprocess.DEVNULL}
    if request.tty:
        io = {"stdin": slave, "stdout": slave, "stderr": slave}
    try:
        proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True, **io)  # type: ignore[arg-type]
    except OSError as exc:
        await send(bytes([ERROR]) + failure(f"failed to run {argv[0]}: {exc.strerror}"))
        return
    finally:
        if slave >= 0:
            os.close(slave)
    pumps = [asyncio.create_task(_pump_tty(master, send))] if request.tty else [
        asyncio.create_task(_pump(stream, channel, send))
        for stream, channel in ((proc.stdout, STDOUT), (proc.stderr, STDERR)) if stream is not None
    ]
    feeder = asyncio.create_task(_feed(proc, master, receive))
    try:
        code = await proc.wait()
        await asyncio.gather(*pumps)
        await send(bytes([ERROR]) + exit_status(code, request.command))
    finally:
        feeder.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        if master >= 0:
            os.close(master)


async def _pump(stream: asyncio.StreamReader, channel: int, send: Send) -> None:
    while chunk := await stream.read(CHUNK):
        await send(bytes([channel]) + chunk)


async def _pump_tty(master: int, send: Send) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, master, CHUNK)
        except OSError:  # EIO: every process holding the terminal has ended
            return
        if not chunk:
            return
        await send(bytes([STDOUT]) + chunk)


async def _feed(proc: asyncio.subprocess.Process, master: int, receive: Receive) -> None:
    """Client messages: stdin data, stdin close (v5), terminal resizes; a vanished client kills the command."""
    while (message := await receive()) is not None:
        if not message:
            continue
        channel, data = message[0], message[1:]
        if channel == STDIN:
            await _write_stdin(proc, master, data)
        elif channel == CLOSE and data[:1] == bytes([STDIN]):
            await _close_stdin(proc, master)
        elif channel == RESIZE and master >= 0:
            _resize(master, data)
    if proc.returncode is None:  # once reaped its pid (the group's id) may belong to another process
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _write_stdin(proc: asyncio.subprocess.Process, master: int, data: bytes) -> None:
    if master >= 0:
        await asyncio.get_running_loop().run_in_executor(None, os.write, master, data)
    elif proc.stdin is not None and not proc.stdin.is_closing():
        with contextlib.suppress(ConnectionError):
            proc.stdin.write(data)
            await proc.stdin.drain()


async def _close_stdin(proc: asyncio.subprocess.Process, master: int) -> None:
    if master >= 0:
        with contextlib.suppress(OSError):
            os.write(master, b"\x04")  # end of input for a terminal
    elif proc.stdin is not None:
        proc.stdin.close()


def _resize(master: int, data: bytes) -> None:
    try:
        size = json.loads(data)
        width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
    except (ValueError, TypeError, AttributeError):
        return
    if 0 < width < 65536 and 0 < height < 65536:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def attach_output(batches: AsyncIterator[list[bytes]], request: ExecRequest, send: Send) -> None:
    """`attach` without stdin: the container's output as it is logged (CRI lines) on stdout/stderr
    (both on stdout for a TTY), until the log ends."""
    async for batch in batches:
        for line in batch:
            parts = line.split(b" ", 3)
            if len(parts) < 3:
                continue
            text = (parts[3] if len(parts) == 4 else b"") + (b"\n" if parts[2] == b"F" else b"")
            channel = STDERR if parts[1] == b"stderr" and not request.tty else STDOUT
            if request.stdout if channel == STDOUT else request.stderr:
                await send(bytes([channel]) + text)
