"""kube/files.py, the one way private files are written (issue 7, item 2; "kill -9 loses no state"):
directories 0700 and files 0600 whatever the umask, existing ones tightened; a whole-file write is
atomic (a write that fails midway leaves the old content, and no temporary file behind)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from osutil import files


@pytest.fixture(autouse=True)
def _open_umask() -> Iterator[None]:
    """The most permissive umask: modes must come from the helper, not from the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_creates_parents_0700_and_tightens_an_existing_one(tmp_path: Path) -> None:
    made = files.private_dir(tmp_path / "a" / "b")
    assert _mode(made) == 0o700 and _mode(tmp_path / "a") == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    files.private_dir(loose)
    assert _mode(loose) == 0o700


def test_write_private_is_0600_replaces_a_loose_file_and_takes_bytes_or_text(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    target.chmod(0o644)
    files.write_private(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o600
    files.write_private(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes" and _mode(target) == 0o600
    files.write_private(tmp_path / "fresh" / "dir" / "f", "x")  # a missing parent is made private
    assert _mode(tmp_path / "fresh") == 0o700 and _mode(tmp_path / "fresh" / "dir" / "f") == 0o600


def test_write_private_keeps_an_executable_mode_when_asked(tmp_path: Path) -> None:
    files.write_private(tmp_path / "script", "#!/bin/sh\n", mode=0o700)
    assert _mode(tmp_path / "script") == 0o700


def test_a_write_that_fails_midway_leaves_the_old_content_and_no_temporary(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "apiserver.ready"
    files.write_private(target, '{"url": "https://127.0.0.1:1"}')
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:  # the disk fails after part of the data went out
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        files.write_private(target, '{"url": "https://127.0.0.1:2", "padding": "' + "x" * 100_000 + '"}')
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_text() == '{"url": "https://127.0.0.1:1"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apiserver.ready"]


def test_kill_9_in_the_middle_of_a_write_leaves_the_old_content(tmp_path: Path) -> None:
    """A real process killed with SIGKILL after it wrote part of the new content, before the rename."""
    target = tmp_path / "kubeconfig"
    files.write_private(target, "old complete content\n")
    child = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from osutil import files
        real_fsync = os.fsync
        def die(fd):  # the data is written, not yet renamed into place
            os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = die
        files.write_private(Path({str(target)!r}), "new content " * 10_000)
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert proc.returncode == -9
    assert target.read_text() == "old complete content\n"


def test_open_private_creates_0600_and_tightens_an_existing_file_keeping_its_content(tmp_path: Path) -> None:
    log = tmp_path / "apiserver.log"
    with files.open_private(log, "a") as fh:
        fh.write("one\n")
    assert _mode(log) == 0o600
    log.chmod(0o644)
    with files.open_private(log, "ab") as fh:
        fh.write(b"two\n")
    assert _mode(log) == 0o600 and log.read_text() == "one\ntwo\n"
