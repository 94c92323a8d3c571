"""The container image built for real from the top-level Dockerfile (offline: debootstrap base,
host-built wheels, `podman build --network none`) and smoke-tested with Podman inside a network
namespace of the test's own: labels and default user, `volsync-agent --help` and `volsync-hub --help`,
and a source mover container syncing a tree into a destination mover container over an internal
podman network, both run from the Job Pods `agent/jobs.py` renders (read-only root, dropped
capabilities, emptyDirs as tmpfs, the key Secrets as files, the destination's termination message).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from imagekit import ROOT, BuiltImage, Podman, await_background
from podmanpods import pod_on_podman
from support.replication_objects import rd, rs
from support.trees import assert_trees_equal, make_sample_tree
from support.waiting import eventually

from agent import jobs
from agent.jobs import MoverView
from api import images
from movers import keys

# the first test of the session waits for (or runs) the image build: a cold one takes minutes
pytestmark = pytest.mark.timeout(1500)

OCI_LABELS = {
    "org.opencontainers.image.title": "volsync-addon",
    "org.opencontainers.image.licenses": "Apache-2.0",
}


def test_dockerfile_defaults_match_the_package_and_the_build_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    versions = re.findall(r"^ARG VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert versions and set(versions) == {images.package_version()}, versions
    packages = re.search(r'^ARG DEBIAN_PACKAGES="([^"]+)"$', dockerfile, re.MULTILINE)
    script = re.search(r'^DEBIAN_PACKAGES="([^"]+)"$', (ROOT / "scripts" / "image").read_text(), re.MULTILINE)
    assert packages and script and packages.group(1) == script.group(1)


def test_a_failed_background_build_fails_with_its_log(tmp_path: Path) -> None:
    status, log = tmp_path / "status", tmp_path / "build.log"
    status.write_text("failed 1 12s\n")
    log.write_text("image: [0s] debootstrap bookworm\nE: Couldn't download packages: rsync\n")
    with pytest.raises(AssertionError, match=r"(?s)failed \(failed 1 12s\).*Couldn't download packages: rsync"):
        await_background(status, log)
    status.write_text("ok sha256:0123 4s\n")
    assert await_background(status, log) < 1.0


def test_the_image_is_named_labelled_and_runs_as_nonroot(built_image: BuiltImage, podman: Podman) -> None:
    assert built_image.name == images.default_image()
    found = podman.inspect(built_image.name)
    assert found["Id"] == built_image.id
    config = found["Config"]
    labels = config["Labels"]
    assert {k: labels[k] for k in OCI_LABELS} == OCI_LABELS, labels
    assert labels["org.opencontainers.image.version"] == images.package_version()
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.description"]
    assert config["User"] == "65532:65532"
    who = podman.container(built_image.name, ["--network", "none", "--entrypoint", "id"])
    assert who.returncode == 0 and who.stdout.split()[0] == "uid=65532(nonroot)", who


@pytest.mark.parametrize(("program", "expected"), [("volsync-agent", "--cluster-name"), ("volsync-hub", "--hub-url")])
def test_the_hub_and_the_agent_print_their_help(built_image: BuiltImage, podman: Podman, program: str,
                                                expected: str) -> None:
    shown = podman.container(built_image.name, ["--network", "none", "--read-only"], [program, "--help"])
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert shown.stdout.startswith(f"usage: {program}") and expected in shown.stdout, shown.stdout


def test_a_source_mover_container_syncs_into_a_destination_mover_container(
        built_image: BuiltImage, podman: Podman, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    network = podman.network(f"vsa-img-{suffix}")
    pair = keys.generate()
    source_tree, received = tmp_path / "source-claim", tmp_path / "destination-claim"
    make_sample_tree(source_tree, large_size=1024 * 1024, sparse_size=8 * 1024 * 1024)
    received.mkdir()

    destination_job = jobs.destination_job(MoverView.of(rd(), pvc="received", secret="dst-keys"),
                                           image=built_image.name, iteration="dst-1")
    destination = pod_on_podman(destination_job, claims={"received": received},
                                secrets={"dst-keys": pair.destination_secret_data()}, scratch=tmp_path / "dst")
    address = f"{destination_job['metadata']['name']}-{suffix}"  # what the Service's name is to a Pod
    started = podman.container(destination.image, ["--name", address, "--network", network, *destination.options],
                               destination.args, detach=True)
    assert started.returncode == 0, started.stdout + started.stderr
    eventually(lambda: "sshd listening" in podman.logs(address), 60, interval=0.2, what="the destination's sshd")

    source_job = jobs.source_job(MoverView.of(rs(), pvc="snapshot", secret="src-keys"), image=built_image.name,
                                 address=address, port=jobs.MOVER_PORT, iteration="src-iteration-7")
    source = pod_on_podman(source_job, claims={"snapshot": source_tree},
                           secrets={"src-keys": pair.source_secret_data()}, scratch=tmp_path / "src")
    sent = podman.container(source.image, ["--network", network, *source.options], source.args, timeout=300)

    assert sent.returncode == 0, sent.stdout + sent.stderr + podman.logs(address)
    assert "Rsync completed in " in sent.stdout, sent.stdout
    assert podman.run("wait", address, timeout=60).stdout.strip() == "0", podman.logs(address)
    assert json.loads(destination.termination_log.read_text()) == {"code": 0, "sourceIteration": "src-iteration-7"}
    assert_trees_equal(source_tree, received)
    ran = podman.inspect(address)
    assert ran["HostConfig"]["ReadonlyRootfs"] is True, ran["HostConfig"]
    assert sorted(ran["EffectiveCaps"]) == sorted(f"CAP_{cap}" for cap in jobs.DESTINATION_CAPS), ran["EffectiveCaps"]
