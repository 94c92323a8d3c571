"""Crash safety of the embedded default's private files (issue 7 item 2; "kill -9 and a restart lose
no state"): a garbled or stale `apiserver.ready` next to a live API server does not stop the next
start (real processes); a serving key that does not match its certificate (a kill -9 between the
two being replaced) is repaired at start; a token is minted durably or not at all."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from securitykit import status_of
from support.hubprocess import Hub

from apiserver.authn import ensure_tokens, read_token_file
from embedded import apiprocess as embedded
from osutil import certs

ROOT = Path(__file__).resolve().parents[2]


def _admin_token(api: embedded.EmbeddedApi, cluster: str) -> str:
    config = yaml.safe_load(api.kubeconfig.read_text())
    user = next(c["context"]["user"] for c in config["contexts"] if c["name"] == cluster)
    return str(next(u["user"]["token"] for u in config["users"] if u["name"] == user))


def _version_status(api: embedded.EmbeddedApi, cluster: str) -> int:
    return status_of(f"{api.url}/clusters/{cluster}/version", _admin_token(api, cluster),
                     api.data_dir / "pki" / "ca.crt")


@pytest.fixture
def first_api(tmp_path: Path) -> Iterator[embedded.EmbeddedApi]:
    api = embedded.start_api(tmp_path / "api", ["hub", "cluster1"])
    try:
        yield api
    finally:
        api.stop()


@pytest.mark.parametrize("ready_text", [
    '{"url": "https://127.0.0.1:1", "kubeconf',  # a hub killed while writing it (in place, truncated)
    "",
    "[1, 2]",
])
def test_a_garbled_ready_file_next_to_a_live_apiserver_does_not_stop_the_next_start(
        first_api: embedded.EmbeddedApi, ready_text: str) -> None:
    (first_api.data_dir / "apiserver.ready").write_text(ready_text)
    second = embedded.start_api(first_api.data_dir, ["hub", "cluster1"])
    try:
        assert second.pid != first_api.pid and second.proc is not None  # the unadoptable one was replaced
        assert first_api.proc is not None and first_api.proc.wait(10) == 0  # stopped cleanly (SIGTERM)
        assert _version_status(second, "cluster1") == 200
    finally:
        second.stop()


def test_a_stale_ready_file_of_an_earlier_apiserver_is_not_adopted(first_api: embedded.EmbeddedApi) -> None:
    """A hub killed after starting an API server, before recording it: the ready file is an older one's."""
    ready = first_api.data_dir / "apiserver.ready"
    record = json.loads(ready.read_text())
    ready.write_text(json.dumps({**record, "pid": first_api.pid + 1, "url": "https://127.0.0.1:1"}))
    second = embedded.start_api(first_api.data_dir, ["hub", "cluster1"])
    try:
        assert second.pid != first_api.pid and second.url != "https://127.0.0.1:1"
        assert _version_status(second, "hub") == 200
    finally:
        second.stop()


def test_a_live_apiserver_with_a_good_ready_file_is_adopted(first_api: embedded.EmbeddedApi) -> None:
    again = embedded.start_api(first_api.data_dir, ["hub", "cluster1"])
    assert (again.pid, again.url, again.proc) == (first_api.pid, first_api.url, None)
    assert _version_status(again, "hub") == 200


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], check=True, capture_output=True, text=True).stdout


def test_a_serving_key_that_does_not_match_its_certificate_is_repaired_at_start(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    made = certs.ensure(pki, ["127.0.0.1"])
    # a kill -9 after the new key went into place, before its certificate did: same host list, stamp intact
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", str(made.key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ssl.SSLError):
        context.load_cert_chain(made.cert, made.key)
    ca_before = made.ca.read_bytes()
    again = certs.ensure(pki, ["127.0.0.1"])
    context.load_cert_chain(again.cert, again.key)  # the pair matches again
    assert again.ca.read_bytes() == ca_before  # kubeconfigs handed out earlier stay valid
    _openssl("verify", "-CAfile", str(again.ca), str(again.cert))
    assert not [p.name for p in pki.iterdir() if p.name.endswith(".new")]
    assert all(p.stat().st_mode & 0o077 == 0 for p in pki.iterdir())


def test_a_truncated_serving_certificate_is_repaired_at_start(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    made = certs.ensure(pki, ["127.0.0.1"])
    made.cert.write_bytes(made.cert.read_bytes()[:100])
    again = certs.ensure(pki, ["127.0.0.1"])
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(again.cert, again.key)


def test_a_kill_9_while_minting_a_token_leaves_the_old_tokens_and_no_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens" / "cluster1.csv"
    first = ensure_tokens(path, ["cluster1-admin"])
    before = path.read_bytes()
    child = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from apiserver.authn import ensure_tokens
        os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # dies with the new token written, unsynced
        ensure_tokens(Path({str(path)!r}), ["volsync-agent"])
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, timeout=60)
    assert proc.returncode == -9  # the token was never handed out ...
    assert path.read_bytes() == before  # ... and the file is the old one, whole
    minted = ensure_tokens(path, ["cluster1-admin", "volsync-agent"])
    assert minted["cluster1-admin"] == first["cluster1-admin"]
    on_disk = {ident.user: tok for tok, ident in read_token_file(path).items()}
    assert on_disk == minted
    assert os.stat(path).st_mode & 0o077 == 0


def test_volsync_hub_killed_then_restarted_over_a_garbled_ready_file_comes_up(tmp_path: Path) -> None:
    """The whole hub (real processes): kill -9 leaves its API server running; the ready file is then found
    truncated; the next `volsync-hub` replaces that API server instead of crashing, and serves."""
    hub = Hub(tmp_path / "run").start()
    api_dir = (tmp_path / "run" / "api").resolve()
    try:
        [orphan] = embedded._apiservers_of(api_dir)
        hub.stop(signal.SIGKILL)
        ready = api_dir / "apiserver.ready"
        ready.write_text(ready.read_text()[:20])
        hub.start()
        assert embedded._apiservers_of(api_dir) != [orphan]
        assert hub.get("managedcluster", "cluster1")["metadata"]["name"] == "cluster1"
    finally:
        hub.stop()
        for pid in embedded._apiservers_of(api_dir):  # whatever a failure left behind
            os.kill(pid, signal.SIGKILL)
