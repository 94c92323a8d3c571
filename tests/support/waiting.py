"""Waiting without sleeping: poll a condition with a deadline, and read a long-running kubectl's output.

`eventually(fn)` calls `fn` until it returns something truthy (or stops raising AssertionError) and
returns that value; at the deadline it fails with the last value or error. `KubectlStream` runs a
kubectl that does not exit on its own (`get -w`, `wait`) and lets a test wait for output lines.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from support.apiserver import ApiServer

T = TypeVar("T")


def eventually(fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Poll `fn` until it returns a truthy value (AssertionError counts as not yet); return that value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = fn()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout}s: {what or fn!r}; last: {last!r}")
        time.sleep(interval)


class KubectlStream:
    """A running kubectl whose stdout lines a reader thread moves into a queue, so reads can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []  # every stdout line received so far
        self.errors: list[str] = []  # every stderr line received so far (drained so kubectl never blocks)
        self._eof = False
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line.rstrip("\n"))

    def _pump(self, timeout: float) -> None:
        """Move the next line (waiting up to `timeout`) and any already queued into `self.lines`."""
        try:
            item = self._queue.get(timeout=max(timeout, 0.001))
            while True:
                if item is None:
                    self._eof = True
                    return
                self.lines.append(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            return

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 15.0, what: str = "") -> str:
        """The first stdout line (already seen or arriving within `timeout`) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for line in self.lines[checked:]:
                if predicate(line):
                    return line
            checked = len(self.lines)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._eof:
                state = f"exited {self.proc.returncode}" if self.proc.poll() is not None else "still running"
                seen, errors = "\n".join(self.lines), "\n".join(self.errors)
                raise AssertionError(
                    f"no line {what or predicate!r} within {timeout}s ({state}); stdout:\n{seen}\nstderr:\n{errors}"
                )
            self._pump(remaining)

    def wait_for_stderr(self, needle: str, timeout: float = 15.0) -> str:
        """The first stderr line containing `needle` (e.g. a `-v=6` request log line)."""
        return eventually(lambda: next((e for e in list(self.errors) if needle in e), ""), timeout,
                          what=f"stderr line with {needle!r}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end on its own; returns its exit code (stdout is then in `lines`)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            seen, errors = "\n".join(self.lines), "\n".join(self.errors)
            message = f"kubectl did not exit within {timeout}s; stdout:\n{seen}\nstderr:\n{errors}"
            raise AssertionError(message) from None
        self._reader.join(timeout=5)
        self._err_reader.join(timeout=5)
        while not self._eof and not self._queue.empty():
            self._pump(0)
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        self._err_reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def kubectl_stream(
    server: ApiServer, *args: str, context: str = "hub", binary: str | None = None
) -> Iterator[KubectlStream]:
    """Run `kubectl <args>` in the background with the same flags as `server.kubectl`; stop it on exit."""
    proc = subprocess.Popen(
        server.kubectl_argv(*args, context=context, binary=binary),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server.kubectl_env(),
    )
    stream = KubectlStream(proc)
    try:
        yield stream
    finally:
        stream.close()
