"""An agent's credential does not outlive its addon (issue 7, item 2): removing the addon (the
ManagedClusterAddOn deleted) revokes the token of the agent's kubeconfig on its cluster, and a
re-enabled addon's agent gets a new token, never the revoked one. `revoke_tokens` itself keeps
every other line of the token file and the file private."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from securitykit import agent_argv, status_of
from support.hubprocess import Hub
from support.waiting import eventually

from apiserver.authn import ensure_tokens, read_token_file, revoke_tokens

INSTALL_LABEL = "addons.open-cluster-management.io/volsync"


@pytest.fixture
def _open_umask() -> Iterator[None]:
    """The most permissive umask: the file's mode must come from the helper, not from the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("_open_umask")
def test_revoke_tokens_removes_only_the_given_users(tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "cluster1.csv"
    before = ensure_tokens(path, ["admin", "volsync-agent", "other"])
    path.write_text("# a comment the revocation keeps\n" + path.read_text())
    assert revoke_tokens(path, ["volsync-agent", "nobody"]) == ["volsync-agent"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("# a comment the revocation keeps\n")
    left = {ident.user: tok for tok, ident in read_token_file(path).items()}
    assert left == {"admin": before["admin"], "other": before["other"]}  # the other lines as they were
    assert revoke_tokens(path, ["volsync-agent"]) == []  # nothing left to revoke: the file is not rewritten
    again = ensure_tokens(path, ["volsync-agent"])["volsync-agent"]
    assert again != before["volsync-agent"]  # minted anew, never the revoked one
    assert revoke_tokens(tmp_path / "missing.csv", ["volsync-agent"]) == []
    assert not (tmp_path / "missing.csv").exists()


def _agent_credential(hub: Hub, cluster: str) -> tuple[str, str]:
    """An API URL the agent's RBAC grants (PersistentVolumeClaims of `cluster`) and the token of the running
    agent's kubeconfig."""
    argv = agent_argv(hub, cluster)
    config = yaml.safe_load(Path(argv[argv.index("--kubeconfig") + 1]).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    return f"{server}/api/v1/persistentvolumeclaims", config["users"][0]["user"]["token"]


def _working_agent_credential(hub: Hub, cluster: str, ca: Path, not_token: str = "") -> tuple[str, str]:
    def check() -> tuple[str, str] | None:
        try:
            url, token = _agent_credential(hub, cluster)
        except (KeyError, OSError, IndexError, ValueError):
            return None  # no agent (yet), or its kubeconfig not written yet
        return (url, token) if token != not_token and status_of(url, token, ca) == 200 else None

    return eventually(check, 90, 0.2, what=f"{cluster}'s agent running with a working kubeconfig")


def test_removing_the_addon_revokes_the_agent_token(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "run").start()
    try:
        ca = hub.data_dir / "api" / "pki" / "ca.crt"
        hub.kubectl("label", "managedcluster", "cluster1", f"{INSTALL_LABEL}=true")
        url, old = _working_agent_credential(hub, "cluster1", ca)
        kubeconfig = Path(agent_argv(hub, "cluster1")[agent_argv(hub, "cluster1").index("--kubeconfig") + 1])

        hub.kubectl("label", "managedcluster", "cluster1", f"{INSTALL_LABEL}-")  # or the label re-creates it
        hub.kubectl("delete", "managedclusteraddon", "volsync", "-n", "cluster1", "--wait=false")
        eventually(lambda: status_of(url, old, ca) == 401, 60, 0.2, what="the removed agent's token refused")
        assert not kubeconfig.exists()

        hub.kubectl("label", "managedcluster", "cluster1", f"{INSTALL_LABEL}=true")
        _, new = _working_agent_credential(hub, "cluster1", ca, not_token=old)
        assert new != old
        assert status_of(url, old, ca) == 401  # re-enabling does not bring the revoked token back
    finally:
        hub.stop()
