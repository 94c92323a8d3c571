"""The container runtime runs a process as asked: exit codes, CRI logs, argv/env/workdir, capabilities,
image mapping, and no container on the host's network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import Node

from localcluster.node.images import ImageError, ImageMap
from localcluster.node.runtime import ContainerRuntime, Mount

CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) .*\n$", re.S)
DEFAULT_CAPS_MASK = 0x00000000A80425FB  # containerd's default set (CHOWN ... SETFCAP)


@pytest.mark.parametrize(("script", "code"), [("true", 0), ("exit 3", 3), ("kill -9 $$", 137)])
def test_exit_code_is_recorded(node: Node, script: str, code: int) -> None:
    record = node.run(["sh", "-c", script])
    assert record.exit_code == code
    assert not record.running and record.pid is None
    assert record.started_at is not None and record.finished_at is not None
    assert record.started_at <= record.finished_at


def test_log_holds_both_streams_in_cri_format(node: Node) -> None:
    record = node.run(["sh", "-c", "echo out1; echo err1 >&2; echo out2; printf tail"])
    lines = record.log_path.read_text().splitlines(keepends=True)
    assert all(CRI_LINE.match(line) for line in lines), lines
    assert node.stdout(record) == "out1\nout2\ntail\n"  # an unterminated last line ends as F, as containerd does
    assert node.stdout(record, "stderr") == "err1\n"


def test_long_line_is_split_into_partial_pieces(node: Node) -> None:
    record = node.run(["sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo; echo short"])
    tags = [line.split(" ", 3)[2] for line in record.log_path.read_text().splitlines()]
    assert tags == ["P", "P", "F", "F"]
    assert node.stdout(record) == "a" * 40000 + "\nshort\n"


def test_argv_env_and_working_dir(node: Node) -> None:
    record = node.run(["sh", "-c", 'echo "$0|$1|$GREETING|$HOSTNAME|$(pwd)|$(hostname)"', "arg zero", "arg one"],
                      env={"GREETING": "hello world"}, working_dir="/etc", hostname="web-0")
    assert node.stdout(record) == "arg zero|arg one|hello world|web-0|/etc|web-0\n"


def test_environment_is_only_the_launch_one(node: Node) -> None:
    record = node.run(["env"], env={"ONLY": "1"})
    names = {line.split("=", 1)[0] for line in node.stdout(record).splitlines()}
    assert names <= {"ONLY", "PATH", "HOME", "HOSTNAME", "PWD", "SHLVL"}
    assert "ONLY" in names


def _cap_eff(node: Node, **fields: object) -> int:
    record = node.run(["sh", "-c", "grep CapEff /proc/self/status"], **fields)
    return int(node.stdout(record).split()[1], 16)


def test_default_capabilities_are_containerds(node: Node) -> None:
    assert _cap_eff(node) == DEFAULT_CAPS_MASK


def test_capabilities_drop_all_and_add(node: Node) -> None:
    assert _cap_eff(node, cap_drop=["ALL"]) == 0
    assert _cap_eff(node, attempt=1, cap_drop=["ALL"], cap_add=["NET_ADMIN"]) == 1 << 12
    assert _cap_eff(node, attempt=2, cap_drop=["CAP_CHOWN"]) == DEFAULT_CAPS_MASK & ~1


def test_non_root_user_has_no_capabilities(node: Node) -> None:
    assert _cap_eff(node, run_as_user=1000, run_as_group=1000) == 0


def test_privileged_keeps_every_capability(node: Node) -> None:
    with open("/proc/self/status") as fh:
        bound = next(int(line.split()[1], 16) for line in fh if line.startswith("CapBnd"))
    assert _cap_eff(node, privileged=True) == bound


def test_user_group_and_supplementary_groups(node: Node) -> None:
    record = node.run(["id"], run_as_user=1000, run_as_group=2000, supplementary_groups=[3000, 3001])
    out = node.stdout(record)
    assert "uid=1000" in out and "gid=2000" in out and "3000" in out and "3001" in out


def test_unknown_image_is_err_image_pull(node: Node) -> None:
    with pytest.raises(ImageError) as caught:
        node.runtime.start(node.launch(["true"], image="example.com/team/unknown:1.0"))
    assert caught.value.reason == "ErrImagePull"
    assert "example.com/team/unknown:1.0" in caught.value.message
    assert node.runtime.inspect(node.uid, "c", 0) is None


def test_image_references_map_with_tags_digests_and_hub_spellings() -> None:
    images = ImageMap()
    for ref in ("busybox", "busybox:1.36", "docker.io/library/busybox:latest", "docker.io/busybox",
                "registry.k8s.io/busybox@sha256:" + "0" * 64, "quay.io/prometheus/busybox:glibc"):
        assert images.kind_of(ref) == "busybox", ref
    assert images.kind_of("quay.io/backube/volsync-addon-agent:latest") == "host"
    assert images.kind_of("localhost:5000/volsync-addon:dev") == "host"
    assert images.kind_of("python:3.11-slim") == "python"
    for ref in ("alpine", "busyboxx", "example.com/busybox-tools", "notvolsync-addon"):
        with pytest.raises(ImageError):
            images.kind_of(ref)
    assert ImageMap({"example.com/*": "busybox"}).kind_of("example.com/tools:1") == "busybox"


def test_host_network_is_refused_for_pods(node: Node) -> None:
    with pytest.raises(ValueError, match="network namespace"):
        node.runtime.start(node.launch(["true"], netns_path=None))


def test_same_attempt_twice_is_refused(node: Node) -> None:
    node.run(["true"])
    with pytest.raises(ValueError, match="exists"):
        node.runtime.start(node.launch(["true"]))


def test_python_image_has_the_virtualenv_python(node: Node) -> None:
    record = node.run(["python3", "-c", "import kubernetes, sys; print(sys.prefix.endswith('.venv') or sys.prefix)"],
                      image="python:3.11")
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert node.stdout(record) == "True\n"


def test_project_image_runs_console_scripts(node: Node) -> None:
    record = node.run(["sh", "-c", "command -v volsync-agent"], image="quay.io/backube/volsync-addon-agent:latest")
    assert record.exit_code == 0
    assert node.stdout(record).strip().endswith("/bin/volsync-agent")


def test_runtime_constructor_allows_host_network_only_when_asked(node: Node) -> None:
    runtime = ContainerRuntime(node.runtime.layout, node.runtime.images, allow_host_network=True)
    record = runtime.start(node.launch(["true"], netns_path=None))
    assert node.wait_ended(record).exit_code == 0


def test_host_problems_are_named(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    assert node.runtime.ready and node.runtime.problems == []
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr("shutil.which", lambda name: None if name == "bwrap" else f"/usr/bin/{name}")
    lame = ContainerRuntime(node.runtime.layout, node.runtime.images)
    assert not lame.ready
    assert any("bwrap" in p and "bubblewrap" in p for p in lame.problems)
    assert any("uid 1000" in p and "root" in p for p in lame.problems)
    with pytest.raises(RuntimeError, match="cannot run containers"):
        lame.start(node.launch(["true"]))


@pytest.mark.parametrize("user", [None, 1000])
def test_missing_command_is_a_start_error(node: Node, user: int | None) -> None:
    record = node.run(["no-such-program", "x"], run_as_user=user)
    assert (record.exit_code, record.reason) == (128, "StartError")
    assert record.message is not None and "no-such-program" in record.message


def test_program_writing_to_stderr_and_failing_is_no_start_error(node: Node) -> None:
    record = node.run(["sh", "-c", "echo 'bwrap: not really' >&2; exit 1"])
    assert (record.exit_code, record.reason) == (1, None)


def test_missing_mount_source_is_a_start_error(node: Node, tmp_path: Path) -> None:
    record = node.run(["true"], mounts=[Mount(tmp_path / "absent", "/data")])
    assert (record.exit_code, record.reason) == (128, "StartError")
    assert record.message is not None and "absent" in record.message


def test_image_map_from_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text("registry.example.com/tools/*: busybox\nbusybox: host\n")
    images = ImageMap.from_file(tmp_path / "images.yaml")
    assert images.kind_of("registry.example.com/tools/shell:2") == "busybox"
    assert images.kind_of("busybox:1.36") == "host"  # the file's rules come before the defaults
    (tmp_path / "images.json").write_text('{"example.com/*": "ubuntu"}')
    with pytest.raises(ValueError, match="unknown kind 'ubuntu'"):
        ImageMap.from_file(tmp_path / "images.json")


def test_python_image_runs_for_a_non_root_user_too(node: Node) -> None:
    """The interpreter may live under /root (pyenv): it is bound back, traversable by any user."""
    record = node.run(["python", "-c", "import kubernetes, os; print(os.getuid())"], image="python:3.12",
                      run_as_user=1000)
    assert record.exit_code == 0, node.stdout(record, "stderr")
    assert node.stdout(record) == "1000\n"
