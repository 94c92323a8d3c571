"""Host-root images (the project's, python) see the host's files read-only, but never its secrets:
password hashes, the ssh host keys, sudo rules, the state of other services under /var/lib. Their
`/etc/shadow` is the one a Debian image has: every account with the password `*` (sshd's key login
works for root, no hash of the host's is there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Node

PROJECT_IMAGE = "quay.io/backube/volsync-addon-agent:latest"
SECRETS = ["/etc/gshadow", *sorted(str(p) for p in Path("/etc/ssh").glob("ssh_host_*_key"))]


@pytest.mark.parametrize("image", [PROJECT_IMAGE, "python:3.11"])
def test_host_secrets_are_unreadable(node: Node, image: str) -> None:
    present = [p for p in SECRETS if Path(p).exists() and Path(p).stat().st_size > 0]
    assert present, "this host has none of the secrets the test looks for"
    script = "; ".join(f"head -c 64 {p} 2>/dev/null | wc -c" for p in present) + "; ls -A /var/lib | wc -l"
    record = node.run(["sh", "-c", script], image=image)
    assert node.stdout(record).split() == ["0"] * (len(present) + 1), node.stdout(record, "stderr")


def test_python_image_still_imports_kubernetes_and_project_image_runs_its_scripts(node: Node) -> None:
    record = node.run(["python", "-c", "import kubernetes, sys; print(sys.prefix)"], image="python:3.11")
    assert record.exit_code == 0, node.stdout(record, "stderr")
    record = node.run(["volsync-agent", "--help"], image=PROJECT_IMAGE, name="agent")
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert "usage" in node.stdout(record).lower()


@pytest.mark.parametrize("image", [PROJECT_IMAGE, "python:3.11"])
def test_shadow_holds_no_host_hash_only_unusable_passwords(node: Node, image: str) -> None:
    record = node.run(["cat", "/etc/shadow"], image=image)
    assert record.exit_code == 0, node.stdout(record, "stderr")
    entries = [line.split(":") for line in node.stdout(record).splitlines()]
    accounts = [line.split(":", 1)[0] for line in Path("/etc/passwd").read_text().splitlines() if line]
    assert [e[0] for e in entries] == accounts
    assert {e[1] for e in entries} == {"*"}
