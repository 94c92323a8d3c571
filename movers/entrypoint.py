"""`volsync-mover`: the process a mover Pod runs (imports nothing of Kubernetes).

``volsync-mover destination`` reads the destination key Secret as mounted files (``destination``,
``destination.pub``, ``source.pub`` in ``--keys-dir``), runs a `DestinationServer` (our sshd and its
forced command) on ``--listen:--port`` in the foreground with one iteration open, and exits with the
code the source sent with its completion signal once the sessions have ended and the data is flushed.
Before it exits so, it writes ``{"code": N, "sourceIteration": "<id>" or null}`` (one JSON line) to
``--termination-log`` (default ``/dev/termination-log``, the container's termination message, from
which the agent reads the source iteration; skipped silently where it cannot be written, e.g. outside
a Pod). SIGTERM/SIGINT stop sshd and exit 143/130 without claiming success; sshd dying exits 1.

``volsync-mover source`` reads the source key Secret (``source``, ``source.pub``, ``destination.pub``)
and pushes ``--data-dir`` to ``$DESTINATION_ADDRESS:$DESTINATION_PORT`` (default 22) with a
`SourceTransfer` (host key pinned, retries with backoff, then the completion signal naming
``--iteration``, by default ``$ITERATION``, when one is given). It prints rsync's
stats lines and ``Rsync completed in Ns`` and exits 0, or rsync's (or ssh's) code after the last failed
attempt without signalling, so the destination keeps listening. No address: a clear error, exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from movers import forced, keys, leftovers, processes
from movers.destination import DestinationServer
from movers.errors import MoverError
from movers.rsyncversion import check_rsync
from movers.source import SourceTransfer

PROGRAM = "volsync-mover"
FAILED = 1
POLL = 0.2  # seconds between looks at the completion marker / the transfer's result
DRAIN_TIMEOUT = 15.0  # seconds the destination lets the source's sessions end after its completion signal
_SIGNAL_EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


def log(message: str) -> None:
    """One line of the mover's log (what `kubectl logs` shows)."""
    print(f"{PROGRAM}: {message}", flush=True)


class Stop:
    """Set by SIGTERM/SIGINT; `code` is the exit code the signal asks for (143 for SIGTERM)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.code = 0
        for sig in _SIGNAL_EXIT:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.code = _SIGNAL_EXIT.get(signal.Signals(signum), 128 + signum)
        self.event.set()


def read_keys(keys_dir: Path, role: keys.Role) -> keys.SshKeys:
    """The key Secret mounted as files in `keys_dir` (file per data key), checked for `role`."""
    names = (keys.SOURCE, keys.SOURCE_PUB, keys.DESTINATION, keys.DESTINATION_PUB)
    data = {name: (keys_dir / name).read_bytes() for name in names if (keys_dir / name).is_file()}
    return keys.from_secret_data(data, role)


# -- destination ------------------------------------------------------------------------------------

def run_destination(args: argparse.Namespace) -> int:
    key_pair = read_keys(Path(args.keys_dir), "destination")
    server = DestinationServer(workdir=Path(args.work_dir), data_dir=Path(args.data_dir), address=args.listen,
                               port=args.port, destination_key=key_pair.destination,
                               source_pub=key_pair.source_pub)
    stop = Stop()  # before sshd starts, so that a SIGTERM never leaves it behind
    server.start()
    try:
        server.open_iteration()
        log(f"sshd listening on {args.listen}:{args.port}, receiving into {server.data_dir}")
        record = _await_completion(server, stop)
        if record is None:
            return stop.code if stop.event.is_set() else FAILED
        _drain(server)
        server.close_iteration()
    finally:
        server.stop()
    forced.syncfs(str(server.data_dir))
    code, iteration = record
    write_termination_message(Path(args.termination_log), code, iteration)
    log(f"data flushed; exiting with the source's code {code}")
    return code


def write_termination_message(path: Path, code: int, source_iteration: str | None) -> None:
    """`{"code": N, "sourceIteration": ...}` into the container's termination message file, which the
    kubelet made before the start; nothing when there is none or it cannot be written (not in a Pod:
    never created, so that a root process on a host leaves no `/dev/termination-log` behind)."""
    line = json.dumps({"code": code, "sourceIteration": source_iteration}) + "\n"
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _await_completion(server: DestinationServer, stop: Stop) -> leftovers.Completion | None:
    """The source's completion signal (its code and iteration); None when a signal or sshd's death came first."""
    while not stop.event.is_set():
        record = server.completion_record()
        if record is not None:
            named = f" (source iteration {record[1]})" if record[1] else ""
            log(f"source signalled completion with code {record[0]}{named}")
            return record
        if not server.alive():
            log(f"sshd exited unexpectedly; its log ends with:\n{server.log_tail(512)}")
            return None
        stop.event.wait(POLL)
    log(f"stopping on signal before the source signalled completion (exit {stop.code})")
    server.close_iteration()
    return None


def _drain(server: DestinationServer) -> None:
    """Let the source's connections end on their own, so that it hears the answer to its signal."""
    sshd = server.pid
    if sshd is not None and not processes.wait_until(
            lambda: not processes.descendants(sshd), DRAIN_TIMEOUT, interval=0.05):
        log(f"the source's sessions were still open {DRAIN_TIMEOUT:.0f}s after its signal; ending them")


# -- source -----------------------------------------------------------------------------------------

def run_source(args: argparse.Namespace) -> int:
    address = os.environ.get("DESTINATION_ADDRESS", "").strip()
    if not address:
        log("error: DESTINATION_ADDRESS is not set: no destination to send to")
        return FAILED
    port_text = os.environ.get("DESTINATION_PORT", "").strip() or "22"
    if not port_text.isdigit():
        log(f"error: DESTINATION_PORT {port_text!r} is not a port number")
        return FAILED
    key_pair = read_keys(Path(args.keys_dir), "source")
    transfer = SourceTransfer(data_dir=Path(args.data_dir), address=address, port=int(port_text),
                              source_key=key_pair.source, destination_pub=key_pair.destination_pub,
                              workdir=Path(args.work_dir), retries=args.retries, backoff=args.backoff,
                              iteration_id=args.iteration or None)
    stop = Stop()
    log(f"sending {transfer.data_dir} to {address}:{transfer.port} (up to {args.retries} attempts)")
    transfer.start()
    while (result := transfer.wait(POLL)) is None:
        if stop.event.is_set():
            log(f"stopping on signal (exit {stop.code})")
            transfer.cancel()
            transfer.wait(30)
            return stop.code
    print(result.logs, flush=True)
    if result.succeeded:
        return 0
    log(f"transfer failed after {result.attempts} attempts (exit {result.exit_code}); no completion signal sent")
    return result.exit_code if 0 < result.exit_code < 256 else FAILED


# -- command line -----------------------------------------------------------------------------------

def _backoff(text: str) -> tuple[float, ...]:
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"backoff {text!r} is not a comma-separated list of seconds") from exc
    if any(d < 0 for d in delays):
        raise argparse.ArgumentTypeError("backoff delays cannot be negative")
    return delays


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROGRAM, description="The rsync-over-ssh data mover of a mover Pod.")
    roles = top.add_subparsers(dest="role", required=True)
    dst = roles.add_parser("destination", help="receive into --data-dir (sshd with a forced command)")
    src = roles.add_parser("source", help="send --data-dir to $DESTINATION_ADDRESS:$DESTINATION_PORT")
    for sub in (dst, src):
        sub.add_argument("--data-dir", default="/data")
        sub.add_argument("--keys-dir", default="/keys")
        sub.add_argument("--work-dir", default="/tmp/volsync")
    dst.add_argument("--listen", default="0.0.0.0", help="address sshd listens on (default 0.0.0.0)")
    dst.add_argument("--port", type=int, default=8022)
    dst.add_argument("--termination-log", default="/dev/termination-log",
                     help="file receiving the completion as JSON (default /dev/termination-log)")
    src.add_argument("--retries", type=int, default=5, help="attempts before giving up (default 5)")
    src.add_argument("--backoff", type=_backoff, default=(2.0, 4.0, 8.0, 16.0, 32.0),
                     help="seconds between attempts, comma-separated (default 2,4,8,16,32)")
    src.add_argument("--iteration", "--iteration-id", default=os.environ.get("ITERATION", "").strip() or None,
                     help="the source iteration named in the completion signal (default $ITERATION)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.monotonic()
    try:
        check_rsync()  # an rsync without what the movers rely on fails the Pod at once, saying so
        code = run_destination(args) if args.role == "destination" else run_source(args)
    except (MoverError, keys.MissingKeys, ValueError, OSError) as exc:
        log(f"error: {exc}")
        code = FAILED
    log(f"{args.role} done in {time.monotonic() - started:.1f}s, exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
