"""SSH key pairs for the rsync-over-ssh mover and the three Secrets that carry them.

Two pairs exist per replication: the *source* pair authenticates the sender (its public half is the
only key the destination's sshd accepts) and the *destination* pair is the destination sshd's host
key (its public half is pinned in the sender's known_hosts). The main Secret holds all four values;
the source and destination Secrets hold what each side needs.
"""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from movers.errors import MoverError

Role = Literal["main", "source", "destination"]

SOURCE = "source"
SOURCE_PUB = "source.pub"
DESTINATION = "destination"
DESTINATION_PUB = "destination.pub"

REQUIRED_KEYS: dict[Role, tuple[str, ...]] = {
    "main": (SOURCE, SOURCE_PUB, DESTINATION, DESTINATION_PUB),
    "source": (SOURCE, SOURCE_PUB, DESTINATION_PUB),
    "destination": (DESTINATION, DESTINATION_PUB, SOURCE_PUB),
}

_KEY_TYPE = re.compile(r"[a-z0-9][a-z0-9@.-]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")


class MissingKeys(KeyError):
    """A Secret lacks data keys its role requires; `missing` names them in the canonical order."""

    def __init__(self, role: Role, missing: tuple[str, ...]) -> None:
        super().__init__(role, missing)
        self.role = role
        self.missing = missing

    def __str__(self) -> str:
        return f"ssh keys for the {self.role} role lack {', '.join(self.missing)}"


@dataclass(frozen=True)
class SshKeys:
    """Private keys and public keys in OpenSSH format.

    A value read for one role (see `from_secret_data`) has the other role's private key empty.
    """

    source: bytes
    source_pub: bytes
    destination: bytes
    destination_pub: bytes

    @classmethod
    def generate(cls) -> SshKeys:
        """Same as the module's `generate()`."""
        return generate()

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes], role: Role) -> SshKeys:
        """Same as the module's `from_secret_data()`."""
        return from_secret_data(data, role)

    def main_secret_data(self) -> dict[str, bytes]:
        """All four values: the authority from which the other two Secrets are derived."""
        return {
            SOURCE: self.source,
            SOURCE_PUB: self.source_pub,
            DESTINATION: self.destination,
            DESTINATION_PUB: self.destination_pub,
        }

    def source_secret_data(self) -> dict[str, bytes]:
        """What the sender needs: its own pair and the destination's public (host) key."""
        return {SOURCE: self.source, SOURCE_PUB: self.source_pub, DESTINATION_PUB: self.destination_pub}

    def destination_secret_data(self) -> dict[str, bytes]:
        """What the receiver needs: its own pair (the host key) and the one accepted client key."""
        return {DESTINATION: self.destination, DESTINATION_PUB: self.destination_pub, SOURCE_PUB: self.source_pub}


def generate(ssh_keygen: str = "ssh-keygen", key_type: str = "ed25519") -> SshKeys:
    """Make a fresh source pair and destination pair with `ssh-keygen` (no passphrase, empty comment)."""
    with tempfile.TemporaryDirectory(prefix="movers-keys-") as tmp:
        pairs = [_keygen(ssh_keygen, key_type, Path(tmp) / name) for name in (SOURCE, DESTINATION)]
    (source, source_pub), (destination, destination_pub) = pairs
    return SshKeys(source=source, source_pub=source_pub, destination=destination, destination_pub=destination_pub)


def _keygen(ssh_keygen: str, key_type: str, path: Path) -> tuple[bytes, bytes]:
    cmd = [ssh_keygen, "-q", "-t", key_type, "-N", "", "-C", "", "-f", str(path)]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False)
    except FileNotFoundError as exc:
        raise MoverError(f"{ssh_keygen} not found: install openssh-client") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise MoverError(f"ssh-keygen -t {key_type} failed (exit {done.returncode}): {message}")
    return path.read_bytes(), path.with_name(path.name + ".pub").read_bytes()


def from_secret_data(data: Mapping[str, bytes], role: Role) -> SshKeys:
    """Read the keys a role needs from Secret data (values already base64-decoded).

    Raises `MissingKeys` when a required key is absent or empty. Keys the role does not need are
    taken when present and left empty otherwise.
    """
    missing = tuple(name for name in REQUIRED_KEYS[role] if not data.get(name))
    if missing:
        raise MissingKeys(role, missing)
    return SshKeys(
        source=data.get(SOURCE, b""),
        source_pub=data.get(SOURCE_PUB, b""),
        destination=data.get(DESTINATION, b""),
        destination_pub=data.get(DESTINATION_PUB, b""),
    )


def public_key_line(pub: bytes) -> str:
    """`<type> <base64>` of an OpenSSH public key, without options or comment.

    Validates the shape so that a key taken from a Secret cannot smuggle options or extra lines into
    authorized_keys or known_hosts.
    """
    try:
        text = pub.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MoverError("public key is not ASCII text in OpenSSH format") from exc
    fields = text.strip().split()
    if len(fields) < 2 or "\n" in text.strip() or not _KEY_TYPE.fullmatch(fields[0]):
        raise MoverError("public key is not one line of OpenSSH format '<type> <base64> [comment]'")
    key_type, blob = fields[0], fields[1]
    if not _BASE64.fullmatch(blob):
        raise MoverError(f"public key of type {key_type} has a malformed base64 body")
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error as exc:
        raise MoverError(f"public key of type {key_type} has a malformed base64 body") from exc
    embedded = raw[4 : 4 + int.from_bytes(raw[:4], "big")] if len(raw) >= 4 else b""
    if embedded != key_type.encode():
        raise MoverError(f"public key says {key_type} but its body holds {embedded.decode(errors='replace')!r}")
    return f"{key_type} {blob}"
