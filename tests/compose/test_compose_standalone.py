"""`volsync-cluster` (embedded/standalone.py) without containers: the kubeconfigs it writes into the
shared directory (the user's at the published loopback port, the join one at the hub's address,
each private and naming one cluster) and its usage errors."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from apiserver.authn import kubeconfig, write_kubeconfig
from embedded import standalone


def _api_kubeconfig(path: Path, name: str) -> Path:
    write_kubeconfig(path, kubeconfig("https://127.0.0.1:6443", [name], {name: "secret-token"}, ca=b"CA PEM"))
    return path


def _read(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_the_user_kubeconfig_names_the_published_port_and_keeps_the_credential(tmp_path: Path) -> None:
    source = _api_kubeconfig(tmp_path / "api.kubeconfig", "cluster1")
    written = standalone.write_user_kubeconfig(source, "cluster1", tmp_path / "shared", 16444)
    assert written == tmp_path / "shared" / "kubeconfig" / "cluster1.kubeconfig"
    config = _read(written)
    assert [c["cluster"]["server"] for c in config["clusters"]] == ["https://127.0.0.1:16444/clusters/cluster1"]
    assert config["users"] == _read(source)["users"]  # cluster1-admin with its token
    assert config["contexts"][0]["name"] == "cluster1"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700


def test_the_join_kubeconfig_names_the_hub_address(tmp_path: Path) -> None:
    source = _api_kubeconfig(tmp_path / "api.kubeconfig", "hub")
    written = standalone.write_join_kubeconfig(source, tmp_path / "shared", "192.168.213.10", 6443)
    assert written == tmp_path / "shared" / "join" / "hub.kubeconfig"
    config = _read(written)
    assert config["clusters"][0]["cluster"]["server"] == "https://192.168.213.10:6443/clusters/hub"
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]  # the hub API's CA: verified


def test_a_kubeconfig_of_another_cluster_is_refused(tmp_path: Path) -> None:
    source = _api_kubeconfig(tmp_path / "api.kubeconfig", "cluster2")
    with pytest.raises(RuntimeError, match="exactly the cluster cluster1"):
        standalone.write_user_kubeconfig(source, "cluster1", tmp_path / "shared", 16444)


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--data-dir", str(tmp_path / "d"), "--shared", str(tmp_path / "s")]
    assert standalone.main(["join", *common]) == 2
    assert "join needs --name" in capsys.readouterr().err
    assert standalone.main(["join", "--name", "cluster1", "--bogus", *common]) == 2
    assert "unknown arguments ['--bogus']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        standalone.main(["neither", *common])


def test_host_root_pods_may_read_neither_the_data_nor_the_shared_directory(tmp_path: Path) -> None:
    args, _ = standalone.parse_args(["join", "--name", "cluster1", "--data-dir", str(tmp_path / "d"),
                                     "--shared", str(tmp_path / "s")])
    fleet = standalone.node_fleet(args, tmp_path / "d", "cluster1", join=(tmp_path / "s" / "join.kubeconfig", "hub"))
    assert fleet.hide == [(tmp_path / "d").resolve(), (tmp_path / "s").resolve()]
    assert fleet.node_network
