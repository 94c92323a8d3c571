"""Key generation with the real ssh-keygen, and the three Secrets' data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from movers import keys
from movers.errors import MoverError


def derive_public(private: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / "key"
    path.write_bytes(private)
    path.chmod(0o600)
    return subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, check=True).stdout


def test_generate_makes_two_distinct_matching_pairs_without_comment(tmp_path: Path) -> None:
    pair = keys.generate()

    for private, public in ((pair.source, pair.source_pub), (pair.destination, pair.destination_pub)):
        assert private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
        assert public.startswith(b"ssh-ed25519 ")
        assert len(public.split()) == 2, "no comment expected"
        assert derive_public(private, tmp_path).split()[:2] == public.split()[:2]
    assert pair.source_pub != pair.destination_pub
    assert keys.SshKeys.generate().source_pub != pair.source_pub


def test_secret_data_splits_the_pairs_by_role() -> None:
    pair = keys.SshKeys(source=b"S", source_pub=b"SP", destination=b"D", destination_pub=b"DP")

    assert pair.main_secret_data() == {"source": b"S", "source.pub": b"SP", "destination": b"D",
                                       "destination.pub": b"DP"}
    assert pair.source_secret_data() == {"source": b"S", "source.pub": b"SP", "destination.pub": b"DP"}
    assert pair.destination_secret_data() == {"destination": b"D", "destination.pub": b"DP", "source.pub": b"SP"}


def test_from_secret_data_round_trips_each_role() -> None:
    pair = keys.generate()

    assert keys.from_secret_data(pair.main_secret_data(), "main") == pair
    assert keys.SshKeys.from_secret_data(pair.main_secret_data(), "main") == pair
    as_source = keys.from_secret_data(pair.source_secret_data(), "source")
    assert (as_source.source, as_source.destination_pub, as_source.destination) == (
        pair.source, pair.destination_pub, b"")
    as_destination = keys.from_secret_data(pair.destination_secret_data(), "destination")
    assert (as_destination.destination, as_destination.source_pub, as_destination.source) == (
        pair.destination, pair.source_pub, b"")


def test_missing_or_empty_keys_are_named() -> None:
    pair = keys.SshKeys(source=b"S", source_pub=b"SP", destination=b"D", destination_pub=b"DP")
    data = pair.destination_secret_data()
    del data["source.pub"]
    data["destination"] = b""

    with pytest.raises(keys.MissingKeys) as caught:
        keys.from_secret_data(data, "destination")

    assert isinstance(caught.value, KeyError)
    assert caught.value.missing == ("destination", "source.pub")
    assert str(caught.value) == "ssh keys for the destination role lack destination, source.pub"
    with pytest.raises(KeyError):
        keys.from_secret_data(pair.source_secret_data(), "main")


def test_public_key_line_strips_comments_and_refuses_smuggled_lines() -> None:
    pub = keys.generate().source_pub
    key_type, blob = pub.split()[:2]

    assert keys.public_key_line(pub.rstrip() + b" a comment\n") == f"{key_type.decode()} {blob.decode()}"
    for bad in (pub + b"\n" + pub, b'command="sh" ' + pub, b"ssh-rsa " + blob, b"ssh-ed25519 !!!", b"\xff"):
        with pytest.raises(MoverError):
            keys.public_key_line(bad)
