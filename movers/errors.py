"""The one exception type the movers raise for operational failures."""

from __future__ import annotations


class MoverError(RuntimeError):
    """A mover could not be set up or run; the message says what happened and how to fix it."""
