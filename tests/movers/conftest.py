"""Fixtures for the rsync-over-ssh mover: real sshd and rsync on random 127.x.y.z endpoints."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moverkit import FAST_BACKOFF, Endpoint, IterationRunner, SourceFactory, SshRunner, free_endpoint

from movers import keys
from movers.destination import DestinationServer
from movers.source import SourceTransfer, TransferResult


@pytest.fixture(scope="session")
def ssh_keys() -> keys.SshKeys:
    return keys.generate()


@pytest.fixture
def endpoint() -> Endpoint:
    return free_endpoint()


@pytest.fixture
def destination(tmp_path: Path, endpoint: Endpoint, ssh_keys: keys.SshKeys) -> Iterator[DestinationServer]:
    """A started destination server; its iteration is closed until the test opens it."""
    server = DestinationServer(workdir=tmp_path / "dst-work", data_dir=tmp_path / "dst-data",
                               address=endpoint.address, port=endpoint.port,
                               destination_key=ssh_keys.destination, source_pub=ssh_keys.source_pub)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_source(tmp_path: Path, ssh_keys: keys.SshKeys) -> Iterator[SourceFactory]:
    """Build source transfers towards a destination, with tiny backoffs; all are stopped at teardown."""
    made: list[SourceTransfer] = []

    def factory(destination: DestinationServer, data_dir: Path, **overrides: Any) -> SourceTransfer:
        options: dict[str, Any] = {
            "data_dir": data_dir, "address": destination.address, "port": destination.port,
            "source_key": ssh_keys.source, "destination_pub": ssh_keys.destination_pub,
            "workdir": tmp_path / f"src-work-{len(made)}", "retries": 3, "backoff": FAST_BACKOFF,
        }
        options.update(overrides)
        transfer = SourceTransfer(**options)
        made.append(transfer)
        return transfer

    try:
        yield factory
    finally:
        for transfer in made:
            transfer.cancel()
            transfer.wait(30)


@pytest.fixture
def run_iteration(make_source: SourceFactory) -> IterationRunner:
    """Open an iteration, push `data_dir`, wait for the result, check the completion signal, close."""

    def run(destination: DestinationServer, data_dir: Path, **overrides: Any) -> TransferResult:
        destination.open_iteration()
        transfer = make_source(destination, data_dir, **overrides)
        transfer.start()
        result = transfer.wait(60)
        assert result is not None, "transfer did not finish within 60s"
        assert result.succeeded, result.logs
        assert destination.completion() == 0
        destination.close_iteration()
        return result

    return run


@pytest.fixture
def ssh_run() -> SshRunner:
    """Run ssh with a transfer's identity and pinned host key (files written first), without sharing."""

    def run(transfer: SourceTransfer, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        transfer.prepare()
        cmd = transfer.ssh_command("-o", "ControlMaster=no", "-o", "ControlPath=none", *args)
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                              check=False)

    return run
