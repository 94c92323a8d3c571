"""`volsync-agent` started wrongly says what it needs and exits 1, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.apiserver import ROOT


def _agent(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config either
    return subprocess.run([sys.executable, "-m", "agent.main", "--cluster-name", "c1", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_outside_a_pod_without_a_kubeconfig_it_says_what_it_needs(tmp_path: Path) -> None:
    done = _agent(tmp_path)
    assert done.returncode == 1
    assert "run it in a Pod (in-cluster config) or give --kubeconfig" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_metrics_address_is_named(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                      "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
                      "current-context: c\n")
    done = _agent(tmp_path, "--kubeconfig", str(config), "--metrics-address", "127.0.0.1:notaport")
    assert done.returncode == 1
    assert "--metrics-address '127.0.0.1:notaport'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
