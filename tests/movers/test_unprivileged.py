"""Both ends running as an ordinary user: sshd logs in only that user, port 22 is refused clearly.

Runs as root only (to switch to a user with a POSIX login shell, e.g. via setpriv); skipped when the
machine has no such user or no Python >= 3.11 that user can run.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from moverkit import free_endpoint
from support.trees import assert_trees_equal

ROOT = Path(__file__).resolve().parents[2]
SHELLS = {"sh", "bash", "dash", "zsh", "ksh"}

SCRIPT = r"""
import json, sys
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]
from movers import keys
from movers.destination import DestinationServer
from movers.errors import MoverError
from movers.source import SourceTransfer
from support.trees import make_sample_tree

base, address, port = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
pair = keys.generate()
out = {}
try:
    with DestinationServer(workdir=base / "w22", data_dir=base / "d22", address=address, port=22,
                           destination_key=pair.destination, source_pub=pair.source_pub):
        out["port22"] = "started"
except MoverError as exc:
    out["port22"] = str(exc)
make_sample_tree(base / "src", large_size=1 << 20, sparse_size=1 << 20)
with DestinationServer(workdir=base / "w", data_dir=base / "d", address=address, port=port,
                       destination_key=pair.destination, source_pub=pair.source_pub) as server:
    server.open_iteration()
    transfer = SourceTransfer(data_dir=base / "src", address=address, port=port, source_key=pair.source,
                              destination_pub=pair.destination_pub, workdir=base / "sw", retries=2, backoff=(0.1,))
    transfer.start()
    result = transfer.wait(60)
    completion = server.completion()
    server.close_iteration()
    out.update(login_user=server.login_user, user=transfer.user, succeeded=bool(result and result.succeeded),
               logs=result.logs if result else "", completion=completion,
               config=(base / "w/sshd_config").read_text())
print(json.dumps(out))
"""


def _candidate_user() -> pwd.struct_passwd | None:
    users = [u for u in pwd.getpwall() if u.pw_uid >= 1000 and Path(u.pw_shell).name in SHELLS]
    return min(users, key=lambda u: u.pw_uid) if users else None


def _python_for(user: pwd.struct_passwd) -> str | None:
    for python in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.path.exists(python):
            continue
        probe = subprocess.run([*_as(user), python, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                               capture_output=True, cwd="/", check=False)
        if probe.returncode == 0:
            return python
    return None


def _as(user: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
            "env", f"HOME={user.pw_dir}", f"USER={user.pw_name}", f"LOGNAME={user.pw_name}"]


@pytest.fixture
def user_dir() -> Iterator[tuple[pwd.struct_passwd, str, Path]]:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an ordinary user")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    user = _candidate_user()
    if user is None:
        pytest.skip("no user with uid >= 1000 and a POSIX login shell")
    python = _python_for(user)
    if python is None:
        pytest.skip(f"no python >= 3.11 that {user.pw_name} can run")
    base = Path(tempfile.mkdtemp(prefix="movers-unprivileged-"))
    try:
        os.chown(base, user.pw_uid, user.pw_gid)
        yield user, python, base
    finally:
        shutil.rmtree(base)


def test_replicates_as_an_ordinary_user(user_dir: tuple[pwd.struct_passwd, str, Path]) -> None:
    user, python, base = user_dir
    endpoint = free_endpoint()

    done = subprocess.run([*_as(user), python, "-c", SCRIPT, str(ROOT), str(base), endpoint.address,
                           str(endpoint.port)], capture_output=True, text=True, cwd="/", timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["succeeded"], out["logs"]
    assert out["completion"] == 0
    assert out["login_user"] == out["user"] == user.pw_name
    assert f"AllowUsers {user.pw_name}\n" in out["config"] and "PermitRootLogin no\n" in out["config"]
    assert_trees_equal(base / "src", base / "d")
    assert (base / "d").stat().st_uid == user.pw_uid
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) > 22:
        assert out["port22"] == (f"sshd cannot listen on {endpoint.address}:22: permission denied (ports below "
                                 f"{Path('/proc/sys/net/ipv4/ip_unprivileged_port_start').read_text().strip()} "
                                 "need root or CAP_NET_BIND_SERVICE); run as root or choose a higher port")
