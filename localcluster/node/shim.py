"""The per-container shim (conmon's role): `python -I -S shim.py <container dir>`.

It imports nothing but `os`, `select`, `sys` and `time` (no `json`, no `pathlib`: each would cost
more than the rest of a container start), so it starts fast. It
1. forks and lets its parent exit (the runtime reaps that one): the shim itself is re-parented to
   init and outlives the node process (`kill -9` of the node leaves containers running);
2. writes `shim.pid`, spawns the argv of `sandbox.argv` (NUL-terminated: the container's command
   name, then `[nsenter --net=..] bwrap ...`) with stdin `/dev/null`, stdout/stderr on pipes and
   bwrap's JSON status on fd 3;
3. learns the sandbox's init pid from the status, waits for its first child (the container's main
   process), writes `pid` and `started`, and then tells the runtime `started <pid>` on its stdout;
4. copies both streams into `log` as CRI lines until both close, waits for bwrap, writes
   `finished` and then, last, `exit` (the exit code; 128+n for a death by signal n). When bwrap or
   setpriv could not run the command (missing program, bad mount source), `reason` says
   `StartError`, `message` holds their complaint and the exit code is 128, as containerd reports it.
The sandbox has bwrap's `--die-with-parent`: a `kill -9` of the shim kills the container too.
See `layout.py` for the files.
"""

from __future__ import annotations

import os
import select
import sys
import time

PARTIAL_LIMIT = 16 * 1024
STATUS_FD = 3
START_ERROR_EXIT = 128


def timestamp(ns: int) -> str:
    """RFC3339 UTC with nine fractional digits."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (as `procinfo.start_time`; kept here to stay import-light)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


class LogWriter:
    """CRI lines from the chunks of two streams; a line over 16 KiB goes out as `P` pieces."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.pending = {"stdout": b"", "stderr": b""}
        self.first_error = b""  # the first stderr line: tells a start error from the program's own exit

    def start_error(self, command: str, ran: bool) -> str | None:
        """bwrap's or setpriv's own complaint when the sandbox could not run `command`, else None:
        any bwrap message when the sandbox never got a main process (`ran` False: setup failed),
        else only the exact exec failure line of bwrap or setpriv naming the command."""
        line = self.first_error.split(b"\n", 1)[0].decode(errors="replace")
        exec_failures = (f"bwrap: execvp {command}: ", f"setpriv: failed to execute {command}: ")
        if line.startswith(exec_failures) or not ran and line.startswith(SETUP_FAILURES):
            return line
        return None

    def feed(self, stream: str, data: bytes) -> None:
        stamp = timestamp(time.time_ns()).encode()
        prefix_f, prefix_p = b"%s %s F " % (stamp, stream.encode()), b"%s %s P " % (stamp, stream.encode())
        buf = self.pending[stream] + data
        if stream == "stderr" and len(self.first_error) < 1024:
            self.first_error += data[:1024]
        out = []
        while True:
            newline = buf.find(b"\n")
            if newline < 0 or newline > PARTIAL_LIMIT:
                if len(buf) < PARTIAL_LIMIT:
                    break
                out.append(prefix_p + buf[:PARTIAL_LIMIT] + b"\n")
                buf = buf[PARTIAL_LIMIT:]
                continue
            out.append(prefix_f + buf[: newline + 1])
            buf = buf[newline + 1:]
        if not data and buf:  # end of stream: the rest is a last, unterminated line
            out.append(prefix_f + buf + b"\n")
            buf = b""
        self.pending[stream] = buf
        if out:
            os.write(self.fd, b"".join(out))


def spawn(argv: list[str]) -> tuple[int, dict[int, str], int]:
    """Start the sandbox; returns its pid, {read fd: stream name} and the status read fd."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    st_r, st_w = os.pipe()
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2),
               (os.POSIX_SPAWN_DUP2, st_w, STATUS_FD)]
    pid = os.posix_spawn(argv[0], argv, {}, file_actions=actions)
    for fd in (out_w, err_w, st_w):
        os.close(fd)
    return pid, {out_r: "stdout", err_r: "stderr"}, st_r


def read_status(fd: int, buffer: bytes, found: dict[str, int]) -> tuple[bytes, bool]:
    """Read bwrap's JSON status documents from `fd`, keeping the integer fields `child-pid` and
    `exit-code` in `found` (a scan rather than `json`: importing it costs more than the whole rest);
    False at end of stream."""
    data = os.read(fd, 4096)
    buffer += data
    while b"}" in buffer:
        document, _, buffer = buffer.partition(b"}")
        for key in ("child-pid", "exit-code"):
            at = document.find(b'"%s"' % key.encode())
            if at >= 0:
                value = document[at:].split(b":", 1)[1].split(b",", 1)[0].strip()
                found[key] = int(value)
    return buffer, bool(data)


SETUP_FAILURES = ("bwrap: Can't ", "bwrap: Creating new namespace failed", "bwrap: No permissions",
                  "bwrap: Failed to ", "bwrap: Unable to ")
"""How bwrap's own sandbox-setup failures begin. A container whose main process exits before the shim
saw it (`ran` False) and whose stderr merely starts with "bwrap: " is not taken for one of them."""


def main_pid(init: int, deadline: float) -> int | None:
    """The first child of the sandbox's init (the container's main process), once it exists."""
    path = f"/proc/{init}/task/{init}/children"
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                children = fh.read().split()
        except OSError:
            return None
        if children:
            return int(children[0])
        if start_time(init) is None:
            return None
        time.sleep(0.0005)
    return None


def run(directory: str) -> int:
    """Run the container of `directory` to its end; returns the exit code written."""
    replace_file(directory, "shim.pid", f"{os.getpid()} {start_time(os.getpid())}")
    with open(os.path.join(directory, "sandbox.argv"), "rb") as fh:
        command, *argv = [arg.decode() for arg in fh.read().split(b"\0")[:-1]]
    log = LogWriter(os.path.join(directory, "log"))
    try:
        pid, streams, status_fd = spawn(argv)
    except OSError as error:
        log.feed("stderr", f"cannot start the sandbox: {error}\n".encode())
        replace_file(directory, "reason", "StartError")
        replace_file(directory, "message", f"cannot start the sandbox: {error}")
        return finish(directory, START_ERROR_EXIT, tell=True)
    status: dict[str, int] = {}
    status_buf, status_open = b"", True
    while status_open and "child-pid" not in status:
        status_buf, status_open = read_status(status_fd, status_buf, status)
    init = status.get("child-pid")
    main = main_pid(init, time.monotonic() + 10) if init else None
    if init is not None and main is not None:
        replace_file(directory, "sandbox.pid", f"{init} {start_time(init) or 0}")
        replace_file(directory, "pid", f"{main} {start_time(main) or 0}")
    replace_file(directory, "started", timestamp(time.time_ns()))
    announce(f"started {main or 0}")
    status_buf = pump(log, streams, status_fd if status_open else None, status_buf, status)
    _, wait_status = os.waitpid(pid, 0)
    code = status.get("exit-code")
    if code is None:
        code = os.waitstatus_to_exitcode(wait_status)
        code = 128 - code if code < 0 else code
    problem = log.start_error(command, main is not None) if code in (1, 127) else None
    if problem is not None:  # as containerd's StartError: 128 and the reason
        replace_file(directory, "reason", "StartError")
        replace_file(directory, "message", problem)
        code = START_ERROR_EXIT
    return finish(directory, code, tell=False)


def pump(log: LogWriter, streams: dict[int, str], status_fd: int | None, status_buf: bytes,
         status: dict[str, int]) -> bytes:
    """Copy both streams into the log and read the rest of bwrap's status until all are closed."""
    open_fds = dict(streams)
    if status_fd is not None:
        open_fds[status_fd] = "status"
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [])
        for fd in ready:
            if open_fds[fd] == "status":
                status_buf, more = read_status(fd, status_buf, status)
            else:
                data = os.read(fd, 65536)
                log.feed(open_fds[fd], data)
                more = bool(data)
            if not more:
                os.close(fd)
                del open_fds[fd]
    return status_buf


def finish(directory: str, code: int, *, tell: bool) -> int:
    """Record the end: `finished`, then `exit` (its presence marks the container ended)."""
    replace_file(directory, "finished", timestamp(time.time_ns()), durable=True)
    replace_file(directory, "exit", str(code), durable=True)
    if tell:
        announce("finished")
    return code


def announce(line: str) -> None:
    """Tell the runtime (waiting on our stdout) how the start went, then let go of stdout."""
    try:
        os.write(1, (line + "\n").encode())
    except OSError:  # the runtime is gone: the files say it all
        os.write(2, b"the runtime left before the start was announced\n")
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def replace_file(directory: str, name: str, text: str, *, durable: bool = False, newline: bool = True) -> None:
    """`osutil.files.write_private`'s atomic replace (0600, written aside, renamed), in `os` calls only
    (`pathlib` alone would double the shim's start time). Only `durable` files are fsynced: pids and
    the start time mean nothing after a power loss, the exit code does."""
    path = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, (text + "\n" if newline else text).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if durable:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


if __name__ == "__main__":
    if os.fork() > 0:
        os._exit(0)
    sys.exit(0 if run(sys.argv[1]) >= 0 else 1)
