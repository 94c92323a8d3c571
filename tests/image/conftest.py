"""Fixtures of the image tests: the image built once per session (or awaited from the background
build `scripts/test` starts) and Podman inside a network namespace of the module's own."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from imagekit import BuiltImage, Podman, build_image, podman_exclusive
from support.loopnet import loopback_netns


@pytest.fixture(scope="session")
def built_image() -> BuiltImage:
    """The project's image, built for real by `scripts/image` (podman, debootstrap, wheels)."""
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/bootstrap --test")
    return build_image()


@pytest.fixture(scope="module")
def podman(built_image: BuiltImage) -> Iterator[Podman]:
    """podman in a fresh network namespace (only its loopback up); its containers and networks
    are removed, then the namespace deleted, whatever the tests did."""
    with podman_exclusive(), loopback_netns("vsa-img") as netns:
        client = Podman(netns)
        try:
            yield client
        finally:
            client.cleanup()
