"""The project's one container image: its name, and the tag every component defaults to.

The hub's rendered agent Deployment and the agent's mover Jobs both default to
`quay.io/volsync-addon/volsync-addon:<package version>` (the `Dockerfile` at the top level builds it;
the embedded node maps any `*/volsync-addon` reference to the host's installation).
"""

from __future__ import annotations

from importlib import metadata

REPOSITORY = "quay.io/volsync-addon/volsync-addon"
PACKAGE = "volsync-addon"


def package_version() -> str:
    """The installed package's version ("0.0.0" when it is not installed, e.g. a bare checkout)."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def default_image() -> str:
    """`REPOSITORY:<package version>`: what the hub renders and the agent's movers run by default."""
    return f"{REPOSITORY}:{package_version()}"
