"""The platform seam: where data lives and how movers run.

The replication controller is the same everywhere; a `Platform` supplies what differs between a
real cluster and the embedded default:
- `local` (this package's `localplatform.py`): PVCs are directories (the local storage
  controllers bind them), movers are `rsync`/`sshd` processes of the agent, Services get their
  own loopback addresses;
- `kubernetes` (not yet written): CSI volumes, movers as Jobs, addresses from the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from agent.destination import ServerView
from agent.plans import Serve, StartTransfer
from agent.source import TransferView

Obj = dict[str, Any]


class Controller(Protocol):
    """An extra controller the platform runs (e.g. local storage): keys are `(kind, ns, name)`."""

    kinds: tuple[str, ...]

    def reconcile(self, kind: str, namespace: str, name: str) -> float | None: ...


class Platform(Protocol):
    def prepare_service(self, svc: Obj) -> Obj:
        """Fill in what the platform decides for a Service the controller creates (local: its address)."""
        ...

    def controllers(self) -> list[Controller]: ...

    def on_change(self, callback: Callable[[str], None]) -> None:
        """Call `callback(key)` when a mover of `key` finishes or receives a completion signal."""
        ...

    # source side
    def transfer(self, key: str) -> TransferView | None: ...

    def retry_state(self, key: str) -> tuple[int, datetime | None]: ...

    def start_transfer(self, action: StartTransfer, pvc: Obj, secret: Obj) -> None: ...

    def forget_transfer(self, key: str, failed: bool) -> None: ...

    def cancel_transfer(self, key: str) -> None: ...

    # destination side
    def server(self, key: str) -> ServerView | None: ...

    def serve(self, action: Serve, pvc: Obj, secret: Obj) -> None: ...

    def stop_receiving(self, key: str, iteration: str) -> None: ...

    def end_iteration(self, key: str, iteration: str) -> None: ...

    def stop_serving(self, key: str) -> None: ...

    def close(self) -> None: ...
