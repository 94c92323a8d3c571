"""A destination server's work directory on its own: what a server leaves there, and how to clean up
without the server object.

An agent killed with -9 leaves its sshd running (still listening, still letting the source key write
into the volume while the ``receiving`` marker is there), the volume's links munged (marker
`forced.MUNGED`) and maybe a completion code the source sent. Everything here works from the workdir
alone (the server records its data directory there, as ``data-dir``, when it starts), so a restarted
agent can close or remove a destination it holds no live server for (`retire`), and a live server
uses the same steps (`DestinationServer` delegates to them).
"""

from __future__ import annotations

import logging
from pathlib import Path

from movers import forced, processes, serverfiles
from osutil.files import write_private

log = logging.getLogger(__name__)

DATA_DIR = "data-dir"
PID_FILE = "sshd.pid"
CONFIG_FILE = "sshd_config"


def pid_from_file(workdir: Path) -> int | None:
    """The pid sshd wrote into the workdir's pidfile, if any."""
    try:
        text = (workdir / PID_FILE).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() else None


def is_our_sshd(workdir: Path, argv: list[str]) -> bool:
    """Whether `argv` (from /proc) is an sshd serving this workdir's config."""
    # The listener rewrites its title to "sshd: <path> <args...> [listener] ...", so /proc shows
    # either the original argv or that one string.
    if not argv or not (argv[0].startswith("sshd: ") or Path(argv[0]).name == "sshd"):
        return False
    return f" -f {workdir / CONFIG_FILE} " in " ".join(argv) + " "


def stop_stale_sshd(workdir: Path) -> None:
    """Kill the sshd recorded in a leftover pidfile and its sessions, but only if it is an sshd serving
    this workdir's config (a recycled pid is left alone)."""
    pid = pid_from_file(workdir)
    if pid is None:
        return
    if processes.running(pid) and is_our_sshd(workdir, processes.cmdline(pid)):
        processes.terminate([*processes.descendants(pid), pid])
    (workdir / PID_FILE).unlink(missing_ok=True)


def unmunge(workdir: Path, data_dir: Path) -> None:
    """Real targets for the volume's symlinks, once no session can write (see `forced`)."""
    munged = workdir / forced.MUNGED
    if munged.exists():
        forced.unmunge_links(data_dir)
        munged.unlink()


Completion = tuple[int, str | None]  # the code the source sent, and its iteration id when it named one


def parse_completion(text: str) -> Completion | None:
    """``N`` or ``N ID`` as `forced.complete` records it; None when the text is neither."""
    words = text.split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit():
        return None
    if len(words) == 2 and not forced.SOURCE_ITERATION.fullmatch(words[1]):
        return None
    return int(words[0]), words[1] if len(words) == 2 else None


def completion_record(workdir: Path) -> Completion | None:
    """What the source sent with `shutdown N [ID]` in the open iteration, or None before it did."""
    try:
        text = (workdir / serverfiles.COMPLETE).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return parse_completion(text)


def completion(workdir: Path) -> int | None:
    """The code the source sent with `shutdown N [ID]` in the open iteration, or None before it did."""
    record = completion_record(workdir)
    return None if record is None else record[0]


def take_completion(workdir: Path, keep: Path | None) -> int | None:
    """Read and forget the completion code; the record (code and source iteration) is written to `keep`
    first (if given and there is one)."""
    record = completion_record(workdir)
    if record is not None and keep is not None:
        write_private(keep, " ".join(str(part) for part in record if part is not None) + "\n")
    (workdir / serverfiles.COMPLETE).unlink(missing_ok=True)
    return None if record is None else record[0]


def recorded_data_dir(workdir: Path) -> Path | None:
    """The data directory the server of this workdir wrote into, as it recorded it at start."""
    try:
        text = (workdir / DATA_DIR).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Path(text) if text.startswith("/") else None


def retire(workdir: Path, keep: Path | None = None) -> int | None:
    """With no live server for `workdir`: refuse data, stop a leftover sshd and its sessions, give the
    volume's links back and take the completion code (see `take_completion`)."""
    if not workdir.is_dir():
        return None
    (workdir / serverfiles.RECEIVING).unlink(missing_ok=True)
    stop_stale_sshd(workdir)
    data_dir = recorded_data_dir(workdir)
    if data_dir is not None and data_dir.is_dir():
        unmunge(workdir, data_dir)
    elif (workdir / forced.MUNGED).exists():
        log.warning("cannot give the links back in %s's volume: its data directory is not recorded", workdir)
    return take_completion(workdir, keep)
