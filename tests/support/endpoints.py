"""Random loopback endpoints for servers under test (movers, storage destinations): an address in
127.0.0.0/8 other than 127.0.0.1 and a port free on it, so parallel runs never collide."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    address: str
    port: int


def random_loopback() -> str:
    """A random address in 127.0.0.0/8 other than 127.0.0.1, so parallel runs never collide."""
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def free_endpoint(port: int = 0) -> Endpoint:
    """A random loopback address with a port that was free on it a moment ago (any free port when 0)."""
    for _ in range(50):
        address = random_loopback()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
            return Endpoint(address, s.getsockname()[1])
    raise RuntimeError(f"no free loopback endpoint for port {port}")
