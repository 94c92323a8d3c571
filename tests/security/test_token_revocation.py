"""An agent's credential does not outlive its addon (issue 7, item 2; issue 11): the agent is a Pod
and its credential the ServiceAccount token its node projects into it. Removing the addon (the
ManagedClusterAddOn deleted) deletes the ManifestWork; the work agent deletes what it applied, the
agent's ServiceAccount among it, and the API server refuses that account's tokens from then on
(`apiserver/satokens.py`: a bound token needs its ServiceAccount, with the same uid). A re-enabled
addon's agent gets a new token, never the revoked one. `revoke_tokens` (the API server's static
token file) itself keeps every other line of the token file and the file private."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from securitykit import agent_token, status_of
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


def test_removing_the_addon_revokes_the_agent_token(tmp_path: Path) -> None:
    hub = Hub(tmp_path / "run").start()
    try:
        ca = hub.data_dir / "api" / "pki" / "ca.crt"
        url = f"{_cluster_url(hub, 'cluster1')}/api/v1/persistentvolumeclaims"
        hub.kubectl("label", "managedcluster", "cluster1", f"{INSTALL_LABEL}=true")
        uid, old = agent_token(hub, "cluster1")
        assert status_of(url, old, ca) == 200

        hub.kubectl("label", "managedcluster", "cluster1", f"{INSTALL_LABEL}-")  # or the label re-creates it
        hub.kubectl("delete", "managedclusteraddon", "volsync", "-n", "cluster1", "--wait=false")
        eventually(lambda: hub.kubectl("get", "serviceaccount", "volsync-agent", "-n", "volsync-system",
                                       context="cluster1", check=False).returncode != 0, 60, 0.2,
                   what="the work agent deleted the agent's ServiceAccount")
        eventually(lambda: status_of(url, old, ca) == 401, 30, 0.2, what="the removed agent's token refused")

        hub.kubectl("label", "managedcluster", "cluster1", f"{INSTALL_LABEL}=true")
        new_uid, new = agent_token(hub, "cluster1")
        assert new_uid != uid and new != old
        assert status_of(url, new, ca) == 200
        assert status_of(url, old, ca) == 401  # re-enabling does not bring the revoked token back
    finally:
        hub.stop()


def _cluster_url(hub: Hub, cluster: str) -> str:
    """`cluster`'s API URL on the host, from the user's kubeconfig."""
    config = yaml.safe_load(Path(hub.ready["kubeconfig"]).read_text())
    name = next(c["context"]["cluster"] for c in config["contexts"] if c["name"] == cluster)
    return str(next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == name))
