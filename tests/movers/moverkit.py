"""Helpers shared by the mover tests: random loopback endpoints and the fixtures' callable types."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from support.endpoints import Endpoint, free_endpoint, random_loopback

from movers.source import SourceTransfer, TransferResult

__all__ = ["FAST_BACKOFF", "Endpoint", "IterationRunner", "SourceFactory", "SshRunner", "free_endpoint",
           "random_loopback"]

FAST_BACKOFF = (0.05,)


SourceFactory = Callable[..., SourceTransfer]
IterationRunner = Callable[..., TransferResult]
SshRunner = Callable[..., "subprocess.CompletedProcess[str]"]
