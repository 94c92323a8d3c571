"""The rsync the movers need, checked once at agent start-up with a clear error.

Minimum 3.2.3, from the features both ends rely on: protocol 31 and ``--info=stats2,misc2``
(3.1.0), receiver-side ``--munge-links`` (3.1.0), a negative ``--modify-window`` for nanosecond
mtime comparison (3.1.3), and ``--chmod`` applied by a receiving server; 3.2.3 is also the oldest
rsync of a distribution still supported (Debian 11; Debian 12 ships 3.2.7). The version string cannot
show security fixes a distribution backports, so this is a floor, not a guarantee.
"""

from __future__ import annotations

import re
import subprocess

from movers.errors import MoverError

MINIMUM = (3, 2, 3)
_VERSION = re.compile(r"rsync\s+version\s+v?(\d+)\.(\d+)\.(\d+)")


def check_rsync(rsync: str = "rsync") -> tuple[int, int, int]:
    """The version of `rsync`; MoverError saying what to install when it is missing or older than MINIMUM."""
    wanted = ".".join(map(str, MINIMUM))
    try:
        done = subprocess.run([rsync, "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MoverError(f"cannot run {rsync} --version ({exc}): install rsync >= {wanted}") from exc
    match = _VERSION.search(done.stdout)
    if done.returncode != 0 or match is None:
        first = (done.stdout + done.stderr).strip().splitlines()[:1]
        raise MoverError(f"{rsync} --version did not report an rsync version ({first[0] if first else 'no output'}): "
                         f"install rsync >= {wanted}")
    found = (int(match[1]), int(match[2]), int(match[3]))
    if found < MINIMUM:
        raise MoverError(f"{rsync} is version {'.'.join(map(str, found))}, older than {wanted}, which the movers "
                         "need (--munge-links on the receiver, --modify-window=-1, protocol 31): "
                         f"install rsync >= {wanted}")
    return found
