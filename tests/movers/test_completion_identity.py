"""The completion signal names the source's iteration: ``shutdown N [ID]`` (real sshd, ssh and rsync).

The destination records the ID with the code, so the image it publishes says exactly which source
iteration it holds (the hub's `late` verdict compares numbers, not two clusters' one-second times).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from moverkit import SourceFactory, SshRunner

from movers import leftovers
from movers.destination import DestinationServer
from movers.serverfiles import INVALID_MESSAGE


def test_shutdown_with_an_iteration_id_records_both(destination: DestinationServer, make_source: SourceFactory,
                                                    ssh_run: SshRunner, tmp_path: Path) -> None:
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)

    done = ssh_run(transfer, f"{transfer.user}@{destination.address}", "shutdown 0 12-0a1b2c3d")

    assert done.returncode == 0, done.stderr
    assert destination.completion_record() == (0, "12-0a1b2c3d")
    assert destination.completion() == 0
    assert "completion 0 recorded for source iteration 12-0a1b2c3d" in destination.log_tail()
    keep = tmp_path / "iteration.completed"
    assert destination.close_iteration(keep=keep) == 0
    assert leftovers.parse_completion(keep.read_text()) == (0, "12-0a1b2c3d")  # survives the close
    assert destination.completion_record() is None


def test_shutdown_without_an_id_still_completes(destination: DestinationServer, make_source: SourceFactory,
                                                ssh_run: SshRunner, tmp_path: Path) -> None:
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)

    done = ssh_run(transfer, f"{transfer.user}@{destination.address}", "shutdown 0")

    assert done.returncode == 0, done.stderr
    assert destination.completion_record() == (0, None)


@pytest.mark.parametrize("command", ["shutdown 0 a/b", "shutdown 0 " + "x" * 65, "shutdown 0 7-ab extra",
                                     "shutdown 0 $(id)", "shutdown 0 ", "shutdown 0  7-ab", "shutdown 0 7-ab;ls",
                                     "shutdown 0 é", "shutdown x 7-ab"])
def test_a_bad_iteration_id_is_refused(destination: DestinationServer, make_source: SourceFactory,
                                       ssh_run: SshRunner, tmp_path: Path, command: str) -> None:
    destination.open_iteration()
    transfer = make_source(destination, tmp_path)

    done = ssh_run(transfer, f"{transfer.user}@{destination.address}", command)

    assert (done.returncode, done.stderr.strip()) == (1, INVALID_MESSAGE)
    assert destination.completion_record() is None


def test_a_transfer_names_its_iteration(destination: DestinationServer, make_source: SourceFactory,
                                        tmp_path: Path) -> None:
    data = tmp_path / "src"
    data.mkdir()
    (data / "file").write_text("one")
    destination.open_iteration()
    transfer = make_source(destination, data, iteration_id="3-deadbeef")
    transfer.start()

    result = transfer.wait(60)

    assert result is not None and result.succeeded, result and result.logs
    assert destination.completion_record() == (0, "3-deadbeef")


def test_an_identity_the_grammar_refuses_is_not_sent(destination: DestinationServer, make_source: SourceFactory,
                                                     tmp_path: Path) -> None:
    """An older agent's iteration identity (a timestamp, with colons) completes without an ID."""
    data = tmp_path / "src"
    data.mkdir()
    destination.open_iteration()
    transfer = make_source(destination, data, iteration_id="2026-12-07T18:00:00Z")
    transfer.start()

    result = transfer.wait(60)

    assert result is not None and result.succeeded, result and result.logs
    assert destination.completion_record() == (0, None)


@pytest.mark.parametrize(("text", "parsed"), [("0\n", (0, None)), ("3 9-abc\n", (3, "9-abc")), ("", None),
                                              ("x\n", None), ("0 a/b\n", None), ("0 a b\n", None)])
def test_parse_completion(text: str, parsed: tuple[int, str | None] | None) -> None:
    assert leftovers.parse_completion(text) == parsed
