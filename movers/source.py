"""The sending end of the rsync-over-ssh mover: one iteration, in a background thread.

An iteration runs ``rsync -aAHSx --numeric-ids --delete --modify-window=-1`` from `data_dir` to the destination's sshd
(which confines it to its data directory), then sends the completion signal ``shutdown 0 ITERATION_ID`` over
a second ssh session that reuses the first connection (ControlMaster). A failure of either step is a
failed attempt; attempts are retried with a backoff that `cancel()` interrupts. The destination only
ever sees the completion signal after a fully successful rsync.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from movers import forced, processes, sshconfig
from movers.errors import MoverError
from movers.keys import public_key_line
from osutil.files import open_private, private_dir, write_private

LOG_LIMIT = 1024
CANCELLED = -1
_KILL_AFTER = 2.0
_STDERR_LINES = 8
# A unix socket path holds at most 107 bytes; ssh appends ".<16 random chars>" while creating one.
_MAX_CONTROL_PATH = 107 - 17


@dataclass(frozen=True)
class TransferResult:
    """How an iteration ended. `logs` is a filtered tail (at most the last 1024 bytes)."""

    succeeded: bool
    exit_code: int
    attempts: int
    duration: float
    logs: str


class SourceTransfer:
    """Push `data_dir` to a `DestinationServer` at `address:port` and signal completion."""

    def __init__(self, *, data_dir: Path, address: str, port: int, source_key: bytes, destination_pub: bytes,
                 workdir: Path, retries: int = 5, backoff: Sequence[float] = (2, 4, 8, 16, 32),
                 compress: bool = False, extra_rsync_args: Sequence[str] = (), user: str | None = None,
                 itemize_changes: bool = True, ssh: str = "ssh", rsync: str = "rsync",
                 iteration_id: str | None = None) -> None:
        if retries < 1:
            raise ValueError("retries must be at least 1")
        if not backoff or any(b < 0 for b in backoff):
            raise ValueError("backoff needs at least one non-negative delay")
        self.data_dir = Path(data_dir).absolute()
        self.workdir = Path(sshconfig.check_path("workdir", str(Path(workdir).absolute())))
        self.address = sshconfig.check_address(address)
        self.port = sshconfig.check_port(port)
        self.retries = retries
        self.backoff = tuple(float(b) for b in backoff)
        self.compress = compress
        self.extra_rsync_args = tuple(extra_rsync_args)
        self.itemize_changes = itemize_changes
        self.user = user or ("root" if sshconfig.is_root() else sshconfig.current_user())
        self.ssh = ssh
        self.rsync = rsync
        # named in the completion signal, so the destination records which source iteration its image holds
        # (an identity the forced command would refuse, e.g. an older agent's timestamp, is not sent)
        self.iteration_id = iteration_id if iteration_id and forced.SOURCE_ITERATION.fullmatch(iteration_id) else None
        self._source_key = source_key
        self._known_host = f"{sshconfig.known_hosts_name(self.address, self.port)} {public_key_line(destination_pub)}\n"
        self.identity_file = self.workdir / "source"
        self.known_hosts_file = self.workdir / "known_hosts"
        self.config_file = self.workdir / "ssh_config"
        self.control_path = self.workdir / "ssh-control"
        self._control_dir: Path | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._cancelled_at: float | None = None
        self._thread: threading.Thread | None = None
        self._result: TransferResult | None = None
        self._attempts = 0
        self._failed_attempts = 0

    # -- public API --------------------------------------------------------------------------------

    def start(self) -> None:
        """Write the ssh files and start the iteration in a background thread (once)."""
        with self._lock:
            if self._thread is not None:
                return
            if not self.data_dir.is_dir():
                raise MoverError(f"source data directory {self.data_dir} does not exist")
            self.prepare()
            self._thread = threading.Thread(target=self._run, name=f"rsync-to-{self.address}:{self.port}",
                                            daemon=True)
            self._thread.start()

    def poll(self) -> TransferResult | None:
        """The result once the iteration has ended, else None."""
        return self._result

    def wait(self, timeout: float | None = None) -> TransferResult | None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self._result

    def cancel(self) -> None:
        """Stop the running rsync/ssh and any pending retry; the result becomes Failed ("cancelled")."""
        with self._lock:
            self._cancel.set()
            self._cancelled_at = time.monotonic()
            proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)

    @property
    def attempts(self) -> int:
        """Attempts started so far."""
        return self._attempts

    @property
    def failed_attempts(self) -> int:
        return self._failed_attempts

    def rsync_command(self) -> list[str]:
        remote = f"{self.user}@{sshconfig.bracketed(self.address)}:."
        # --modify-window=-1: compare mtimes to the nanosecond. rsync's default quick check compares whole
        # seconds, so a same-size file rewritten within the second of the last sync would be skipped.
        flags = ["-aAHSx", "--numeric-ids", "--delete", "--modify-window=-1", "--info=stats2,misc2"]
        # The destination's receiver gives up after IO_TIMEOUT quiet seconds; with the same --timeout
        # our rsync sends keep-alives during a long lull (and gives up on a destination gone quiet).
        flags += [f"--timeout={forced.IO_TIMEOUT}"]
        flags += ["--itemize-changes"] if self.itemize_changes else []
        flags += ["-z"] if self.compress else []
        return [self.rsync, *flags, *self.extra_rsync_args, "-e", self._rsh(), f"{self.data_dir}/", remote]

    def ssh_command(self, *args: str) -> list[str]:
        """An ssh command line using this transfer's config (identity, pinned host key, control socket)."""
        return [self.ssh, "-F", str(self.config_file), "-p", str(self.port), *args]

    def signal_command(self, code: int = 0) -> list[str]:
        """``shutdown CODE [ITERATION_ID]`` over ssh: the completion signal (see `forced`)."""
        named = f" {self.iteration_id}" if self.iteration_id else ""
        return self.ssh_command(f"{self.user}@{self.address}", f"shutdown {code}{named}")

    # -- setup -------------------------------------------------------------------------------------

    def _rsh(self) -> str:
        config = str(self.config_file)
        return f"{self.ssh} -F {sshconfig.quoted(config) if ' ' in config else config} -p {self.port}"

    def prepare(self) -> None:
        """Write the identity, the pinned known_hosts and the ssh config into workdir (start() does this)."""
        private_dir(self.workdir)
        if len(str(self.control_path)) > _MAX_CONTROL_PATH:
            self._control_dir = Path(tempfile.mkdtemp(prefix="mover-ssh-"))
            self.control_path = self._control_dir / "ctl"
        write_private(self.identity_file, self._source_key)
        write_private(self.known_hosts_file, self._known_host.encode())
        config = sshconfig.client_config(identity_file=self.identity_file, known_hosts_file=self.known_hosts_file,
                                         control_path=self.control_path)
        write_private(self.config_file, config.encode())

    # -- the iteration -----------------------------------------------------------------------------

    def _run(self) -> None:
        started = time.monotonic()
        notes: list[str] = []
        result: TransferResult | None = None
        try:
            result = self._iterate(started, notes)
        except BaseException as exc:  # a bug: still leave the caller a result, then let it surface
            notes.append(f"internal error: {exc!r}")
            raise
        finally:
            self._close_master()
            self._result = result or _result(False, CANCELLED, self._attempts, started, notes)

    def _iterate(self, started: float, notes: list[str]) -> TransferResult:
        code = CANCELLED
        for attempt in range(1, self.retries + 1):
            if self._cancel.is_set():
                break
            self._attempts = attempt
            code, stats = self._attempt(notes, attempt)
            if code == 0:
                notes.extend([*stats, f"Rsync completed in {time.monotonic() - started:.2f}s"])
                return _result(True, 0, attempt, started, notes)
            self._failed_attempts = attempt
            if attempt < self.retries and self._cancel.wait(self.backoff[min(attempt, len(self.backoff)) - 1]):
                break
        if self._cancel.is_set():
            notes.append("cancelled")
            return _result(False, CANCELLED, self._attempts, started, notes)
        notes.append(f"failed after {self._attempts} attempts")
        return _result(False, code, self._attempts, started, notes)

    def _attempt(self, notes: list[str], attempt: int) -> tuple[int, list[str]]:
        """rsync, then the completion signal; returns (exit code, rsync stats lines)."""
        out, err = self.workdir / "rsync.out", self.workdir / "rsync.err"
        code = self._run_process(self.rsync_command(), out, err)
        if code != 0:
            notes.extend(_failure_lines(f"attempt {attempt}: rsync exited with {code}", err, code))
            return code, []
        stats = _stats_lines(out)
        out, err = self.workdir / "signal.out", self.workdir / "signal.err"
        code = self._run_process(self.signal_command(0), out, err)
        if code != 0:
            notes.extend(_failure_lines(f"attempt {attempt}: completion signal exited with {code}", err, code))
        return code, stats

    def _run_process(self, cmd: list[str], out: Path, err: Path) -> int:
        with self._lock:
            if self._cancel.is_set():
                return CANCELLED
            with open_private(out, "wb") as stdout, open_private(err, "wb") as stderr:
                try:
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                            start_new_session=True, close_fds=True, umask=0o077)
                except OSError as exc:
                    stderr.write(f"cannot run {cmd[0]}: {exc}\n".encode())
                    return 127
            self._proc = proc
        try:
            while (code := processes.wait(proc, 0.5)) is None:
                cancelled_at = self._cancelled_at
                if cancelled_at is not None and time.monotonic() - cancelled_at > _KILL_AFTER:
                    return processes.kill_group(proc)
            return code
        finally:
            with self._lock:
                self._proc = None

    def _close_master(self) -> None:
        """Stop the ControlPersist master so that no ssh process outlives the iteration."""
        try:
            if self.control_path.exists():
                subprocess.run(self.ssh_command("-O", "exit", f"{self.user}@{self.address}"),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self._control_dir is not None:
            self.control_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self._control_dir.rmdir()


def _result(succeeded: bool, code: int, attempts: int, started: float, notes: list[str]) -> TransferResult:
    return TransferResult(succeeded=succeeded, exit_code=code, attempts=attempts,
                          duration=time.monotonic() - started, logs=tail("\n".join(notes)))


def tail(text: str, limit: int = LOG_LIMIT) -> str:
    """The last `limit` bytes of `text` as UTF-8, without a broken character at the start."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[-limit:].decode(errors="ignore")


def _stats_lines(path: Path) -> list[str]:
    """rsync's summary lines ("sent ... bytes  received ... bytes ...", "total size is ...")."""
    keep: list[str] = []
    with path.open("rb") as f:
        for raw in f:
            if raw.startswith((b"sent ", b"total size is ")):
                keep.append(raw.decode(errors="replace").rstrip())
    return keep


def _failure_lines(headline: str, stderr_path: Path, code: int) -> list[str]:
    if code == CANCELLED:  # never started: the stderr file is a previous command's
        return [headline]
    try:
        with stderr_path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    return [headline, *(line for line in lines[-_STDERR_LINES:] if line.strip())]

